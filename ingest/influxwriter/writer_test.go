package influxwriter

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/fenceline/fenceline/ingest/spool"
	"github.com/fenceline/fenceline/internal/model"
)

// fakeInflux is an httptest server speaking enough of /api/v2/write to test
// the writer's own HTTP behaviour. answer decides each request's fate; the
// lines of 2xx answers (and the good lines of "partial writes") are kept.
type fakeInflux struct {
	srv *httptest.Server

	mu     sync.Mutex
	answer func(n int, lines []string, r *http.Request) (status int, header http.Header, body string, keep []string)
	reqs   []fakeReq
	stored []string
}

type fakeReq struct {
	at    time.Time
	lines []string
	size  int
	auth  string
	query string
}

func newFakeInflux(t *testing.T) *fakeInflux {
	f := &fakeInflux{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path != "/api/v2/write" {
			http.NotFound(w, r)
			return
		}
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		body, err := io.ReadAll(rd)
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, fakeReq{at: time.Now(), lines: lines, size: len(body),
			auth: r.Header.Get("Authorization"), query: r.URL.RawQuery})
		answer := f.answer
		f.mu.Unlock()
		status, hdr, msg, keep := http.StatusNoContent, http.Header(nil), "", lines
		if answer != nil {
			status, hdr, msg, keep = answer(n, lines, r)
		}
		f.mu.Lock()
		f.stored = append(f.stored, keep...)
		f.mu.Unlock()
		for k, v := range hdr {
			w.Header()[k] = v
		}
		if status/100 != 2 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Influxdb-Error", msg)
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":%q}`, msg)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeInflux) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeInflux) storedLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stored...)
}

// started is a running writer; stop drains it and ends Run.
type started struct {
	w      *Writer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	ran    chan error
}

func startWriter(t *testing.T, cfg Config) *started {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Bucket == "" {
		cfg.Bucket = "border/autogen"
	}
	w, err := New(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{w: w, reg: reg, cancel: cancel, ran: make(chan error, 1)}
	go func() { s.ran <- w.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *started) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	require.NoError(t, <-s.ran)
	s.cancel = nil
}

// waiter collects done callbacks and checks each is called exactly once.
type waiter struct {
	mu    sync.Mutex
	calls map[int]int
	errs  map[int]error
	ch    chan int
}

func newWaiter(n int) *waiter {
	return &waiter{calls: map[int]int{}, errs: map[int]error{}, ch: make(chan int, n*2)}
}

func (wt *waiter) done(id int) func(error) {
	return func(err error) {
		wt.mu.Lock()
		wt.calls[id]++
		wt.errs[id] = err
		wt.mu.Unlock()
		wt.ch <- id
	}
}

// wait blocks until n callbacks arrived (or fails after a generous timeout).
func (wt *waiter) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-wt.ch:
		case <-timeout:
			t.Fatalf("callbacks: timed out")
		}
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for id, c := range wt.calls {
		require.Equal(t, 1, c, "callback %d called %d times", id, c)
	}
}

func (wt *waiter) err(id int) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.errs[id]
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func TestWriteAcknowledged(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	s := startWriter(t, Config{URL: f.srv.URL, Token: "writer:secret", Bucket: "border/autogen"})
	assert.Contains(t, s.w.String(), "border/autogen")
	wt := newWaiter(10)
	for i := range 10 {
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(100+i), 20), wt.done(i)))
	}
	wt.wait(t, 10)
	for i := range 10 {
		assert.NoError(t, wt.err(i))
	}
	assert.Len(t, f.storedLines(), 200)
	reqs := f.requests()
	assert.Equal(t, "Token writer:secret", reqs[0].auth)
	assert.Contains(t, reqs[0].query, "bucket=border%2Fautogen")
	assert.Contains(t, reqs[0].query, "precision=ns")
	assert.Equal(t, 200.0, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementDetection))
	assert.Equal(t, 0.0, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementAlert))
	assert.Equal(t, float64(len(reqs)), counter(t, s.reg, "fenceline_influx_write_batches_total", "outcome", "success"))
	assert.Equal(t, 0.0, counter(t, s.reg, "fenceline_influx_pending_lines"))
	assert.True(t, s.w.Healthy())
	assert.NoError(t, s.w.LastError())

	require.NoError(t, s.w.Close(context.Background()))
	assert.ErrorIs(t, s.w.Write(context.Background(), detectionBatch(1, 1), wt.done(99)), ErrClosed)
	s.stop(t)
}

