package engine

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/state.golden.json from the current code")

// goldenRules are the stateful rules plus dwell rules of every shape: with
// zones (two of them), and without (per site).
const goldenRules = statefulRules + `  - {id: linger, kind: dwell, source: phone, zones: [ruins, gate], duration: 10m, max_gap: 5m}
  - {id: camp, kind: dwell, source: phone, duration: 20m}
`

// goldenState drives an engine into a state with dwell stays of every
// shape: open and not; evidence lists short, full and rotated; backlog
// stays; times with the offsets of UTC, of a named zone and of a fixed one,
// processed at times in other zones than their readings'.
func goldenState(t *testing.T) *testEngine {
	t.Helper()
	e := goldenEngine(t)
	gate := model.Point{Lat: 41.9700, Lon: 110.5000}
	fixed := time.FixedZone("", -3*3600)
	eval := func(b *model.Batch, now time.Time) { e.Evaluate(b, now) }
	e.Tick(at(22, 0))
	// A and B at the ruins, C at the gate, from 22:00 (Asia/Shanghai).
	eval(e.phones("F-1", at(22, 0), ruinsC, "460000000000001", "460000000000002"), at(22, 0).UTC())
	eval(e.phones("F-2", at(22, 0), gate, "460000000000003"), at(22, 0).Add(time.Second))
	// A every minute, in UTC: its stay opens at 22:10 and its evidence
	// list fills and rotates.
	for m := 1; m <= 13; m++ {
		ts := at(22, m).UTC().Add(time.Duration(m) * 1234567 * time.Nanosecond)
		eval(e.phones("F-1", ts, ruinsC, "460000000000001"), ts.Add(2*time.Second).In(fixed))
	}
	// B in a fixed offset, three messages; C once more at the gate.
	for m := 2; m <= 6; m += 2 {
		ts := at(22, m).In(fixed)
		eval(e.phones("F-1", ts, north(ruinsC, float64(10*m)), "460000000000002"), ts.Add(time.Second))
	}
	eval(e.phones("F-2", at(22, 4), gate, "460000000000003", "460000000000001"), at(22, 4))
	// A backlog: A at the ruins from 21:20 to 21:41, delivered late (a
	// backlog stay that opens), and B's from 21:00 (one that does not).
	for m := 20; m <= 41; m += 3 {
		ts := at(21, m)
		eval(e.phones("F-1", ts, ruinsC, "460000000000001"), at(22, 14))
	}
	eval(e.phones("F-1", at(21, 0), ruinsC, "460000000000002"), at(22, 14).UTC())
	return e
}

// goldenEngine is a new engine on goldenRules, with a second fence and
// zone.
func goldenEngine(t *testing.T) *testEngine {
	t.Helper()
	y := goldenRules
	y = replaceOnce(t, y, "devices:\n", "devices:\n  - {id: F-2, kind: fence, site: mdl, lat: 41.9700, lon: 110.5000}\n")
	y = replaceOnce(t, y, "rules:\n", "  - {id: gate, site: mdl, name: Gate, circle: {lat: 41.9700, lon: 110.5000, radius_m: 300}}\nrules:\n")
	rs, ps := compileYAML(t, y)
	require.Empty(t, ps)
	return newEngine(t, rs)
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	t.Fatalf("no %q", old)
	return ""
}

// The saved state is byte for byte what it was for the same state (the
// golden file was written by the code before the dwell state's layout
// changed), and a state file of that format restores to a state that is
// saved as the same bytes.
func TestStateGolden(t *testing.T) {
	e := goldenState(t)
	for _, id := range []string{"loiter", "linger", "camp"} {
		st := e.rules[id]
		require.NotEmpty(t, st.dwell, id)
	}
	got, err := e.MarshalState()
	require.NoError(t, err)
	path := filepath.Join("testdata", "state.golden.json")
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	e2 := goldenEngine(t) // "restart"
	e2.seq = maps.Clone(e.seq)
	resolved, err := e2.RestoreState(want)
	require.NoError(t, err)
	assert.Empty(t, resolved)
	again, err := e2.MarshalState()
	require.NoError(t, err)
	assert.Equal(t, string(want), string(again), "restored, then saved again")

	// The restored engine goes on as the one it was saved from. Its times
	// have the locations JSON gives them: alerts are compared as JSON, in
	// an order of their own (Tick's follows the maps'); silence starts
	// again at a restart.
	asJSON := func(as []model.Alert) []string {
		var out []string
		for _, a := range as {
			if a.Rule == "offline" {
				continue
			}
			b, err := json.Marshal(a)
			require.NoError(t, err)
			out = append(out, string(b))
		}
		slices.Sort(out)
		return out
	}
	b1 := e.phones("F-1", at(22, 15), ruinsC, "460000000000001", "460000000000002")
	b2 := e2.phones("F-1", at(22, 15), ruinsC, "460000000000001", "460000000000002")
	got1 := asJSON(e.Evaluate(b1, at(22, 15)))
	assert.NotEmpty(t, got1)
	assert.Equal(t, got1, asJSON(e2.Evaluate(b2, at(22, 15))))
	got1 = asJSON(e.Tick(at(22, 40)))
	assert.NotEmpty(t, got1)
	assert.Equal(t, got1, asJSON(e2.Tick(at(22, 40))))
	// And the state it comes to is the same, but for silence's — and the
	// alerts' ordinals, which the silence alerts only one of them raised
	// have moved on.
	for _, e := range []*testEngine{e, e2} {
		clear(e.rules["offline"].silence)
	}
	ordinals := regexp.MustCompile(`"(last_)?ordinal":[0-9]+`)
	s1, err := e.MarshalState()
	require.NoError(t, err)
	s2, err := e2.MarshalState()
	require.NoError(t, err)
	assert.Equal(t, ordinals.ReplaceAllString(string(withoutChecksum(t, s1)), ""), ordinals.ReplaceAllString(string(withoutChecksum(t, s2)), ""))
}

// A state saved before cooldowns kept spans (fire times without `until`)
// restores to the same state: saved again, it is the same bytes, and each
// fire time is a span of one.
func TestStateBeforeSpansRestores(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "state.before-spans.json"))
	require.NoError(t, err)
	require.NotContains(t, string(old), `"until"`)
	e := goldenEngine(t)
	_, err = e.RestoreState(old)
	require.NoError(t, err)
	again, err := e.MarshalState()
	require.NoError(t, err)
	assert.Equal(t, string(old), string(again))
	ce := e.rules["seen"].cool
	require.NotEmpty(t, ce)
	for _, c := range ce {
		for i := range c.Fired {
			first, last := c.span(i)
			assert.Equal(t, first, last, "a span of one fire time")
		}
	}
}
