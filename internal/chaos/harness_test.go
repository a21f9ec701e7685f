package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/load"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// profileEnv selects the long profile: FENCELINE_CHAOS=long (make chaos).
const profileEnv = "FENCELINE_CHAOS"

func longProfile() bool { return os.Getenv(profileEnv) == "long" }

// binOnce builds the daemon once per test binary.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func daemonBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "fenceline-chaos-bin")
		if binErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath, binErr = BuildDaemon(ctx, binDir)
	})
	require.NoError(t, binErr)
	return binPath
}

// env is a real mosquitto and InfluxDB with fenceline between them as a
// process, a publisher and an alert subscriber.
type env struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	mq     *stack.Mosquitto
	influx *stack.Influx
	daemon *Daemon
	query  *load.Influx
	pub    *Publisher
	sub    *AlertSubscriber
	plan   *Plan
}

// newEnv starts everything; persistence says whether the broker keeps its
// sessions and queues across a restart.
func newEnv(t *testing.T, persistence bool, extraConfig string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, dir: t.TempDir(), plan: NewPlan()}
	e.mq = testenv.Mosquitto(t, stack.MosquittoOptions{Persistence: persistence})
	e.influx = testenv.Influx(t)
	e.query = &load.Influx{URL: e.influx.URL(), Database: e.influx.Database()}

	rules, err := os.ReadFile(filepath.Join("testdata", "rules.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "rules.yaml"), rules, 0o600))
	port, err := stack.FreePort()
	require.NoError(t, err)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`mqtt: {broker: %q, client_id: fenceline-chaos, max_reconnect_interval: 500ms}
influx: {url: %q, bucket: %q, flush_interval: 20ms, timeout: 2s}
http: {listen: %q}
storage: {dir: state}
rules_file: rules.yaml
alerts: {evaluate_every: 200ms}
ingest: {drain_timeout: 20s}
%s`, e.mq.URL(), e.influx.URL(), e.influx.Bucket(), httpAddr, extraConfig)
	cfgPath := filepath.Join(e.dir, "fenceline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	e.daemon = NewDaemon(daemonBinary(t), cfgPath, filepath.Join(e.dir, "fenceline.log"), httpAddr)
	// Before the daemon starts: alerts must find the subscription there.
	e.sub, err = SubscribeAlerts(e.within(30*time.Second), e.mq.URL(), "chaos-alerts")
	require.NoError(t, err)
	t.Cleanup(e.sub.Close)
	require.NoError(t, e.daemon.Start(e.within(time.Minute)))
	t.Cleanup(func() {
		e.daemon.Kill() // after a failure; a passing test stopped it already
		if t.Failed() {
			t.Logf("fenceline log (tail):\n%s", stack.LogTail(e.daemon.LogPath(), 60))
		}
	})
	e.pub, err = NewPublisher(e.within(30*time.Second), e.mq.URL(), "chaos-publisher")
	require.NoError(t, err)
	t.Cleanup(e.pub.Close)
	return e
}

// within returns a context that ends after d (or with the test).
func (e *env) within(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(e.ctx, d)
	e.t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after timeout.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition
	}
}

// waitPublished waits until n more messages were published.
func (e *env) waitPublished(n int) {
	e.t.Helper()
	target := e.pub.Published() + int64(n)
	e.waitFor(fmt.Sprintf("%d more messages published", n), 2*time.Minute, func() bool { return e.pub.Published() >= target })
}

// metric returns the sum of a metric's series, or -1 when the daemon does
// not answer.
func (e *env) metric(name string) float64 {
	m, err := e.daemon.Metrics(e.within(5 * time.Second))
	if err != nil {
		return -1
	}
	return m.Sum(name, nil)
}

func (e *env) waitMetric(what, name string, timeout time.Duration, cond func(float64) bool) {
	e.t.Helper()
	e.waitFor(what, timeout, func() bool {
		v := e.metric(name)
		return v >= 0 && cond(v)
	})
}

// fault is one phase of a run: what it does to the services while the
// publisher keeps publishing.
type fault struct {
	name string
	run  func(e *env)
}

// runPhases publishes at rate while running the faults one after the other,
// then waits until every outcome is observable, and returns the accounting.
func (e *env) runPhases(rate float64, faults []fault, settle time.Duration) ([]Row, *Observed) {
	t := e.t
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() { pubErr <- e.pub.Steady(e.ctx, e.plan, rate, stop) }()
	names := make([]string, len(faults))
	for i, f := range faults {
		names[i] = f.name
		e.plan.SetPhase(i)
		start := time.Now()
		f.run(e)
		t.Logf("phase %d %q: %v, %d messages published so far", i, f.name, time.Since(start).Round(time.Millisecond), e.pub.Published())
	}
	close(stop)
	require.NoError(t, <-pubErr)

	msgs := e.plan.Messages()
	expected := ExpectedKeys(msgs)
	var o *Observed
	var rows []Row
	deadline := time.Now().Add(settle)
	for {
		var err error
		o, err = Observe(e.within(time.Minute), e.query, filepath.Join(e.dir, "state", "deadletter"), e.sub, expected)
		require.NoError(t, err)
		rows = Account(msgs, names, o)
		if rows[len(rows)-1].Clean() || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond) // polling interval of a condition
	}
	return rows, o
}

// waitSettled waits until every outcome of the messages of phase is
// observable: stored, dead-lettered, alerted.
func (e *env) waitSettled(phase int, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("phase %d settled", phase), timeout, func() bool {
		var msgs []*Message
		for _, m := range e.plan.Messages() {
			if m.Phase == phase {
				c := *m
				c.Phase = 0
				msgs = append(msgs, &c)
			}
		}
		o, err := Observe(e.within(time.Minute), e.query, filepath.Join(e.dir, "state", "deadletter"), e.sub, ExpectedKeys(msgs))
		require.NoError(e.t, err)
		return Account(msgs, []string{"phase"}, o)[0].Clean()
	})
}

// report logs the table and, when $FENCELINE_CHAOS_REPORT names a file,
// appends it there (make chaos collects the tables for the issue).
func report(t *testing.T, title string, rows []Row, extra ...string) {
	t.Helper()
	text := fmt.Sprintf("%s\n%s%s", title, Table(rows), strings.Join(extra, "\n"))
	t.Log("\n" + text)
	if p := reportPath(); p != "" {
		appendReport(p, text)
	}
}

func reportPath() string { return os.Getenv("FENCELINE_CHAOS_REPORT") }

func appendReport(path, text string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\n\n", text)
}