// What InfluxDB gets is exactly what the Encoder makes of each message and
// alert (Write encodes into the batch being filled, WriteAlert copies its
// line there), messages that do not fit a batch starting the next one.
func TestWriteStoresTheEncodersLines(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	s := startWriter(t, Config{URL: f.srv.URL, BatchSize: 50, Lazy: true, FlushInterval: 5 * time.Millisecond})
	var e Encoder
	var want []byte
	wt := newWaiter(40)
	for i := range 40 {
		if i%7 == 3 {
			a := &model.Alert{ID: fmt.Sprintf("a%d", i), Rule: "r", Severity: "low", State: model.StateFiring, Site: "mdl", At: t0}
			line, err := AppendAlert(nil, a)
			require.NoError(t, err)
			want = append(want, line...)
			require.NoError(t, s.w.WriteAlert(context.Background(), a, wt.done(i)))
			continue
		}
		var b *model.Batch
		if i%2 == 0 {
			b = realisticDetections(int64(200 + i))
		} else {
			b = detectionBatch(int64(200+i), 1+i%13)
		}
		want, _ = e.AppendBatch(want, b)
		require.NoError(t, s.w.Write(context.Background(), b, wt.done(i)))
	}
	wt.wait(t, 40)
	for i := range 40 {
		require.NoError(t, wt.err(i))
	}
	require.ElementsMatch(t, strings.Split(strings.TrimSuffix(string(want), "\n"), "\n"), f.storedLines())
	for _, r := range f.requests() {
		assert.LessOrEqual(t, len(r.lines), 50, "a batch holds at most BatchSize lines")
	}
	s.stop(t)
}

func TestRetryServerError(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	f.answer = func(n int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		if n < 2 {
			return http.StatusInternalServerError, nil, "engine: cache-max-memory-size exceeded", nil
		}
		return http.StatusNoContent, nil, "", lines
	}
	s := startWriter(t, Config{URL: f.srv.URL})
	wt := newWaiter(1)
	require.NoError(t, s.w.Write(context.Background(), detectionBatch(5, 3), wt.done(0)))
	wt.wait(t, 1)
	require.NoError(t, wt.err(0))
	reqs := f.requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, reqs[0].lines, reqs[2].lines, "the same body is retried")
	assert.Equal(t, 2.0, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "server"))
	assert.Equal(t, 2.0, counter(t, s.reg, "fenceline_influx_write_batches_total", "outcome", "retry"))
	assert.Equal(t, 1.0, counter(t, s.reg, "fenceline_influx_write_batches_total", "outcome", "success"))
	assert.Equal(t, 3.0, counter(t, s.reg, "fenceline_influx_write_duration_seconds"))
	assert.True(t, s.w.Healthy())
}

func TestRetryClasses(t *testing.T) {
	for _, tc := range []struct {
		status int
		class  string
	}{
		{http.StatusUnauthorized, "auth"},
		{http.StatusForbidden, "auth"},
		{http.StatusNotFound, "not_found"},
		{http.StatusServiceUnavailable, "server"},
		{http.StatusMethodNotAllowed, "server"},
		{http.StatusTooManyRequests, "throttled"},
	} {
		t.Run(tc.class+fmt.Sprint(tc.status), func(t *testing.T) {
			f := newFakeInflux(t)
			failing := make(chan struct{})
			release := make(chan struct{})
			f.answer = func(n int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
				switch n {
				case 0:
					return tc.status, nil, "no", nil
				case 1:
					close(failing)
					<-release
				}
				return http.StatusNoContent, nil, "", lines
			}
			s := startWriter(t, Config{URL: f.srv.URL, MaxBackoff: time.Millisecond})
			wt := newWaiter(1)
			require.NoError(t, s.w.Write(context.Background(), detectionBatch(5, 1), wt.done(0)))
			<-failing // the retry is in flight: the first attempt failed
			assert.False(t, s.w.Healthy())
			assert.ErrorContains(t, s.w.LastError(), fmt.Sprint(tc.status))
			close(release)
			wt.wait(t, 1)
			require.NoError(t, wt.err(0))
			assert.Equal(t, 1.0, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", tc.class))
			assert.True(t, s.w.Healthy())
		})
	}
}

func TestRetryAfter(t *testing.T) {
	f := newFakeInflux(t)
	f.answer = func(n int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		if n == 0 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}, "slow down", nil
		}
		return http.StatusNoContent, nil, "", lines
	}
	// MaxBackoff far below Retry-After: the server's word wins.
	s := startWriter(t, Config{URL: f.srv.URL, MaxBackoff: 10 * time.Millisecond})
	wt := newWaiter(1)
	require.NoError(t, s.w.Write(context.Background(), detectionBatch(5, 1), wt.done(0)))
	wt.wait(t, 1)
	require.NoError(t, wt.err(0))
	reqs := f.requests()
	require.Len(t, reqs, 2)
	assert.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 950*time.Millisecond)
	assert.Equal(t, 1.0, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "throttled"))

	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 120*time.Second, retryAfter("120", now))
	assert.Equal(t, 30*time.Second, retryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, retryAfter("soon", now))
	assert.Zero(t, retryAfter("-3", now))
}

