package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
)

// AlertWriter writes an alert as a point of the `alert` measurement. done is
// called once with nil when the point is stored (or spooled durably), or
// with an error — one with a method Permanent() bool returning true when
// InfluxDB refused the point for good. A non-nil return means done will not
// be called. WriteAlert must be safe for concurrent use: the outbox
// delivers the alerts of different sites at the same time.
type AlertWriter interface {
	WriteAlert(ctx context.Context, a *model.Alert, done func(error)) error
}

// Influx delivers alerts to InfluxDB through the storage writer, so that
// they share its batching, retries and spool. It is safe for concurrent
// use, as its writer is.
type Influx struct {
	w AlertWriter
}

// NewInflux returns the sink writing through w.
func NewInflux(w AlertWriter) *Influx { return &Influx{w: w} }

// Name is the sink's name in the outbox and in metrics.
func (s *Influx) Name() string { return "influx" }

// Deliver hands a to the writer and waits for its done.
func (s *Influx) Deliver(ctx context.Context, a *model.Alert) error {
	// One slot, and a send that never blocks: the writer's goroutine must
	// not hang on a Deliver that gave up (ctx done) or on a second call.
	res := make(chan error, 1)
	done := func(err error) {
		select {
		case res <- err:
		default:
		}
	}
	if err := s.w.WriteAlert(ctx, a, done); err != nil {
		return s.classify(a, err)
	}
	select {
	case err := <-res:
		return s.classify(a, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DeliverBatch hands every alert to the writer at once, so that they share
// its batches (one flush for a burst, not one each), and waits for them in
// order: it returns how many from the first are stored, and why the next is
// not. Alerts after it may be stored too; delivered again, each rewrites
// its own point.
func (s *Influx) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	res := make([]chan error, 0, len(alerts))
	var refused error // WriteAlert's own, for the alert after those in res
	for _, a := range alerts {
		ch := make(chan error, 1)
		if err := s.w.WriteAlert(ctx, a, func(err error) {
			select {
			case ch <- err:
			default:
			}
		}); err != nil {
			refused = s.classify(a, err)
			break
		}
		res = append(res, ch)
	}
	for i, ch := range res {
		if err := s.wait(ctx, alerts[i], ch); err != nil {
			return i, err
		}
	}
	return len(res), refused
}

// wait waits for the writer's done of alert a.
func (s *Influx) wait(ctx context.Context, a *model.Alert, res <-chan error) error {
	select {
	case err := <-res:
		return s.classify(a, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Influx) classify(a *model.Alert, err error) error {
	if err == nil {
		return nil
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return fmt.Errorf("influx: alert %s: %w: %w", a.ID, outbox.ErrPermanent, err)
	}
	return fmt.Errorf("influx: alert %s: %w", a.ID, err)
}
