// Package httpapi serves fenceline's operator endpoints: /metrics, /healthz,
// /readyz, POST /-/reload and, when asked for, /debug/pprof/.
//
// The read endpoints are open: Prometheus and probes must reach them, and
// they reveal no identifiers. Endpoints that change the daemon (reload, and
// any added later through Server.write) need "Authorization: Bearer
// <token>" whenever a token is configured, and a token is required to
// listen anywhere but on loopback.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: nil when fine, else why not.
type Check func() error

// Reloader re-reads the rules; the error lists every problem. note, when
// not empty, is something the operator should know of a reload that
// worked (the answer's second line).
type Reloader func(ctx context.Context) (note string, err error)

// ErrReloadNotApplied is a Reloader's error when it did not get to the
// rules (the daemon is shutting down): answered 503, not 400, which says the
// rules were refused.
var ErrReloadNotApplied = errors.New("reload not applied")

// Config is where and how the server listens.
type Config struct {
	// Addr is host:port (http.listen).
	Addr string
	// Token, when not empty, is the bearer token write endpoints require.
	Token string
	// TLS, when not nil, makes the listener HTTPS.
	TLS *tls.Config
	// Pprof serves net/http/pprof under /debug/pprof/ (http.pprof). A
	// profile shows stacks, not data, but it costs CPU while it runs and
	// says how the daemon is built: it is behind the token like the write
	// endpoints.
	Pprof bool
}

// MinTokenLen is the shortest bearer token accepted: a short one could be
// guessed over the network.
const MinTokenLen = 16

// Server is the operator HTTP endpoint.
type Server struct {
	srv     *http.Server
	ln      net.Listener
	log     *slog.Logger
	checks  map[string]Check
	reload  Reloader
	token   [sha256.Size]byte // of the configured token; compared in constant time
	tokenOn bool

	refusedMu     sync.Mutex
	refusedLogged time.Time
	refusedSince  int
}

// New listens on cfg.Addr (so the port is known, and taken, before Run). It
// refuses a listener that is not on loopback when no token is configured:
// the address may be a name, so this is checked on the bound address.
func New(cfg Config, gatherer prometheus.Gatherer, checks map[string]Check, reload Reloader, log *slog.Logger) (*Server, error) {
	if cfg.Token != "" && len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("http.token_file: the token has %d characters, want at least %d (e.g. openssl rand -hex 32)", len(cfg.Token), MinTokenLen)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.Addr, err)
	}
	if cfg.Token == "" && !isLoopback(ln.Addr()) {
		ln.Close()
		return nil, fmt.Errorf("http.listen %s: listening on %s, not loopback, needs http.token_file so that POST /-/reload is not open to the network", cfg.Addr, ln.Addr())
	}
	s := &Server{ln: ln, log: log.With("component", "http"), checks: checks, reload: reload}
	if cfg.Token != "" {
		s.token, s.tokenOn = sha256.Sum256([]byte(cfg.Token)), true
	}
	if cfg.TLS != nil {
		s.ln = tls.NewListener(ln, cfg.TLS)
	} else if !isLoopback(ln.Addr()) {
		s.log.Warn("http listener is not loopback and not TLS: the bearer token travels in clear; set http.tls", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("POST /-/reload", s.write(http.HandlerFunc(s.handleReload)))
	if cfg.Pprof {
		mux.Handle("GET /debug/pprof/", s.write(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", s.write(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", s.write(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", s.write(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", s.write(http.HandlerFunc(pprof.Trace)))
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		// Handshake failures of scanners and probes: debug, not noise.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	return s, nil
}

// idleTimeout closes a keep-alive connection left idle: a client gone
// without closing its connections (a scraper restarted behind a NAT) held
// them, and their file descriptors, for as long as the daemon ran.
const idleTimeout = 2 * time.Minute

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// write guards an endpoint that changes the daemon: with a token
// configured, only a request bearing it gets through.
func (s *Server) write(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tokenOn && !s.authorized(r) {
			s.refused(r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="fenceline"`)
			http.Error(w, "unauthorized: this endpoint needs Authorization: Bearer <token from http.token_file>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing both sides gives equal lengths, so the comparison's time
	// says nothing about the token's length either.
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// refused logs refused requests, at most one line a minute: a scanner must
// not be able to flood the log.
func (s *Server) refused(r *http.Request) {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	if now := time.Now(); now.Sub(s.refusedLogged) >= time.Minute {
		s.log.Warn("refused a request without a valid bearer token", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "refused_since_last_log", s.refusedSince)
		s.refusedLogged, s.refusedSince = now, 0
		return
	}
	s.refusedSince++
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	var problems []string
	for name, c := range s.checks {
		if err := c(); err != nil {
			problems = append(problems, name+": "+err.Error())
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if s.reload == nil {
		http.Error(w, "reload not available", http.StatusNotImplemented)
		return
	}
	note, err := s.reload(r.Context())
	if errors.Is(err, ErrReloadNotApplied) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, err.Error())
		return
	}
	fmt.Fprintln(w, "reloaded")
	if note != "" {
		fmt.Fprintln(w, note)
	}
}

// Run serves until ctx is done, then shuts down within a few seconds.
func (s *Server) Run(ctx context.Context) error {
	errC := make(chan error, 1)
	go func() { errC <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errC:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
