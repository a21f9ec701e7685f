package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fenceline/fenceline/internal/groupcommit"
	"github.com/fenceline/fenceline/internal/model"
)

// Sink is one destination of alerts.
type Sink interface {
	// Name identifies the sink across restarts (pending deliveries are
	// matched to sinks by it) and is a metric label: "mqtt", "influx",
	// "webhook-0"… — bounded, never derived from data.
	Name() string
	// Deliver delivers one alert. An error is retried with backoff, except
	// one wrapping ErrPermanent: the sink judged the alert hopeless, and it
	// is dropped for this sink (counted and logged at error level). The
	// alert is shared by all sinks and must not be modified.
	//
	// Deliver (and DeliverBatch) is called concurrently for alerts of
	// different sites, one call per site at a time (see Run): a sink must
	// be safe for concurrent use.
	Deliver(ctx context.Context, a *model.Alert) error
}

// BatchSink is a Sink that can take several alerts in one attempt, in
// order: a broker that acknowledges each publish takes a burst of alerts
// in one round trip, not one each. The outbox hands it up to
// maxBatch alerts from the head of one site's lane: a batch's alerts are
// all of one site.
type BatchSink interface {
	Sink
	// DeliverBatch delivers alerts in order and returns how many of them,
	// from the first, were delivered, and why the next one was not (nil
	// when all were). An error wrapping ErrPermanent is about alerts[n]
	// alone, as Deliver's is about its alert.
	DeliverBatch(ctx context.Context, alerts []*model.Alert) (n int, err error)
}

// maxBatch bounds a BatchSink's attempt.
const maxBatch = 64

// ErrPermanent marks a delivery failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent delivery failure")

// ErrClosed is given to done by an Append after Close.
var ErrClosed = errors.New("outbox closed")

// Options tune an Outbox; the zero value takes the defaults.
type Options struct {
	// MaxBackoff caps the wait between two attempts to deliver one alert
	// (default 30s).
	MaxBackoff time.Duration
	// MinBackoff is the wait after the first failure; it doubles up to
	// MaxBackoff (default 250ms).
	MinBackoff time.Duration
	// DedupeWindow is how many id+state keys of accepted alerts are
	// remembered (and persisted) to drop duplicates (default 100000).
	DedupeWindow int
	// CompactMinBytes is the least growth of the log that triggers a
	// rewrite (default 4 MiB); see the package doc.
	CompactMinBytes int64
	// MaxPending is how many alerts may wait for delivery (accepted, not
	// yet delivered to every sink) before WaitRoom makes intake wait
	// (default 100000): each costs memory until it is delivered.
	MaxPending int
	// ShownID is the id an alert's receivers know it by, for the log: with
	// privacy on, the sinks send a keyed id, not the engine's (default:
	// the alert's own).
	ShownID func(*model.Alert) string

	// sync makes a file durable; tests replace it to watch the order of
	// fsyncs and done calls, or to fail them.
	sync func(*os.File) error
	// fullLogEvery is the least time between two "outbox full" lines
	// (default a minute).
	fullLogEvery time.Duration
	// retryMin and retryMax bound the pause before writing again a group
	// whose write failed (defaults 100ms and 5s).
	retryMin, retryMax time.Duration
}

const (
	defaultMaxBackoff      = 30 * time.Second
	defaultMinBackoff      = 250 * time.Millisecond
	defaultDedupeWindow    = 100000
	defaultCompactMinBytes = 4 << 20
	defaultMaxPending      = 100000

	logName  = "outbox.log"
	tmpName  = "outbox.log.tmp"
	lockName = "LOCK"
)

func (o *Options) applyDefaults() {
	if o.ShownID == nil {
		o.ShownID = func(a *model.Alert) string { return a.ID }
	}
	if o.retryMin <= 0 {
		o.retryMin = 100 * time.Millisecond
	}
	if o.retryMax < o.retryMin {
		o.retryMax = max(5*time.Second, o.retryMin)
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MinBackoff > o.MaxBackoff {
		o.MinBackoff = o.MaxBackoff
	}
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = defaultDedupeWindow
	}
	if o.CompactMinBytes <= 0 {
		o.CompactMinBytes = defaultCompactMinBytes
	}
	if o.MaxPending <= 0 {
		o.MaxPending = defaultMaxPending
	}
	if o.fullLogEvery <= 0 {
		o.fullLogEvery = time.Minute
	}
	if o.sync == nil {
		o.sync = (*os.File).Sync
	}
}

