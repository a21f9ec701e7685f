package influxwriter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/spool"
	"github.com/fenceline/fenceline/internal/model"
)

// openSpool opens a spool in a temp folder; the writer runs it.
func openSpool(t *testing.T, opts spool.Options) *spool.Spool {
	t.Helper()
	if opts.MaxReplayBackoff == 0 {
		opts.MaxReplayBackoff = 5 * time.Millisecond
	}
	sp, err := spool.Open(t.TempDir(), opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	return sp
}

// switchable makes f answer 503 while down is set.
func switchable(f *fakeInflux) *atomic.Bool {
	var down atomic.Bool
	f.answer = func(_ int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		if down.Load() {
			return http.StatusServiceUnavailable, nil, "engine: shutting down", nil
		}
		return http.StatusNoContent, nil, "", lines
	}
	return &down
}

var seqField = regexp.MustCompile(` seq=(\d+)i`)

// seqs returns the seq field of each line, in order.
func seqs(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if m := seqField.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// While InfluxDB answers 503, a batch goes to the spool after its first
// failed attempt, and later ones go there at once; the callbacks come only
// after the spool's fsync. Once InfluxDB is back the replayer writes the
// spooled lines in order, each once.
func TestSpoolWhileInfluxDown(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	down := switchable(f)
	down.Store(true)
	var (
		mu     sync.Mutex
		events []string
	)
	event := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	syncing := make(chan struct{}, 10)
	release := make(chan struct{})
	sp := openSpool(t, spool.Options{Sync: func(file *os.File) error {
		event("fsync")
		syncing <- struct{}{}
		<-release
		return file.Sync()
	}})
	s := startWriter(t, Config{URL: f.srv.URL, Spool: sp, MaxBackoff: time.Hour, Concurrency: 1})

	require.NoError(t, s.w.Write(context.Background(), detectionBatch(100, 3), func(err error) {
		event(fmt.Sprintf("done %v", err))
	}))
	recv(t, syncing)
	assert.Len(t, f.requests(), 1, "one attempt at InfluxDB, then the spool")
	select {
	case <-time.After(50 * time.Millisecond): // a callback that is wrongly early comes at once
	case <-waitEvent(&mu, &events, "done <nil>"):
		t.Fatal("called back before the spool's fsync returned")
	}
	release <- struct{}{}
	<-waitEvent(&mu, &events, "done <nil>")
	mu.Lock()
	assert.Equal(t, []string{"fsync", "done <nil>"}, events)
	mu.Unlock()
	assert.False(t, s.w.Healthy())
	assert.NoError(t, s.w.ReadyToStore(), "ready: InfluxDB is down but the spool takes batches")

	// Writes are failing: the next batches skip InfluxDB.
	for i := range 5 {
		wt := newWaiter(1)
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(101+i), 3), wt.done(0)))
		recv(t, syncing)
		release <- struct{}{}
		wt.wait(t, 1)
		require.NoError(t, wt.err(0))
	}
	// Requests not made by the replayer (which probes meanwhile). A probe
	// the fake has seen is counted once its answer is back, at once: a
	// difference above 1 that lasts is a live request.
	live := func() float64 {
		return float64(len(f.requests())) - counter(t, s.reg, "fenceline_influx_replay_requests_total")
	}
	assert.Eventually(t, func() bool { return live() == 1 }, 5*time.Second, time.Millisecond,
		"later batches went to the spool without a request (the replayer probes)")
	assert.Equal(t, 18.0, counter(t, s.reg, "fenceline_influx_spooled_lines_total"))
	assert.Equal(t, 6.0, counter(t, s.reg, "fenceline_influx_write_batches_total", "outcome", "spooled"))
	assert.Zero(t, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementDetection))
	assert.Empty(t, f.storedLines())

	// InfluxDB is back: the replayer drains, live traffic goes straight in.
	close(release)
	down.Store(false)
	waitFor(t, func() bool { return sp.Stats().Records == 0 && s.w.Healthy() })
	wt := newWaiter(1)
	require.NoError(t, s.w.Write(context.Background(), detectionBatch(200, 2), wt.done(0)))
	wt.wait(t, 1)
	require.NoError(t, wt.err(0))
	stored := f.storedLines()
	assert.Equal(t, []string{"100", "100", "100", "101", "101", "101", "102", "102", "102", "103", "103", "103",
		"104", "104", "104", "105", "105", "105", "200", "200"}, seqs(stored), "replayed in order, each once, then live")
	assert.Len(t, uniq(stored), 20)
	assert.Equal(t, 18.0, counter(t, s.reg, "fenceline_influx_replayed_lines_total"))
	assert.Equal(t, 20.0, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementDetection),
		"points written count the replayed ones too")
	require.NoError(t, s.w.Close(context.Background()))
	s.stop(t)
}

