package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// benchWorld is a deployment ten times the seed one: 1,000 zones, 50 rules
// of every kind, 50 fences, 100 checkpoints, 16 patrols, and the normal
// traffic of a working day, which must raise no alert.
func benchWorld(tb testing.TB) (*Ruleset, []*model.Batch) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r config.Rules
	f := func(v float64) *float64 { return &v }
	// Zones: 1,000 circles of 300 m to 3 km over 40–43 N, 109–112 E.
	centres := make([]model.Point, 1000)
	for i := range centres {
		c := model.Point{Lat: 40 + 3*rng.Float64(), Lon: 109 + 3*rng.Float64()}
		centres[i] = c
		r.Zones = append(r.Zones, config.ZoneSpec{ID: fmt.Sprintf("z%04d", i), Site: "s", Name: fmt.Sprintf("Zone %d", i),
			Units: []string{"station"}, Circle: &config.CircleSpec{Lat: c.Lat, Lon: c.Lon, RadiusM: 300 + 2700*rng.Float64()}})
	}
	// Fences stand inside the first 50 zones, checkpoints anywhere.
	for i := 0; i < 50; i++ {
		c := centres[i]
		r.Devices = append(r.Devices, config.DeviceSpec{ID: fmt.Sprintf("F-%02d", i), Kind: "fence", Site: "s", Lat: f(c.Lat), Lon: f(c.Lon)})
	}
	for i := 0; i < 100; i++ {
		r.Devices = append(r.Devices, config.DeviceSpec{ID: fmt.Sprintf("CP-%03d", i), Kind: "checkpoint", Site: "s",
			Lat: f(40 + 3*rng.Float64()), Lon: f(109 + 3*rng.Float64())})
	}
	for i := 0; i < 16; i++ {
		r.Devices = append(r.Devices, config.DeviceSpec{ID: fmt.Sprintf("P-%02d", i), Kind: "patrol", Site: "s"})
	}
	r.Watchlists = map[string]config.WatchlistSpec{
		"foreign-sim": {Kind: "imsi", Entries: []string{"428*", "250*"}},
		"plates":      {Kind: "plate", Entries: []string{"蒙B7K3Q2", "蒙B9X8Y7"}},
	}
	zonesOf := func(i int) []string {
		var zs []string
		for j := 0; j < 5; j++ {
			zs = append(zs, fmt.Sprintf("z%04d", (i*5+j)%1000))
		}
		return zs
	}
	night := &config.ScheduleSpec{TZ: "Asia/Shanghai", Windows: []config.WindowSpec{{From: "20:00", To: "06:00"}}}
	add := func(s config.RuleSpec) {
		s.ID = fmt.Sprintf("r%02d-%s", len(r.Rules), s.Kind)
		r.Rules = append(r.Rules, s)
	}
	for i := 0; i < 20; i++ {
		add(config.RuleSpec{Kind: "presence", Source: "phone", Zones: zonesOf(i), Schedule: night})
	}
	for i := 0; i < 5; i++ {
		add(config.RuleSpec{Kind: "presence", Source: "phone", Watchlist: "foreign-sim"})
	}
	for i := 0; i < 3; i++ {
		add(config.RuleSpec{Kind: "presence", Source: "vehicle", Watchlist: "plates"})
	}
	for i := 0; i < 5; i++ {
		add(config.RuleSpec{Kind: "count", Source: "phone", Zones: zonesOf(i), Window: config.Duration(15 * time.Minute), Threshold: 50})
	}
	for i := 0; i < 5; i++ {
		add(config.RuleSpec{Kind: "dwell", Source: "phone", Zones: zonesOf(i + 5), Duration: config.Duration(24 * time.Hour)})
	}
	for i := 0; i < 3; i++ {
		add(config.RuleSpec{Kind: "velocity", Source: "vehicle", MaxKmh: 180 + float64(i)})
	}
	for i := 0; i < 3; i++ {
		add(config.RuleSpec{Kind: "enter", Source: "patrol", Zones: zonesOf(i + 100), HysteresisM: 50})
	}
	for i := 0; i < 2; i++ {
		add(config.RuleSpec{Kind: "presence", Source: "vehicle", When: `direction == "outbound" && speed_kmh > 120`})
	}
	for i := 0; i < 2; i++ {
		add(config.RuleSpec{Kind: "status", When: "tamper || (battery_pct > 0 && battery_pct < 15)"})
	}
	for i := 0; i < 2; i++ {
		add(config.RuleSpec{Kind: "silence", After: config.Duration(10 * time.Minute)})
	}
	rs, ps := Compile(&r, Options{})
	if len(ps) > 0 {
		tb.Fatal(ps)
	}
	if len(rs.Rules) != 50 {
		tb.Fatalf("%d rules", len(rs.Rules))
	}

	// Traffic: per round, each fence reports 10 of its 30 regular phones,
	// each checkpoint one of its 50 regular vehicles, each patrol a fix
	// jittering around its post, and one device its status.
	var batches []*model.Batch
	seq := map[string]int64{}
	mk := func(dev string, stream model.Stream) *model.Batch {
		d := rs.Registry.Lookup(dev)
		seq[dev]++
		return &model.Batch{Meta: model.Meta{Site: d.Site, Kind: d.Kind, Device: dev, Stream: stream, Seq: seq[dev]}, Device: d}
	}
	for round := 0; round < 20; round++ {
		for i := 0; i < 50; i++ {
			b := mk(fmt.Sprintf("F-%02d", i), model.StreamDetections)
			for k := 0; k < 10; k++ {
				imsi := fmt.Sprintf("4600%02d%09d", i%100, rng.IntN(30))
				b.Detections = append(b.Detections, model.Detection{Loc: b.Device.Pos, IMSI: imsi,
					MCC: "460", MNC: "00", Operator: "46000", Tech: "lte", Stamp: model.Stamp{Index: k}})
			}
			batches = append(batches, b)
		}
		for i := 0; i < 100; i++ {
			b := mk(fmt.Sprintf("CP-%03d", i), model.StreamPasses)
			b.Passes = append(b.Passes, model.Pass{Loc: b.Device.Pos, Plate: fmt.Sprintf("蒙B%03d%02d", i, rng.IntN(50)),
				Direction: []string{"inbound", "outbound"}[rng.IntN(2)], SpeedKmh: model.Some(40 + 60*rng.Float64())})
			batches = append(batches, b)
		}
		for i := 0; i < 16; i++ {
			b := mk(fmt.Sprintf("P-%02d", i), model.StreamPosition)
			post := north(centres[500+i], 5000) // well away from the enter rules' zones' edges
			b.Positions = append(b.Positions, model.Position{Loc: north(post, 10*rng.Float64())})
			batches = append(batches, b)
		}
		b := mk(fmt.Sprintf("F-%02d", round), model.StreamStatus)
		b.Statuses = append(b.Statuses, model.Status{BatteryPct: model.Some(80), Tamper: model.SomeBool(false)})
		batches = append(batches, b)
	}
	return rs, batches
}

