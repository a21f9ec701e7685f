// Package budget gives each device a budget of messages and readings per
// second (token buckets with a burst), so that one misbehaving unit — a
// firmware loop publishing as fast as the link allows, the same data sent
// over and over — cannot take the pipeline's time from the others.
//
// A second is earned in either clock: fenceline's, or the device's own (the
// messages' ts). A backlog is not a unit misbehaving: the broker's queue
// after fenceline was down for a day, or a unit's buffer sent when its link
// came back, arrives as fast as it can be delivered, but its messages were
// produced over the day, at the device's rate, and their ts say so; it
// passes whole. A unit in a loop produces many messages in a second of its
// own clock (or of a clock that stands still) and of fenceline's: it is
// held to its rate.
//
// It only decides; the caller says what happens to a message over budget
// (the pipeline dead-letters it with reason over_budget: delaying it would
// hold the one pipeline goroutine, and with it every other device). Memory
// is bounded: at most Limits.MaxDevices buckets are kept, and a bucket that
// has refilled to its burst is dropped first when room is needed, since a
// new bucket would be the same.
package budget

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Limits are the per-device budgets. A rate of 0 means no limit on that
// dimension.
type Limits struct {
	// MessagesPerSecond is the sustained message rate of one device.
	MessagesPerSecond float64
	// MessageBurst is how many messages a device may send at once after
	// being quiet (default: one second's worth, at least 1).
	MessageBurst float64
	// ReadingsPerSecond is the sustained rate of readings (detections,
	// passes, positions, statuses) of one device.
	ReadingsPerSecond float64
	// ReadingBurst is how many readings a device may send at once after
	// being quiet (default: one second's worth, at least 1). A message
	// with more readings than this passes only when the device's bucket
	// is full, and leaves it in debt: the long-run rate holds either way.
	ReadingBurst float64
	// MaxDevices bounds the buckets kept (default 10,000). Size it to the
	// device registry: only registered devices should be asked about.
	MaxDevices int
}

func (l *Limits) setDefaults() {
	if l.MessageBurst <= 0 {
		l.MessageBurst = max(l.MessagesPerSecond, 1)
	}
	if l.ReadingBurst <= 0 {
		l.ReadingBurst = max(l.ReadingsPerSecond, 1)
	}
	if l.MaxDevices <= 0 {
		l.MaxDevices = 10000
	}
}

// Budget is the set of per-device buckets. It is safe for concurrent use.
type Budget struct {
	mu      sync.Mutex
	lim     Limits
	buckets map[string]*bucket

	exceeded map[string]prometheus.Counter // by limit: messages, readings
	devices  prometheus.Gauge
}

type bucket struct {
	msgs, readings float64   // tokens left
	last           time.Time // tokens were earned up to here, in fenceline's clock
	lastSent       time.Time // likewise in the device's clock (its messages' ts)
	backlogLo      time.Time // the span of a backlog's clock so far, behind lastSent (see refill)
	backlogHi      time.Time
	used           time.Time // the device last asked: the LRU order (refills must not touch it)
}

// Label values of fenceline_ingest_budget_exceeded_total.
const (
	LimitMessages = "messages"
	LimitReadings = "readings"
)

// New returns a Budget with limits l, registering its metrics on reg.
func New(l Limits, reg prometheus.Registerer) *Budget {
	l.setDefaults()
	f := promauto.With(reg)
	exceeded := f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_budget_exceeded_total",
		Help: "Messages refused because their device was over its budget, by the limit it was over (messages or readings)."},
		[]string{"limit"})
	b := &Budget{
		lim:      l,
		buckets:  make(map[string]*bucket),
		exceeded: map[string]prometheus.Counter{},
		devices: f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_ingest_budget_devices",
			Help: "Devices whose budget is being tracked (bounded by the device registry)."}),
	}
	for _, l := range []string{LimitMessages, LimitReadings} {
		b.exceeded[l] = exceeded.WithLabelValues(l)
	}
	return b
}

// SetLimits changes the limits (a reload). Buckets keep their tokens,
// capped at the new bursts.
func (b *Budget) SetLimits(l Limits) {
	l.setDefaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lim = l
	for _, bk := range b.buckets {
		bk.msgs = min(bk.msgs, l.MessageBurst)
		bk.readings = min(bk.readings, l.ReadingBurst)
	}
	b.evict(time.Time{}, false)
}

