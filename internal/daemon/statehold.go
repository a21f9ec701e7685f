package daemon

import (
	"sync"

	"github.com/fenceline/fenceline/alerts/engine"
)

// stateHolds are the alerts of incidents opened or resolved (and the acks
// of their messages), waiting for a save of the alert state that holds the
// change (pipeline.StateKeeper): an alert never goes out for an incident a
// crash could make the engine forget, which would leave its firing without
// a resolution.
type stateHolds struct {
	engine *engine.Engine
	// kick wakes the state saver when something is held: a stateful
	// alert waits for the save, which should not wait for the next tick.
	kick chan struct{}

	mu   sync.Mutex
	held []func(error)
}

func newStateHolds(e *engine.Engine) *stateHolds {
	return &stateHolds{engine: e, kick: make(chan struct{}, 1)}
}

func (h *stateHolds) IncidentChanges() uint64 { return h.engine.IncidentChanges() }

func (h *stateHolds) Hold(done func(error)) {
	h.mu.Lock()
	h.held = append(h.held, done)
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

// take returns what is held so far, for a save whose snapshot is taken
// now, on the pipeline's goroutine (so it holds what they wait for).
func (h *stateHolds) take() []func(error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := h.held
	h.held = nil
	return held
}

// waiting is the number of evaluations held.
func (h *stateHolds) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// release lets what was taken for a save go, once it is durable or has
// failed: holding the alerts longer would not make them safer (the failure
// is counted and logged, and the next save is tried as usual).
func release(held []func(error)) {
	for _, done := range held {
		done(nil)
	}
}
