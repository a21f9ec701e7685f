package groupcommit

import (
	"fmt"
	"sync"
	"time"
)

// Failing is a streak of failed writes that a store keeps retrying: how
// long to pause before the next attempt (Min, doubling up to Max), whether
// a failure is the streak's first (the one to log), and the error for the
// store's readiness check until a write goes through. Safe for concurrent
// use.
type Failing struct {
	What     string        // what cannot be done, for Err: "dead letters cannot be written"
	Min, Max time.Duration // bounds of the pause between attempts

	mu       sync.Mutex
	err      error
	failures int
}

// Failed records a failed attempt: first is true for the first of a
// streak, wait is the pause before the next attempt.
func (f *Failing) Failed(err error) (first bool, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	f.failures++
	return f.failures == 1, min(f.Min<<min(f.failures-1, 16), f.Max)
}

// Recovered ends the streak after a write went through, and returns how
// many attempts it had failed (0: there was none).
func (f *Failing) Recovered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.failures
	f.err, f.failures = nil, 0
	return n
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
