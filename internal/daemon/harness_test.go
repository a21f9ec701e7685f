package daemon

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

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/deadletter"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// waitTimeout bounds every wait of the integration tests.
const waitTimeout = 30 * time.Second

// env is a real mosquitto and InfluxDB with a fenceline daemon between them.
type env struct {
	t        testing.TB
	mq       *stack.Mosquitto
	influx   *stack.Influx
	dir      string
	cfgPath  string
	cfg      *config.Config
	reg      *prometheus.Registry
	httpAddr string
	pub      mqtt.Client
	cancel   context.CancelFunc
	done     chan error
	// saveEvery is the daemon's StateSaveEvery from the next start.
	saveEvery time.Duration
}

// newEnv starts the services and the daemon with the rules in rulesFile
// (under testdata/) and extra YAML appended to the daemon config.
func newEnv(t *testing.T, rulesFile, extra string) *env {
	t.Helper()
	return newEnvInflux(t, rulesFile, "", extra)
}

// newEnvInflux is newEnv with more keys in the influx section
// (influxKeys: ", key: value, …").
func newEnvInflux(t *testing.T, rulesFile, influxKeys, extra string) *env {
	t.Helper()
	e := &env{t: t, mq: testenv.Mosquitto(t, stack.MosquittoOptions{Persistence: true}), influx: testenv.Influx(t), dir: t.TempDir()}
	rules, err := os.ReadFile(filepath.Join("testdata", rulesFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "rules.yaml"), rules, 0o600))
	e.cfgPath = filepath.Join(e.dir, "fenceline.yaml")
	cfg := fmt.Sprintf(`mqtt: {broker: %q, client_id: fenceline-test}
influx: {url: %q, bucket: %q, flush_interval: 20ms%s}
http: {listen: "127.0.0.1:0"}
storage: {dir: state}
rules_file: rules.yaml
alerts: {evaluate_every: 100ms}
%s`, e.mq.URL(), e.influx.URL(), e.influx.Bucket(), influxKeys, extra)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	e.pub = connect(t, e.mq.URL(), "test-publisher")
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start runs the daemon (again) on the same config and state, with a fresh
// metrics registry, and waits until it is subscribed.
func (e *env) start() {
	t := e.t
	t.Helper()
	cfg, err := config.Load(e.cfgPath)
	require.NoError(t, err)
	e.cfg = cfg
	e.reg = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	addr := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		e.done <- Run(ctx, cfg, Options{Log: log, Registry: e.reg, HTTPAddr: func(a string) { addr <- a }, StateSaveEvery: e.saveEvery})
	}()
	select {
	case e.httpAddr = <-addr:
	case err := <-e.done:
		t.Fatalf("daemon stopped at start: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("daemon did not start")
	}
	e.waitFor("subscribed", func() bool { return e.gauge("fenceline_mqtt_subscribed") == 1 })
}

// nextSave waits for the daemon's next periodic save of the alert state
// (after what) and returns the file's path and content: the file a SIGKILL
// then would leave, to write back after a clean stop.
func (e *env) nextSave(after string) (string, []byte) {
	e.t.Helper()
	path := filepath.Join(e.dir, "state", "alert-state.json")
	require.NoError(e.t, os.Remove(path))
	e.waitFor("a periodic save "+after, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	data, err := os.ReadFile(path)
	require.NoError(e.t, err)
	return path, data
}

// startRefused runs the daemon on the same config and state, and returns the
// error it stops with at start; it fails the test if the daemon starts.
func (e *env) startRefused() error {
	t := e.t
	t.Helper()
	cfg, err := config.Load(e.cfgPath)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	started := make(chan struct{})
	err = Run(ctx, cfg, Options{Log: log, Registry: prometheus.NewRegistry(), HTTPAddr: func(string) { close(started) }})
	select {
	case <-started:
		t.Fatal("the daemon started")
	default:
	}
	require.Error(t, err)
	return err
}

// stop stops the daemon (if running) and returns what Run returned.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		require.NoError(e.t, err, "daemon Run")
	case <-time.After(waitTimeout):
		e.t.Fatal("daemon did not stop")
	}
}

func connect(t testing.TB, broker, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetAutoReconnect(true))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitTimeout), "connect %s", id)
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publish sends one message at QoS 1 and waits for the broker's PUBACK.
func (e *env) publish(topic string, payload string) {
	e.t.Helper()
	tok := e.pub.Publish(topic, 1, false, payload)
	require.True(e.t, tok.WaitTimeout(waitTimeout), "publish %s", topic)
	require.NoError(e.t, tok.Error())
}

// acked is how many messages the daemon acknowledged since it started.
func (e *env) acked() int {
	return int(e.metric("fenceline_ingest_ack_latency_seconds", nil).GetHistogram().GetSampleCount())
}

// waitAcked waits until n messages were acked: their readings are stored,
// their rejections dead-lettered and their alerts in the outbox.
func (e *env) waitAcked(n int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d messages acked", n), func() bool { return e.acked() >= n })
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition, not a synchronisation
	}
}

// metric returns the sample of name whose labels include labels (nil when
// there is none).
func (e *env) metric(name string, labels map[string]string) *dto.Metric {
	mfs, err := e.reg.Gather()
	require.NoError(e.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func (e *env) counter(name string, labels map[string]string) float64 {
	return e.metric(name, labels).GetCounter().GetValue()
}

func (e *env) gauge(name string) float64 {
	return e.metric(name, nil).GetGauge().GetValue()
}

// gaugeSum adds up every series of a gauge (e.g. pending alerts of all sinks).
func (e *env) gaugeSum(name string) float64 {
	mfs, err := e.reg.Gather()
	require.NoError(e.t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// rows runs an InfluxQL query and returns its rows.
func (e *env) rows(q string) []map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	series, err := e.influx.Query(ctx, q)
	require.NoError(e.t, err, q)
	var out []map[string]any
	for _, s := range series {
		out = append(out, s.Rows()...)
	}
	return out
}

func (e *env) count(measurement string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := e.influx.Count(ctx, measurement)
	require.NoError(e.t, err)
	return n
}

// deadLetters reads the daemon's dead-letter store.
func (e *env) deadLetters() []deadletter.Record {
	e.t.Helper()
	var recs []deadletter.Record
	err := deadletter.Read(filepath.Join(e.cfg.Storage.Dir, "deadletter"), deadletter.Filter{}, func(r deadletter.Record) error {
		recs = append(recs, r)
		return nil
	})
	require.NoError(e.t, err)
	return recs
}

func (e *env) get(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get("http://" + e.httpAddr + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

func (e *env) post(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Post("http://"+e.httpAddr+path, "text/plain", nil)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

// testWriter sends the daemon's log to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
