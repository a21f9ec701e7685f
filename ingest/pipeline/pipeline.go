// Package pipeline carries each message from the broker to its durable
// destinations: decode and validate, readings to the InfluxDB writer,
// rejections to the dead letters, readings to the alert engine and its
// alerts to the outbox — and acks the message to the broker only once every
// one of those destinations has said its part is durable.
//
// The pipeline runs on one goroutine, which owns the decoder, the device
// registry, the sequence tracker and the alert engine: none of them needs a
// lock, and per-device order is the broker's order.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/ingest/budget"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/ingest/mqttsource"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/protect"
)

// Writer stores readings. Write may block (backpressure); done is called once
// with nil when every reading of b is stored, with an error for which
// influxwriter.IsPermanent is true when storage refused them for good, or
// with another error when the writer stopped before storing them.
type Writer interface {
	Write(ctx context.Context, b *model.Batch, done func(error)) error
}

// DeadLetter is one rejection kept for an operator.
type DeadLetter struct {
	Received time.Time
	Topic    string
	Reason   string
	Detail   string
	Index    int
	Payload  []byte
}

// DeadLetters keeps rejections durably; done is called once the record is
// on disk. Kept reports that a record of the same message, reason and index
// is on disk already: the message is a redelivery (its first delivery was
// not acked), to be recorded and counted once.
type DeadLetters interface {
	Append(rec DeadLetter, done func(error))
	Kept(rec DeadLetter) bool
}

// Engine evaluates alert rules (see alerts/engine).
type Engine interface {
	Evaluate(b *model.Batch, now time.Time) []model.Alert
	Tick(now time.Time) []model.Alert
	// Listening says whether messages are being taken from the broker
	// (Options.Listening), before each Tick.
	Listening(up bool, now time.Time)
}

// StateKeeper makes the rule engine's state durable (the daemon's state
// file).
type StateKeeper interface {
	// IncidentChanges counts the incidents the engine has opened or
	// resolved so far.
	IncidentChanges() uint64
	// Hold hands alerts (of an evaluation that opened or resolved an
	// incident) to the outbox once a save of the engine's state, taken
	// after Hold was called, is durable, or has failed (counted and
	// alerted on: holding longer would not make the alerts safer); done
	// follows the outbox's Append.
	Hold(alerts []model.Alert, done func(error))
	// Pass hands alerts of an evaluation that opened or resolved no
	// incident to the outbox, behind any still held: the outbox keeps the
	// order of its Appends, and an alert passed ahead of one held would
	// reach the units first (a foreign SIM's alert ahead of the crowd's
	// firing raised before it, on the same topic). Until the outbox has
	// them they are saved with the state, as held alerts are. done follows
	// the outbox's Append.
	Pass(alerts []model.Alert, done func(error))
}

// Outbox accepts alerts for delivery; done is called once they are durable.
type Outbox interface {
	Append(alerts []model.Alert, done func(error))
}

// roomWaiter is an Outbox with a bound: WaitRoom returns once it can take
// more alerts (see outbox.Outbox.WaitRoom), or ctx ends.
type roomWaiter interface {
	WaitRoom(ctx context.Context) error
}

// Options are the pipeline's settings.
type Options struct {
	Decode   decode.Options
	Retained string        // "ingest" or "ignore"
	Tick     time.Duration // period of Engine.Tick
	Now      func() time.Time
	// Signatures, when not nil, checks device signatures and seq replay
	// before anything of a message is used.
	Signatures *devicesig.Verifier
	// Budget, when not nil, refuses messages of a device over its budget
	// (dead-lettered as over_budget).
	Budget *budget.Budget
	// Protect, when not nil, hashes identifiers after the engine has seen
	// the readings and before the writer stores them.
	Protect *protect.Protector
	// Listening, when not nil, reports whether messages are being taken
	// from the broker (subscribed): while they are not, no unit can be
	// heard, and the engine declares none silent.
	Listening func() bool
	// State, when not nil, holds the alerts of an evaluation that opened or
	// resolved an incident (and so the ack of its message) until the
	// engine's state holding the change is saved. An alert never goes out
	// for an incident a crash could make the engine forget: its firing
	// would be left for ever without its resolution (and an incident
	// built from several messages cannot be rebuilt by redelivering the
	// last one).
	State StateKeeper
}

