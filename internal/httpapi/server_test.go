package httpapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

const token = "c2f1a8d09e7b4f35a1d2c3b4e5f60718"

func newServer(t *testing.T, cfg Config, log *bytes.Buffer) (*Server, *int) {
	t.Helper()
	reloads := new(int)
	if log == nil {
		log = &bytes.Buffer{}
	}
	s, err := New(cfg, prometheus.NewRegistry(), nil, func(context.Context) (string, error) { *reloads++; return "", nil },
		slog.New(slog.NewTextHandler(log, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { s.ln.Close() })
	return s, reloads
}

func TestWriteEndpointsNeedToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		token  string // configured
		method string
		path   string
		auth   string // Authorization header sent
		want   int
	}{
		{name: "no token configured, loopback: reload open", method: "POST", path: "/-/reload", want: 200},
		{name: "reload without token", token: token, method: "POST", path: "/-/reload", want: 401},
		{name: "reload with wrong token", token: token, method: "POST", path: "/-/reload", auth: "Bearer " + strings.Repeat("0", len(token)), want: 401},
		{name: "reload with a prefix of the token", token: token, method: "POST", path: "/-/reload", auth: "Bearer " + token[:16], want: 401},
		{name: "reload with basic auth", token: token, method: "POST", path: "/-/reload", auth: "Basic " + token, want: 401},
		{name: "reload with token", token: token, method: "POST", path: "/-/reload", auth: "Bearer " + token, want: 200},
		{name: "scheme is case-insensitive", token: token, method: "POST", path: "/-/reload", auth: "bearer " + token, want: 200},
		{name: "metrics stay open", token: token, method: "GET", path: "/metrics", want: 200},
		{name: "healthz stays open", token: token, method: "GET", path: "/healthz", want: 200},
		{name: "readyz stays open", token: token, method: "GET", path: "/readyz", want: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, reloads := newServer(t, Config{Addr: "127.0.0.1:0", Token: tc.token}, nil)
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.srv.Handler.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.path == "/-/reload" {
				require.Equal(t, tc.want == 200, *reloads == 1, "reloaded only when allowed")
			}
			if tc.want == 401 {
				require.Equal(t, `Bearer realm="fenceline"`, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pprof bool
		token string // configured
		auth  string // Authorization header sent
		path  string
		want  int
		body  string // what the answer contains
	}{
		{name: "off by default", path: "/debug/pprof/", want: 404},
		{name: "off: no heap profile either", path: "/debug/pprof/heap", want: 404},
		{name: "on, loopback without token: index", pprof: true, path: "/debug/pprof/", want: 200, body: "Types of profiles available"},
		{name: "on: a named profile", pprof: true, path: "/debug/pprof/heap?debug=1", want: 200, body: "heap profile"},
		{name: "on: goroutines", pprof: true, path: "/debug/pprof/goroutine?debug=1", want: 200, body: "goroutine profile"},
		{name: "on with token: refused without it", pprof: true, token: token, path: "/debug/pprof/heap", want: 401, body: "unauthorized"},
		{name: "on with token: served with it", pprof: true, token: token, auth: "Bearer " + token, path: "/debug/pprof/heap?debug=1", want: 200, body: "heap profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newServer(t, Config{Addr: "127.0.0.1:0", Token: tc.token, Pprof: tc.pprof}, nil)
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.srv.Handler.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.body)
		})
	}
}

func TestRefusalsAreLoggedWithoutTheToken(t *testing.T) {
	var log bytes.Buffer
	s, _ := newServer(t, Config{Addr: "127.0.0.1:0", Token: token}, &log)
	for range 3 {
		req := httptest.NewRequest("POST", "/-/reload", nil)
		req.Header.Set("Authorization", "Bearer wrong-guess-"+token[:8])
		s.srv.Handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	require.Equal(t, 1, strings.Count(log.String(), "refused a request"), "rate-limited: %s", log.String())
	require.NotContains(t, log.String(), token[:8])
}

func TestListenerRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{name: "all interfaces without token", cfg: Config{Addr: "0.0.0.0:0"}, err: "not loopback, needs http.token_file"},
		{name: "short token", cfg: Config{Addr: "127.0.0.1:0", Token: "hunter2"}, err: "http.token_file: the token has 7 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, prometheus.NewRegistry(), nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

// TestNonLoopbackWithTokenOverTLS binds every interface (traffic stays on
// loopback: the client dials 127.0.0.1) with a token and a certificate.
func TestNonLoopbackWithTokenOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	var log bytes.Buffer
	s, reloads := newServer(t, Config{Addr: "0.0.0.0:0", Token: token,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}, &log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	_, port, err := net.SplitHostPort(s.Addr())
	require.NoError(t, err)
	base := "https://127.0.0.1:" + port
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}

	resp, err := client.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	resp, err = client.Post(base+"/-/reload", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)

	req, _ := http.NewRequest("POST", base+"/-/reload", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 1, *reloads)

	resp, err = http.Get("http://127.0.0.1:" + port + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode, "plain HTTP is not served on a TLS listener")
	require.NotContains(t, log.String(), "travels in clear")
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fenceline"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// The server closes a keep-alive connection idle for idleTimeout (net/http
// does, given one), rather than holding it for as long as the daemon runs.
func TestServerHasAnIdleTimeout(t *testing.T) {
	s, _ := newServer(t, Config{Addr: "127.0.0.1:0"}, nil)
	require.Equal(t, idleTimeout, s.srv.IdleTimeout)
	require.Positive(t, s.srv.IdleTimeout)
}