// Outbox is the durable queue between the alert engine and the sinks.
type Outbox struct {
	dir   string
	opts  Options
	log   *slog.Logger
	m     *metrics
	sinks []*sinkState
	lock  *os.File

	// Owned by the committer goroutine (and by Open before it starts).
	f           *os.File
	size        int64 // bytes in f
	baseSize    int64 // size right after the last compaction
	nextSeq     uint64
	dedupe      *window
	needRewrite bool                // a write failed: the file's tail is unknown
	dirUnsynced bool                // the log's name since a compaction is not durable yet
	failing     groupcommit.Failing // the failure of the group being retried
	closed      chan struct{}       // closed by Close: ends a retry pause
	buf         bytes.Buffer

	mu      sync.Mutex
	cond    *sync.Cond // signalled when appends or acks are queued, or on Close
	queue   []*appendReq
	acks    []record
	closing bool
	entries map[uint64]*entry // pending alerts by seq
	byKey   map[key]*entry    // pending alerts by id+state
	// appending counts the alerts appended that are not in entries yet
	// (queued, or being made durable): pending too, for WaitRoom.
	appending int
	// room, while intake waits for it (WaitRoom), is closed once fewer
	// than roomAt alerts are pending. fullTold: the wait was logged (at
	// most once a minute, at fullLoggedAt; fullTimes waits since).
	room         chan struct{}
	fullTold     bool
	fullLoggedAt time.Time
	fullTimes    int

	// startLane starts the delivery goroutine of a lane; nil while Run is
	// not delivering. Guarded by mu.
	startLane func(*lane)

	commitDone chan struct{}
	running    atomic.Bool
	maxOrdinal atomic.Uint64 // see MaxOrdinal
}

// entry is one accepted alert that some sink still has to take.
type entry struct {
	seq     uint64
	key     key
	alert   *model.Alert
	raw     json.RawMessage // the alert as logged
	pending []bool          // by sink index
	left    int             // number of true in pending
}

type appendReq struct {
	alerts []model.Alert
	done   func(error)
}

// sinkState is one sink: its lanes, one per site (model.Alert.Site), each
// the entries of that site the sink still has to take, in seq order. Guarded
// by Outbox.mu.
type sinkState struct {
	idx  int
	name string
	sink Sink
	// lanes by site. A lane exists while it holds entries or its delivery
	// goroutine runs: that goroutine removes it once it finds it empty, so
	// an idle site costs nothing.
	lanes   map[string]*lane
	pending int // entries over all lanes
	m       sinkMetrics
}

// push appends e to the lane of its site, creating the lane if need be, and
// returns the lane.
func (s *sinkState) push(e *entry) *lane {
	site := e.alert.Site
	l := s.lanes[site]
	if l == nil {
		l = &lane{s: s, site: site}
		s.lanes[site] = l
	}
	l.q = append(l.q, e)
	s.pending++
	return l
}

// lane is one sink's queue for one site: a FIFO that one goroutine at a time
// delivers, in order. The committer pushes, that goroutine pops; both under
// Outbox.mu.
type lane struct {
	s      *sinkState
	site   string
	q      []*entry
	head   int
	active bool // a delivery goroutine owns the lane

	// lastWarn is the time of the lane's last failure log line, to keep
	// retries from flooding the log. Only the lane's goroutine uses it.
	lastWarn time.Time
}

func (l *lane) len() int { return len(l.q) - l.head }

func (l *lane) peek() *entry {
	if l.len() == 0 {
		return nil
	}
	return l.q[l.head]
}

// headN returns up to n entries from the head of the lane, into dst.
func (l *lane) headN(dst []*entry, n int) []*entry {
	return append(dst[:0], l.q[l.head:l.head+min(n, l.len())]...)
}

// pop takes the head entry off the lane.
func (l *lane) pop() {
	l.q[l.head] = nil
	l.head++
	l.s.pending--
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	} else if l.head > 1024 && l.head*2 > len(l.q) {
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
}

