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

// warnEvery bounds the warnings of a lane that keeps failing: the first
// failure of an alert is logged, then at most one line per interval.
const warnEvery = time.Minute

// Run delivers pending alerts to every sink until ctx is done: per sink, one
// lane per site, each delivered in order by a goroutine of its own (started
// when the lane gets alerts, also those of a site new since Run began, and
// ended when the lane is empty), retrying failures with capped, jittered
// backoff. An alert a sink keeps failing holds back only the later alerts of
// its site for that sink. Run returns nil once ctx is done and every lane's
// goroutine has ended; an attempt cut short by ctx is not a failure and is
// made again on the next start. Run may be called once.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return errors.New("outbox: Run called twice")
	}
	var wg sync.WaitGroup
	o.mu.Lock()
	o.startLane = func(l *lane) { wg.Go(func() { o.deliverLane(ctx, l) }) }
	for _, s := range o.sinks {
		for _, l := range s.lanes {
			o.wake(l)
		}
	}
	o.mu.Unlock()
	<-ctx.Done()
	// No lane starts from now on, so that wg.Wait sees every wg.Go.
	o.mu.Lock()
	o.startLane = nil
	o.mu.Unlock()
	wg.Wait()
	return nil
}

// wake starts l's delivery goroutine unless it runs already or Run is not
// delivering. Called with o.mu held.
func (o *Outbox) wake(l *lane) {
	if l.active || o.startLane == nil {
		return
	}
	l.active = true
	o.startLane(l)
}

// deliverLane delivers l's entries in order until l is empty (then it
// removes l from its sink) or ctx ends.
func (o *Outbox) deliverLane(ctx context.Context, l *lane) {
	bs, _ := l.s.sink.(BatchSink)
	for {
		o.mu.Lock()
		e := l.peek()
		if e == nil || ctx.Err() != nil {
			l.active = false
			if e == nil {
				delete(l.s.lanes, l.site)
			}
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		if bs != nil {
			o.deliverBatch(ctx, l, bs)
		} else {
			o.deliver(ctx, l, e)
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

// deliver tries e, the head of l, on l's sink until it is delivered,
// refused for good, or ctx ends.
func (o *Outbox) deliver(ctx context.Context, l *lane, e *entry) {
	a := e.alert
	backoff := o.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		actx, done := attemptContext(ctx)
		err := l.s.sink.Deliver(actx, a)
		done()
		if err == nil {
			o.delivered(l, e, attempt)
			return
		}
		if !o.failed(ctx, l, e, attempt, err, &backoff) {
			return
		}
	}
}

// deliverBatch delivers the head of lane l through bs, up to maxBatch
// alerts an attempt, until the head alert of the first attempt is
// delivered, refused for good, or ctx ends. The alerts behind it go with it
// in the same attempt, in order; a failure is the first undelivered
// alert's, retried with backoff as deliver retries its alert, and alone:
// a sink that could not tell which alerts of a batch went through (a
// connection lost) must not send the ones that did again and again while
// the one it keeps failing holds the lane. A batch holds alerts of one site
// only: those of one lane.
func (o *Outbox) deliverBatch(ctx context.Context, l *lane, bs BatchSink) {
	backoff := o.opts.MinBackoff
	var es []*entry
	var alerts []*model.Alert
	size := maxBatch
	for attempt := 1; ; attempt++ {
		o.mu.Lock()
		es = l.headN(es, size)
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
			o.delivered(l, e, a)
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
		if !o.failed(ctx, l, es[n], attempt, err, &backoff) {
			return
		}
	}
}

// delivered takes e, delivered to l's sink at the attempt-th attempt, off
// lane l.
func (o *Outbox) delivered(l *lane, e *entry, attempt int) {
	a, s := e.alert, l.s
	o.finish(l, e, false)
	s.m.delivered.Inc()
	if !a.RaisedAt.IsZero() {
		s.m.latency.Observe(time.Since(a.RaisedAt).Seconds())
	}
	if attempt > 1 {
		o.log.Info("alert delivered after retries", "sink", s.name, "site", a.Site, "id", o.opts.ShownID(a), "state", a.State, "attempts", attempt)
	}
}

// failed handles the failure err of the attempt-th attempt to deliver e,
// the head of lane l, to l's sink: drops e for that sink if err is
// permanent, else waits for the next attempt (doubling *backoff). It reports
// whether to try again: false when e was dropped or ctx ended (an attempt
// interrupted by shutdown is no failure).
func (o *Outbox) failed(ctx context.Context, l *lane, e *entry, attempt int, err error, backoff *time.Duration) bool {
	a, s := e.alert, l.s
	if ctx.Err() != nil {
		return false
	}
	s.m.failures.Inc()
	if errors.Is(err, ErrPermanent) {
		s.m.dropped.Inc()
		o.log.Error("ALERT DROPPED for sink: permanent delivery failure",
			"sink", s.name, "id", o.opts.ShownID(a), "state", a.State, "rule", a.Rule, "site", a.Site,
			"severity", a.Severity, "attempts", attempt, "err", err)
		o.finish(l, e, true)
		return false
	}
	wait := jitter(*backoff)
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		// Honour the receiver's Retry-After, within our own cap.
		wait = max(wait, min(ra.RetryAfter(), o.opts.MaxBackoff))
	}
	if attempt == 1 || time.Since(l.lastWarn) >= warnEvery {
		l.lastWarn = time.Now()
		o.mu.Lock()
		pending, held := s.pending, l.len()-1
		o.mu.Unlock()
		o.log.Warn("alert delivery failed; retrying (later alerts of its site wait for it on this sink)",
			"sink", s.name, "site", a.Site, "id", o.opts.ShownID(a), "state", a.State, "attempt", attempt,
			"retry_in", wait.Round(time.Millisecond), "held_back", held, "pending", pending, "err", err)
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

// finish takes e, the head of lane l, off it and queues the durable record
// of it: a delivery, or with drop a permanent refusal.
func (o *Outbox) finish(l *lane, e *entry, drop bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := l.s
	l.pop()
	s.m.pending.Set(float64(s.pending))
	e.pending[s.idx] = false
	e.left--
	if e.left == 0 {
		delete(o.entries, e.seq)
		if e.key.id != "" {
			delete(o.byKey, e.key)
		}
		o.makeRoom()
	}
	if o.closing {
		return // Close was called before Run returned; see Close
	}
	o.acks = append(o.acks, record{T: recDone, Seq: e.seq, Sink: s.name, Drop: drop})
	o.cond.Signal()
}
