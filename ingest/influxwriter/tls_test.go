package influxwriter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