// Open opens (or creates) the outbox in dir for the given sinks, loading the
// alerts still pending for them. It takes an exclusive lock on dir until
// Close. Append works at once; Run delivers.
func Open(dir string, sinks []Sink, opts Options, log *slog.Logger, reg prometheus.Registerer) (*Outbox, error) {
	opts.applyDefaults()
	if log == nil {
		log = slog.Default()
	}
	o := &Outbox{
		dir:        dir,
		opts:       opts,
		log:        log.With("component", "outbox"),
		m:          newMetrics(reg),
		dedupe:     newWindow(opts.DedupeWindow),
		nextSeq:    1,
		entries:    make(map[uint64]*entry),
		byKey:      make(map[key]*entry),
		commitDone: make(chan struct{}),
		closed:     make(chan struct{}),
		failing:    groupcommit.Failing{What: "alerts cannot be made durable", Min: opts.retryMin, Max: opts.retryMax},
	}
	o.cond = sync.NewCond(&o.mu)
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "fenceline", Subsystem: "outbox", Name: "alerts",
		Help: "Alerts accepted, or being made durable, that some sink has yet to take: what alerts.max_pending bounds.",
	}, func() float64 {
		o.mu.Lock()
		defer o.mu.Unlock()
		return float64(o.pending())
	})
	seen := make(map[string]bool, len(sinks))
	for i, s := range sinks {
		name := s.Name()
		if name == "" || seen[name] {
			return nil, fmt.Errorf("outbox: sink %d: name %q is empty or not unique", i, name)
		}
		seen[name] = true
		o.sinks = append(o.sinks, &sinkState{
			idx:   i,
			name:  name,
			sink:  s,
			lanes: make(map[string]*lane),
			m:     o.m.forSink(name),
		})
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o.lock = lock
	if err := o.open(); err != nil {
		if o.f != nil {
			o.f.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("outbox %s: %w", dir, err)
	}
	go o.commitLoop()
	return o, nil
}

// open loads the log and rewrites it: the rewrite drops what is delivered
// and cuts off a torn tail, so appends never follow a damaged line.
func (o *Outbox) open() error {
	if err := os.Remove(filepath.Join(o.dir, tmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove leftover %s: %w", tmpName, err)
	}
	if err := o.load(); err != nil {
		return err
	}
	for _, s := range o.sinks {
		s.m.pending.Set(float64(s.pending))
	}
	if err := o.compact(); err != nil {
		// A full disk (often full of the spool, which fenceline drains
		// once running) must not keep fenceline from starting: alerts
		// cannot be made durable until the rewrite succeeds, which the
		// committer retries, and until then Healthy says why.
		o.needRewrite = true
		o.failing.Failed(err)
		o.log.Error("cannot rewrite the outbox log at start; retrying (alerts are not durable meanwhile)", "err", err)
	}
	var pending, lanes int
	for _, s := range o.sinks {
		pending += s.pending
		lanes += len(s.lanes)
	}
	o.log.Info("outbox opened", "dir", o.dir, "alerts_pending", len(o.entries),
		"deliveries_pending", pending, "lanes_pending", lanes, "dedupe_keys", o.dedupe.len(), "sinks", len(o.sinks))
	return nil
}

// Append makes alerts durable and then calls done(nil), or done(err) when
// they could not be written (none of them is then accepted). An alert whose
// id and state were already accepted is skipped as a duplicate; done is
// still called, once the original is durable too. done runs on the outbox's
// committing goroutine, after the fsync: it must not block. Safe for
// concurrent use.
func (o *Outbox) Append(alerts []model.Alert, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		done(ErrClosed)
		return
	}
	if len(alerts) == 0 {
		o.mu.Unlock()
		done(nil)
		return
	}
	o.queue = append(o.queue, &appendReq{alerts: alerts, done: done})
	o.appending += len(alerts)
	o.cond.Signal()
	o.mu.Unlock()
}

// WaitRoom returns once fewer than Options.MaxPending alerts wait for
// delivery, or ctx ends (its error). The pipeline calls it before taking
// each message: a flood of alerts that the sinks cannot take as fast as
// the rules raise them (a rule matching every phone) makes intake wait,
// the broker holding the backlog as it does for a full spool, rather than
// the queue growing in memory until the process is killed. Intake goes on
// once the queue is down to nine tenths of the bound.
func (o *Outbox) WaitRoom(ctx context.Context) error {
	o.mu.Lock()
	if o.pending() < o.opts.MaxPending || o.closing {
		o.mu.Unlock()
		return nil
	}
	if o.room == nil {
		o.room = make(chan struct{})
		o.m.full.Set(1)
		o.fullTimes++
		o.logFull()
	}
	room := o.room
	// A wait that began within a minute of the last line is told once
	// that minute is up, if it lasts: it may be a sink's outage.
	var tell <-chan time.Time
	if !o.fullTold {
		t := time.NewTimer(time.Until(o.fullLoggedAt.Add(o.opts.fullLogEvery)))
		defer t.Stop()
		tell = t.C
	}
	o.mu.Unlock()
	for {
		select {
		case <-room:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tell:
			tell = nil
			o.mu.Lock()
			if o.room == room {
				o.logFull()
			}
			o.mu.Unlock()
		}
	}
}

// logFull tells that intake waits for room, at most once a minute (a flood
// fills and drains the queue many times a minute). Called with mu held.
func (o *Outbox) logFull() {
	if now := time.Now(); !o.fullTold && now.Sub(o.fullLoggedAt) >= o.opts.fullLogEvery {
		o.log.Warn("alert outbox full: intake waits until the sinks take alerts (the broker holds the backlog; every site's readings wait)",
			"pending", o.pending(), "max_pending", o.opts.MaxPending, "times_full_since_last_line", o.fullTimes)
		o.fullLoggedAt, o.fullTimes, o.fullTold = now, 0, true
	}
}

// roomAt is how few pending alerts end a wait for room.
func (o *Outbox) roomAt() int { return o.opts.MaxPending * 9 / 10 }

// makeRoom ends a wait for room if the queue is down to roomAt, or the
// outbox closing. Called with mu held.
func (o *Outbox) makeRoom() {
	if o.room != nil && (o.pending() <= o.roomAt() || o.closing) {
		close(o.room)
		o.room = nil
		o.m.full.Set(0)
		if o.fullTold && !o.closing {
			o.log.Info("alert outbox has room again: intake goes on", "pending", o.pending())
		}
		o.fullTold = false
	}
}

// pending is the alerts accepted or being accepted that some sink has yet
// to take. Called with mu held.
func (o *Outbox) pending() int { return len(o.entries) + o.appending }

// Pending returns how many accepted alerts the named sink has yet to take,
// over all sites.
func (o *Outbox) Pending(sink string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.sinks {
		if s.name == sink {
			return s.pending
		}
	}
	return 0
}

// Close writes and fsyncs what is queued (appends and delivery records) and
// closes the files. Call it after Run has returned: a delivery that finishes
// later is not recorded and is repeated on the next start.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return nil
	}
	o.closing = true
	close(o.closed)
	o.cond.Broadcast()
	o.makeRoom() // an Append after Close fails at once: no wait for room
	o.mu.Unlock()
	<-o.commitDone

	var errs []error
	if o.needRewrite {
		// The last write failed; leave a clean file for the next start.
		if err := o.compact(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.f != nil { // nil if the log was never rewritten (see open)
		if err := o.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log: %w", err))
		}
	}
	if err := o.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("release lock: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox close: %w", err)
	}
	return nil
}

