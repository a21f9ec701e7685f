package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/fenceline/fenceline/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait in these tests; generous for a stalled CI box.
const waitFor = 10 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastOpts retry quickly so that failure tests take milliseconds.
func fastOpts() Options {
	return Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

// failingSyncOpts retry quickly, and fail every fsync with msg while
// failing is set (a full or failing disk).
func failingSyncOpts(failing *atomic.Bool, msg string) Options {
	opts := fastOpts()
	opts.retryMin, opts.retryMax = time.Millisecond, 5*time.Millisecond
	opts.sync = func(f *os.File) error {
		if failing.Load() {
			return errors.New(msg)
		}
		return f.Sync()
	}
	return opts
}

func openT(t *testing.T, dir string, sinks []Sink, opts Options) *Outbox {
	t.Helper()
	o, err := Open(dir, sinks, opts, testLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	return o
}

func testAlert(id, state string) model.Alert {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return model.Alert{
		ID: id, Rule: "night-phone-ruins", Severity: "high", State: state, Site: "mdl",
		Zone:     "aolunsumu-ruins",
		Subject:  model.Subject{Kind: "imsi", Value: "460001234567890"},
		Summary:  "phone 460001234567890 at Aolunsumu ruins at night",
		At:       now.Add(-time.Second),
		RaisedAt: now,
		Location: &model.Point{Lat: 41.9612, Lon: 110.4875},
		Count:    1,
		Evidence: []model.Evidence{{Device: "F-AOL-01", Seq: 18231, TS: now.Add(-time.Second)}},
		Notify:   []string{"station-mdl"},
	}
}

func alerts(prefix string, n int) []model.Alert {
	as := make([]model.Alert, n)
	for i := range as {
		as[i] = testAlert(fmt.Sprintf("%s-%03d", prefix, i), model.StateFiring)
	}
	return as
}

// appendWait appends and waits for done.
func appendWait(t *testing.T, o *Outbox, as ...model.Alert) error {
	t.Helper()
	errc := make(chan error, 1)
	o.Append(as, func(err error) { errc <- err })
	select {
	case err := <-errc:
		return err
	case <-time.After(waitFor):
		t.Fatal("Append: done not called")
		return nil
	}
}

// run starts Run and returns a function that stops it and waits for it.
func run(t *testing.T, o *Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fakeSink records deliveries. fail, when set, decides each attempt.
type fakeSink struct {
	name string
	fail func(a *model.Alert, attempt int) error

	mu       sync.Mutex
	attempts map[key]int
	got      []model.Alert
	ch       chan model.Alert // every successful delivery
	failed   chan error       // every failed attempt
}

func newFakeSink(name string) *fakeSink {
	return &fakeSink{name: name, attempts: map[key]int{}, ch: make(chan model.Alert, 10000), failed: make(chan error, 10000)}
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Deliver(ctx context.Context, a *model.Alert) error {
	s.mu.Lock()
	k := key{a.ID, a.State}
	s.attempts[k]++
	n := s.attempts[k]
	s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(a, n); err != nil {
			s.failed <- err
			return err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, *a)
	s.mu.Unlock()
	s.ch <- *a
	return nil
}

// next waits for n deliveries and returns them.
func (s *fakeSink) next(t *testing.T, n int) []model.Alert {
	t.Helper()
	var out []model.Alert
	deadline := time.After(waitFor)
	for len(out) < n {
		select {
		case a := <-s.ch:
			out = append(out, a)
		case <-deadline:
			t.Fatalf("sink %s: got %d of %d deliveries", s.name, len(out), n)
		}
	}
	return out
}

// none asserts that nothing more was delivered; call it once Run returned.
func (s *fakeSink) none(t *testing.T) {
	t.Helper()
	select {
	case a := <-s.ch:
		t.Fatalf("sink %s: unexpected delivery of %s/%s", s.name, a.ID, a.State)
	default:
	}
}

func ids(as []model.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID + "/" + a.State
	}
	return out
}

// readRecords decodes the log in dir, failing on any damaged line.
func readRecords(t *testing.T, dir string) []*record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, logName))
	require.NoError(t, err)
	var recs []*record
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		require.GreaterOrEqual(t, i, 0, "log ends without LF")
		r, err := decodeLine(b[:i])
		require.NoError(t, err)
		recs = append(recs, r)
		b = b[i+1:]
	}
	return recs
}

var errTransient = errors.New("receiver unavailable")

// batchSink is a fakeSink taking alerts in batches, as BatchSink: it
// delivers each in turn and stops at the first failure.
type batchSink struct {
	*fakeSink
	sizes chan int      // the size of every batch
	sites chan []string // the sites of every batch's alerts
}

func newBatchSink(name string) *batchSink {
	return &batchSink{fakeSink: newFakeSink(name), sizes: make(chan int, 10000), sites: make(chan []string, 10000)}
}

func (s *batchSink) DeliverBatch(ctx context.Context, as []*model.Alert) (int, error) {
	s.sizes <- len(as)
	sites := make([]string, len(as))
	for i, a := range as {
		sites[i] = a.Site
	}
	s.sites <- sites
	for i, a := range as {
		if err := s.Deliver(ctx, a); err != nil {
			return i, err
		}
	}
	return len(as), nil
}
