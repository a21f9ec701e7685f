package groupcommit

import (
	"fmt"
	"sync"
)

// Failing is the failure of the writes a store keeps retrying, for its
// readiness check: set while they fail, cleared when one goes through.
// Safe for concurrent use.
type Failing struct {
	What string // what cannot be done, for the error: "dead letters cannot be written"

	mu  sync.Mutex
	err error
}

// Set records the current failure (nil: none).
func (f *Failing) Set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Err returns why the writes fail right now, or nil.
func (f *Failing) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("%s: %w", f.What, f.err)
	}
	return nil
}
