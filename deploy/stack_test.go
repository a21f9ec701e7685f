package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// waitTimeout bounds every wait on a real service in these tests.
const waitTimeout = 30 * time.Second

// repoPath is a path under the module root: the tests read the shipped files where they are.
func repoPath(t testing.TB, elems ...string) string {
	t.Helper()
	root, err := stack.ModuleRoot()
	require.NoError(t, err)
	return filepath.Join(append([]string{root}, elems...)...)
}

// daemonStack is a real mosquitto and InfluxDB 1.8 with a fenceline daemon between them, run
// in-process on the example rules (config/examples/rules.yaml) so that its metrics registry can
// be gathered directly.
type daemonStack struct {
	t      testing.TB
	mq     *stack.Mosquitto
	influx *stack.Influx
	reg    *prometheus.Registry
	pub    mqtt.Client
}

// startDaemon starts the services and the daemon. prepare, when not nil, runs against InfluxDB
// before the daemon starts (to apply deploy/influxdb/setup.influxql, say).
func startDaemon(t *testing.T, prepare func(*stack.Influx)) *daemonStack {
	t.Helper()
	s := &daemonStack{t: t, mq: testenv.Mosquitto(t), influx: testenv.Influx(t)}
	if prepare != nil {
		prepare(s.influx)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "fenceline.yaml")
	// evaluate_every is short so that time-driven rules act within a test; the rules are the
	// example deployment's, read where they are (their zone and list files resolve beside them).
	cfgText := fmt.Sprintf(`mqtt: {broker: %q, client_id: fenceline-deploy-test}
influx: {url: %q, bucket: %q, flush_interval: 20ms}
http: {listen: "127.0.0.1:0"}
storage: {dir: state}
rules_file: %q
alerts: {evaluate_every: 100ms}
`, s.mq.URL(), s.influx.URL(), s.influx.Bucket(), repoPath(t, "config", "examples", "rules.yaml"))
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfgText), 0o600))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)

	s.reg = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- daemon.Run(ctx, cfg, daemon.Options{Log: log, Registry: s.reg, Ready: ready}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "daemon Run")
		case <-time.After(waitTimeout):
			t.Error("daemon did not stop")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon stopped at start: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("daemon did not start")
	}
	s.waitFor("subscribed", func() bool { return s.sum("fenceline_mqtt_subscribed") == 1 })

	s.pub = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(s.mq.URL()).SetClientID("deploy-test-devices"))
	tok := s.pub.Connect()
	require.True(t, tok.WaitTimeout(waitTimeout), "connect publisher")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { s.pub.Disconnect(100) })
	return s
}

// publish sends one device message at QoS 1 and waits for the broker's PUBACK.
func (s *daemonStack) publish(topic, payload string) {
	s.t.Helper()
	tok := s.pub.Publish(topic, 1, false, payload)
	require.True(s.t, tok.WaitTimeout(waitTimeout), "publish %s", topic)
	require.NoError(s.t, tok.Error())
}

// sum adds up every series of a gauge or counter in the daemon's registry (0 when absent);
// for a histogram it is the sample count.
func (s *daemonStack) sum(name string) float64 {
	mfs, err := s.reg.Gather()
	require.NoError(s.t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func (s *daemonStack) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // the polling interval of a condition, not a synchronisation
	}
}

// testLog sends the daemon's log to the test log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