func recv(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(itTimeout):
		t.Fatal("the spool never fsynced")
	}
}

func waitEvent(mu *sync.Mutex, events *[]string, e string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		deadline := time.Now().Add(itTimeout)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, have := range *events {
				if have == e {
					mu.Unlock()
					return
				}
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // polling interval of a condition
		}
	}()
	return ch
}

func uniq(lines []string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lines {
		m[l] = true
	}
	return m
}

// A full spool stops spooling: batches stay in memory and are retried, the
// callbacks wait, Write blocks at MaxPending (the backpressure that reaches
// the broker), and readiness says why. Nothing is dropped: once InfluxDB is
// back every line is stored once.
func TestSpoolFullBackpressure(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	down := switchable(f)
	down.Store(true)
	sp := openSpool(t, spool.Options{MaxBytes: 64 << 10})
	s := startWriter(t, Config{URL: f.srv.URL, Spool: sp, MaxBackoff: 5 * time.Millisecond, MaxPending: 400, BatchSize: 40, Concurrency: 2})

	const messages, per = 200, 20 // ~100 KiB of lines: more than the spool holds
	var acked atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, messages)
	written := 0
	for i := range messages {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		wg.Add(1)
		err := s.w.Write(ctx, detectionBatch(int64(i), per), func(err error) {
			errs[i] = err
			acked.Add(1)
			wg.Done()
		})
		cancel()
		if err != nil {
			wg.Done()
			require.ErrorIs(t, err, context.DeadlineExceeded, "Write blocks once MaxPending lines wait")
			break
		}
		written++
	}
	require.Less(t, written, messages, "backpressure reached Write")
	waitFor(t, func() bool { return sp.Stats().Full })
	err := s.w.ReadyToStore()
	require.ErrorContains(t, err, "cannot spool")
	assert.ErrorIs(t, err, spool.ErrFull)
	spooled := int(acked.Load())
	assert.Greater(t, spooled, 0, "some went to the spool before it filled")
	assert.Less(t, spooled, written, "the rest wait in memory")

	down.Store(false)
	wg.Wait()
	for i := range written {
		require.NoError(t, errs[i], "message %d", i)
	}
	waitFor(t, func() bool { return sp.Stats().Records == 0 })
	assert.Len(t, uniq(f.storedLines()), written*per, "every line stored")
	assert.NoError(t, s.w.ReadyToStore())
	require.NoError(t, s.w.Close(context.Background()))
	s.stop(t)
}

// Spooled lines that InfluxDB refuses for good on replay are isolated by
// bisection and handed to Rejected; the others are stored. A chunk whose
// replay fails part way (a 5xx after a line was refused and kept) is sent
// again from where it failed: the refused line is kept, counted and logged
// once, not again with every retry of the chunk.
func TestReplayRejectedLines(t *testing.T) {
	for _, tc := range []struct {
		name            string
		failAfterReject bool // the request after the refused line's fails, once
	}{
		{name: "refused line"},
		{name: "refused line, then a 5xx", failAfterReject: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			f := newFakeInflux(t)
			var down, failNext atomic.Bool
			var failures atomic.Int32
			down.Store(true)
			badTime := " " + itoa(model.PointTime(t0, 7, 1)) // reading 1 of message 7
			bad := func(l string) bool { return strings.HasSuffix(l, badTime) }
			f.answer = func(_ int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
				if down.Load() {
					return http.StatusBadGateway, nil, "bad gateway", nil
				}
				if failNext.CompareAndSwap(true, false) {
					failures.Add(1)
					return http.StatusServiceUnavailable, nil, "engine: busy", nil
				}
				var keep []string
				for _, l := range lines {
					if !bad(l) {
						keep = append(keep, l)
					}
				}
				if len(keep) < len(lines) {
					if tc.failAfterReject && len(lines) == 1 && failures.Load() == 0 {
						failNext.Store(true)
					}
					return http.StatusBadRequest, nil, "partial write: points beyond retention policy dropped=1", keep
				}
				return http.StatusNoContent, nil, "", lines
			}
			var mu sync.Mutex
			var rejected []string
			sp := openSpool(t, spool.Options{})
			s := startWriter(t, Config{URL: f.srv.URL, Spool: sp, MaxBackoff: time.Millisecond, Rejected: func(lines []byte, err *PermanentError) error {
				mu.Lock()
				defer mu.Unlock()
				assert.Equal(t, http.StatusBadRequest, err.Status)
				rejected = append(rejected, string(lines))
				return nil
			}})
			wt := newWaiter(10)
			for i := range 10 {
				require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(i), 4), wt.done(i)))
			}
			wt.wait(t, 10)
			for i := range 10 {
				require.NoError(t, wt.err(i))
			}
			down.Store(false)
			waitFor(t, func() bool { return sp.Stats().Records == 0 })
			if tc.failAfterReject {
				require.Equal(t, int32(1), failures.Load(), "the part after the refused line failed once")
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{lineOf(t, detectionBatch(7, 4), 1)}
			assert.Equal(t, want, rejected)
			assert.Len(t, uniq(f.storedLines()), 40-len(want))
			assert.Equal(t, float64(len(want)), counter(t, s.reg, "fenceline_influx_replay_rejected_lines_total"))
			require.NoError(t, s.w.Close(context.Background()))
			s.stop(t)
		})
	}
}