// setTime stamps every reading of b with t.
func setTime(b *model.Batch, t time.Time) {
	b.Time = t
	for i := range b.Detections {
		b.Detections[i].Time = t
	}
	for i := range b.Passes {
		b.Passes[i].Time = t
	}
	for i := range b.Positions {
		b.Positions[i].Time = t
	}
	for i := range b.Statuses {
		b.Statuses[i].Time = t
	}
}

func BenchmarkEvaluate(b *testing.B) {
	rs, batches := benchWorld(b)
	e := New(rs, Options{}, nil, nil)
	t := time.Date(2026, 11, 26, 8, 0, 0, 0, shanghai)
	step := 10 * time.Millisecond
	// Warm up: one pass over the traffic builds the steady state (the
	// patrols' first fixes, the subjects' windows).
	for _, bt := range batches {
		setTime(bt, t)
		e.Evaluate(bt, t)
		t = t.Add(step)
	}
	readings := 0
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		bt := batches[i%len(batches)]
		setTime(bt, t)
		if as := e.Evaluate(bt, t); len(as) > 0 {
			b.Fatalf("normal traffic raised %d alerts: %+v", len(as), as[0])
		}
		readings += bt.Len()
		t = t.Add(step)
	}
	elapsed := time.Since(start)
	cpu1, _ := threadCPU()
	b.StopTimer()
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(readings), "cpu-ns/reading")
	}
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(readings), "ns/reading")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(readings), "allocs/reading")
}
