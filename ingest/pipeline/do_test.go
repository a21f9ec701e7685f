package pipeline

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/mqttsource"
)

// Do's error says f did not run, which is how a reload tells the operator
// whether the new rules are in force: a ctx that ends once the pipeline has
// taken f (the client hung up, a shutdown began) does not make a swap that
// runs to its end a refusal, and a pipeline that has stopped answers at
// once rather than leave the reload waiting for it.
func TestDoErrorMeansFDidNotRun(t *testing.T) {
	t.Run("ctx ends while f runs", func(t *testing.T) {
		f := newFixture(t)
		runCtx, stopRun := context.WithCancel(context.Background())
		defer stopRun()
		go func() { _ = f.p.Run(runCtx, make(chan *mqttsource.Message)) }()
		ctx, cancel := context.WithCancel(context.Background())
		started, release := make(chan struct{}), make(chan struct{})
		ran := false
		errC := make(chan error, 1)
		go func() {
			errC <- f.p.Do(ctx, func() {
				close(started)
				<-release
				ran = true
			})
		}()
		<-started
		cancel()
		close(release)
		require.NoError(t, <-errC, "f ran: the new rules are in force")
		assert.True(t, ran, "Do returned after f")
	})
	t.Run("ctx ended before", func(t *testing.T) {
		f := newFixture(t)
		runCtx, stopRun := context.WithCancel(context.Background())
		defer stopRun()
		go func() { _ = f.p.Run(runCtx, make(chan *mqttsource.Message)) }()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ran := false
		for range 100 { // the pipeline is ready to take it: a select would, at random
			require.ErrorIs(t, f.p.Do(ctx, func() { ran = true }), context.Canceled)
		}
		assert.False(t, ran)
	})
	t.Run("pipeline stopped", func(t *testing.T) {
		f := newFixture(t)
		runCtx, stopRun := context.WithCancel(context.Background())
		stopRun()
		require.NoError(t, f.p.Run(runCtx, make(chan *mqttsource.Message)))
		ran := false
		require.ErrorIs(t, f.p.Do(context.Background(), func() { ran = true }), ErrStopped, "answered at once")
		assert.False(t, ran)
	})
}