// Allow reports whether device may have a message of readings readings,
// sent at sent (its ts) and taken at now, and if so takes it from the
// device's budget. A refused message takes nothing (it is counted in
// fenceline_ingest_budget_exceeded_total): a device that keeps sending gets
// exactly its rate through.
func (b *Budget) Allow(device string, readings int, sent, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := &b.lim
	bk := b.buckets[device]
	if bk == nil {
		if len(b.buckets) >= l.MaxDevices {
			b.evict(now, true)
		}
		bk = &bucket{msgs: l.MessageBurst, readings: l.ReadingBurst, last: now, lastSent: sent}
		b.buckets[device] = bk
		b.devices.Set(float64(len(b.buckets)))
	} else {
		b.refill(bk, sent, now)
	}
	if now.After(bk.used) {
		bk.used = now
	}
	cost := float64(readings)
	okM := l.MessagesPerSecond <= 0 || bk.msgs >= 1
	okR := l.ReadingsPerSecond <= 0 || bk.readings >= cost ||
		// More than a burst at once: only from a full bucket, into debt.
		(cost > l.ReadingBurst && bk.readings >= l.ReadingBurst)
	switch {
	case !okM:
		b.exceeded[LimitMessages].Inc()
		return false
	case !okR:
		b.exceeded[LimitReadings].Inc()
		return false
	}
	if l.MessagesPerSecond > 0 {
		bk.msgs--
	}
	if l.ReadingsPerSecond > 0 {
		bk.readings -= cost
	}
	return true
}

// refill adds the tokens earned since the bucket's last use, in whichever
// clock earned more: fenceline's (now) or the device's (sent; zero when
// only time passing at fenceline counts). A clock that went back earns
// nothing (and does not move back).
//
// A unit's backlog often comes beside its live messages (a heartbeat or a
// status sent while it uploads its buffer), and a unit may send its buffer
// newest first: a backlog's ts are behind the latest one and would earn
// nothing in that clock. A message behind it earns in the backlog's own
// clock: by as much as it widens the span of time the backlog's messages
// have covered so far, forward (a buffer sent oldest first) or back (newest
// first). A message inside that span earns nothing: a clock that jumps back
// and forth earns its span once, not at each jump.
func (b *Budget) refill(bk *bucket, sent, now time.Time) {
	var d time.Duration
	if now.After(bk.last) {
		d, bk.last = now.Sub(bk.last), now
	}
	switch {
	case sent.IsZero():
	case sent.After(bk.lastSent):
		if !bk.lastSent.IsZero() {
			d = max(d, sent.Sub(bk.lastSent))
		}
		bk.lastSent = sent
	case !sent.Before(bk.lastSent):
	case bk.backlogLo.IsZero():
		bk.backlogLo, bk.backlogHi = sent, sent
	case sent.After(bk.backlogHi):
		d = max(d, sent.Sub(bk.backlogHi))
		bk.backlogHi = sent
	case sent.Before(bk.backlogLo):
		d = max(d, bk.backlogLo.Sub(sent))
		bk.backlogLo = sent
	}
	if d <= 0 {
		return
	}
	s := d.Seconds()
	bk.msgs = min(bk.msgs+s*b.lim.MessagesPerSecond, b.lim.MessageBurst)
	bk.readings = min(bk.readings+s*b.lim.ReadingsPerSecond, b.lim.ReadingBurst)
}

// evict makes room: it drops every bucket that is full at now (a new one
// would be the same), then the least recently used ones while there are too
// many: MaxDevices or more when room for one is needed. Called with mu held.
func (b *Budget) evict(now time.Time, needRoom bool) {
	type used struct {
		dev  string
		last time.Time
	}
	var rest []used
	for dev, bk := range b.buckets {
		if !now.IsZero() {
			b.refill(bk, time.Time{}, now)
		}
		if bk.msgs >= b.lim.MessageBurst && bk.readings >= b.lim.ReadingBurst {
			delete(b.buckets, dev)
			continue
		}
		rest = append(rest, used{dev, bk.used})
	}
	limit := b.lim.MaxDevices
	if needRoom {
		limit--
	}
	if over := len(b.buckets) - limit; over > 0 {
		slices.SortFunc(rest, func(x, y used) int { return x.last.Compare(y.last) })
		for _, u := range rest[:over] {
			delete(b.buckets, u.dev)
		}
	}
	b.devices.Set(float64(len(b.buckets)))
}

// Len is the number of devices tracked.
func (b *Budget) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}
