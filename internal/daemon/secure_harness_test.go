package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// secureOpts describes a daemon set up by newSecureEnv: unlike newEnv, the
// test writes the mqtt and http sections itself (TLS broker, non-loopback
// listener) and can keep the daemon's log.
type secureOpts struct {
	rules     string                 // under testdata/
	mosquitto stack.MosquittoOptions // e.g. a TLS listener in ExtraConfig
	// mqtt and http are the YAML flow mappings of those sections; "" takes
	// the plain listener and 127.0.0.1:0.
	mqtt, http string
	extra      string            // more YAML (other sections)
	files      map[string]string // written into the config's folder first
	// notSubscribed: do not wait for the subscription (it is not expected).
	notSubscribed bool
}

// logBuf keeps the daemon's log (and passes it on to the test log).
type logBuf struct {
	t  testing.TB
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSecureEnv starts mosquitto (with o.mosquitto), InfluxDB and the daemon.
// The returned log holds everything the daemon logged at debug and above.
func newSecureEnv(t *testing.T, o secureOpts) (*env, *logBuf) {
	t.Helper()
	o.mosquitto.Persistence = true
	e := &env{t: t, mq: testenv.Mosquitto(t, o.mosquitto), influx: testenv.Influx(t), dir: t.TempDir()}
	rules, err := os.ReadFile(filepath.Join("testdata", o.rules))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "rules.yaml"), rules, 0o600))
	for name, content := range o.files {
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600))
	}
	if o.mqtt == "" {
		o.mqtt = fmt.Sprintf(`{broker: %q, client_id: fenceline-test}`, e.mq.URL())
	}
	if o.http == "" {
		o.http = `{listen: "127.0.0.1:0"}`
	}
	e.cfgPath = filepath.Join(e.dir, "fenceline.yaml")
	cfg := fmt.Sprintf(`mqtt: %s
influx: {url: %q, bucket: %q, flush_interval: 20ms}
http: %s
storage: {dir: state}
rules_file: rules.yaml
alerts: {evaluate_every: 100ms}
%s`, o.mqtt, e.influx.URL(), e.influx.Bucket(), o.http, o.extra)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	e.pub = connect(t, e.mq.URL(), "test-publisher")
	log := &logBuf{t: t}
	startLogged(e, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), !o.notSubscribed)
	t.Cleanup(e.stop)
	return e, log
}

// startLogged is env.start with the given logger; it waits for the
// subscription only when asked.
func startLogged(e *env, log *slog.Logger, waitSubscribed bool) {
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
	// A listener on all interfaces is reached through loopback.
	if host, port, err := net.SplitHostPort(e.httpAddr); err == nil && !net.ParseIP(host).IsLoopback() {
		e.httpAddr = net.JoinHostPort("127.0.0.1", port)
	}
	if waitSubscribed {
		e.waitFor("subscribed", func() bool { return e.gauge("fenceline_mqtt_subscribed") == 1 })
	}
}

// tlsListener returns mosquitto config lines for a TLS listener on a free
// loopback port, and the ssl:// URL to reach it.
func tlsListener(t *testing.T, ca *pki, requireClientCert bool) (extraConfig, url string) {
	t.Helper()
	port, err := stack.FreePort()
	require.NoError(t, err)
	cert, key := ca.server("broker")
	extraConfig = fmt.Sprintf(`listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate %t
tls_version tlsv1.2
`, port, ca.CAFile, cert, key, requireClientCert)
	return extraConfig, fmt.Sprintf("ssl://127.0.0.1:%d", port)
}

// request sends an HTTP request to the daemon, with a bearer token if not
// empty, and returns the status.
func (e *env) request(method, path, token string) int {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.httpAddr+path, nil)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}
