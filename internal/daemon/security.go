package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/atomicfile"
	"github.com/fenceline/fenceline/internal/httpapi"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/protect"
)

// EnvInfluxToken is the environment variable the InfluxDB token may come
// from when influx.token_file is not set (containers, systemd credentials).
const EnvInfluxToken = "FENCELINE_INFLUX_TOKEN"

// keyError is a problem with the value of one config key: start-up reports
// it as "key: problem", `fenceline check` as a problem located at the key.
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

func keyErr(key string, format string, args ...any) error {
	return &keyError{key: key, err: fmt.Errorf(format, args...)}
}

// clientTLS builds a client TLS configuration from the files of section
// (e.g. "mqtt.tls"), or nil when none is configured (TLS then verifies with
// the system's roots). Every file is read and checked now, so that a config
// that cannot work stops the daemon at start rather than failing each
// connection attempt later.
func clientTLS(section string, c config.TLS) (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && c.ServerName == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	var caErr, certErr error
	if c.CAFile != "" {
		t.RootCAs, caErr = loadCAs(section+".ca_file", c.CAFile)
	}
	if c.CertFile != "" {
		var cert tls.Certificate
		if cert, certErr = loadKeyPair(section, c.CertFile, c.KeyFile); certErr == nil {
			t.Certificates = []tls.Certificate{cert}
		}
	}
	if err := errors.Join(caErr, certErr); err != nil {
		return nil, err // both, so that check reports both
	}
	return t, nil
}