// commitLoop is the group commit: it takes everything queued since its last
// write, writes it with one fsync, and only then publishes the new alerts to
// the sinks and calls the done functions. Appends arriving during an fsync
// share the next one.
//
// A group that cannot be written (a full or failing disk) is not refused:
// the engine has already counted its alerts into cooldowns and windows, and
// a redelivered message would not raise them again. It is kept, with what
// is appended meanwhile, and written again after a pause (retryMin, doubling
// up to retryMax) until it goes through; its messages stay unacked, so the
// broker holds the rest back. Only Close gives up on it.
func (o *Outbox) commitLoop() {
	defer close(o.commitDone)
	var retry []*appendReq // a group whose write failed, oldest first
	for {
		o.mu.Lock()
		// needRewrite only changes on this goroutine: a log that could not
		// be rewritten (at Open) is retried without waiting for work.
		for len(o.queue) == 0 && len(o.acks) == 0 && len(retry) == 0 && !o.closing && !o.needRewrite {
			o.cond.Wait()
		}
		reqs, acks, closing := append(retry, o.queue...), o.acks, o.closing
		o.queue, o.acks = nil, nil
		o.mu.Unlock()

		if len(reqs) == 0 && len(acks) == 0 && (closing || !o.needRewrite) {
			if closing {
				return
			}
			continue
		}
		err := o.commit(reqs, acks)
		if err != nil {
			o.m.writeErrors.Inc()
		}
		switch {
		case err == nil:
			if n := o.failing.Recovered(); n > 0 {
				o.log.Info("alerts are durable again", "failed_attempts", n)
			}
			retry = nil
		case closing:
			o.fail(reqs, err)
			return
		default:
			first, wait := o.failing.Failed(err)
			if first {
				o.log.Error("cannot make alerts durable; keeping them and retrying (their messages stay unacked)", "alerts", countAlerts(reqs), "err", err)
			}
			retry = reqs
			o.pause(wait)
		}
		o.maybeCompact()
	}
}

