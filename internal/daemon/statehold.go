package daemon

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/internal/model"
)

// stateHolds are the alerts on their way from the engine to the outbox
// (pipeline.StateKeeper), in the order they were raised.
//
// The alerts of incidents opened or resolved (and the acks of their
// messages) wait for a save of the alert state that holds the change: an
// alert never goes out for an incident a crash could make the engine
// forget, which would leave its firing without a resolution. Other alerts
// need no save, but wait behind those of their site: the outbox delivers
// in the order of its Appends, and a unit must get a crowd's firing before
// the foreign SIM's alert raised after it. Another site's alerts do not
// wait: its units subscribe to their own site's topics. Nor do they wait
// longer than orderWait: a state of hundreds of MB takes a second or more
// to save, and a foreign SIM's alert must not be that late; past it an
// alert goes out ahead of the incident's (counted and logged).
//
// Until the outbox has them (its write durable) alerts are saved with the
// state too (unsent), so that a crash between a save and the outbox's
// write queues them at the next start — the redelivered message, which
// the saved state has evaluated, raises them no more.
type stateHolds struct {
	engine *engine.Engine
	outbox pipeline.Outbox
	// kick wakes the state saver when something is held: a stateful
	// alert waits for the save, which should not wait for the next tick.
	kick chan struct{}

	// handMu is held while alerts are handed to the outbox, so that a
	// Pass finding nothing of its sites queued cannot hand its alerts over
	// ahead of those a release has just taken off the queue.
	handMu sync.Mutex

	mu      sync.Mutex
	queue   []*heldAlerts // not yet handed to the outbox, in order
	sending []*heldAlerts // handed to the outbox, its write not yet durable

	maxWait  time.Duration    // orderWait; shorter in tests
	now      func() time.Time // of the waits
	timer    *time.Timer      // runs expire when the oldest queued Pass is due
	armed    bool             // timer is set
	ahead    prometheus.Counter
	log      *slog.Logger
	lastWarn time.Time
}

// orderWait is how long alerts that changed no incident wait at most behind
// an incident's alert of their site held for a state save.
const orderWait = time.Second

type heldAlerts struct {
	alerts []model.Alert
	done   func(error)
	save   bool      // waits for a save (not yet released)
	taken  bool      // taken for a save on its way
	queued time.Time // when a Pass was queued behind a held one
}

// sharesSite reports whether ha has an alert of one of sites.
func (ha *heldAlerts) sharesSite(sites map[string]bool) bool {
	for i := range ha.alerts {
		if sites[ha.alerts[i].Site] {
			return true
		}
	}
	return false
}

// addSites adds the sites of ha's alerts to sites.
func (ha *heldAlerts) addSites(sites map[string]bool) {
	for i := range ha.alerts {
		sites[ha.alerts[i].Site] = true
	}
}

func newStateHolds(e *engine.Engine, o pipeline.Outbox, log *slog.Logger, reg prometheus.Registerer) *stateHolds {
	return &stateHolds{engine: e, outbox: o, kick: make(chan struct{}, 1), maxWait: orderWait, now: time.Now, log: log,
		ahead: promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "fenceline_alerts_sent_ahead_total",
			Help: "Alerts that changed no incident sent ahead of an earlier incident alert of their site, which waited longer than 1s for the alert state's save."})}
}

func (h *stateHolds) IncidentChanges() uint64 { return h.engine.IncidentChanges() }

func (h *stateHolds) Hold(alerts []model.Alert, done func(error)) {
	h.mu.Lock()
	h.queue = append(h.queue, &heldAlerts{alerts: alerts, done: done, save: true})
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

func (h *stateHolds) Pass(alerts []model.Alert, done func(error)) {
	h.handMu.Lock()
	defer h.handMu.Unlock()
	ha := &heldAlerts{alerts: alerts, done: done}
	h.mu.Lock()
	if len(h.queue) > 0 {
		queued := map[string]bool{}
		for _, q := range h.queue {
			q.addSites(queued)
		}
		if ha.sharesSite(queued) {
			// Handed over by the release of those ahead, or by expire.
			ha.queued = h.now()
			h.queue = append(h.queue, ha)
			h.armLocked(h.maxWait)
			h.mu.Unlock()
			return
		}
	}
	h.sending = append(h.sending, ha)
	h.mu.Unlock()
	h.hand(ha)
}

// take marks what is held so far as taken for a save whose snapshot is
// taken now, on the pipeline's goroutine (so it holds what they wait for),
// and returns it with the alerts the outbox does not have yet, to be saved
// with it.
func (h *stateHolds) take() (taken []*heldAlerts, unsent unsentAlerts) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ha := range h.sending {
		unsent = append(unsent, ha.alerts...)
	}
	for _, ha := range h.queue {
		if ha.save && !ha.taken {
			ha.taken = true
			taken = append(taken, ha)
		}
		unsent = append(unsent, ha.alerts...)
	}
	return taken, unsent
}

