package influxwriter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An https:// InfluxDB is verified against Config.TLS: its own CA works,
// the system roots (which do not hold that CA) are refused.
func TestTLSVerifiesAgainstConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	for _, tc := range []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"own CA", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, true},
		{"system roots", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(Config{URL: srv.URL, Bucket: "border/autogen", TLS: tc.tls, Timeout: 5 * time.Second},
				slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			require.NoError(t, err)
			err = w.Ping(context.Background())
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, "certificate")
			}
		})
	}
}

// A write that fails in the TLS handshake is counted in class tls, not
// network: the runbook's fix for it is the configuration, not InfluxDB.
func TestTLSHandshakeFailuresAreClassTLS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tlsSrv := httptest.NewTLSServer(ok)
	defer tlsSrv.Close()
	plain := httptest.NewServer(ok)
	defer plain.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	trusted := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	for _, tc := range []struct {
		name, url string
		tls       *tls.Config
		class     string
	}{
		{"certificate of a CA not trusted", tlsSrv.URL, nil, "tls"},
		{"certificate of another host", strings.Replace(tlsSrv.URL, "127.0.0.1", "localhost", 1), trusted, "tls"},
		{"plain http behind an https URL", strings.Replace(plain.URL, "http:", "https:", 1), trusted, "tls"},
		{"nothing listening", closed, nil, "network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startWriter(t, Config{URL: tc.url, TLS: tc.tls, MaxBackoff: time.Millisecond})
			require.NoError(t, s.w.Write(context.Background(), detectionBatch(5, 1), newWaiter(1).done(0)))
			waitFor(t, func() bool { return counter(t, s.reg, "fenceline_influx_write_errors_total", "class", tc.class) > 0 })
			other := map[string]string{"tls": "network", "network": "tls"}[tc.class]
			assert.Zero(t, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", other))
			assert.False(t, s.w.Healthy())
		})
	}
}

// An InfluxDB whose TLS handshake fails at start is told as such, not as
// one that does not answer: waiting for it does not help.
func TestTLSFailureAtStartIsNamed(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer plain.Close()
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()
	for _, tc := range []struct{ name, url string }{
		{"plain http behind an https URL", strings.Replace(plain.URL, "http:", "https:", 1)},
		{"a certificate of a CA not trusted", untrusted.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireStartWarning(t, Config{URL: tc.url}, "WARN InfluxDB's TLS handshake fails", "does not answer")
		})
	}
}
