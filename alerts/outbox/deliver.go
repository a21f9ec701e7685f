package outbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// warnEvery bounds the warnings of a sink that keeps failing: the first
// failure of an alert is logged, then at most one line per interval.
const warnEvery = time.Minute

// Run delivers pending alerts to every sink — one goroutine per sink, in
// order per sink, retrying failures with capped, jittered backoff — until ctx
// is done. It returns nil then; an attempt cut short by ctx is not a failure
// and is made again on the next start. Run may be called once.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return errors.New("outbox: Run called twice")
	}
	var wg sync.WaitGroup
	for _, s := range o.sinks {
		wg.Go(func() { o.deliverLoop(ctx, s) })
	}
	wg.Wait()
	return nil
}

func (o *Outbox) deliverLoop(ctx context.Context, s *sinkState) {
	bs, _ := s.sink.(BatchSink)
	for ctx.Err() == nil {
		o.mu.Lock()
		e := s.peek()
		o.mu.Unlock()
		if e == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		if bs != nil {
			o.deliverBatch(ctx, s, bs)
		} else {
			o.deliver(ctx, s, e)
		}
	}
}

// stopGrace is how long an attempt under way when delivery stops may still
// finish: an alert already published whose PUBACK (or HTTP answer) is on
// its way would otherwise count as not delivered, and go out a second time
// at the next start.
const stopGrace = 2 * time.Second

// attemptContext is ctx for one attempt, ending stopGrace after ctx does.
func attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(stopGrace, cancel)
		context.AfterFunc(actx, func() { t.Stop() })
	})
	return actx, func() { stop(); cancel() }
}

// deliver tries e on s until it is delivered, refused for good, or ctx ends.
func (o *Outbox) deliver(ctx context.Context, s *sinkState, e *entry) {
	a := e.alert
	backoff := o.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		actx, done := attemptContext(ctx)
		err := s.sink.Deliver(actx, a)
		done()
		if err == nil {
			o.delivered(s, e, attempt)
			return
		}
		if !o.failed(ctx, s, e, attempt, err, &backoff) {
			return
		}
	}
}

// deliverBatch delivers the head of s's queue through bs, up to maxBatch
// alerts an attempt, until the head alert of the first attempt is
// delivered, refused for good, or ctx ends. The alerts behind it go with it
// in the same attempt, in order; a failure is the first undelivered
// alert's, retried with backoff as deliver retries its alert, and alone:
// a sink that could not tell which alerts of a batch went through (a
// connection lost) must not send the ones that did again and again while
// the one it keeps failing holds the queue.
func (o *Outbox) deliverBatch(ctx context.Context, s *sinkState, bs BatchSink) {
	backoff := o.opts.MinBackoff
	var es []*entry
	var alerts []*model.Alert
	size := maxBatch
	for attempt := 1; ; attempt++ {
		o.mu.Lock()
		es = s.headN(es, size)
		o.mu.Unlock()
		alerts = alerts[:0]
		for _, e := range es {
			alerts = append(alerts, e.alert)
		}
		actx, done := attemptContext(ctx)
		n, err := bs.DeliverBatch(actx, alerts)
		done()
		n = min(max(n, 0), len(es))
		for i, e := range es[:n] {
			a := 1
			if i == 0 {
				a = attempt
			}
			o.delivered(s, e, a)
		}
		if n == len(es) {
			return
		}
		if err == nil {
			err = fmt.Errorf("alert %s not delivered", es[n].alert.ID) // a sink's mistake: retried
		}
		if n > 0 {
			attempt, backoff = 1, o.opts.MinBackoff // a new head: its first failure
		}
		size = 1
		if !o.failed(ctx, s, es[n], attempt, err, &backoff) {
			return
		}
	}
}

// delivered takes e, delivered to s at the attempt-th attempt, off s's
// queue.
func (o *Outbox) delivered(s *sinkState, e *entry, attempt int) {
	a := e.alert
	o.finish(s, e, false)
	s.m.delivered.Inc()
	if !a.RaisedAt.IsZero() {
		s.m.latency.Observe(time.Since(a.RaisedAt).Seconds())
	}
	if attempt > 1 {
		o.log.Info("alert delivered after retries", "sink", s.name, "id", a.ID, "state", a.State, "attempts", attempt)
	}
}

// failed handles the failure err of the attempt-th attempt to deliver e to
// s: drops e for s if err is permanent, else waits for the next attempt
// (doubling *backoff). It reports whether to try again: false when e was
// dropped or ctx ended (an attempt interrupted by shutdown is no failure).
func (o *Outbox) failed(ctx context.Context, s *sinkState, e *entry, attempt int, err error, backoff *time.Duration) bool {
	a := e.alert
	if ctx.Err() != nil {
		return false
	}
	s.m.failures.Inc()
	if errors.Is(err, ErrPermanent) {
		s.m.dropped.Inc()
		o.log.Error("ALERT DROPPED for sink: permanent delivery failure",
			"sink", s.name, "id", a.ID, "state", a.State, "rule", a.Rule, "site", a.Site,
			"severity", a.Severity, "attempts", attempt, "err", err)
		o.finish(s, e, true)
		return false
	}
	wait := jitter(*backoff)
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		// Honour the receiver's Retry-After, within our own cap.
		wait = max(wait, min(ra.RetryAfter(), o.opts.MaxBackoff))
	}
	if attempt == 1 || time.Since(s.lastWarn) >= warnEvery {
		s.lastWarn = time.Now()
		o.log.Warn("alert delivery failed; retrying", "sink", s.name, "id", a.ID, "state", a.State,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "pending", o.Pending(s.name), "err", err)
	}
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
	}
	*backoff = min(2**backoff, o.opts.MaxBackoff)
	return true
}

// jitter spreads retries over [d/2, d], so that sinks failing together do
// not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// finish takes e off s's queue and queues the durable record of it: a
// delivery, or with drop a permanent refusal.
func (o *Outbox) finish(s *sinkState, e *entry, drop bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s.pop()
	s.m.pending.Set(float64(s.len()))
	e.pending[s.idx] = false
	e.left--
	if e.left == 0 {
		delete(o.entries, e.seq)
		if e.key.id != "" {
			delete(o.byKey, e.key)
		}
	}
	if o.closing {
		return // Close was called before Run returned; see Close
	}
	o.acks = append(o.acks, record{T: recDone, Seq: e.seq, Sink: s.name, Drop: drop})
	o.cond.Signal()
}