// Pipeline is the message path; see the package doc.
type Pipeline struct {
	opts     Options
	dec      *decode.Decoder
	registry *model.Registry
	engine   Engine
	writer   Writer
	dead     DeadLetters
	outbox   Outbox
	room     roomWaiter // the outbox, when it has a bound; asked once, not per message
	seqs     *seqTracker
	gapLogs  map[string]*gapLog // guarded by engineMu, as seqs
	points   *pointWatch
	log      *slog.Logger
	rejLog   *rejectLog
	m        *metrics
	batch    model.Batch
	do       chan func()
	// stopped is closed when Run returns: nothing takes a Do after that.
	stopped  chan struct{}
	stopOnce sync.Once
	// engineMu is held while the engine evaluates and seqs change (and by
	// WithEngine): the engine's state can be copied while the pipeline
	// waits on a write InfluxDB is slow to take, which is when alerts held
	// for a save of that state must not wait for the pipeline too.
	engineMu sync.Mutex
}

// New builds a pipeline. engine and outbox may be nil (no alerting).
func New(opts Options, registry *model.Registry, engine Engine, w Writer, dl DeadLetters, ob Outbox, log *slog.Logger, reg prometheus.Registerer) *Pipeline {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 10 * time.Second
	}
	if opts.Decode.Now == nil {
		opts.Decode.Now = opts.Now
	}
	p := &Pipeline{
		opts:     opts,
		dec:      decode.New(opts.Decode),
		registry: registry,
		engine:   engine,
		writer:   w,
		dead:     dl,
		outbox:   ob,
		seqs:     newSeqTracker(),
		gapLogs:  map[string]*gapLog{},
		points:   newPointWatch(),
		log:      log.With("component", "pipeline"),
		rejLog:   newRejectLog(10),
		m:        newMetrics(reg),
		do:       make(chan func()),
		stopped:  make(chan struct{}),
	}
	p.seqs.onGap, p.seqs.onStray, p.seqs.onArrived = p.noteGap, p.noteStray, p.noteArrived
	p.room, _ = ob.(roomWaiter)
	return p
}

// WithEngine runs f while the engine is not evaluating: between two
// evaluations, even while the pipeline waits on a write. f may read (copy)
// the engine's state; changing it (and the registry) needs Do, whose f
// holds the engine as well.
func (p *Pipeline) WithEngine(f func()) {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	f()
}

// ErrStopped is Do's error once the pipeline has stopped.
var ErrStopped = errors.New("the pipeline has stopped")

// Do runs f on the pipeline's goroutine, between two messages, and waits for
// it: the way to swap the registry and the engine's rules on reload. An
// error says f did not run: ctx ended before the pipeline took it, or the
// pipeline has stopped (ErrStopped). Once taken, f is waited for whatever
// ctx says: it runs to its end anyway, and a reload told "failed" then
// reported rules in force as refused.
func (p *Pipeline) Do(ctx context.Context, f func()) error {
	if err := ctx.Err(); err != nil {
		return err // not offered: a ready pipeline could take it all the same
	}
	doneC := make(chan struct{})
	select {
	case p.do <- func() { f(); close(doneC) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stopped:
		return ErrStopped
	}
	<-doneC
	return nil
}

// SetRegistry swaps the device registry; call it through Do (on the
// pipeline's goroutine, holding engineMu, which guards the seq counters
// and gap logs). The devices it no longer has are forgotten (their seq
// counters, point times and gap logs), as a restart forgets them: held for
// every device ever registered, a deployment that renames its units and
// reloads grew for as long as it ran. Put back, a device starts afresh.
func (p *Pipeline) SetRegistry(r *model.Registry) {
	p.registry = r
	known := func(id string) bool { return r.Lookup(id) != nil }
	p.points.forget(known)
	p.seqs.forget(known)
	for id := range p.gapLogs {
		if !known(id) {
			delete(p.gapLogs, id)
		}
	}
}

// Run processes messages until ctx is done or in is closed. Messages still
// queued at that point are abandoned (not acked): the broker redelivers them.
func (p *Pipeline) Run(ctx context.Context, in <-chan *mqttsource.Message) error {
	tick := time.NewTicker(p.opts.Tick)
	defer tick.Stop()
	defer p.stopOnce.Do(func() { close(p.stopped) })
	defer p.abandon(in)
	// At a stop, the rejections kept from the log are told at once: their
	// minute would never come.
	defer func() { p.logUnlogged(p.opts.Now().Add(time.Minute)) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-in:
			if !ok {
				return nil
			}
			p.Handle(ctx, m)
		case <-tick.C:
			p.tick()
		case f := <-p.do:
			p.WithEngine(f) // a reload swaps the engine's rules
		}
	}
}

