package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/engine"
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
		{"SIGHUP, then a shutdown", func() (string, error) { return d.reload(d.stopping, nil) }, d.stopNow, "fenceline is shutting down"},
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

// A reload asked over HTTP that is still reading the rules file (a large
// watchlist takes seconds) when a shutdown begins is answered at once, not
// applied, and logged once; the HTTP server's shutdown waited for that
// answer. The reading, left to end on its own, applies nothing.
func TestReloadStillReadingAtShutdown(t *testing.T) {
	var logs testenv.LogBuffer
	d := &daemon{cfg: &config.Config{RulesFile: "rules.yaml"}, log: logs.Logger(), reloading: make(chan struct{}, 1),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ok"}), reloadsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "failed"})}
	d.stopping, d.stopNow = context.WithCancel(context.Background())
	reading, release := make(chan struct{}), make(chan struct{})
	load := reloadRules
	t.Cleanup(func() { reloadRules = load })
	reloadRules = func(*config.Config) (*engine.Ruleset, *config.Rules, error) {
		close(reading)
		<-release
		return nil, nil, errors.New("read, too late")
	}
	errC := make(chan error, 1)
	go func() {
		_, err := d.reloadAsked(context.Background())
		errC <- err
	}()
	<-reading
	d.stopNow() // SIGTERM
	err := <-errC
	require.ErrorIs(t, err, httpapi.ErrReloadNotApplied)
	assert.Equal(t, "reload not applied: fenceline is shutting down", err.Error())
	close(release)
	require.Eventually(t, func() bool { return len(d.reloading) == 0 }, waitTimeout, time.Millisecond, "the reading ends")
	assert.Equal(t, 1, strings.Count(logs.String(), "reload not applied"), "logged once")
}
