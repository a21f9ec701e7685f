// Package daemon wires fenceline's components together and runs them under
// one context: the MQTT source, the pipeline, the InfluxDB writer, the dead
// letters, the alert engine with its outbox and sinks, and the HTTP API.
//
// Shutdown runs in a fixed order under one deadline (ingest.drain_timeout):
// stop taking messages, let the pipeline finish the one in hand, drain the
// writer (its acks still reach the broker), close the dead letters and the
// outbox, then disconnect from the broker. Whatever was not acked by then is
// redelivered by the broker to the next session.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/protect"
)

// Options are what the command line adds to the configuration.
type Options struct {
	Log      *slog.Logger
	Registry *prometheus.Registry // nil: a new one
	// Reload, when not nil, delivers reload requests (SIGHUP).
	Reload <-chan struct{}
	// Ready, when not nil, is closed once every component is started
	// (HTTP listening, the writer and the subscription under way).
	Ready chan<- struct{}
	// HTTPAddr, when not nil, receives the HTTP listener's address.
	HTTPAddr func(string)
	// StateSaveEvery is how often the alert state is saved while running
	// (0: every 30 s); tests shorten it.
	StateSaveEvery time.Duration
}

// Run runs the daemon until ctx is done, then drains and returns nil, or
// returns the first error that stopped it.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)

	d, err := build(cfg, log, reg, saveInterval(opts))
	if err != nil {
		return err
	}
	return d.run(ctx, opts)
}

// saveInterval is how often the alert state is saved while running.
func saveInterval(opts Options) time.Duration {
	if opts.StateSaveEvery > 0 {
		return opts.StateSaveEvery
	}
	return stateSaveEvery
}

// LoadRules reads and compiles the rules file named by cfg: the one place
// that `check`, startup and reload build a ruleset.
func LoadRules(cfg *config.Config) (*engine.Ruleset, error) {
	rs, _, err := loadRules(cfg)
	return rs, err
}

// loadRules is LoadRules, with the file as read (nil when it did not
// decode).
func loadRules(cfg *config.Config) (*engine.Ruleset, *config.Rules, error) {
	r, err := cfg.LoadRules()
	if r == nil {
		return nil, nil, err
	}
	var ps config.Problems
	errors.As(err, &ps)
	rs, cps := engine.Compile(r, engineOptions(cfg))
	if len(r.Devices) == 0 {
		// Valid YAML, but a deployment that rejects everything: most likely
		// a file emptied or cut short while being edited. A reload would
		// resolve every open incident.
		cps = append(cps, config.Problem{Key: "devices", Msg: "no device registered: every message would be rejected as unknown_device (an empty or truncated file?)"})
	}
	if ps = append(ps, config.Problems(r.Locate(cps)).Except(ps)...); len(ps) > 0 {
		return nil, r, ps.Err()
	}
	return rs, r, nil
}

// sectionsLost returns the problems of a rules file r that lacks a whole
// section (no `rules:` key at all, say) the running set cur has entries
// in. A file cut short while it was copied or written ends at a line like
// any other and decodes: reloaded, it would switch every rule off and close
// every open incident, without a word. Emptying a section on purpose is
// written out (`rules: []`). A start on a file without a rules section
// where the last run had rules is refused likewise (see build).
func sectionsLost(r *config.Rules, cur *engine.Ruleset) error {
	if r == nil || cur == nil {
		return nil
	}
	var zones int
	if cur.Zones != nil {
		zones = cur.Zones.Len()
	}
	var ps config.Problems
	for _, sec := range []struct {
		key     string
		running int
		empty   string // the section written empty
	}{{"zones", zones, "[]"}, {"watchlists", len(cur.Watchlists), "{}"}, {"rules", len(cur.Rules), "[]"}} {
		if sec.running > 0 && r.SectionUnset(sec.key) {
			ps = append(ps, config.Problem{File: r.Path, Key: sec.key, Msg: fmt.Sprintf(
				"the file has no %s section (the key left out, or nothing after it), where the running set has %d: a file cut short while it was written? "+
					"The running set stays; to remove them all, write `%s: %s`", sec.key, sec.running, sec.key, sec.empty)})
		}
	}
	return ps.Err()
}

