package influxwriter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/ingest/spool"
	"github.com/fenceline/fenceline/internal/model"
)

// Config configures a Writer. Zero values take the defaults.
type Config struct {
	URL   string // e.g. http://127.0.0.1:8086
	Token string // InfluxDB 2.x token; 1.8: "" or "user:password"
	Org   string // 2.x organisation; "" for 1.8
	// Bucket is the 2.x bucket, or for InfluxDB 1.8 "database/retention-policy"
	// (e.g. "border/autogen").
	Bucket string

	// BatchSize is the most lines sent in one request (default 5000).
	BatchSize int
	// FlushInterval is the longest a line waits for company before its
	// batch is sent (default 100ms). Unless Lazy, a partial batch goes
	// sooner: as soon as no request is in flight.
	FlushInterval time.Duration
	// MaxPending is how many lines may be accepted and not yet acknowledged
	// before Write blocks (default 50000): the backpressure that reaches
	// back to the MQTT consumer.
	MaxPending int
	// Concurrency is the number of HTTP writes in flight (default 2).
	Concurrency int
	// Timeout bounds one HTTP request (default 10s).
	Timeout time.Duration
	// MaxBackoff caps the pause between retries (default 10s). The retries
	// that wait are those the spool cannot take (full, or none): intake
	// waits on them, so InfluxDB back must be found within seconds, and a
	// request every 10 s per sender costs a down InfluxDB nothing.
	MaxBackoff time.Duration
	// Gzip compresses request bodies. It trades CPU, which InfluxDB and
	// fenceline share on a small box, for bandwidth, which a remote
	// InfluxDB behind a thin link lacks. Default off.
	Gzip bool
	// TLS verifies an https:// InfluxDB (own CA, client certificate); nil
	// uses the system's roots.
	TLS *tls.Config
	// Lazy sends partial batches only FlushInterval after their first
	// line, even when InfluxDB is idle. By default a free sender takes a
	// partial batch at once when no other request is in flight: a lone
	// message waits one round trip at most, and under load lines pile up
	// behind the request in flight into big batches, which is what keeps
	// InfluxDB's per-request cost low. Further senders take full batches
	// (or ones past FlushInterval) only.
	Lazy bool

	// Spool, when not nil, takes the batches InfluxDB does not: see
	// spooling.go for the policy. Run runs it (its committer and its
	// replayer) and Close drains into it; the caller opens it and nothing
	// else may run it.
	Spool *spool.Spool
	// Rejected, when not nil, is given the lines of spooled batches that
	// InfluxDB refused for good on replay (a field type conflict, points
	// beyond the retention policy after a long outage). Their messages
	// were acked when they were spooled, so the caller cannot dead-letter
	// the messages themselves: Rejected should keep the lines (the daemon
	// dead-letters them) and return nil once they are durable; an error
	// makes the replay try those records again later. Without it they are
	// logged and counted only.
	Rejected func(lines []byte, err *PermanentError) error

	// Tags, when not nil, bounds the tags whose values are device text
	// (see TagBound). Only Write's encoder touches it, under the writer's
	// lock (a *tagcap.Cap is not safe for concurrent use); WriteAlert's do
	// not.
	Tags TagBound

	// eagerAll lets every free sender take partial batches (benchmarks).
	eagerAll bool
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 50000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
}

// Writer writes batches of readings and alerts to InfluxDB. Write queues,
// Run sends; every batch's done callback is called exactly once, when all its
// lines are acknowledged, rejected for good, or abandoned at stop.
type Writer struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	client   influxdb2.Client
	svc      influxhttp.Service
	tr       *http.Transport
	writeURL string
	encoders sync.Pool // *encodeState, for WriteAlert
	// probeEvery is how often the prober looks at InfluxDB (10 s; tests
	// shorten it).
	probeEvery time.Duration

	mu sync.Mutex
	// enc encodes Write's batches, under mu: one encoder, whose caches
	// (tag sets, the position and time of the last line) last, where a
	// pooled one would be dropped by a garbage collection.
	enc   Encoder
	cur   *batch   // being filled
	ready []*batch // full (or flushed) and waiting for a sender
	free  []*batch // for reuse: their buffers are the writer's largest allocations
	// bufCap is the largest buffer a batch has needed so far: a new batch
	// starts with that much room rather than growing to it by copies (a
	// full batch's buffer is several hundred kilobytes).
	bufCap  int
	pending int // lines accepted and not yet called back
	// space is closed (and cleared) when pending drops below MaxPending;
	// writers blocked on backpressure wait on it.
	space   chan struct{}
	waiting int // writers waiting on space (fenceline_influx_pending_full)
	// wake is closed (and cleared) to wake idle senders.
	wake      chan struct{}
	idle      int // senders waiting for work
	sending   int // senders writing a batch
	running   bool
	closing   bool // Close was called: no more writes, send everything now
	stopped   bool // Run ended: nothing will be sent any more
	abandoned int  // lines called back with ErrStopped
	drained   chan struct{}

	hmu      sync.Mutex
	failing  bool // the last write request failed and is being retried
	reached  bool // InfluxDB answered a ping or a write since start
	lastErr  error
	lastOK   time.Time
	failedAt time.Time // start of the current failure streak
	failures int       // failed requests in the current streak
	loggedAt time.Time

	rejectLoggedAt  time.Time
	rejectsUnlogged int
	spoolLoggedAt   time.Time
	spooledUnlogged int

	// resume is where replay left a chunk it failed on, for the spool's
	// replayer (one goroutine) sending the same chunk again.
	resume replayProgress
}

