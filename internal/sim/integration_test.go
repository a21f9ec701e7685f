package sim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/testenv"
)

// integrationTimeout bounds each wait of the integration test.
const integrationTimeout = 60 * time.Second

// silentUnitExpectEvery replaces the battery-failure unit's expect_every in
// the test's copy of the rules. Silence runs on the daemon's processing
// time, and the whole night passes in seconds here: with the example's 2m
// the unit's silence would be noticed long after the test. 3s is far above
// the gaps between its messages while the night is replayed (some 15 ms a
// simulated minute) and far below the test's budget; every other device
// keeps its expect_every, which the test's runtime never reaches.
const silentUnitExpectEvery = "3s"

// TestIntegrationScenarioNight replays a winter night (21:00 to 09:00) of
// the example scenario as fast as the broker acknowledges, through a real
// mosquitto and InfluxDB and the daemon in-process with the example rules,
// and checks the alerts that come out on border/+/alerts/+: every scripted
// incident fired each rule it must, and nothing else fired. The exceptions
// are explicit in the incidents themselves (Incident.MayFire; empty for
// this night) and in attribute: alerts about an incident's subjects under
// its rules, repeats and resolutions included.
func TestIntegrationScenarioNight(t *testing.T) {
	began := time.Now()
	sc := loadExample(t)
	mq := testenv.Mosquitto(t)
	influx := testenv.Influx(t)
	dir := t.TempDir()

	// The example deployment, with the failing unit's silence made
	// noticeable within the test (see silentUnitExpectEvery).
	require.NoError(t, os.CopyFS(filepath.Join(dir, "examples"), os.DirFS(examples)))
	rulesPath := filepath.Join(dir, "examples", "rules.yaml")
	rules, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	line := regexp.MustCompile(`(?m)^(\s*- \{id: F-MDL-02,.*expect_every: )2m\}$`)
	require.True(t, line.Match(rules), "F-MDL-02 with expect_every 2m in the example rules")
	rules = line.ReplaceAll(rules, []byte("${1}"+silentUnitExpectEvery+"}"))
	require.NoError(t, os.WriteFile(rulesPath, rules, 0o600))
	cfgPath := filepath.Join(dir, "fenceline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `mqtt: {broker: %q, client_id: fenceline-scenario}
influx: {url: %q, bucket: %q, flush_interval: 20ms}
http: {listen: "127.0.0.1:0"}
storage: {dir: state}
rules_file: examples/rules.yaml
alerts: {evaluate_every: 100ms}
`, mq.URL(), influx.URL(), influx.Bucket()), 0o600))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- daemon.Run(ctx, cfg, daemon.Options{Log: log, Registry: reg}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "daemon Run")
		case <-time.After(integrationTimeout):
			t.Error("daemon did not stop")
		}
	})
	m := metrics{t: t, reg: reg}
	waitUntil(t, "the daemon subscribed", func() bool { return m.value("fenceline_mqtt_subscribed", nil) == 1 })

	// The alerts, as a border unit receives them.
	var mu sync.Mutex
	var alerts []model.Alert
	seen := map[string]bool{} // id+state: QoS 1 may deliver one twice
	watcher, err := Connect(ctx, mq.URL(), "scenario-alerts", integrationTimeout, AlertWatch(AlertTopics, func(a model.Alert) {
		mu.Lock()
		defer mu.Unlock()
		if key := a.ID + "/" + a.State; !seen[key] {
			seen[key] = true
			alerts = append(alerts, a)
		}
	}, func(topic string, err error) { t.Errorf("not an alert on %s: %v", topic, err) }))
	require.NoError(t, err)
	t.Cleanup(func() { watcher.Disconnect(100) })
	received := func() []model.Alert {
		mu.Lock()
		defer mu.Unlock()
		return append([]model.Alert(nil), alerts...)
	}

	s := newRun(t, sc, sc.Seed, nightStart, 12*time.Hour)
	pub, err := Connect(ctx, mq.URL(), "scenario-sim", integrationTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { pub.Disconnect(100) })
	published, err := Publish(ctx, pub, s, PublishOptions{Speed: SpeedMax, Window: 256})
	require.NoError(t, err)
	t.Logf("published %d messages in %s", published, time.Since(began).Round(time.Millisecond))

	// Done when the daemon acknowledged every message (its alerts are in
	// the outbox then), the outbox delivered every alert it accepted, we
	// received them all, and the failed unit's silence (processing time,
	// after the last message) is among them.
	waitUntil(t, "every message acknowledged, every alert delivered and received, every incident's rules fired", func() bool {
		acked := m.value("fenceline_ingest_ack_latency_seconds", nil)
		accepted := m.value("fenceline_alerts_accepted_total", nil)
		delivered := m.value("fenceline_alerts_delivered_total", map[string]string{"sink": "mqtt"})
		got := received()
		return acked >= float64(published) && delivered == accepted && float64(len(got)) == accepted &&
			len(missingRules(sc, s.Incidents(), got)) == 0
	})
	got := received()
	for _, a := range got {
		t.Logf("%s %s", FormatAlert(a, shanghai), a.Subject.Value)
	}
	require.Empty(t, alertProblems(sc, s.Incidents(), got))
	require.Zero(t, m.value("fenceline_ingest_rejections_total", nil), "every simulated message is valid")
	// Under this burst the broker hands some messages over out of order: the
	// daemon counts a gap, then the late ones. Every seq missing at a gap
	// must have arrived later (nothing lost), none twice.
	require.Equal(t, m.value("fenceline_ingest_sequence_missing_messages_total", nil),
		m.value("fenceline_ingest_sequence_out_of_order_total", nil), "seqs missing at gaps = seqs arriving late")
	require.Zero(t, m.value("fenceline_ingest_sequence_duplicates_total", nil))

	qctx, qcancel := context.WithTimeout(context.Background(), integrationTimeout)
	defer qcancel()
	for _, meas := range []string{"phone_detection", "vehicle_pass", "patrol_position", "device_status", "alert"} {
		n, err := influx.Count(qctx, meas)
		require.NoError(t, err)
		require.Positive(t, n, meas)
	}
	t.Logf("%d alerts for %d incidents; %s in all", len(got), len(s.Incidents()), time.Since(began).Round(time.Millisecond))
}

// waitUntil polls cond until it holds, failing the test after
// integrationTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(integrationTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond) // the polling interval of a condition, not a synchronisation
	}
}

// metrics reads the in-process daemon's Prometheus registry.
type metrics struct {
	t   *testing.T
	reg *prometheus.Registry
}

// value sums the samples of name whose labels include labels: a counter's
// or gauge's value, a histogram's count.
func (m metrics) value(name string, labels map[string]string) float64 {
	mfs, err := m.reg.Gather()
	require.NoError(m.t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if matches(s, labels) {
				sum += s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func matches(s *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, lp := range s.GetLabel() {
			found = found || (lp.GetName() == k && lp.GetValue() == v)
		}
		if !found {
			return false
		}
	}
	return true
}

// testLog sends the daemon's log to the test's.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A watcher stays subscribed across a reconnection: its session is clean,
// so a broker that restarted (without persistence) knows nothing of it, and
// a watcher subscribed once would print nothing more.
func TestIntegrationAlertWatchSurvivesABrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), integrationTimeout)
	defer cancel()
	mq := testenv.Mosquitto(t)
	got := make(chan model.Alert, 10)
	watcher, err := Connect(ctx, mq.URL(), "watch-restart", integrationTimeout,
		AlertWatch(AlertTopics, func(a model.Alert) { got <- a }, func(topic string, err error) { t.Errorf("not an alert on %s: %v", topic, err) }))
	require.NoError(t, err)
	defer watcher.Disconnect(100)
	pub, err := Connect(ctx, mq.URL(), "watch-restart-pub", integrationTimeout)
	require.NoError(t, err)
	defer pub.Disconnect(100)
	alert := func(id string) {
		tok := pub.Publish("border/mdl/alerts/r1", 1, false, []byte(`{"id":"`+id+`","rule":"r1","state":"firing","site":"mdl"}`))
		require.True(t, tok.WaitTimeout(integrationTimeout))
		require.NoError(t, tok.Error())
	}
	next := func() model.Alert {
		select {
		case a := <-got:
			return a
		case <-ctx.Done():
			t.Fatal("no alert")
			return model.Alert{}
		}
	}
	alert("a1")
	require.Equal(t, "a1", next().ID)

	require.NoError(t, mq.Restart(ctx))
	waitUntil(t, "both reconnected", func() bool { return watcher.IsConnectionOpen() && pub.IsConnectionOpen() })
	// The resubscription follows the reconnection: publish until one
	// arrives (each publish is one the watcher may have missed while it
	// subscribed again).
	for i := 0; ; i++ {
		alert(fmt.Sprintf("a2-%d", i))
		select {
		case a := <-got:
			require.Contains(t, a.ID, "a2-")
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the watcher did not subscribe again after the broker restarted")
		}
	}
}
