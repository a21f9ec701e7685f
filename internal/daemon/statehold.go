package daemon

import (
	"encoding/json"
	"sync"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/internal/model"
)

// stateHolds are the alerts of incidents opened or resolved (and the acks
// of their messages), waiting for a save of the alert state that holds the
// change (pipeline.StateKeeper): an alert never goes out for an incident a
// crash could make the engine forget, which would leave its firing without
// a resolution. Once that save is durable they go to the outbox; until the
// outbox has them they are saved with the state too (unsent), so that a
// crash between the save and the outbox queues them at the next start —
// the redelivered message, which the saved state has evaluated, raises
// them no more.
type stateHolds struct {
	engine *engine.Engine
	outbox pipeline.Outbox
	// kick wakes the state saver when something is held: a stateful
	// alert waits for the save, which should not wait for the next tick.
	kick chan struct{}

	mu      sync.Mutex
	held    []*heldAlerts            // waiting for a save
	sending map[*heldAlerts]struct{} // saved, not yet durable in the outbox
}

type heldAlerts struct {
	alerts []model.Alert
	done   func(error)
}

func newStateHolds(e *engine.Engine, o pipeline.Outbox) *stateHolds {
	return &stateHolds{engine: e, outbox: o, kick: make(chan struct{}, 1), sending: map[*heldAlerts]struct{}{}}
}

func (h *stateHolds) IncidentChanges() uint64 { return h.engine.IncidentChanges() }

func (h *stateHolds) Hold(alerts []model.Alert, done func(error)) {
	h.mu.Lock()
	h.held = append(h.held, &heldAlerts{alerts: alerts, done: done})
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

// take returns what is held so far, for a save whose snapshot is taken
// now, on the pipeline's goroutine (so it holds what they wait for), and
// the alerts the outbox does not have yet, to be saved with it.
func (h *stateHolds) take() (taken []*heldAlerts, unsent unsentAlerts) {
	h.mu.Lock()
	defer h.mu.Unlock()
	taken, h.held = h.held, nil
	for _, ha := range taken {
		unsent = append(unsent, ha.alerts...)
	}
	for ha := range h.sending {
		unsent = append(unsent, ha.alerts...)
	}
	return taken, unsent
}

// waiting is the number of evaluations held.
func (h *stateHolds) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// release sends what was taken for a save to the outbox, once the save is
// durable or has failed: holding the alerts longer would not make them
// safer (the failure is counted and logged, and the next save is tried as
// usual). They are unsent until the outbox has them.
func (h *stateHolds) release(taken []*heldAlerts) {
	h.mu.Lock()
	for _, ha := range taken {
		h.sending[ha] = struct{}{}
	}
	h.mu.Unlock()
	for _, ha := range taken {
		h.outbox.Append(ha.alerts, func(err error) {
			h.mu.Lock()
			delete(h.sending, ha)
			h.mu.Unlock()
			ha.done(err)
		})
	}
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