// group is the lines of one Write: one callback for all of them.
type group struct {
	done        func(error)
	measurement string
	parts       int // spans not yet settled (more than 1 after a 413 split a message)
	err         error
}

// span is a contiguous run of lines of one group inside a batch buffer.
type span struct {
	g        *group
	off, end int
	lines    int
}

type batch struct {
	buf   []byte
	spans []span
	lines int
	first time.Time
}

type encodeState struct {
	e   Encoder
	buf []byte
}

// New builds a Writer; nothing is sent before Run.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Writer, error) {
	cfg.setDefaults()
	if cfg.URL == "" {
		return nil, errors.New("influxwriter: url is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influxwriter: url %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("influxwriter: bucket is empty (InfluxDB 1.8: database/retention-policy)")
	}
	if log == nil {
		log = slog.Default()
	}
	// Our own transport: keep as many idle connections as there are
	// senders (the default of 2 per host would make any more reconnect),
	// and no client-wide timeout: each request gets Timeout by context.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          cfg.Concurrency + 4,
		MaxIdleConnsPerHost:   cfg.Concurrency + 4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       cfg.TLS,
	}
	opts := influxdb2.DefaultOptions().
		SetHTTPClient(&http.Client{Transport: tr}).
		SetApplicationName("fenceline")
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	q := url.Values{}
	q.Set("org", cfg.Org)
	q.Set("bucket", cfg.Bucket)
	q.Set("precision", "ns")
	w := &Writer{
		cfg:        cfg,
		probeEvery: 10 * time.Second,
		log:        log.With("component", "influxwriter"),
		m:          newMetrics(reg),
		client:     client,
		svc:        client.HTTPService(),
		tr:         tr,
		writeURL:   client.HTTPService().ServerAPIURL() + "write?" + q.Encode(),
		drained:    make(chan struct{}),
	}
	w.enc.bound = cfg.Tags
	w.encoders.New = func() any { return new(encodeState) }
	return w, nil
}

// Write encodes b and queues its lines. It blocks while MaxPending lines are
// unacknowledged, until ctx ends (then it returns ctx's error). Once Write
// returns nil, done is called exactly once, from another goroutine: with nil
// when InfluxDB acknowledged every line or the spool fsynced them (see
// spooling.go), with a *PermanentError when InfluxDB rejected them for good,
// or with ErrStopped when Run ended first. done must
// not block for long: it runs on a sender. If Write returns an error, done is
// never called.
//
// The lines are encoded straight into the batch being filled, under the
// writer's lock (a message's lines take a few microseconds to encode), not
// into a buffer of their own to be copied there: that copy was most of what
// queuing a message cost. The senders wait for the lock meanwhile, also
// while the encoder's TagBound admits a new value (a tagcap.Cap then saves
// its file): that happens once per value, and the pipeline, which waits
// for it too, is what gives the senders their work.
func (w *Writer) Write(ctx context.Context, b *model.Batch, done func(error)) error {
	return w.enqueue(ctx, b.Len(), batchMeasurement(b), done, nil, b)
}

// WriteAlert queues the alert's point, like Write. It fails without queuing
// for an alert that cannot be encoded (no time, or one InfluxDB cannot store).
func (w *Writer) WriteAlert(ctx context.Context, a *model.Alert, done func(error)) error {
	st := w.encoders.Get().(*encodeState)
	defer w.encoders.Put(st)
	var err error
	st.buf, err = st.e.appendAlert(st.buf[:0], a)
	if err != nil {
		return err
	}
	return w.enqueue(ctx, 1, MeasurementAlert, done, st.buf, nil)
}

