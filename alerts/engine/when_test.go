package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

func TestWhenAbsentNumbersNeverCompare(t *testing.T) {
	withBattery := func(v float64) *model.Status { return &model.Status{BatteryPct: model.Some(v)} }
	bare := &model.Status{Power: "solar"}
	for _, tc := range []struct {
		name string
		when string
		st   *model.Status
		want bool
	}{
		{"present and low", "battery_pct < 15", withBattery(10), true},
		{"present zero", "battery_pct < 15", withBattery(0), true},
		{"absent is not low", "battery_pct < 15", bare, false},
		{"absent is not equal to zero", "battery_pct == 0", bare, false},
		{"absent is not unequal either", "battery_pct != 50", bare, false},
		{"literal on the left", "15 > battery_pct", bare, false},
		{"or with a present field", "tamper || battery_pct < 15", &model.Status{Tamper: model.SomeBool(true)}, true},
		{"negated comparison of absent", "!(battery_pct < 15)", bare, false},
		{"negated comparison, present", "!(battery_pct < 15)", withBattery(50), true},
		{"not in, absent", "battery_pct not in [50, 60]", bare, false},
		{"not in, present", "battery_pct not in [50, 60]", withBattery(10), true},
		{"negation beside a present test", "!(battery_pct > 50) || tamper", &model.Status{Tamper: model.SomeBool(true)}, true},
		{"negation of presence", "!has_battery_pct", bare, true},
		{"explicit presence", "has_battery_pct", withBattery(50), true},
		{"explicit absence", "!has_battery_pct", bare, true},
		{"two optionals", "temp_c < battery_pct", &model.Status{TempC: model.Some(-20)}, false},
		{"strings are not guarded", `power != "mains"`, bare, true},
		{"through arithmetic", "battery_pct + 0 < 15", bare, false},
		{"through a call", "abs(battery_pct) < 15", bare, false},
		{"through negation", "-battery_pct > -15", bare, false},
		{"membership", "battery_pct in [0, 1, 2, 3]", bare, false},
		{"membership, present", "battery_pct in [0, 1, 2, 3]", withBattery(2), true},
		{"through a let", "let b = battery_pct; b < 15", bare, false},
		{"through two lets", "let b = battery_pct; let c = b * 2; c < 30", bare, false},
		{"through a let, present", "let b = battery_pct; b < 15", withBattery(10), true},
		{"absence handled by the rule", "(has_battery_pct ? battery_pct : 0) < 15", bare, true},
		{"arithmetic with a present one", "temp_c + battery_pct < 0", &model.Status{TempC: model.Some(-20)}, false},
		{"a list predicate, absent", "any([battery_pct], # < 15)", bare, false},
		{"a list predicate with a closure, absent", "all([battery_pct], {# < 15})", bare, false},
		{"a negative list predicate, absent", "none([battery_pct], # > 50)", bare, false},
		{"one of a list, absent", "one([battery_pct], # < 15)", bare, false},
		{"a list predicate, present", "any([battery_pct], # < 15)", withBattery(10), true},
		{"a list predicate over strings", `any([power], # == "solar")`, bare, true},
		{"a count over a list, absent", "count([battery_pct], # < 15) > 0", bare, false},
		// A choice whose condition reads an absent number takes its other
		// branch, as SQL's CASE does with NULL: write a negation with !.
		{"a choice takes its other branch", "battery_pct < 15 ? true : tamper", &model.Status{Tamper: model.SomeBool(true)}, true},
		{"a choice takes its other branch, if/else", "if battery_pct < 15 { true } else { tamper }", &model.Status{Tamper: model.SomeBool(true)}, true},
		{"a negation written as a choice, absent: the other branch", "battery_pct >= 15 ? false : true", bare, true},
		{"a choice on a present field", `tamper ? true : power == "solar"`, bare, true},
		{"a choice of numbers, compared", "(battery_pct < 15 ? 1 : 0) == 1", bare, false},
		{"a mapped test through first", "first(map([battery_pct], # < 15))", bare, false},
		{"a mapped test through last, piped", "map([battery_pct], # < 15) | last()", bare, false},
		{"a mapped test in a map literal", `map([battery_pct], ({"a": # < 15}))[0].a`, bare, false},
		{"a mapped test, filtered, then first", "first(filter(map([battery_pct], # < 15), true))", bare, false},
		{"a mapped test through first, present", "first(map([battery_pct], # < 15))", withBattery(10), true},
		{"a mapped test, absent", "map([battery_pct], # < 15)[0]", bare, false},
		{"a mapped test, present", "map([battery_pct], # < 15)[0]", withBattery(10), true},
		{"a reduced test, absent", "reduce([battery_pct], # < 15, false)", bare, false},
		{"a reduced test, present", "reduce([battery_pct], # < 15, false)", withBattery(10), true},
		{"a test taken out of a map", "{a: battery_pct < 15}.a", bare, false},
		{"a field of a present one, through map", `map([power], # == "solar")[0]`, bare, true},
		{"a number mapped, then compared", "map([battery_pct], # + 10)[0] < 25", bare, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps config.Problems
			prog := compileWhen(tc.when, SourceStatus, "rules.yaml", "rules[0].when", &ps)
			require.Empty(t, ps)
			b := &model.Batch{Meta: model.Meta{Site: "mdl", Device: "F-1", Kind: model.KindFence}}
			out, err := expr.Run(prog, boxEnv(&reading{src: SourceStatus, b: b, st: tc.st}, ""))
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}
}

// $env, the whole environment, is refused: through it an absent number
// reads as 0, unguarded (`$env.battery_pct < 15` fired on every report
// without a battery reading), and a rule without zones tested its zone
// against "" only.
func TestWhenReadingEnvRefused(t *testing.T) {
	for _, tc := range []struct{ when, field string }{
		{"$env.battery_pct < 15", "battery_pct"},
		{`$env["temp_c"] < 15`, "temp_c"},
		{`$env.zone == "ruins"`, "zone"},
		{`"tamper" in $env`, "battery_pct"},
	} {
		t.Run(tc.when, func(t *testing.T) {
			var ps config.Problems
			require.Nil(t, compileWhen(tc.when, SourceStatus, "rules.yaml", "rules[0].when", &ps))
			require.Len(t, ps, 1)
			assert.Contains(t, ps[0].Error(), "rules.yaml: rules[0].when: reads $env: name the field itself ("+tc.field+", not $env."+tc.field)
		})
	}
}

// The envelope's seq and the reading's time are fields too, as the
// contract's "payload names" are.
func TestWhenSeqAndTS(t *testing.T) {
	ts := time.Date(2026, 11, 26, 23, 10, 4, 0, time.FixedZone("CST", 8*3600))
	for _, tc := range []struct {
		name, when string
		want       bool
	}{
		{"seq", "seq == 18231", true},
		{"seq compared", "seq > 20000", false},
		{"ts hour, as written", "ts.Hour() == 23", true},
		{"ts against a date", `ts > date("2026-11-26T00:00:00+08:00")`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps config.Problems
			prog := compileWhen(tc.when, SourceStatus, "rules.yaml", "rules[0].when", &ps)
			require.Empty(t, ps)
			b := &model.Batch{Meta: model.Meta{Site: "mdl", Device: "F-1", Kind: model.KindFence, Seq: 18231}}
			out, err := expr.Run(prog, boxEnv(&reading{src: SourceStatus, b: b, st: &model.Status{}, t: ts}, ""))
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}
}

// A condition that fails at run time is false, counted, and logged without
// the identifier it failed on.
func TestWhenRuntimeErrorLogsNoIdentifier(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: CP-07, kind: checkpoint, site: mdl, lat: 42.3, lon: 110.15}
rules:
  - {id: odd-plate, kind: presence, source: vehicle, when: "int(plate) > 3"}
`)
	require.Empty(t, ps)
	var log bytes.Buffer
	reg := prometheus.NewRegistry()
	e := &testEngine{Engine: New(rs, Options{}, slog.New(slog.NewTextHandler(&log, nil)), reg), t: t, seq: map[string]int64{}, reg: reg}
	e.clock = func() time.Time { return at(12, 0) }
	got := e.eval(e.pass("CP-07", at(12, 0), cp07, model.Pass{Plate: "蒙B7K3Q2"}))
	require.Empty(t, got, "a failing condition is false")
	require.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_when_errors_total", "odd-plate"))
	require.Contains(t, log.String(), "rule condition failed")
	require.Contains(t, log.String(), "<withheld>")
	require.NotContains(t, log.String(), "蒙B7K3Q2")
}

// Rules with the same condition share its answer on a reading (the engine
// works it out once): each reading of a message still gets its own, and a
// rule with another condition, or one that reads `zone`, its own.
func TestSharedConditionAnsweredPerReading(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: CP-A, kind: checkpoint, site: mdl, lat: 42.30, lon: 110.15}
rules:
  - {id: fast-a, kind: presence, source: vehicle, cooldown: 0s, when: 'speed_kmh > 120'}
  - {id: slow, kind: presence, source: vehicle, cooldown: 0s, when: 'speed_kmh <= 120'}
  - {id: fast-b, kind: presence, source: vehicle, cooldown: 0s, when: 'speed_kmh > 120'}
  - {id: no-zone, kind: presence, source: vehicle, cooldown: 0s, when: 'speed_kmh > 120 && zone == ""'}
`)
	require.Empty(t, ps)
	shared := map[string]int{}
	for _, r := range rs.Rules {
		shared[r.ID] = r.whenSlot
	}
	assert.Equal(t, map[string]int{"fast-a": 0, "slow": 1, "fast-b": 0, "no-zone": -1}, shared)
	e := newEngine(t, rs)
	b := e.pass("CP-A", at(12, 0), cp07, model.Pass{Plate: "蒙B00001", SpeedKmh: model.Some(150)})
	for i, kmh := range []float64{90, 130} {
		b.Passes = append(b.Passes, model.Pass{Stamp: model.Stamp{Time: b.Time, Index: i + 1}, Loc: cp07,
			Plate: fmt.Sprintf("蒙B0000%d", i+2), SpeedKmh: model.Some(kmh)})
	}
	var fired []string
	for _, a := range e.eval(b) {
		fired = append(fired, a.Rule+" "+a.Subject.Value)
	}
	assert.Equal(t, []string{
		"fast-a 蒙B00001", "fast-b 蒙B00001", "no-zone 蒙B00001",
		"slow 蒙B00002",
		"fast-a 蒙B00003", "fast-b 蒙B00003", "no-zone 蒙B00003",
	}, fired)
}
