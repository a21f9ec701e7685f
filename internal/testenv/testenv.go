// Package testenv starts the real services for integration tests: a mosquitto broker and an
// InfluxDB 1.8 server per call, in the test's temp dir, stopped when the test ends.
//
// A missing binary fails the test with a hint to run `make deps`; it never skips, because a
// skipped integration test is a passing CI run that tested nothing.
package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fenceline/fenceline/internal/stack"
)

// startTimeout bounds a service start: influxd answers in 0.1 s on an idle machine, but a
// loaded CI machine running many test binaries at once can stretch that a lot.
const startTimeout = 2 * time.Minute

// Mosquitto starts a broker for t. opts is optional (at most one); its Dir defaults to a fresh
// t.TempDir(). The broker is stopped when the test ends, and a broker that crashed during the
// test fails it.
func Mosquitto(t testing.TB, opts ...stack.MosquittoOptions) *stack.Mosquitto {
	t.Helper()
	var o stack.MosquittoOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatalf("testenv.Mosquitto: at most one MosquittoOptions, got %d", len(opts))
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	m, err := stack.StartMosquitto(ctx, o)
	if errors.Is(err, stack.ErrBinaryNotFound) {
		t.Fatalf("mosquitto not found: run `make deps` (%v)", err)
	}
	if err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	// Registered after TempDir's cleanup, so it runs first: the broker is gone before its
	// folder is removed.
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
		if t.Failed() {
			t.Logf("mosquitto log %s (tail):\n%s", m.LogPath(), stack.LogTail(m.LogPath(), 40))
		}
	})
	return m
}

// Influx starts an InfluxDB server for t with database "border" (or opts' Database). opts is
// optional (at most one); its Dir defaults to a fresh t.TempDir(). The server is stopped when
// the test ends.
func Influx(t testing.TB, opts ...stack.InfluxOptions) *stack.Influx {
	t.Helper()
	var o stack.InfluxOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatalf("testenv.Influx: at most one InfluxOptions, got %d", len(opts))
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	in, err := stack.StartInflux(ctx, o)
	if errors.Is(err, stack.ErrBinaryNotFound) {
		t.Fatalf("influxd not found: run `make deps` (it builds tools/bin/influxd), or set FENCELINE_INFLUXD (%v)", err)
	}
	if err != nil {
		t.Fatalf("start influxd: %v", err)
	}
	t.Cleanup(func() {
		if err := in.Stop(); err != nil {
			t.Errorf("stop influxd: %v", err)
		}
		if t.Failed() {
			t.Logf("influxd log %s (tail):\n%s", in.LogPath(), stack.LogTail(in.LogPath(), 40))
		}
	})
	return in
}