func batchMeasurement(b *model.Batch) string {
	switch {
	case len(b.Detections) > 0:
		return MeasurementDetection
	case len(b.Passes) > 0:
		return MeasurementPass
	case len(b.Positions) > 0:
		return MeasurementPosition
	default:
		return MeasurementStatus
	}
}

// enqueue queues lines lines of measurement meas: b's, which w.enc encodes
// into the batch being filled, or (b nil) those encoded holds.
func (w *Writer) enqueue(ctx context.Context, lines int, meas string, done func(error), encoded []byte, b *model.Batch) error {
	if done == nil {
		done = func(error) {}
	}
	w.mu.Lock()
	for {
		if w.closing || w.stopped {
			w.mu.Unlock()
			return ErrClosed
		}
		if lines == 0 {
			// Nothing to write (a message whose readings were all
			// rejected upstream): acknowledged at once, outside the lock.
			w.mu.Unlock()
			done(nil)
			return nil
		}
		if w.pending < w.cfg.MaxPending {
			break
		}
		if w.space == nil {
			w.space = make(chan struct{})
		}
		ch := w.space
		w.waiting++
		w.m.full.Set(1)
		w.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-ch:
		}
		w.mu.Lock()
		if w.waiting--; w.waiting == 0 {
			w.m.full.Set(0)
		}
		if err != nil {
			w.mu.Unlock()
			return err
		}
	}
	g := &group{done: done, measurement: meas, parts: 1}
	cur := w.cur
	if cur != nil && cur.lines > 0 && cur.lines+lines > w.cfg.BatchSize {
		w.seal()
		cur = nil
	}
	if cur == nil {
		cur = w.newBatch()
		w.cur = cur
	}
	if cur.lines == 0 {
		cur.first = time.Now()
	}
	off := len(cur.buf)
	if b != nil {
		cur.buf, _ = w.enc.AppendBatch(cur.buf, b)
	} else {
		cur.buf = append(cur.buf, encoded...)
	}
	cur.spans = append(cur.spans, span{g: g, off: off, end: len(cur.buf), lines: lines})
	cur.lines += lines
	w.pending += lines
	w.m.pending.Set(float64(w.pending))
	first := cur.lines == lines
	if cur.lines >= w.cfg.BatchSize {
		w.seal()
	}
	// Wake the idle senders only when there is something new for them: a
	// full batch, or a first line (to send, or to time). Lines joining a
	// partial batch change nothing for them, and waking them for each
	// message would only burn CPU.
	if len(w.ready) > 0 || first {
		w.wakeSenders()
	}
	w.mu.Unlock()
	return nil
}

// seal moves the current batch to the ready queue. Called with mu held.
func (w *Writer) seal() {
	if w.cur != nil && w.cur.lines > 0 {
		w.bufCap = max(w.bufCap, cap(w.cur.buf))
		w.ready = append(w.ready, w.cur)
		w.cur = nil
	}
}

func (w *Writer) newBatch() *batch {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return &batch{buf: make([]byte, 0, w.bufCap)}
}

// recycle keeps a sent batch's buffers for reuse, up to what MaxPending can
// need at once.
func (w *Writer) recycle(b *batch) {
	clear(b.spans) // drop the groups and their callbacks
	b.buf, b.spans, b.lines = b.buf[:0], b.spans[:0], 0
	w.mu.Lock()
	if len(w.free) < w.cfg.MaxPending/w.cfg.BatchSize+w.cfg.Concurrency+1 {
		w.free = append(w.free, b)
	}
	w.mu.Unlock()
}