// waiting is the number of evaluations held for a save not yet taken.
func (h *stateHolds) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ha := range h.queue {
		if ha.save && !ha.taken {
			n++
		}
	}
	return n
}

// release lets what was taken for a save go to the outbox, with the alerts
// queued behind it, once the save is durable or has failed: holding the
// alerts longer would not make them safer (the failure is counted and
// logged, and the next save is tried as usual). Alerts held for a later
// save stay, and so do those of their sites behind them.
func (h *stateHolds) release(taken []*heldAlerts) {
	h.handMu.Lock()
	defer h.handMu.Unlock()
	h.mu.Lock()
	for _, ha := range taken {
		ha.save = false
	}
	var ready []*heldAlerts
	waiting := map[string]bool{} // sites with alerts still queued ahead
	h.queue = slices.DeleteFunc(h.queue, func(ha *heldAlerts) bool {
		if ha.save || ha.sharesSite(waiting) {
			ha.addSites(waiting)
			return false
		}
		ready = append(ready, ha)
		return true
	})
	h.sending = append(h.sending, ready...)
	h.mu.Unlock()
	for _, ha := range ready {
		h.hand(ha)
	}
}

// armLocked sets the timer of expire to d, unless it is set. Called with mu
// held.
func (h *stateHolds) armLocked(d time.Duration) {
	if h.armed {
		return
	}
	h.armed = true
	if h.timer == nil {
		h.timer = time.AfterFunc(d, h.expire)
	} else {
		h.timer.Reset(d)
	}
}

// expire hands over, in order, the alerts queued by Pass that have waited
// maxWait, ahead of the incidents' alerts still waiting for a save.
func (h *stateHolds) expire() {
	h.handMu.Lock()
	defer h.handMu.Unlock()
	h.mu.Lock()
	h.armed = false
	now := h.now()
	var ready []*heldAlerts
	var next time.Time // when the oldest still queued is due
	n := 0
	h.queue = slices.DeleteFunc(h.queue, func(ha *heldAlerts) bool {
		switch {
		case ha.save:
			return false
		case now.Sub(ha.queued) >= h.maxWait:
			ready = append(ready, ha)
			n += len(ha.alerts)
			return true
		case next.IsZero():
			next = ha.queued.Add(h.maxWait)
		}
		return false
	})
	if !next.IsZero() {
		h.armLocked(next.Sub(now))
	}
	h.sending = append(h.sending, ready...)
	warn := n > 0 && now.Sub(h.lastWarn) >= time.Minute
	if warn {
		h.lastWarn = now
	}
	h.mu.Unlock()
	if n == 0 {
		return
	}
	h.ahead.Add(float64(n))
	if warn {
		h.log.Warn("alerts sent ahead of an incident's alert of their site that waits for the alert state's save: saves are slow (fenceline_alerts_state_save_seconds; a state of hundreds of MB takes seconds)",
			"alerts", n, "waited", h.maxWait)
	}
	for _, ha := range ready {
		h.hand(ha)
	}
}

// hand appends ha's alerts to the outbox; they are unsent until its write
// is durable.
func (h *stateHolds) hand(ha *heldAlerts) {
	h.outbox.Append(ha.alerts, func(err error) {
		h.mu.Lock()
		if i := slices.Index(h.sending, ha); i >= 0 {
			h.sending = slices.Delete(h.sending, i, i+1)
		}
		h.mu.Unlock()
		ha.done(err)
	})
}

// unsentAlerts are saved with the state as JSON, each with the ordinal
// its payload leaves out.
type unsentAlerts []model.Alert

type unsentAlert struct {
	Alert   model.Alert `json:"alert"`
	Ordinal uint64      `json:"ordinal,omitempty"`
}

func (u unsentAlerts) MarshalJSON() ([]byte, error) {
	out := make([]unsentAlert, len(u))
	for i, a := range u {
		out[i] = unsentAlert{Alert: a, Ordinal: a.Ordinal}
	}
	return json.Marshal(out)
}

func (u *unsentAlerts) UnmarshalJSON(b []byte) error {
	var in []unsentAlert
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*u = make(unsentAlerts, len(in))
	for i, x := range in {
		x.Alert.Ordinal = x.Ordinal
		(*u)[i] = x.Alert
	}
	return nil
}