// maxPEMBytes bounds a certificate, key or CA bundle file (the system's
// bundle of every public CA is about 200 KiB).
const maxPEMBytes = 16 << 20

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(key, path string) (*x509.CertPool, error) {
	pem, err := config.ReadFile(path, maxPEMBytes)
	if err != nil {
		return nil, keyErr(key, "%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, keyErr(key, "%s holds no PEM certificate", path)
	}
	return pool, nil
}

// loadKeyPair reads a certificate and its key and checks that they match
// and that the certificate is within its validity period.
func loadKeyPair(section, certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		// The config's own check says so, under the same key: not also
		// "cannot open" a path that is empty.
		return tls.Certificate{}, keyErr(section+".cert_file", "cert_file and key_file go together")
	}
	certPEM, err := config.ReadFile(certFile, maxPEMBytes)
	if err != nil {
		return tls.Certificate{}, keyErr(section+".cert_file", "%s: %w", certFile, err)
	}
	keyPEM, err := config.ReadFile(keyFile, maxPEMBytes)
	if err != nil {
		return tls.Certificate{}, keyErr(section+".key_file", "%s: %w", config.SecretPath(keyFile), err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// Go's error says which: unreadable file, no PEM, or a key that
		// does not match the certificate. It never quotes key material.
		return cert, keyErr(section+".cert_file", "with %s.key_file: %w", section, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return cert, keyErr(section+".cert_file", "%s: %w", certFile, err)
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return cert, keyErr(section+".cert_file", "%s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return cert, keyErr(section+".cert_file", "%s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return cert, nil
}

// serverTLS builds the HTTP listener's TLS configuration, or nil.
func serverTLS(c config.ServerTLS) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := loadKeyPair("http.tls", c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// influxToken returns the InfluxDB token and where it came from:
// influx.token_file when set, else $FENCELINE_INFLUX_TOKEN, else none. Never
// the command line (visible to every user in the process list).
func influxToken(cfg *config.Config) (token, source string, err error) {
	if cfg.Influx.TokenFile != "" {
		tok, err := config.ReadSecret(cfg.Influx.TokenFile)
		if err == nil {
			err = headerSafe(tok)
		}
		if err != nil {
			return "", "", &keyError{"influx.token_file", err}
		}
		return tok, "influx.token_file", nil
	}
	if tok := os.Getenv(EnvInfluxToken); tok != "" {
		if err := headerSafe(tok); err != nil {
			return "", "", &keyError{EnvInfluxToken, err}
		}
		return tok, EnvInfluxToken, nil
	}
	return "", "", nil
}

// headerSafe checks that a token can go in an HTTP header: one line, no
// control characters. Otherwise every write would fail, reported as a
// network error, while `check` said ok. The token itself is not quoted.
func headerSafe(tok string) error {
	for i, c := range []byte(tok) {
		if c == '\n' || c == '\r' {
			return fmt.Errorf("holds more than one line (line break at byte %d): the token (or user:password) must be alone", i)
		}
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("holds a control character at byte %d, which an HTTP header cannot carry", i)
		}
	}
	return nil
}

// webhookClient is the HTTP client of the index-th webhook: the system's
// roots, or webhooks[].ca_file's CAs, at TLS 1.2 at least.
func webhookClient(index int, w config.Webhook) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if w.CAFile != "" {
		pool, err := loadCAs(fmt.Sprintf("webhooks[%d].ca_file", index), w.CAFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr}, nil
}

// httpConfig is the HTTP listener's configuration with its token and TLS.
func httpConfig(cfg *config.Config) (httpapi.Config, error) {
	c := httpapi.Config{Addr: cfg.HTTP.Listen, Pprof: cfg.HTTP.Pprof}
	if cfg.HTTP.TokenFile != "" {
		tok, err := config.ReadSecret(cfg.HTTP.TokenFile)
		if err != nil {
			return c, &keyError{"http.token_file", err}
		}
		if len(tok) < httpapi.MinTokenLen {
			return c, keyErr("http.token_file", "the token has %d characters, want at least %d (e.g. openssl rand -hex 32)", len(tok), httpapi.MinTokenLen)
		}
		c.Token = tok
	}
	t, err := serverTLS(cfg.HTTP.TLS)
	if err != nil {
		return c, err
	}
	c.TLS = t
	return c, nil
}

// loadSignatureKeys reads ingest.signatures.key_file (nil when unset).
func loadSignatureKeys(cfg *config.Config) (devicesig.Keys, error) {
	if cfg.Ingest.Signatures.KeyFile == "" {
		return nil, nil
	}
	ks, err := devicesig.LoadKeys(cfg.Ingest.Signatures.KeyFile)
	if err != nil {
		var errs []error // one problem a bad line
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				errs = append(errs, &keyError{"ingest.signatures.key_file", e})
			}
			return nil, errors.Join(errs...)
		}
		return nil, &keyError{"ingest.signatures.key_file", err}
	}
	return ks, nil
}

// loadProtector builds the identifier protection of privacy.*.
func loadProtector(cfg *config.Config) (*protect.Protector, error) {
	p := cfg.Privacy
	var key []byte
	if p.KeyFile != "" {
		var err error
		if key, err = protect.LoadKey(p.KeyFile); err != nil {
			return nil, &keyError{"privacy.key_file", err}
		}
	}
	prot, err := protect.New(protect.Options{Identifiers: p.HashIdentifiers, Plates: p.HashPlates, AlertSubjects: p.AlertSubjects}, key)
	if err != nil {
		return nil, &keyError{"privacy", err}
	}
	return prot, nil
}

// securityProblems builds, without keeping, everything start-up builds from
// secrets, keys and certificates, and reports each failure at its key: what
// `fenceline check` adds to the readability of the files.
func securityProblems(cfg *config.Config) config.Problems {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := clientTLS("mqtt.tls", cfg.MQTT.TLS)
	add(err)
	_, err = clientTLS("influx.tls", cfg.Influx.TLS)
	add(err)
	_, _, err = influxToken(cfg)
	add(err)
	_, err = httpConfig(cfg)
	add(err)
	for i, w := range cfg.Webhooks {
		_, err := webhookClient(i, w)
		add(err)
	}
	_, err = loadSignatureKeys(cfg)
	add(err)
	_, err = loadProtector(cfg)
	add(err)

	var ps config.Problems
	for len(errs) > 0 {
		err := errs[0]
		errs = errs[1:]
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(j.Unwrap(), errs...)
			continue
		}
		var ke *keyError
		if errors.As(err, &ke) {
			ps = append(ps, config.Problem{Key: ke.key, Msg: ke.err.Error()})
		} else {
			ps = append(ps, config.Problem{Msg: err.Error()})
		}
	}
	return cfg.Locate(ps)
}

// security is what the daemon runs of ingest.signatures and privacy.
type security struct {
	sigs      *devicesig.Verifier // nil: signatures off
	prot      *protect.Protector  // nil: nothing hashed
	stateFile string              // the signature replay marks
}

const signatureStateFile = "signature-state.json"

func buildSecurity(cfg *config.Config, registry *model.Registry, log *slog.Logger, reg prometheus.Registerer) (*security, error) {
	s := &security{stateFile: filepath.Join(cfg.Storage.Dir, signatureStateFile)}
	prot, err := loadProtector(cfg)
	if err != nil {
		return nil, err
	}
	if prot.Enabled() {
		s.prot = prot
		log.Info("identifier protection on", "component", "privacy", "hash_identifiers", cfg.Privacy.HashIdentifiers,
			"hash_plates", cfg.Privacy.HashPlates, "alert_subjects", cfg.Privacy.AlertSubjects)
	}
	keys, err := loadSignatureKeys(cfg)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		return s, nil
	}
	s.sigs = devicesig.New(keys, cfg.Ingest.Signatures.Required, reg)
	if data, err := readState(s.stateFile); err == nil {
		if err := s.sigs.UnmarshalState(data); err != nil {
			// Without the marks, messages captured before the restart could
			// be replayed once: worth a warning, not a refusal to start.
			log.Warn("signature replay marks not restored", "component", "devicesig", "file", s.stateFile, "err", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("signature replay marks not readable", "component", "devicesig", "file", s.stateFile, "err", err)
	}
	s.logCoverage(registry, log)
	return s, nil
}

// logCoverage says how many registered devices must sign, and warns about
// the ones that will be refused for lack of a key.
func (s *security) logCoverage(registry *model.Registry, log *slog.Logger) {
	if s.sigs == nil || registry == nil {
		return
	}
	keys := s.sigs.Keys()
	var missing []string
	registry.All(func(d *model.Device) {
		if _, ok := keys[d.ID]; !ok {
			missing = append(missing, d.ID)
		}
	})
	log.Info("device signatures on", "component", "devicesig", "required", s.sigs.Required(),
		"devices_with_key", len(keys), "registered_without_key", len(missing))
	if s.sigs.Required() && len(missing) > 0 {
		log.Warn("registered devices without a signature key: all their messages will be rejected (bad_signature)",
			"component", "devicesig", "devices", missing)
	}
	if stray := strayKeys(keys, registry); len(stray) > 0 {
		log.Warn("signature keys for devices not in the registry: a typo in an id leaves the device meant to sign free not to",
			"component", "devicesig", "key_ids", stray)
	}
}

// strayKeys returns the ids, sorted, of keys for no registered device.
func strayKeys(keys devicesig.Keys, registry *model.Registry) []string {
	var stray []string
	for id := range keys {
		if registry.Lookup(id) == nil {
			stray = append(stray, id)
		}
	}
	slices.Sort(stray)
	return stray
}

// Warnings returns what `check` reports besides problems: choices that are
// valid but an operator should know the cost of (config.Config.Warnings),
// and signature keys for devices not in the registry.
func Warnings(cfg *config.Config) config.Problems {
	ws := cfg.Warnings()
	if w := diskWarning(cfg); w != nil {
		ws = append(ws, cfg.Locate(config.Problems{*w})...)
	}
	rs, r, err := loadRules(cfg)
	if err != nil {
		return ws
	}
	ws = append(ws, unplacedUnits(r)...)
	keys, err := loadSignatureKeys(cfg)
	if err != nil || keys == nil {
		return ws
	}
	for _, id := range strayKeys(keys, rs.Registry) {
		ws = append(ws, config.Problem{File: cfg.Ingest.Signatures.KeyFile, Key: "ingest.signatures.key_file",
			Msg: fmt.Sprintf("a key for %s, which is not a registered device: a typo? The device meant to sign does not have to", id)})
	}
	return ws
}

// unplacedUnits warns of the fence units and checkpoints registered
// without a position: a message of theirs without loc (the contract's
// passes have none) is rejected whole as no_position, so a checkpoint
// registered without lat and lon stores no pass and raises no alert, even
// from rules without zones.
func unplacedUnits(r *config.Rules) config.Problems {
	var ws config.Problems
	for i, d := range r.Devices {
		if d.Lat != nil || d.Lon != nil || (d.Kind != string(model.KindFence) && d.Kind != string(model.KindCheckpoint)) {
			continue
		}
		what := "its passes"
		if d.Kind == string(model.KindFence) {
			what = "its detections"
		}
		ws = append(ws, config.Problem{Key: fmt.Sprintf("devices[%d]", i),
			Msg: fmt.Sprintf("%s %s has no lat and lon: %s are rejected (no_position) unless each message carries its loc", d.Kind, d.ID, what)})
	}
	return r.Locate(ws)
}

// warnUnplaced logs unplacedUnits' warnings, at a start and a reload.
func warnUnplaced(log *slog.Logger, r *config.Rules) {
	for _, w := range unplacedUnits(r) {
		log.Warn("a unit registered without a position", "problem", w.Error())
	}
}

// reloadKeys re-reads the key file for a reload; apply the result with
// setKeys on the pipeline's goroutine.
func (s *security) reloadKeys(cfg *config.Config) (devicesig.Keys, error) {
	if s.sigs == nil {
		return nil, nil
	}
	return loadSignatureKeys(cfg)
}

func (s *security) setKeys(keys devicesig.Keys, registry *model.Registry, log *slog.Logger) {
	if s.sigs == nil {
		return
	}
	s.sigs.SetKeys(keys)
	s.logCoverage(registry, log)
}

// saveState writes the signature replay marks (nothing when off).
func (s *security) saveState() error {
	if s.sigs == nil {
		return nil
	}
	data, err := s.sigs.MarshalState()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.stateFile, data)
}

// alertID is the id an alert's receivers know it by (see protect.AlertID).
func (s *security) alertID(a *model.Alert) string { return s.prot.AlertID(a) }

// wrapSinks gives each alert sink the view of alerts it may see: the
// InfluxDB sink the stored view (hashed like the readings), MQTT and
// webhooks the sent view (privacy.alert_subjects).
func (s *security) wrapSinks(influx outbox.Sink, sent ...outbox.Sink) []outbox.Sink {
	if s.prot == nil {
		return append([]outbox.Sink{influx}, sent...)
	}
	out := []outbox.Sink{viewOf(influx, s.prot.StoredAlert)}
	for _, k := range sent {
		out = append(out, viewOf(k, s.prot.SentAlert))
	}
	return out
}

// viewOf is k delivering view's copy of each alert; a BatchSink stays one
// (the MQTT sink takes a burst of alerts in one round trip, not one each).
func viewOf(k outbox.Sink, view func(*model.Alert) *model.Alert) outbox.Sink {
	v := viewSink{k, view}
	if b, ok := k.(outbox.BatchSink); ok {
		return batchViewSink{v, b}
	}
	return v
}

// viewSink delivers a transformed copy of each alert; its name is the
// inner sink's, so pending deliveries stay matched across restarts.
type viewSink struct {
	outbox.Sink
	view func(*model.Alert) *model.Alert
}

func (v viewSink) Deliver(ctx context.Context, a *model.Alert) error {
	return v.Sink.Deliver(ctx, v.view(a))
}

// batchViewSink is a viewSink of a BatchSink.
type batchViewSink struct {
	viewSink
	batch outbox.BatchSink
}

func (v batchViewSink) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	views := make([]*model.Alert, len(alerts))
	for i, a := range alerts {
		views[i] = v.view(a)
	}
	return v.batch.DeliverBatch(ctx, views)
}

