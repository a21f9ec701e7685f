package daemon

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/httpapi"
	"github.com/fenceline/fenceline/internal/testenv"
)

// A reload waiting for its turn behind another (one asked over HTTP that
// waits for a busy pipeline) gives up when its context ends: a SIGTERM
// arriving then reaches the run loop, whose SIGHUP reload waits with the
// shutdown's context, and a shutdown ends a reload asked over HTTP. It is
// reported as not applied, and nothing is read or swapped.
func TestReloadWaitingForItsTurnGivesUp(t *testing.T) {
	var logs testenv.LogBuffer
	d := &daemon{cfg: &config.Config{RulesFile: "rules.yaml"}, log: logs.Logger(), reloading: make(chan struct{}, 1)}
	d.stopping, d.stopNow = context.WithCancel(context.Background())
	d.reloading <- struct{}{} // the reload before it holds the turn
	for _, tc := range []struct {
		name string
		ask  func() (string, error)
		stop func()
		why  string
	}{
		{"over HTTP, the client hangs up", func() (string, error) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return d.reloadAsked(ctx)
		}, func() {}, "its request ended"},
		{"over HTTP, then a shutdown", func() (string, error) { return d.reloadAsked(context.Background()) }, d.stopNow, "fenceline is shutting down"},
		{"SIGHUP, then a shutdown", func() (string, error) { return d.reload(d.stopping) }, d.stopNow, "fenceline is shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errC := make(chan error, 1)
			go func() {
				_, err := tc.ask()
				errC <- err
			}()
			tc.stop()
			err := <-errC
			require.ErrorIs(t, err, httpapi.ErrReloadNotApplied)
			assert.Contains(t, err.Error(), tc.why)
			assert.Contains(t, logs.String(), "reload not applied: "+tc.why+"; the rules in force are unchanged")
		})
	}
	assert.Len(t, d.reloading, 1, "the turn is still the first reload's")
}
