package engine

import (
	"testing"

	"github.com/expr-lang/expr"
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
		{"negated comparison of absent", "!(battery_pct < 15)", bare, true},
		{"explicit presence", "has_battery_pct", withBattery(50), true},
		{"explicit absence", "!has_battery_pct", bare, true},
		{"two optionals", "temp_c < battery_pct", &model.Status{TempC: model.Some(-20)}, false},
		{"strings are not guarded", `power != "mains"`, bare, true},
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