// logUnlogged tells the rejections, and the readings that shared point
// times, kept from the log whose minute has passed at now.
func (p *Pipeline) logUnlogged(now time.Time) {
	p.rejLog.flush(now, func(topic, reason string, n int) {
		p.log.Warn("rejected, not logged one by one", "topic", logTopic(topic), "reason", reason, "same_rejections_not_logged", n)
	})
	p.logAllSharedPoints(now)
	p.logAllGaps(now)
}

func (p *Pipeline) abandon(in <-chan *mqttsource.Message) {
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			m.Abandon()
		default:
			return
		}
	}
}

func (p *Pipeline) tick() {
	// Rejections kept from the log a minute ago are told now, should their
	// unit have fallen quiet since.
	p.logUnlogged(p.opts.Now())
	if p.engine == nil {
		return
	}
	up := p.opts.Listening == nil || p.opts.Listening()
	p.evaluate(func() []model.Alert {
		now := p.opts.Now()
		p.engine.Listening(up, now)
		return p.engine.Tick(now)
	}, func(n int) func(error) {
		return func(err error) {
			if err != nil {
				p.log.Error("could not queue time-driven alerts", "err", err, "alerts", n)
			}
		}
	})
}

// evaluate runs eval (the engine's Evaluate or Tick) under the engine's
// lock, and hands the alerts it raised on under the same lock, with the
// done that done returns (called with their number, only when there are
// any). A state save
// copies the engine between two evaluations: a copy that holds an
// evaluation then holds its alerts too (held, or unsent until the outbox
// has them), and a crash right after that save loses neither, though the
// message, redelivered, is not evaluated again.
func (p *Pipeline) evaluate(eval func() []model.Alert, done func(n int) func(error)) {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	var changes uint64
	if p.opts.State != nil {
		changes = p.opts.State.IncidentChanges()
	}
	alerts := eval()
	// A change the state must hold before the message is acked: an
	// incident opened or resolved, or what an open one will be judged on
	// (a unit's status), even when it raised no alert.
	changed := p.opts.State != nil && p.opts.State.IncidentChanges() != changes
	if (len(alerts) == 0 && !changed) || p.outbox == nil {
		return
	}
	switch d := done(len(alerts)); {
	case p.opts.State == nil:
		p.outbox.Append(alerts, d)
	case changed:
		// Held until a save of the state that holds the change.
		p.opts.State.Hold(alerts, d)
	default:
		p.opts.State.Pass(alerts, d)
	}
}

// takeSeq takes the place in device's seqs of m, a message that goes no
// further than that: its seq when read is seq (ok), else it is an
// unreadable message (see SeqSnapshot for the lock).
func (p *Pipeline) takeSeq(device string, seq int64, ok bool, m *mqttsource.Message) {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	if ok {
		// Marked rejected: the same message sent again (its dead letter
		// published again once its cause is mended) is taken then, not
		// taken for a redelivery of one the rules saw.
		p.seqs.observeRejected(device, seq, payloadSum(m.Payload), p.m)
	} else {
		p.seqs.unreadable(device, payloadSum(m.Payload), m.Duplicate)
	}
}

