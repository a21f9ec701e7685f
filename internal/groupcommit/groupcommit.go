// Package groupcommit is the run-and-close protocol shared by fenceline's
// durable stores (dead letters, spool): Append queues a record and wakes
// the committer; the committer (Run, or Close when Run never started)
// writes everything queued since its last round with one write and one
// fsync, then calls the records back. What each store writes, and how it
// closes its files, stays the store's.
package groupcommit

import (
	"context"
	"sync"
)

// Committer is the protocol's state. Its flags are guarded by the store's
// own mutex (given to New), which the store also holds when it reads Closed
// in Append: a record is either queued before closing or refused after.
type Committer struct {
	mu      sync.Locker
	running bool
	closed  bool
	wake    chan struct{} // one slot: there is work
	stopped chan struct{} // closed when Run returns
	runErr  error         // Run's closing error, for Close
}

// New returns a committer whose flags mu guards.
func New(mu sync.Locker) *Committer {
	return &Committer{mu: mu, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// Closed reports whether the store is closed (Close called, or Run's
// context ended). Call it with the store's mutex held.
func (c *Committer) Closed() bool { return c.closed }

// Wake tells the committer there is work; it never blocks.
func (c *Committer) Wake() {
	select {
	case c.wake <- struct{}{}:
	default: // already signalled
	}
}

// Run calls commit on every Wake until ctx ends or Close is called, then
// commits what was queued before closing, calls finish (close the files)
// and returns its error. errTwice is returned, at once, when Run was called
// before or after Close.
func (c *Committer) Run(ctx context.Context, errTwice error, commit func(), finish func() error) error {
	c.mu.Lock()
	if c.running || c.closed {
		c.mu.Unlock()
		return errTwice
	}
	c.running = true
	c.mu.Unlock()
	defer close(c.stopped)
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
		case <-c.wake:
		}
		commit()
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			commit() // what was queued before closed was set
			err := finish()
			c.mu.Lock()
			c.runErr = err
			c.mu.Unlock()
			return err
		}
	}
}

// Close stops accepting records (onClose runs with the store's mutex held,
// to wake what waits on the store), then waits until the queued ones are
// written: by Run if it runs (its closing error is returned), else here by
// commit and finish. A second Close returns the same (nil without Run).
func (c *Committer) Close(onClose func(), commit func(), finish func() error) error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	running := c.running
	if onClose != nil {
		onClose()
	}
	c.mu.Unlock()
	if running {
		c.Wake()
		<-c.stopped
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.runErr
	}
	if already {
		return nil
	}
	commit()
	return finish()
}
