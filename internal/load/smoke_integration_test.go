package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
	"github.com/fenceline/fenceline/internal/testenv"
)

// TestIntegrationLoadSmoke runs the load tool's core against a daemon in this
// process, between a real mosquitto and InfluxDB 1.8, with tiny profiles:
// every reading stored once, every rejection dead-lettered, every alert
// received, nothing lost or duplicated.
func TestIntegrationLoadSmoke(t *testing.T) {
	mq := testenv.Mosquitto(t)
	influx := testenv.Influx(t)
	spec := DefaultWorld()
	spec.Zones, spec.BigZones = 100, 1 // the engine's cost is not the point here
	w, err := GenerateWorld(spec)
	require.NoError(t, err)
	dir := t.TempDir()
	_, err = w.WriteRules(dir)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "fenceline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `mqtt: {broker: %q, client_id: fenceline-load-smoke}
influx: {url: %q, bucket: %q, flush_interval: 20ms}
http: {listen: "127.0.0.1:0"}
storage: {dir: state}
rules_file: rules.yaml
`, mq.URL(), influx.URL(), influx.Bucket()), 0o600))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := make(chan string, 1)
	dlog := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Log: dlog, Registry: prometheus.NewRegistry(), HTTPAddr: func(a string) { addr <- a }})
	}()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			require.NoError(t, <-done)
		}
	})
	var httpAddr string
	select {
	case httpAddr = <-addr:
	case err := <-done:
		stopped = true
		t.Fatalf("daemon stopped at start: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("daemon did not start")
	}
	waitReady(t, "http://"+httpAddr+"/readyz")

	tg := Target{
		Broker:          mq.URL(),
		Influx:          Influx{URL: influx.URL(), Database: influx.Database()},
		MetricsURL:      "http://" + httpAddr + "/metrics",
		Daemon:          Process{Name: "fenceline", PID: os.Getpid()},
		DaemonInProcess: true,
	}
	run := func(name string, tr Traffic) *Report {
		t.Helper()
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer rcancel()
		rep, err := Run(rctx, w, tg, Options{Name: name, Traffic: tr, Messages: 200, Inflight: 50, QoS: 1,
			SampleEvery: 20 * time.Millisecond, Settle: 20 * time.Second})
		require.NoError(t, err)
		var b strings.Builder
		rep.Print(&b)
		t.Log("\n" + b.String())
		return rep
	}

	t.Run("clean", func(t *testing.T) {
		rep := run("clean", Traffic{Mix: Mix{Detections: 1}, DetectionBatch: 20, SeqStart: 1})
		a := rep.Accounting
		require.Equal(t, int64(200), a.PublishedMessages)
		require.Equal(t, int64(4000), a.PublishedReadings)
		require.Equal(t, a.PublishedReadings, a.Stored, "published == stored")
		require.Zero(t, a.LostReadings)
		require.Zero(t, a.Duplicated)
		require.Zero(t, a.Unexpected)
		require.True(t, rep.EndToEnd.Complete)
		require.Zero(t, rep.DeadLettered)
		require.Positive(t, rep.StoredLatency.Count)
		require.Positive(t, rep.Daemon.CPUSeconds)
	})

	t.Run("mixed", func(t *testing.T) {
		// Seqs far from the first run's, so the daemon takes nothing for a
		// redelivery.
		rep := run("mixed", Traffic{Mix: Mix{Detections: 4, Passes: 2, Positions: 1, Statuses: 1}, DetectionBatch: 20, PassBatch: 5,
			ReadingTS: 0.5, InvalidShare: 0.1, AlertShare: 0.05, SeqStart: 1_000_000, Seed: 3})
		a := rep.Accounting
		require.Equal(t, int64(200), a.PublishedMessages)
		require.Positive(t, a.ExpectedRejections)
		require.Positive(t, a.ExpectedAlerts)
		require.Equal(t, a.ExpectedStored, a.Stored)
		require.Zero(t, a.LostReadings)
		require.Zero(t, a.Duplicated)
		require.Zero(t, a.Unexpected)
		require.Equal(t, float64(a.ExpectedRejections), rep.DeadLettered, "every rejection counted: %v", rep.DeadLetteredByReason)
		require.Equal(t, a.ExpectedAlerts, rep.Alerts.Received)
		require.Zero(t, rep.Alerts.Missing)
		require.Zero(t, rep.Alerts.Duplicates)
		require.Zero(t, rep.Alerts.Other)
		require.Equal(t, float64(rep.Alerts.Received), rep.Alerts.Latency.Count)
		for _, m := range ReadingMeasurements {
			require.Positive(t, a.ByMeasurement[m].Stored, m)
		}
	})
}

// waitReady polls /readyz until it answers 200 (subscribed, InfluxDB
// reachable).
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready: %v", err)
		}
		<-tick.C // the polling interval of a condition, not a synchronisation
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
