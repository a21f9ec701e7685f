package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

var shanghai = mustLoc("Asia/Shanghai")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// at is a time in Asia/Shanghai on 2026-11-26 (a Thursday).
func at(hh, mm int) time.Time { return time.Date(2026, 11, 26, hh, mm, 0, 0, shanghai) }

var (
	ruinsIn   = model.Point{Lat: 41.9612, Lon: 110.4875}
	ruinsOut  = model.Point{Lat: 41.9000, Lon: 110.4875}
	cp07      = model.Point{Lat: 42.30, Lon: 110.15}
	stripEdge = 42.68 // southern edge of the border strip
)

// loadRules reads and compiles testdata/rules.yaml.
func loadRules(t testing.TB) *Ruleset {
	t.Helper()
	r, err := config.LoadRules(filepath.Join("testdata", "rules.yaml"))
	require.NoError(t, err)
	rs, ps := Compile(r, Options{})
	require.Empty(t, ps)
	return rs
}

// compileYAML compiles a rules file written in a test.
func compileYAML(t testing.TB, yaml string) (*Ruleset, config.Problems) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	r, err := config.LoadRules(path)
	require.NoError(t, err)
	return Compile(r, Options{})
}

type testEngine struct {
	*Engine
	t   testing.TB
	seq map[string]int64
	reg *prometheus.Registry
}

func newEngine(t testing.TB, rs *Ruleset) *testEngine {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := New(rs, Options{}, nil, reg)
	e.clock = func() time.Time { return at(12, 0) }
	return &testEngine{Engine: e, t: t, seq: map[string]int64{}, reg: reg}
}

func (te *testEngine) batch(dev string, stream model.Stream, ts time.Time) *model.Batch {
	d := te.rs.Registry.Lookup(dev)
	require.NotNil(te.t, d, "device %s", dev)
	te.seq[dev]++
	return &model.Batch{Meta: model.Meta{Site: d.Site, Kind: d.Kind, Device: dev, Stream: stream, Seq: te.seq[dev], Time: ts}, Device: d}
}

// phones reports phones (by IMSI) seen by fence dev at ts, at loc.
func (te *testEngine) phones(dev string, ts time.Time, loc model.Point, imsis ...string) *model.Batch {
	b := te.batch(dev, model.StreamDetections, ts)
	for i, imsi := range imsis {
		d := model.Detection{Stamp: model.Stamp{Time: ts, Index: i}, Loc: loc, IMSI: imsi, Tech: "lte"}
		if len(imsi) >= 5 {
			d.MCC, d.MNC, d.Operator = imsi[:3], imsi[3:5], imsi[:5]
		}
		b.Detections = append(b.Detections, d)
	}
	return b
}

func (te *testEngine) pass(dev string, ts time.Time, loc model.Point, p model.Pass) *model.Batch {
	b := te.batch(dev, model.StreamPasses, ts)
	p.Stamp = model.Stamp{Time: ts}
	p.Loc = loc
	b.Passes = append(b.Passes, p)
	return b
}

func (te *testEngine) position(dev string, ts time.Time, loc model.Point) *model.Batch {
	b := te.batch(dev, model.StreamPosition, ts)
	b.Positions = append(b.Positions, model.Position{Stamp: model.Stamp{Time: ts}, Loc: loc})
	return b
}

func (te *testEngine) status(dev string, ts time.Time, s model.Status) *model.Batch {
	b := te.batch(dev, model.StreamStatus, ts)
	s.Stamp = model.Stamp{Time: ts}
	b.Statuses = append(b.Statuses, s)
	return b
}

// eval evaluates b, processed at its own time (live data).
func (te *testEngine) eval(b *model.Batch) []model.Alert { return te.Evaluate(b, b.Time) }

// only filters alerts of one rule.
func only(as []model.Alert, rule string) []model.Alert {
	var out []model.Alert
	for _, a := range as {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// north moves p m metres north.
func north(p model.Point, m float64) model.Point {
	return model.Point{Lat: p.Lat + m/111_195, Lon: p.Lon}
}

// gauge reads a metric of the engine's registry with label rule.
func gauge(t testing.TB, te *testEngine, name, rule string) float64 {
	t.Helper()
	mfs, err := te.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rule" && l.GetValue() == rule {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{rule=%q}", name, rule)
	return 0
}