// A 400 "partial write" names no message: bisection isolates the ones that
// fail alone, every other message is acknowledged.
func TestPartialWriteBisect(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	bad := func(l string) bool { return strings.Contains(l, "seq=105i") || strings.Contains(l, "seq=111i") }
	f.answer = func(n int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		var keep []string
		dropped := 0
		for _, l := range lines {
			if bad(l) {
				dropped++
			} else {
				keep = append(keep, l)
			}
		}
		if dropped > 0 {
			// What InfluxDB 1.8 does: writes the good points, 400 for the rest.
			return http.StatusBadRequest, nil, fmt.Sprintf(`partial write: field type conflict: input field "rssi" on measurement "phone_detection" is type integer, already exists as type float dropped=%d`, dropped), keep
		}
		return http.StatusNoContent, nil, "", lines
	}
	// Lazy with a long interval: all 16 messages go in one batch.
	s := startWriter(t, Config{URL: f.srv.URL, Lazy: true, FlushInterval: time.Hour, BatchSize: 16 * 3})
	wt := newWaiter(16)
	for i := range 16 {
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(100+i), 3), wt.done(i)))
	}
	wt.wait(t, 16)
	for i := range 16 {
		err := wt.err(i)
		if i == 5 || i == 11 {
			var pe *PermanentError
			require.ErrorAs(t, err, &pe, "message %d", i)
			assert.Equal(t, http.StatusBadRequest, pe.Status)
			assert.Contains(t, pe.Message, "field type conflict")
			assert.True(t, IsPermanent(err))
			assert.ElementsMatch(t, []int64{model.PointTime(t0, int64(100+i), 0), model.PointTime(t0, int64(100+i), 1),
				model.PointTime(t0, int64(100+i), 2)}, pe.Times, "every line of the message was refused")
			continue
		}
		assert.NoError(t, err, "message %d", i)
	}
	stored := map[string]bool{}
	for _, l := range f.storedLines() {
		stored[l] = true
	}
	assert.Len(t, stored, 14*3, "every good line stored")
	reqs := f.requests()
	assert.Equal(t, 48, len(reqs[0].lines), "one batch at first")
	assert.LessOrEqual(t, len(reqs), 1+2*2*4, "bisection costs about 2 log2(n) requests per bad message")
	assert.Equal(t, 3.0*14, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementDetection))
}

// partialWriteOf answers as InfluxDB 1.8 does when the lines bad picks are
// refused: the good ones are written, and a 400 tells how many were dropped.
func partialWriteOf(bad func(string) bool) func(int, []string, *http.Request) (int, http.Header, string, []string) {
	return func(_ int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		var keep []string
		for _, l := range lines {
			if !bad(l) {
				keep = append(keep, l)
			}
		}
		if dropped := len(lines) - len(keep); dropped > 0 {
			return http.StatusBadRequest, nil, fmt.Sprintf(`partial write: points beyond retention policy dropped=%d`, dropped), keep
		}
		return http.StatusNoContent, nil, "", lines
	}
}