// ProblemsForLog names where each problem of a refused reload (or start) is, and what
// it is unless it may quote an identifier: a bad watchlist entry written in
// the rules file is still most of an IMSI or a plate, and a `when` may
// compare with one. After a
// SIGHUP there is no answer to read the rest in: `fenceline check` and the
// HTTP answer (to a caller with the token) give the whole text.
func ProblemsForLog(err error) []string {
	var ps config.Problems
	if !errors.As(err, &ps) {
		return []string{err.Error()} // not a rules problem: key files, shutdown
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		loc := p.File
		if p.Line > 0 {
			loc += fmt.Sprintf(":%d", p.Line)
		}
		if p.Key == "" {
			if strings.HasPrefix(p.Msg, "invalid YAML") || strings.Contains(p.Msg, "unmarshal") {
				out = append(out, loc) // yaml's own text may quote the file: the place is all there is
			} else {
				out = append(out, p.Error()) // fenceline's own text, which quotes nothing
			}
			continue
		}
		if parent, typed, ok := unknownKey(p); ok && !plainName(typed) {
			// The key is what was typed: a misspelt key is letters, but
			// one with digits or other letters may be an identifier (a
			// list's entries written as a mapping). Its parent says where.
			out = append(out, loc+": an unknown key in "+parent)
			continue
		}
		if name, ok := strings.CutPrefix(p.Key, "watchlists."); ok {
			// A list's name is the operator's, any text: one of digits or
			// other letters may be an IMSI or a plate (a list's entries
			// written a level too shallow each become a list).
			if i := strings.IndexAny(name, ".["); i >= 0 {
				name = name[:i]
			}
			if !plainName(name) {
				p.Key = "watchlists.…" + strings.TrimPrefix(p.Key, "watchlists."+name)
			}
		}
		// A list file's problems never quote its lines (watchlist.Build):
		// they are logged whole.
		inline := strings.HasPrefix(p.Key, "watchlists.") && !strings.HasSuffix(p.Key, ".file")
		if inline || strings.Contains(p.Key, ".when") {
			out = append(out, loc+": "+p.Key)
			continue
		}
		out = append(out, p.Error())
	}
	return out
}

// plainName reports whether a key is letters, '_' and '-' only: a word,
// not an identifier.
func plainName(key string) bool {
	return strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-") == ""
}

// unknownKey splits the key of an "unknown key" problem into its parent
// and the key as typed.
func unknownKey(p config.Problem) (parent, typed string, ok bool) {
	if !strings.HasPrefix(p.Msg, "unknown key") {
		return "", "", false
	}
	i := strings.LastIndexByte(p.Key, '.')
	if i < 0 {
		return "", p.Key, true
	}
	return p.Key[:i], p.Key[i+1:], true
}

// warnWebhooks logs the webhooks' warnings (plain http, unsigned) at start;
// `check` prints them with the others.
func warnWebhooks(cfg *config.Config, log *slog.Logger) {
	for _, w := range cfg.WebhookWarnings() {
		log.Warn("webhook", "component", "webhook", "problem", w.Error())
	}
}