// pause waits d, or until Close.
func (o *Outbox) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-o.closed:
	}
}

// DroppedLater counts an alert that sink had taken (it counted as
// delivered) but that was refused for good later, out of the outbox's
// sight: the InfluxDB sink's line refused when the spool is replayed. It
// is logged as any dropped alert is.
func (o *Outbox) DroppedLater(sink, id, rule, why string) {
	o.m.dropped.WithLabelValues(sink).Inc()
	o.log.Error("ALERT DROPPED for sink: refused for good after it was taken", "sink", sink, "id", id, "rule", rule, "why", why)
}

// Healthy returns why alerts cannot be made durable right now, or nil.
func (o *Outbox) Healthy() error { return o.failing.Err() }

func countAlerts(reqs []*appendReq) int {
	n := 0
	for _, r := range reqs {
		n += len(r.alerts)
	}
	return n
}

// commit writes one group of appends and delivery records, and calls the
// appends back once they are durable. On a failed write it returns the
// error and calls nothing back (the delivery records are lost, which only
// means those deliveries are repeated after a restart).
func (o *Outbox) commit(reqs []*appendReq, acks []record) error {
	if o.needRewrite {
		if err := o.compact(); err != nil {
			return fmt.Errorf("outbox: log needs rewriting after a failed write: %w", err)
		}
	}
	o.buf.Reset()
	for i := range acks {
		if err := appendRecord(&o.buf, &acks[i]); err != nil {
			o.log.Error("cannot encode delivery record", "err", err)
		}
	}

	accepted, dups := o.prepare(reqs)

	if o.buf.Len() > 0 {
		if err := o.write(o.buf.Bytes()); err != nil {
			return err
		}
	}

	o.mu.Lock()
	o.appending -= countAlerts(reqs) // in entries now, or dropped as duplicates
	for _, e := range accepted {
		if e.left == 0 {
			continue // no sinks configured: only the dedupe key is kept
		}
		o.entries[e.seq] = e
		if e.key.id != "" {
			o.byKey[e.key] = e
		}
		for _, s := range o.sinks {
			o.wake(s.push(e))
		}
	}
	for _, s := range o.sinks {
		s.m.pending.Set(float64(s.pending))
	}
	o.mu.Unlock()
	for _, e := range accepted {
		if e.key.id != "" {
			o.dedupe.add(e.key)
		}
	}
	o.m.accepted.Add(float64(len(accepted)))
	o.m.duplicates.Add(float64(dups))
	for _, r := range reqs {
		r.done(nil)
	}
	return nil
}

// prepare drops duplicates, numbers the new alerts and encodes their records
// into o.buf. It returns the entries to publish once the write is durable.
// It touches only committer-owned state besides reading byKey, so a failed
// write leaves nothing to undo (a sequence number skipped is harmless).
func (o *Outbox) prepare(reqs []*appendReq) (accepted []*entry, dups int) {
	batch := make(map[key]bool)
	var sinkNames []string
	for _, s := range o.sinks {
		sinkNames = append(sinkNames, s.name)
	}
	for _, r := range reqs {
		for i := range r.alerts {
			a := &r.alerts[i]
			k := keyOf(a)
			if k.id == "" {
				// The engine always sets an id; without one there is
				// nothing to deduplicate on, and losing the alert would be
				// worse than delivering it twice.
				o.log.Error("alert without id accepted without deduplication", "rule", a.Rule, "site", a.Site)
			} else if batch[k] || o.isDuplicate(k) {
				dups++
				continue
			}
			raw, err := json.Marshal(a)
			if err != nil {
				o.log.Error("cannot encode alert; not accepted", "id", o.opts.ShownID(a), "rule", a.Rule, "err", err)
				continue
			}
			// Sinks get the alert as decoded from the log's bytes: what is
			// delivered before a crash is what is delivered after one, and
			// the caller may reuse its slices.
			ac := new(model.Alert)
			if err := json.Unmarshal(raw, ac); err != nil {
				o.log.Error("cannot decode encoded alert; not accepted", "id", o.opts.ShownID(a), "rule", a.Rule, "err", err)
				continue
			}
			// The engine's ordinal, which a re-send shares with its firing
			// (see model.Alert.Ordinal); else one of the outbox's own.
			ac.Ordinal = a.Ordinal
			if ac.Ordinal == 0 {
				ac.Ordinal = o.nextSeq
			}
			e := &entry{seq: o.nextSeq, key: k, alert: ac, raw: raw, pending: make([]bool, len(o.sinks)), left: len(o.sinks)}
			for j := range e.pending {
				e.pending[j] = true
			}
			rec := record{T: recAlert, Seq: e.seq, Ord: ordField(e), Sinks: sinkNames, Alert: raw}
			if err := appendRecord(&o.buf, &rec); err != nil {
				o.log.Error("cannot encode alert record; not accepted", "id", o.opts.ShownID(a), "err", err)
				continue
			}
			o.nextSeq++
			o.noteOrdinal(ac.Ordinal)
			if k.id != "" {
				batch[k] = true
			}
			accepted = append(accepted, e)
		}
	}
	return accepted, dups
}