// When only some readings of a message are refused, the lines are isolated:
// the error names exactly those (their point times), the message's other
// readings are stored.
//
// InfluxDB 1.8 counts the lines it could not parse as dropped=0 (measured):
// such a partial write is isolated the same way, not taken for the whole
// message refused.
func TestPartialWriteIsolatesLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(bad func(string) bool) func(int, []string, *http.Request) (int, http.Header, string, []string)
	}{
		{"points dropped", partialWriteOf},
		{"lines unparsable: dropped=0", unparsableOf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			f := newFakeInflux(t)
			badTimes := map[string]bool{itoa(model.PointTime(t0, 7, 1)): true, itoa(model.PointTime(t0, 7, 4)): true}
			f.answer = tc.answer(func(l string) bool { return badTimes[l[strings.LastIndexByte(l, ' ')+1:]] })
			s := startWriter(t, Config{URL: f.srv.URL, Lazy: true, FlushInterval: time.Hour, BatchSize: 3 + 6})
			wt := newWaiter(2)
			require.NoError(t, s.w.Write(context.Background(), detectionBatch(6, 3), wt.done(0)))
			require.NoError(t, s.w.Write(context.Background(), detectionBatch(7, 6), wt.done(1)))
			wt.wait(t, 2)
			require.NoError(t, wt.err(0))
			var pe *PermanentError
			require.ErrorAs(t, wt.err(1), &pe)
			assert.ElementsMatch(t, []int64{model.PointTime(t0, 7, 1), model.PointTime(t0, 7, 4)}, pe.Times)
			stored := map[string]bool{}
			for _, l := range f.storedLines() {
				stored[l] = true
			}
			assert.Len(t, stored, 3+4, "the good lines of both messages are stored (some of them twice: the same points)")
		})
	}
}

// unparsableOf answers as InfluxDB 1.8 does when it cannot parse the lines
// bad picks: the others are written, and the 400 says dropped=0.
func unparsableOf(bad func(string) bool) func(int, []string, *http.Request) (int, http.Header, string, []string) {
	return func(_ int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		var keep []string
		first := ""
		for _, l := range lines {
			if !bad(l) {
				keep = append(keep, l)
			} else if first == "" {
				first = l
			}
		}
		if first != "" {
			return http.StatusBadRequest, nil, fmt.Sprintf(`partial write: unable to parse '%s': bad timestamp dropped=0`, strings.TrimSuffix(first, "\n")), keep
		}
		return http.StatusNoContent, nil, "", lines
	}
}

// When InfluxDB drops every line it was sent (a type conflict on a field
// every line has), each message is refused at once, without bisection.
func TestPartialWriteAllRefused(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	f.answer = partialWriteOf(func(string) bool { return true })
	s := startWriter(t, Config{URL: f.srv.URL, Lazy: true, FlushInterval: time.Hour, BatchSize: 8 * 20})
	wt := newWaiter(8)
	for i := range 8 {
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(i), 20), wt.done(i)))
	}
	wt.wait(t, 8)
	for i := range 8 {
		var pe *PermanentError
		require.ErrorAs(t, wt.err(i), &pe, "message %d", i)
		assert.Len(t, pe.Times, 20, "message %d: its own lines", i)
		assert.Equal(t, model.PointTime(t0, int64(i), 0), pe.Times[0])
	}
	assert.Len(t, f.requests(), 1)
}

func Test413Split(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	const limit = 2000
	f.answer = func(n int, lines []string, r *http.Request) (int, http.Header, string, []string) {
		if r.ContentLength > limit {
			return http.StatusRequestEntityTooLarge, nil, "Request Entity Too Large", nil
		}
		return http.StatusNoContent, nil, "", lines
	}
	s := startWriter(t, Config{URL: f.srv.URL, Lazy: true, FlushInterval: time.Hour, BatchSize: 5*4 + 40 + 1})
	wt := newWaiter(7)
	for i := range 5 {
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(int64(200+i), 4), wt.done(i)))
	}
	// One message of 40 lines, far above the limit alone: split by lines.
	require.NoError(t, s.w.Write(context.Background(), detectionBatch(300, 40), wt.done(5)))
	// One line longer than the limit: nothing left to split.
	huge := detectionBatch(301, 1)
	huge.Detections[0].MAC = strings.Repeat("m", limit)
	require.NoError(t, s.w.Write(context.Background(), huge, wt.done(6)))
	wt.wait(t, 7)
	for i := range 6 {
		assert.NoError(t, wt.err(i), "message %d", i)
	}
	var pe *PermanentError
	require.ErrorAs(t, wt.err(6), &pe)
	assert.Equal(t, http.StatusRequestEntityTooLarge, pe.Status)

	stored := map[string]bool{}
	for _, l := range f.storedLines() {
		stored[l] = true
	}
	assert.Len(t, stored, 5*4+40)
	alone := 0
	for _, r := range f.requests() {
		if r.size > limit && len(r.lines) == 1 {
			alone++
		}
	}
	assert.Equal(t, 1, alone, "the huge line was tried alone once, then given up")
	assert.Positive(t, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "too_large"))
}