// Handle takes one message through the pipeline. It returns once the message
// is handed to every destination; the ack follows when they are durable.
func (p *Pipeline) Handle(ctx context.Context, m *mqttsource.Message) {
	if m.Retained && p.opts.Retained == "ignore" {
		p.m.retainedIgnored.Inc()
		m.Ack()
		return
	}
	if p.room != nil {
		if err := p.room.WaitRoom(ctx); err != nil {
			return // stopping: not acked, the broker delivers it again
		}
	}
	t := newAckToken(p, m) // holds this function's own reference, released at the end
	defer t.done(nil)

	b := &p.batch
	rejects := p.dec.Decode(m.Topic, m.Payload, m.Received, p.registry, b)
	p.m.messagesBy[streamIndex(b.Stream)].Inc()
	if p.opts.Signatures != nil && b.Device != nil {
		rejects = p.checkSignature(t, m, b, rejects)
	}
	if len(rejects) > 0 {
		p.reject(t, m, b, rejects)
	}
	if b.Device == nil || (len(rejects) > 0 && rejects[0].Index < 0) {
		// Rejected whole: even from a registered device, nothing of it is
		// used, no sign of life. Its seq counts when it was read (a bad
		// or future ts): the message was received, not lost, and its gap
		// must not be reported as one. A malformed message's seq is
		// unknown: taking it as 0 would count a reset and a huge gap; it
		// explains one message of the gap before the device's next seq.
		if b.Device != nil {
			seq, ok := p.dec.Seq()
			p.takeSeq(b.Device.ID, seq, ok, m)
		}
		return
	}
	if p.opts.Budget != nil && !p.opts.Budget.Allow(b.Device.ID, b.Len(), b.Time, p.opts.Now()) {
		p.takeSeq(b.Device.ID, b.Seq, true, m) // received, not lost
		if t.sigDevice != "" {
			// Its signature was checked: its copy published again is owed
			// acceptance, not a replay.
			p.opts.Signatures.Owe(b.Device.ID, b.Seq)
		}
		// Dead-lettered with its payload, not dropped: an operator can
		// publish it again (docs/runbook.md).
		p.reject(t, m, b, []decode.Reject{{Reason: reasonOverBudget, Index: -1,
			Detail: fmt.Sprintf("device over its budget (%d readings in this message)", b.Len())}})
		return
	}
	// The engine sees the raw readings (watchlists hold raw values); only
	// then are identifiers hashed for storage. A redelivered message was
	// already evaluated: its alerts are in the outbox, and evaluating it
	// again could double-count windows. Its seq is taken with its
	// evaluation, under one lock, so that a saved state that holds the
	// one holds the other (see SeqSnapshot).
	sum := payloadSum(m.Payload)
	var level uint8
	var dup bool
	p.evaluate(func() []model.Alert {
		ts := b.Time.UnixMilli()
		var stale bool
		if m.Retained {
			stale, level = p.seqs.staleRetained(b.Device.ID, b.Stream, b.Seq, sum, ts)
		}
		if stale {
			p.m.seqDuplicates.Inc()
			dup = true
		} else {
			dup, level = p.seqs.observeAt(b.Device.ID, b.Seq, sum, ts, p.m)
		}
		p.seqs.took(b.Device.ID, b.Stream, sum, ts, level)
		if p.engine == nil || dup {
			return nil
		}
		return p.engine.Evaluate(b, p.opts.Now())
	}, func(int) func(error) {
		t.pending.Add(1)
		return t.doneFn
	})
	if level != 0 {
		b.MovePointTimes(level)
	}
	if !dup {
		if n, first := p.points.observe(b); n > 0 {
			p.m.pointTimeShared.Add(float64(n))
			p.warnSharedPoints(b, n, first)
		}
	}
	if n := b.Len(); n > 0 {
		p.opts.Protect.Batch(b)
		if c := p.m.readingsBy[streamIndex(b.Stream)]; c != nil {
			c.Add(float64(n))
		} else {
			p.m.readings.WithLabelValues(b.Stream.String()).Add(float64(n))
		}
		t.pending.Add(1)
		t.seq = b.Seq
		if err := p.writer.Write(ctx, b, t.doneFn); err != nil {
			t.done(err)
		}
	}
}