// lineOf returns line i of b's encoding.
func lineOf(t *testing.T, b *model.Batch, i int) string {
	t.Helper()
	var e Encoder
	buf, _ := e.AppendBatch(nil, b)
	return strings.SplitAfter(string(buf), "\n")[i]
}

// Close with InfluxDB down drains into the spool: the messages are acked
// and shutdown does not wait for InfluxDB.
func TestCloseDrainsIntoSpool(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	down := switchable(f)
	down.Store(true)
	sp := openSpool(t, spool.Options{})
	s := startWriter(t, Config{URL: f.srv.URL, Spool: sp, MaxBackoff: time.Hour, Lazy: true, FlushInterval: time.Hour})
	wt := newWaiter(3)
	for i := range 3 {
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(i), 2), wt.done(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	require.NoError(t, s.w.Close(ctx))
	wt.wait(t, 3)
	for i := range 3 {
		require.NoError(t, wt.err(i))
	}
	s.stop(t)
	assert.Equal(t, 1, sp.Stats().Records, "one batch, spooled")
}

func TestReadyToStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		healthy bool
		spool   func(t *testing.T) *spool.Spool
		err     string // "" : ready
	}{
		{name: "influx healthy, no spool", healthy: true},
		{name: "influx down, no spool", err: "cannot store"},
		{name: "influx down, spool takes batches", spool: func(t *testing.T) *spool.Spool { return openSpool(t, spool.Options{}) }},
		{name: "influx down, spool full", err: "spool: full", spool: func(t *testing.T) *spool.Spool {
			sp := openSpool(t, spool.Options{MaxBytes: 64 << 10})
			done := make(chan error, 1)
			sp.Append(make([]byte, 70<<10), func(err error) { done <- err })
			require.ErrorIs(t, <-done, spool.ErrFull)
			return sp
		}},
		{name: "influx down, spool closed", err: "spool: closed", spool: func(t *testing.T) *spool.Spool {
			sp := openSpool(t, spool.Options{})
			require.NoError(t, sp.Close())
			return sp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: "http://127.0.0.1:1", Bucket: "b"}
			if tc.spool != nil {
				cfg.Spool = tc.spool(t)
			}
			w, err := New(cfg, nil, prometheus.NewRegistry())
			require.NoError(t, err)
			if tc.healthy {
				w.recovered()
			}
			err = w.ReadyToStore()
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

func TestHalveLines(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi string
		ok     bool
	}{
		{in: "a\n", ok: false},
		{in: "a\nb\n", lo: "a\n", hi: "b\n", ok: true},
		{in: "aaaaaaaa\nb\n", lo: "aaaaaaaa\n", hi: "b\n", ok: true},
		{in: "a\nbbbbbbbbbb\n", lo: "a\n", hi: "bbbbbbbbbb\n", ok: true},
		{in: "a\nb\nc\nd\n", lo: "a\nb\n", hi: "c\nd\n", ok: true},
	} {
		lo, hi, ok := halveLines([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.lo, string(lo), tc.in)
		assert.Equal(t, tc.hi, string(hi), tc.in)
	}
}

// The count of spooled batches not yet logged belongs to one outage: the
// next outage's first spooled batch is logged at once, with its own count
// (it reported the previous outage's).
func TestSpoolLogCountEndsWithTheOutage(t *testing.T) {
	w := &Writer{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w.failing, w.spooledUnlogged, w.spoolLoggedAt = true, 7584, time.Now()
	w.recovered()
	require.Zero(t, w.spooledUnlogged)
	require.True(t, w.spoolLoggedAt.IsZero())
}