func TestBackpressure(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	release := make(chan struct{})
	inFlight := make(chan struct{}, 10)
	f.answer = func(n int, lines []string, _ *http.Request) (int, http.Header, string, []string) {
		inFlight <- struct{}{}
		<-release
		return http.StatusNoContent, nil, "", lines
	}
	s := startWriter(t, Config{URL: f.srv.URL, MaxPending: 10, Concurrency: 1})
	wt := newWaiter(3)
	require.NoError(t, s.w.Write(context.Background(), detectionBatch(1, 10), wt.done(0)))
	<-inFlight
	// 10 lines unacknowledged: the next write waits for room.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.w.Write(ctx, detectionBatch(2, 1), wt.done(1)), context.DeadlineExceeded)
	assert.Equal(t, 10.0, counter(t, s.reg, "fenceline_influx_pending_lines"))
	assert.Zero(t, counter(t, s.reg, "fenceline_influx_pending_full"), "no write waits now")

	// A blocked write says so (intake stopped: an alert's signal), and
	// proceeds once the first batch is acknowledged.
	wrote := make(chan error, 1)
	go func() { wrote <- s.w.Write(context.Background(), detectionBatch(3, 5), wt.done(2)) }()
	require.Eventually(t, func() bool { return counter(t, s.reg, "fenceline_influx_pending_full") == 1 }, 10*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-wrote)
	assert.Zero(t, counter(t, s.reg, "fenceline_influx_pending_full"))
	wt.wait(t, 2)
	assert.NoError(t, wt.err(0))
	assert.NoError(t, wt.err(2))
	wt.mu.Lock()
	assert.Zero(t, wt.calls[1], "a write that returned an error is never called back")
	wt.mu.Unlock()
}

func TestCloseDrainsAndStopAbandons(t *testing.T) {
	noLeaks(t)
	t.Run("close sends at once", func(t *testing.T) {
		f := newFakeInflux(t)
		s := startWriter(t, Config{URL: f.srv.URL, Lazy: true, FlushInterval: time.Hour})
		wt := newWaiter(1)
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(1, 3), wt.done(0)))
		require.NoError(t, s.w.Close(context.Background()))
		wt.mu.Lock()
		assert.Equal(t, 1, wt.calls[0], "Close returns after the callbacks")
		wt.mu.Unlock()
		assert.Len(t, f.storedLines(), 3)
	})
	t.Run("stop while InfluxDB is down", func(t *testing.T) {
		f := newFakeInflux(t)
		failed := make(chan struct{}, 100)
		f.answer = func(int, []string, *http.Request) (int, http.Header, string, []string) {
			failed <- struct{}{}
			return http.StatusServiceUnavailable, nil, "down", nil
		}
		s := startWriter(t, Config{URL: f.srv.URL, MaxBackoff: time.Millisecond, Concurrency: 1, Lazy: true, FlushInterval: time.Hour, BatchSize: 3})
		wt := newWaiter(2)
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(1, 3), wt.done(0)))
		require.NoError(t, s.w.Write(context.Background(), detectionBatch(2, 3), wt.done(1)))
		<-failed
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := s.w.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "6 lines not acknowledged")
		s.stop(t)
		wt.wait(t, 2)
		assert.ErrorIs(t, wt.err(0), ErrStopped)
		assert.ErrorIs(t, wt.err(1), ErrStopped)
		assert.False(t, IsPermanent(wt.err(0)))
		assert.ErrorIs(t, s.w.Close(context.Background()), ErrStopped)
		assert.False(t, s.w.Healthy())
	})
}