// ordField is the Ord of e's alert record: its ordinal when that is not
// its seq.
func ordField(e *entry) uint64 {
	if e.alert.Ordinal == e.seq {
		return 0
	}
	return e.alert.Ordinal
}

// Knows reports whether the outbox has taken a (with its id and state),
// delivered or not: within its de-duplication window, or long enough ago
// to have left it — a's ordinal is a window's worth of alerts older than
// the newest the outbox holds (the firing of an incident open for days).
func (o *Outbox) Knows(a *model.Alert) bool {
	if o.isDuplicate(keyOf(a)) {
		return true
	}
	return a.Ordinal != 0 && o.MaxOrdinal()-min(a.Ordinal, o.MaxOrdinal()) >= uint64(o.opts.DedupeWindow)
}

// MaxOrdinal is the largest alert ordinal the outbox holds (has taken, as
// far as its log tells): the engine gives new alerts greater ones.
func (o *Outbox) MaxOrdinal() uint64 { return o.maxOrdinal.Load() }

func (o *Outbox) noteOrdinal(n uint64) {
	for {
		cur := o.maxOrdinal.Load()
		if n <= cur || o.maxOrdinal.CompareAndSwap(cur, n) {
			return
		}
	}
}

func (o *Outbox) isDuplicate(k key) bool {
	if o.dedupe.has(k) {
		return true
	}
	// A pending alert whose key has aged out of the window is still a
	// duplicate: it has not even been delivered yet.
	o.mu.Lock()
	_, ok := o.byKey[k]
	o.mu.Unlock()
	return ok
}

// write appends b to the log and fsyncs it.
func (o *Outbox) write(b []byte) error {
	n, err := o.f.Write(b)
	o.size += int64(n)
	o.m.logBytes.Set(float64(o.size))
	if err != nil {
		o.needRewrite = true
		return fmt.Errorf("outbox: write log: %w", err)
	}
	if err := o.syncTimed(o.f); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages
		// and a later fsync can succeed without them: only a rewrite of the
		// whole state is trustworthy again.
		o.needRewrite = true
		return fmt.Errorf("outbox: fsync log: %w", err)
	}
	if o.dirUnsynced {
		// Written to a log whose name a crash may yet take back (the
		// folder's fsync after the compaction that named it failed): not
		// durable until the folder is. The retry rewrites the whole state.
		if err := o.syncDir(); err != nil {
			o.needRewrite = true
			return fmt.Errorf("outbox: fsync folder: %w", err)
		}
		o.dirUnsynced = false
	}
	return nil
}

func (o *Outbox) syncTimed(f *os.File) error {
	start := time.Now()
	err := o.opts.sync(f)
	o.m.fsync.Observe(time.Since(start).Seconds())
	return err
}

// fail refuses a group of appends, at Close, when it still cannot be
// written: their messages are not acked, and the broker redelivers them.
func (o *Outbox) fail(reqs []*appendReq, err error) {
	o.log.Error("cannot make alerts durable at shutdown; refusing them (their messages are not acked)", "alerts", countAlerts(reqs), "err", err)
	for _, r := range reqs {
		r.done(err)
	}
}

// maybeCompact rewrites the log once it has grown enough; see the package doc.
func (o *Outbox) maybeCompact() {
	grown := o.size - o.baseSize
	o.mu.Lock()
	idle := len(o.entries) == 0
	o.mu.Unlock()
	threshold := max(o.opts.CompactMinBytes, o.baseSize)
	if idle {
		threshold = o.opts.CompactMinBytes
	}
	if grown < threshold {
		return
	}
	if err := o.compact(); err != nil {
		// The old log is intact; appending to it goes on, and the next
		// commit tries again.
		o.log.Error("outbox compaction failed", "err", err)
	}
}
