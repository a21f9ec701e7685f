// Package httpapi serves fenceline's operator endpoints: /metrics, /healthz,
// /readyz and POST /-/reload.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: nil when fine, else why not.
type Check func() error

// Reloader re-reads the rules; the error lists every problem.
type Reloader func(ctx context.Context) error

// Server is the operator HTTP endpoint.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	log    *slog.Logger
	checks map[string]Check
	reload Reloader
}

// New listens on addr (so the port is known, and taken, before Run).
func New(addr string, gatherer prometheus.Gatherer, checks map[string]Check, reload Reloader, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	s := &Server{ln: ln, log: log.With("component", "http"), checks: checks, reload: reload}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("POST /-/reload", s.handleReload)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
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
	if err := s.reload(r.Context()); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, err.Error())
		return
	}
	fmt.Fprintln(w, "reloaded")
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