func TestWriteAlertAndGzip(t *testing.T) {
	noLeaks(t)
	f := newFakeInflux(t)
	s := startWriter(t, Config{URL: f.srv.URL, Gzip: true})
	wt := newWaiter(2)
	a := &model.Alert{ID: "x1", Rule: "r", Severity: "low", State: model.StateFiring, Site: "mdl", At: t0}
	require.NoError(t, s.w.WriteAlert(context.Background(), a, wt.done(0)))
	require.Error(t, s.w.WriteAlert(context.Background(), &model.Alert{ID: "no-time"}, wt.done(1)))
	// An empty batch is acknowledged at once.
	require.NoError(t, s.w.Write(context.Background(), &model.Batch{Meta: fenceMeta(1)}, wt.done(2)))
	wt.wait(t, 2)
	require.NoError(t, wt.err(0))
	assert.Equal(t, []string{`alert,rule=r,severity=low,site=mdl,state=firing id="x1",count=0i,late=false ` + itoa(AlertPointTime(&model.Alert{ID: "x1", State: model.StateFiring}, t0).UnixNano())}, f.storedLines())
	assert.Equal(t, 1.0, counter(t, s.reg, "fenceline_influx_points_written_total", "measurement", MeasurementAlert))
}

func TestHealthBeforeAndAfter(t *testing.T) {
	noLeaks(t)
	reg := prometheus.NewRegistry()
	w, err := New(Config{URL: "http://127.0.0.1:1", Bucket: "b"}, nil, reg)
	require.NoError(t, err)
	assert.False(t, w.Healthy())
	assert.Error(t, w.LastError())
	assert.Error(t, w.Ping(context.Background()))
	assert.ErrorContains(t, w.LastError(), "ping")

	f := newFakeInflux(t)
	w, err = New(Config{URL: f.srv.URL, Bucket: "b"}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, w.Ping(context.Background()))
	assert.True(t, w.Healthy())
	w.tr.CloseIdleConnections()

	for _, cfg := range []Config{{Bucket: "b"}, {URL: "127.0.0.1:8086", Bucket: "b"}, {URL: "http://x"}} {
		_, err := New(cfg, nil, prometheus.NewRegistry())
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestClassify(t *testing.T) {
	for status, class := range map[int]string{200: "", 204: "", 400: "bad_request", 422: "bad_request", 413: "too_large",
		429: "throttled", 401: "auth", 403: "auth", 404: "not_found", 500: "server", 503: "server", 405: "server"} {
		assert.Equal(t, class, classify(status), "%d", status)
	}
	var c Config
	c.setDefaults()
	require.Equal(t, 10*time.Second, c.MaxBackoff, "InfluxDB back is found within seconds by a retry the spool could not take")
	for attempt := range 20 {
		d := backoff(attempt, c.MaxBackoff)
		assert.LessOrEqual(t, d, c.MaxBackoff)
		assert.GreaterOrEqual(t, d, 50*time.Millisecond)
	}
	resp := &http.Response{StatusCode: 400, Header: http.Header{}}
	assert.Equal(t, "partial write: x", errorMessage(resp, []byte(`{"error":"partial write: x"}`)))
	assert.Equal(t, "failure writing points", errorMessage(resp, []byte(`{"code":"invalid","message":"failure writing points"}`)))
	assert.Equal(t, "plain", errorMessage(resp, []byte("plain\n")))
	assert.Equal(t, "Bad Request", errorMessage(resp, nil))
}

// logRecords is a slog handler that hands each record's message to a channel.
type logRecords chan string

func (l logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecords) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r.Level.String() + " " + r.Message:
	default:
	}
	return nil
}
func (l logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l logRecords) WithGroup(string) slog.Handler { return l }

// waitFor waits up to within for a record starting with want; no record
// before it may contain not ("" for no such check).
func (l logRecords) waitFor(t *testing.T, want, not string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-l:
			if strings.HasPrefix(m, want) {
				return
			}
			if not != "" {
				require.NotContains(t, m, not)
			}
		case <-deadline:
			t.Fatalf("no log line %q", want)
		}
	}
}