// rulesCutShort returns the problem of a start on rules file r when it
// lacks a rules section and the saved alert state (stateFile) holds rules:
// a file cut short while it was written. A reload of it is refused
// (sectionsLost); a start is too: run without rules, it would close every
// open incident as if its rule were removed, and ack readings no rule would
// ever see. Refused, it leaves them in the broker (the session is
// persistent) and the state as it was, to be evaluated once the file is
// mended.
func rulesCutShort(r *config.Rules, stateFile string) error {
	if r == nil || !r.SectionUnset("rules") {
		return nil
	}
	had := savedRules(stateFile)
	if had == 0 {
		return nil
	}
	return config.Problems{{File: r.Path, Key: "rules", Msg: fmt.Sprintf(
		"the file has no rules section (the key left out, or nothing after it), where the last run had %d rules: a file cut short while it was written? "+
			"fenceline does not start on it: the readings wait in the broker, and the open incidents stay open, until it is mended; "+
			"to run without rules, write `rules: []`", had)}}.Err()
}

// savedRules is the number of rules the saved alert state (or its previous
// save) holds; 0 when there is none, or it cannot be read (the start says
// why).
func savedRules(path string) int {
	for _, p := range []string{path, path + ".prev"} {
		data, err := readState(p)
		if err != nil {
			continue
		}
		var saved struct {
			Rules     []json.RawMessage `json:"rules"`
			RulesLost int               `json:"rules_lost"` // saved by builds that ran on a file without rules
		}
		if json.Unmarshal(data, &saved) == nil {
			return max(len(saved.Rules), saved.RulesLost)
		}
	}
	return 0
}

func engineOptions(cfg *config.Config) engine.Options {
	loc, err := time.LoadLocation(cfg.Alerts.Timezone)
	if err != nil {
		loc = time.UTC // unreachable: Validate checked the zone
	}
	return engine.Options{
		Location:       loc,
		PatrolMaxAge:   cfg.Alerts.PatrolMaxAge.D(),
		NearestPatrols: cfg.Alerts.NearestPatrols,
		LateAfter:      cfg.Alerts.LateAfter.D(),
		// A condition may name the identifiers privacy hashes.
		HideConditionLiterals: cfg.Privacy.HashIdentifiers || cfg.Privacy.HashPlates || cfg.Privacy.AlertSubjects == protect.SubjectsHashed,
	}
}

// Check validates cfg's referenced files and its rules; it returns every
// problem found. What start-up would make of keys named in reported (the
// problems config.Load found in cfg's values) is not reported again.
func Check(cfg *config.Config, reported ...config.Problem) error {
	var errs []error
	ps := cfg.CheckFiles()
	// What start-up would refuse in certificates, keys and tokens; a key
	// whose file is unreadable is reported once, by CheckFiles.
	seen := map[string]bool{}
	for _, p := range reported {
		seen[p.Key] = true
	}
	for _, p := range ps {
		seen[p.Key] = true
		// A certificate is loaded with its key: one unreadable file of
		// the pair is one problem.
		if section, ok := strings.CutSuffix(p.Key, ".key_file"); ok {
			seen[section+".cert_file"] = true
		}
	}
	for _, p := range securityProblems(cfg) {
		if !seen[p.Key] && !sectionSeen(seen, p.Key) {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		errs = append(errs, ps)
	}
	if _, r, err := loadRules(cfg); err != nil {
		errs = append(errs, err)
	} else if err := rulesCutShort(r, stateFileIn(cfg.Storage.Dir)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sectionSeen reports whether a problem of a key in section (a problem of
// start-up named after a whole section, such as privacy) was reported: the
// two would be one problem told twice.
func sectionSeen(seen map[string]bool, section string) bool {
	for k := range seen {
		if strings.HasPrefix(k, section+".") {
			return true
		}
	}
	return false
}

// stateDirs creates storage.dir's folders.
func stateDirs(root string) (deadDir, outboxDir, stateFile string, err error) {
	deadDir = filepath.Join(root, "deadletter")
	outboxDir = filepath.Join(root, "outbox")
	for _, d := range []string{root, deadDir, outboxDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return "", "", "", fmt.Errorf("storage.dir: %w", err)
		}
	}
	return deadDir, outboxDir, stateFileIn(root), nil
}

// stateFileIn is the alert state file of storage.dir root.
func stateFileIn(root string) string { return filepath.Join(root, "alert-state.json") }

// shutdownStep is one named teardown step.
type shutdownStep struct {
	name string
	fn   func(ctx context.Context) error
}

// teardown runs steps in order under one deadline and joins their errors.
func teardown(log *slog.Logger, timeout time.Duration, steps []shutdownStep) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			log.Error("shutdown step failed", "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		log.Debug("shutdown step done", "step", s.name, "took", time.Since(start))
	}
	return errors.Join(errs...)
}

func registerBuildInfo(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewBuildInfoCollector())
}
