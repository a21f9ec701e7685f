package daemon

import (
	"sync"

	"github.com/fenceline/fenceline/alerts/engine"
)

// stateHolds are the acks of messages that opened or resolved an incident,
// waiting for a save of the alert state that holds it (pipeline.StateKeeper).
// Until then a crash has the broker redeliver such a message, and the
// incident is opened (or resolved) again under the same id; acked at once,
// a crash before the save would leave a firing alert nothing resolves.
type stateHolds struct {
	engine *engine.Engine

	mu   sync.Mutex
	held []func(error)
}

func (h *stateHolds) IncidentChanges() uint64 { return h.engine.IncidentChanges() }

func (h *stateHolds) Hold(done func(error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, done)
}

// take returns the acks held so far, for a save whose snapshot is taken
// now, on the pipeline's goroutine (so it holds what they wait for).
func (h *stateHolds) take() []func(error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := h.held
	h.held = nil
	return held
}

// waiting is the number of acks held.
func (h *stateHolds) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// release lets the acks taken for a save go, once it is durable or has
// failed: a failed save leaves them no worse off than an ack without it
// (the failure is counted and logged).
func release(held []func(error)) {
	for _, done := range held {
		done(nil)
	}
}