// checkSignature verifies the signature and seq of a decoded message whose
// device is known, and returns the rejections to record. A rejected message
// loses its device and readings: nothing of it is stored or evaluated — not
// even as a sign of life, which a forger could otherwise give a unit that
// has gone silent.
func (p *Pipeline) checkSignature(t *ackToken, m *mqttsource.Message, b *model.Batch, rejects []decode.Reject) []decode.Reject {
	v := p.opts.Signatures
	if len(rejects) > 0 && rejects[0].Index < 0 {
		// Rejected whole before its seq could be read: unsigned as far as
		// anyone can tell.
		if v.Applies(b.Device.ID) {
			b.Device = nil
		}
		return rejects
	}
	var res devicesig.Result
	if m.Retained && p.copyOfLast(b, m.Payload) {
		// The broker's retained copy of the latest message taken on its
		// topic, sent again at this subscription: its seq is not above
		// the highest accepted, and no replay. It goes on as a duplicate.
		res = v.CheckCopy(m.Topic, m.Payload, b.Device.ID)
	} else {
		res = v.Check(m.Topic, m.Payload, b.Device.ID, b.Seq)
	}
	if !res.Accepted() {
		b.Device = nil
		b.Detections, b.Passes, b.Positions, b.Statuses = b.Detections[:0], b.Passes[:0], b.Positions[:0], b.Statuses[:0]
		return append(rejects[:0], decode.Reject{Reason: decode.Reason(res.Reason), Index: -1, Detail: res.Detail})
	}
	if res.Outcome != devicesig.Unsigned {
		t.sigDevice, t.sigSeq = b.Device.ID, b.Seq
	}
	return rejects
}

// copyOfLast reports whether payload is the latest message taken on b's
// topic (see seqTracker.staleRetained).
func (p *Pipeline) copyOfLast(b *model.Batch, payload []byte) bool {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	return p.seqs.isLast(b.Device.ID, b.Stream, payloadSum(payload))
}