// wakeSenders wakes the idle senders. Called with mu held.
func (w *Writer) wakeSenders() {
	if w.idle > 0 && w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

// Run sends queued lines until ctx ends. Then it stops at once: requests in
// flight are cancelled and every line not yet acknowledged is called back
// with ErrStopped. To stop cleanly, call Close (which drains) before
// cancelling ctx.
func (w *Writer) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running || w.stopped {
		w.mu.Unlock()
		return errors.New("influxwriter: Run called twice")
	}
	w.running = true
	w.mu.Unlock()

	// The spool's committer outlives the senders: a sender waits for its
	// batch's fsync even when ctx ends, and must get an answer.
	spoolCtx, stopSpool := context.WithCancel(context.Background())
	defer stopSpool()
	spoolRan := make(chan error, 1)
	if sp := w.cfg.Spool; sp != nil {
		go func() { spoolRan <- sp.Run(spoolCtx) }()
	}
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Go(func() { w.sender(ctx) })
	}
	wg.Go(func() { w.prober(ctx) })
	if sp := w.cfg.Spool; sp != nil {
		wg.Go(func() {
			if err := sp.Replay(ctx, w.replay); err != nil {
				w.log.Error("spool replay stopped", "err", err)
			}
		})
	}
	wg.Wait()
	if w.cfg.Spool != nil {
		stopSpool()
		if err := <-spoolRan; err != nil {
			w.log.Error("closing the spool", "err", err)
		}
	}

	// Whatever is still queued will not be sent: call it back.
	w.mu.Lock()
	w.stopped = true
	left := w.ready
	if w.cur != nil {
		left = append(left, w.cur)
	}
	w.ready, w.cur = nil, nil
	if w.space != nil {
		close(w.space) // blocked writers see stopped and return ErrClosed
		w.space = nil
	}
	w.mu.Unlock()
	for _, b := range left {
		w.settle(b.spans, ErrStopped)
	}
	w.tr.CloseIdleConnections()
	if n := w.abandonedLines(); n > 0 {
		w.log.Warn("stopped with unacknowledged lines; their messages were not acked", "lines", n)
	}
	return nil
}

func (w *Writer) abandonedLines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abandoned
}

// Close stops accepting writes (Write then returns ErrClosed), sends what is
// queued at once, and waits until every line has been called back or ctx
// ends. It returns nil only if every line was settled (acknowledged by
// InfluxDB or spooled, or rejected for good): an error means some messages
// were not, and will come again from the broker. With a spool and InfluxDB
// down, Close drains into the spool. Run keeps sending (and retrying)
// until its own context ends; cancel it after Close returns.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closing {
		w.closing = true
		w.seal()
		w.wakeSenders()
		if w.space != nil {
			close(w.space)
			w.space = nil
		}
		if w.pending == 0 {
			close(w.drained)
		}
	}
	w.mu.Unlock()
	select {
	case <-w.drained:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.pending > 0:
		return fmt.Errorf("influxwriter: %d lines not acknowledged: %w", w.pending, ctx.Err())
	case w.abandoned > 0:
		return fmt.Errorf("influxwriter: %d lines not acknowledged: %w", w.abandoned, ErrStopped)
	}
	return nil
}

// sender takes batches and writes them until ctx ends.
func (w *Writer) sender(ctx context.Context) {
	for {
		b := w.next(ctx)
		if b == nil {
			return
		}
		w.process(ctx, b)
		w.recycle(b)
		w.mu.Lock()
		w.sending--
		w.mu.Unlock()
	}
}

// next returns the next batch to send, or nil when ctx ended.
func (w *Writer) next(ctx context.Context) *batch {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if len(w.ready) > 0 {
			b := w.ready[0]
			w.ready[0] = nil
			w.ready = w.ready[1:]
			w.sending++
			return b
		}
		var timeout <-chan time.Time
		if cur := w.cur; cur != nil && cur.lines > 0 {
			wait := w.cfg.FlushInterval - time.Since(cur.first)
			eager := !w.cfg.Lazy && (w.sending == 0 || w.cfg.eagerAll)
			if eager || w.closing || wait <= 0 {
				w.seal()
				continue
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		wake := w.wake
		w.idle++
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timeout:
		}
		w.mu.Lock()
		w.idle--
	}
}

// settle calls back the groups of spans (err nil: acknowledged) and
// releases their lines from pending. The callbacks run before pending drops
// so that Close returns only after every callback has run. Groups belong to
// one batch, which one sender handles, so they need no lock.
func (w *Writer) settle(spans []span, err error) { w.settleAs(spans, err, false) }

// settleSpooled calls back spans whose lines are durable in the spool: for
// their messages that is as good as stored (the ack may go), but InfluxDB
// has not seen them yet, so they are not counted as written.
func (w *Writer) settleSpooled(spans []span) { w.settleAs(spans, nil, true) }