// An InfluxDB that does not answer at start is a warning at once, before
// the first reading finds it out; it says where readings go meanwhile: to
// the spool only while it takes them.
func TestUnreachableInfluxDBIsAWarningAtStart(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	for _, tc := range []struct {
		name  string
		spool func(t *testing.T) *spool.Spool
		want  string
	}{
		{"spooling", func(t *testing.T) *spool.Spool { return openSpool(t, spool.Options{}) },
			"WARN InfluxDB does not answer; readings are spooled until it does"},
		{"a spool that cannot take them", func(t *testing.T) *spool.Spool {
			sp := openSpool(t, spool.Options{})
			require.NoError(t, sp.Close())
			return sp
		}, "WARN InfluxDB does not answer; readings wait in the broker until it does: the spool cannot take them (spool: closed"},
		{"no spool", func(*testing.T) *spool.Spool { return nil },
			"WARN InfluxDB does not answer; readings wait in the broker (no spool) until it does"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireStartWarning(t, Config{URL: url, Spool: tc.spool(t)}, tc.want, "TLS")
		})
	}
}

// InfluxDB's return is told as soon as writes succeed again, not only after
// a moment without writes lets the prober ping it (the spool drained and
// the health line still said InfluxDB did not answer).
func TestInfluxDBBackIsToldWhileWritesFlow(t *testing.T) {
	noLeaks(t)
	var down atomic.Bool
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Pings never answer: only the writes that succeed can tell
		// InfluxDB's return (a ping in an idle moment would tell it too,
		// and let the test pass without the feature).
		if down.Load() || r.URL.Path == "/ping" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	logs := make(logRecords, 1000)
	w, err := New(Config{URL: srv.URL, Bucket: "border/autogen", Spool: openSpool(t, spool.Options{})}, slog.New(logs), prometheus.NewRegistry())
	require.NoError(t, err)
	w.probeEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	logs.waitFor(t, "WARN InfluxDB does not answer", "", 10*time.Second)
	down.Store(false)
	// Writes keep flowing: the writer is never idle long enough to ping.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for seq := int64(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				_ = w.Write(ctx, detectionBatch(seq, 1), func(error) {})
			}
		}
	}()
	logs.waitFor(t, "INFO InfluxDB answers again", "", 10*time.Second)
}

// requireStartWarning runs a writer on cfg until it logs a line starting
// with want; no line before it may contain not.
func requireStartWarning(t *testing.T, cfg Config, want, not string) {
	t.Helper()
	cfg.Bucket, cfg.Timeout = "border/autogen", time.Second
	logs := make(logRecords, 100)
	w, err := New(cfg, slog.New(logs), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
	}()
	logs.waitFor(t, want, not, 30*time.Second)
}

func BenchmarkWriteFlush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	w, err := New(Config{URL: srv.URL, Bucket: "border/autogen"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	batch := realisticDetections(1)
	var wg sync.WaitGroup
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ReportAllocs()
	// The writing goroutine's own CPU (encoding and queuing, as the
	// pipeline's), and the whole process's (senders and server too).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	proc0 := selfCPU()
	for b.Loop() {
		wg.Add(1)
		if err := w.Write(context.Background(), batch, done); err != nil {
			b.Fatal(err)
		}
	}
	cpu1, _ := threadCPU()
	wg.Wait()
	lines := float64(b.N * batch.Len())
	b.ReportMetric(lines/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64((selfCPU()-proc0).Nanoseconds())/lines, "proc-cpu-ns/line")
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/lines, "write-cpu-ns/line")
	}
	require.NoError(b, w.Close(context.Background()))
	cancel()
	<-ran
}

// noLeaks checks, after the test's cleanups (servers, writers) ran, that it
// left no goroutine behind.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// A server that echoes the Authorization header in its error (a proxy, a
// debug endpoint at a wrong URL; InfluxDB itself does not) does not put the
// token in fenceline's errors, and so in its log.
func TestAnswerEchoingTheTokenIsRedacted(t *testing.T) {
	const token = "admin:SuperSecretPW123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"unauthorized: got header %s, password SuperSecretPW123"}`, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	s := startWriter(t, Config{URL: srv.URL, Token: token, Lazy: true, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.w.Ping(ctx)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SuperSecret")
	assert.Contains(t, err.Error(), "[token]")

	require.NoError(t, s.w.Write(ctx, detectionBatch(1, 1), func(error) {}))
	require.Eventually(t, func() bool {
		e := s.w.LastError()
		return e != nil && strings.Contains(e.Error(), "HTTP 401")
	}, 10*time.Second, 5*time.Millisecond)
	assert.NotContains(t, s.w.LastError().Error(), "SuperSecret")
}