// reject counts, logs (rate-limited) and dead-letters the rejections of one
// message: one record per distinct reason, so that a message with thousands
// of bad readings costs a few records, not thousands of payload copies.
func (p *Pipeline) reject(t *ackToken, m *mqttsource.Message, b *model.Batch, rejects []decode.Reject) {
	byReason := map[decode.Reason][]decode.Reject{}
	var order []decode.Reason
	for _, r := range rejects {
		if _, ok := byReason[r.Reason]; !ok {
			order = append(order, r.Reason)
		}
		byReason[r.Reason] = append(byReason[r.Reason], r)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, reason := range order {
		rs := byReason[reason]
		rec := DeadLetter{
			Received: m.Received,
			Topic:    m.Topic,
			Reason:   string(reason),
			Detail:   summarise(rs),
			Index:    rs[0].Index,
			Payload:  m.Payload,
		}
		if (m.Duplicate || m.Retained) && p.dead.Kept(rec) {
			// The broker sends it again (DUP): recorded and counted at the
			// first delivery, which was not acked — fenceline stopped
			// before the message's other parts were stored, or lost the
			// broker; or it is the topic's retained message, which it
			// sends at every subscription. A unit publishing the same
			// payload again sends a new message, which is recorded again.
			p.m.rejectionsRedelivered.Add(float64(len(rs)))
			continue
		}
		p.m.rejections.WithLabelValues(string(reason)).Add(float64(len(rs)))
		if ok, n, others := p.rejLog.allow(m.Topic, string(reason), p.opts.Now()); ok {
			p.log.Warn("rejected", "topic", logTopic(m.Topic), "reason", reason, "detail", rec.Detail,
				"same_rejections_not_logged", n, "other_rejections_not_logged", others)
		}
		t.pending.Add(1)
		p.dead.Append(rec, t.doneFn)
	}
}

const maxDetails = 10

func summarise(rs []decode.Reject) string {
	var b strings.Builder
	for i, r := range rs {
		if i == maxDetails {
			fmt.Fprintf(&b, "; and %d more", len(rs)-maxDetails)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.Detail)
	}
	return b.String()
}

// ackToken acks its message when the last of its parts is durable. Tokens
// are deliberately not pooled: a stray second done call on a recycled token
// would ack another message before its data is safe, and the pool saved
// only 0.1 allocations per reading.
type ackToken struct {
	p       *Pipeline
	msg     *mqttsource.Message
	pending atomic.Int32
	abandon atomic.Bool
	// sigDevice and sigSeq name a signed message, whose ack advances the
	// device's persisted replay mark.
	sigDevice string
	sigSeq    int64
	// seq is the message's, to name the readings storage refused.
	seq int64
	// doneFn is done as a func value, made once per token rather than per
	// callback handed out.
	doneFn func(error)
}

// newAckToken returns a token for m holding one reference.
func newAckToken(p *Pipeline, m *mqttsource.Message) *ackToken {
	t := &ackToken{p: p, msg: m}
	t.doneFn = t.done // one func value per token, not one per callback handed out
	t.pending.Store(1)
	return t
}

func (t *ackToken) done(err error) {
	switch {
	case err == nil:
	case influxwriter.IsPermanent(err):
		// Storage refused readings for good: keep the message as a dead
		// letter naming them, and ack once that is durable.
		var pe *influxwriter.PermanentError
		errors.As(err, &pe)
		first, detail := refusedReadings(pe, t.seq)
		t.p.m.rejections.WithLabelValues(reasonStorageRejected).Add(float64(max(len(pe.Times), 1)))
		// Only the status: InfluxDB's message may quote the line, with
		// its identifiers. The dead letter keeps the whole error.
		t.p.log.Error("storage refused a message's readings; dead-lettered", "topic", logTopic(t.msg.Topic),
			"status", pe.Status, "readings", max(len(pe.Times), 1))
		t.pending.Add(1)
		t.p.dead.Append(DeadLetter{
			Received: t.msg.Received, Topic: t.msg.Topic, Reason: reasonStorageRejected,
			Detail: detail, Index: first, Payload: t.msg.Payload,
		}, t.doneFn)
	default:
		t.abandon.Store(true)
	}
	if t.pending.Add(-1) != 0 {
		return
	}
	if t.abandon.Load() {
		t.msg.Abandon()
		t.p.m.abandoned.Inc()
		return
	}
	t.msg.AckObserved(t.p.m.ackLatency)
	if t.sigDevice != "" {
		t.p.opts.Signatures.Acked(t.sigDevice, t.sigSeq)
	}
}

// refusedReadings names the readings of message seq that storage refused
// (pe.Times): the index of the first, for the dead letter's index, and a
// detail listing them (up to maxListed) with InfluxDB's error. Without
// times (never expected) the message counts as refused whole (-1).
func refusedReadings(pe *influxwriter.PermanentError, seq int64) (int, string) {
	if len(pe.Times) == 0 {
		return -1, pe.Error()
	}
	idx := make([]int, len(pe.Times))
	for i, ns := range pe.Times {
		idx[i] = model.ReadingIndex(ns, seq)
	}
	slices.Sort(idx)
	const maxListed = 10
	var b strings.Builder
	if len(idx) == 1 {
		b.WriteString("reading ")
	} else {
		fmt.Fprintf(&b, "%d readings ", len(idx))
	}
	for i, x := range idx[:min(len(idx), maxListed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
	}
	if len(idx) > maxListed {
		b.WriteString(", …")
	}
	b.WriteString(" refused: ")
	b.WriteString(pe.Error())
	return idx[0], b.String()
}

// StorageRejected counts readings storage refused for good outside the
// pipeline's own path (lines of the spool refused on replay), with the
// others of their reason. Safe from any goroutine.
func (p *Pipeline) StorageRejected(readings int) {
	p.m.rejections.WithLabelValues(reasonStorageRejected).Add(float64(readings))
}

// reasonOverBudget is the dead-letter reason of messages refused because
// their device was over its budget.
const reasonOverBudget decode.Reason = "over_budget"

// reasonStorageRejected is the dead-letter reason of messages InfluxDB
// refused for good (not one of the decoder's reasons).
const reasonStorageRejected = "storage_rejected"