func (w *Writer) settleAs(spans []span, err error, spooled bool) {
	lines := 0
	for i := range spans {
		s := &spans[i]
		lines += s.lines
		if err == nil {
			if !spooled {
				w.m.points[s.g.measurement].Add(float64(s.lines))
			}
		} else if s.g.err == nil {
			s.g.err = err
		} else if pe, ok := err.(*PermanentError); ok && err != s.g.err {
			// Another part of a message split to isolate its bad lines.
			if had, ok := s.g.err.(*PermanentError); ok {
				s.g.err = had.merge(pe)
			}
		}
		s.g.parts--
		if s.g.parts == 0 {
			s.g.done(s.g.err)
		}
	}
	w.mu.Lock()
	w.pending -= lines
	if errors.Is(err, ErrStopped) {
		w.abandoned += lines
	}
	w.m.pending.Set(float64(w.pending))
	if w.pending < w.cfg.MaxPending && w.space != nil {
		close(w.space)
		w.space = nil
	}
	if w.closing && w.pending == 0 {
		select {
		case <-w.drained:
		default:
			close(w.drained)
		}
	}
	w.mu.Unlock()
}

// Healthy reports whether InfluxDB is taking writes: it has answered since
// start, and the last write request did not fail (a failing one is being
// retried or spooled). Whether fenceline can store at all — InfluxDB, or
// else the spool — is ReadyToStore.
func (w *Writer) Healthy() bool {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	return w.reached && !w.failing
}

// LastError returns the error of the failing write or ping, or nil while
// healthy.
func (w *Writer) LastError() error {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if w.reached && !w.failing {
		return nil
	}
	if w.lastErr == nil && !w.reached {
		return errors.New("influxdb not reached yet")
	}
	return w.lastErr
}

// redact returns s, an answer from InfluxDB or what stands in its place
// (a proxy, a debug endpoint at a wrong URL), without the token or its
// password: a server that echoes the Authorization header back would put
// it in the log.
func (w *Writer) redact(s string) string {
	tok := w.cfg.Token
	if len(tok) < 4 {
		return s
	}
	s = strings.ReplaceAll(s, tok, "[token]")
	if _, pw, ok := strings.Cut(tok, ":"); ok && len(pw) >= 4 {
		s = strings.ReplaceAll(s, pw, "[password]")
	}
	return s
}

// Ping checks that InfluxDB answers (GET /ping) and records the result for
// Healthy when no write is failing.
func (w *Writer) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	_, err := w.client.Ping(ctx)
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if err != nil {
		err = fmt.Errorf("influxdb ping: %s", w.redact(err.Error()))
		if !w.failing {
			w.lastErr = err
		}
		w.reached = false
		return err
	}
	w.reached = true
	return nil
}

// prober pings InfluxDB at start and whenever no write succeeded for a while,
// so that readiness is known without traffic. An InfluxDB that does not
// answer is a warning when it is found (at start: before the first reading
// makes it one), and its return is logged.
func (w *Writer) prober(ctx context.Context) {
	every := w.probeEvery
	t := time.NewTicker(every)
	defer t.Stop()
	down := false
	for {
		w.hmu.Lock()
		idle := time.Since(w.lastOK) >= every
		w.hmu.Unlock()
		if !idle && down {
			// Writes succeed again: no need to wait for an idle moment's
			// ping to say so.
			down = false
			w.log.Info("InfluxDB answers again", "target", w.String())
		}
		if idle {
			err := w.Ping(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil && !down && noAnswerClass(err) == classTLS:
				down = true
				w.log.Warn("InfluxDB's TLS handshake fails (influx.tls or influx.url is wrong: mend it and restart fenceline); "+w.whileDown(), "target", w.String(), "err", err)
			case err != nil && !down:
				down = true
				w.log.Warn("InfluxDB does not answer; "+w.whileDown(), "target", w.String(), "err", err)
			case err != nil:
				w.log.Debug("ping failed", "err", err)
			case down:
				down = false
				w.log.Info("InfluxDB answers again", "target", w.String())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// whileDown says where readings go while InfluxDB does not answer: to the
// spool while it takes them, else they wait in the broker (not acked).
func (w *Writer) whileDown() string {
	if w.cfg.Spool == nil {
		return "readings wait in the broker (no spool) until it does"
	}
	if err := w.cfg.Spool.Ready(); err != nil {
		return "readings wait in the broker until it does: the spool cannot take them (" + err.Error() + ")"
	}
	return "readings are spooled until it does"
}

// String describes the target, without credentials.
func (w *Writer) String() string {
	return fmt.Sprintf("influxdb %s bucket %s", strings.TrimSuffix(w.cfg.URL, "/"), w.cfg.Bucket)
}
