package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// statefulRules has one rule of each kind that keeps state.
const statefulRules = `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: ruins, site: mdl, name: Ruins, units: [station-mdl], circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
rules:
  - {id: seen, kind: presence, source: phone, zones: [ruins], cooldown: 30m}
  - {id: crowd, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 2}
  - {id: loiter, kind: dwell, source: phone, zones: [ruins], duration: 10m}
  - {id: patrol-in, kind: enter, source: patrol, zones: [ruins]}
  - {id: offline, kind: silence, after: 10m}
  - {id: tamper, kind: status, when: tamper}
`

var ruinsC = model.Point{Lat: 41.9612, Lon: 110.4875}

// warm drives an engine into a state with something open for every
// stateful kind, and returns the alerts it raised.
func warm(t *testing.T, e *testEngine) []model.Alert {
	t.Helper()
	var out []model.Alert
	out = append(out, e.Tick(at(22, 0))...)
	out = append(out, e.eval(e.phones("F-1", at(22, 0), ruinsC, "460000000000001", "460000000000002"))...)
	out = append(out, e.eval(e.phones("F-1", at(22, 10), ruinsC, "460000000000001", "460000000000002"))...)
	out = append(out, e.eval(e.position("P-07", at(22, 10), ruinsC))...)
	out = append(out, e.eval(e.status("F-1", at(22, 10), model.Status{Tamper: model.SomeBool(true)}))...)
	return out
}

func TestWarmOpensEverything(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := warm(t, e)
	rules := map[string]int{}
	for _, a := range got {
		rules[a.Rule]++
	}
	assert.Equal(t, map[string]int{"seen": 2, "crowd": 1, "loiter": 2, "patrol-in": 1, "tamper": 1}, rules)
	assert.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_open_incidents", "crowd"))
	assert.Equal(t, 2.0, gauge(t, e, "fenceline_alerts_open_incidents", "loiter"))
}

func TestSwap(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	warm(t, e)

	// Reload: `seen` and `crowd` unchanged, `loiter` changed, `tamper`
	// removed, a new rule added.
	next := strings.Replace(statefulRules, "duration: 10m", "duration: 20m", 1)
	next = strings.Replace(next, "  - {id: tamper, kind: status, when: tamper}\n", "  - {id: hot, kind: status, when: temp_c > 60}\n", 1)
	rs2, ps := compileYAML(t, next)
	require.Empty(t, ps)
	var log bytes.Buffer
	e.log = slog.New(slog.NewTextHandler(&log, nil))
	resolved := e.Swap(rs2)
	// The log names the rules whose incidents the swap closed.
	assert.Contains(t, log.String(), "changed=1 removed=1 added=1 resolved=3 changed_rules=loiter removed_rules=tamper")
	byRule := map[string][]model.Alert{}
	for _, a := range resolved {
		assert.Equal(t, model.StateResolved, a.State)
		byRule[a.Rule] = append(byRule[a.Rule], a)
	}
	assert.Len(t, byRule["loiter"], 2, "changed rule: its open incidents are resolved")
	assert.Len(t, byRule["tamper"], 1, "removed rule: resolved")
	assert.Empty(t, byRule["crowd"], "unchanged rule keeps its incident open")
	// A closing of fenceline's own says so, and what was closed: not "the
	// unit is back".
	assert.Equal(t, "Closed without being cleared (rule tamper removed by a reload; the condition may still hold): "+
		"Device F-1 at site mdl reports tamper true (condition: tamper), 22:10 local", byRule["tamper"][0].Summary)
	assert.Contains(t, byRule["loiter"][0].Summary, "Closed without being cleared (rule loiter changed by a reload; the condition may still hold): ")

	// Kept state: the cooldown of `seen` and the open `crowd` incident.
	got := e.eval(e.phones("F-1", at(22, 12), ruinsC, "460000000000001", "460000000000002"))
	assert.Empty(t, only(got, "seen"), "cooldown kept")
	assert.Empty(t, only(got, "crowd"), "still open: not re-raised")
	assert.Empty(t, only(got, "loiter"), "dropped state: the stay starts again at 22:12")
	// Enter state kept: still inside, no new enter.
	assert.Empty(t, e.eval(e.position("P-07", at(22, 12), ruinsC)))
}

// A snapshot is a copy: the engine goes on (evidence lists grow, incidents
// count and resolve) while it is written elsewhere, and what is written is
// the state at the snapshot. (Run with -race.)
func TestSnapshotIsACopy(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	warm(t, e)
	want, err := e.MarshalState()
	require.NoError(t, err)
	snap := e.Snapshot()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range 30 {
			ts := at(22, 12).Add(time.Duration(m) * time.Minute)
			e.eval(e.phones("F-1", ts, ruinsC, "460000000000001", "460000000000002", fmt.Sprintf("4600000000001%02d", m)))
			e.eval(e.position("P-07", ts, ruinsC))
			e.eval(e.status("F-1", ts, model.Status{Tamper: model.SomeBool(m%2 == 0)}))
			e.Tick(ts)
		}
	}()
	var got bytes.Buffer
	require.NoError(t, snap.Save(&got))
	<-done
	assert.Equal(t, string(want), got.String())
	after, err := e.MarshalState()
	require.NoError(t, err)
	assert.NotEqual(t, string(want), string(after), "the engine went on")
}

func TestStateRoundTrip(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e1 := newEngine(t, rs)
	first := warm(t, e1)
	var crowdID string
	for _, a := range first {
		if a.Rule == "crowd" {
			crowdID = a.ID
		}
	}
	data, err := e1.MarshalState()
	require.NoError(t, err)
	require.True(t, json.Valid(data))
	again, err := e1.MarshalState()
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again), "deterministic")
	// Written a rule at a time, it is what marshalling the whole snapshot
	// would give.
	whole := snapshot{Version: stateVersion, LastSeen: e1.lastSeenTimes(), Patrols: e1.patrols, Units: e1.Snapshot().units, LastOrdinal: e1.ordinal}
	for _, st := range e1.order {
		rs := e1.snapshotRule(st)
		rs.sort()
		whole.Rules = append(whole.Rules, rs)
	}
	wholeData, err := json.Marshal(whole)
	require.NoError(t, err)
	assert.Equal(t, string(wholeData), string(withoutChecksum(t, data)), "streamed state = whole snapshot")

	// "Restart": a new engine on a freshly compiled ruleset.
	rs2, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e2 := newEngine(t, rs2)
	resolved, err := e2.RestoreState(data)
	require.NoError(t, err)
	assert.Empty(t, resolved, "the same rules: nothing to resolve")
	e2.seq = e1.seq
	assert.Equal(t, 1.0, gauge(t, e2, "fenceline_alerts_open_incidents", "crowd"))
	assert.Equal(t, float64(e2.rules["crowd"].entries()), gauge(t, e2, "fenceline_alerts_state_entries", "crowd"), "before the first tick")
	assert.Positive(t, gauge(t, e2, "fenceline_alerts_state_entries", "crowd"))

	got := e2.Tick(at(22, 11))
	assert.Empty(t, got, "restart starts a silence grace period; nothing else due")
	got = append(got, e2.eval(e2.phones("F-1", at(22, 11), ruinsC, "460000000000001", "460000000000002"))...)
	got = append(got, e2.eval(e2.position("P-07", at(22, 11), ruinsC))...)
	got = append(got, e2.eval(e2.status("F-1", at(22, 11), model.Status{Tamper: model.SomeBool(true)}))...)
	assert.Empty(t, got, "nothing re-raised after the restart")

	// Open incidents are not forgotten: they resolve with the same id.
	res := only(e2.Tick(at(22, 40)), "crowd")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, crowdID, res[0].ID)
	tam := only(e2.eval(e2.status("F-1", at(22, 41), model.Status{Tamper: model.SomeBool(false)})), "tamper")
	require.Len(t, tam, 1)
	assert.Equal(t, model.StateResolved, tam[0].State)
}

// Open incidents of rules changed or removed while fenceline was stopped,
// and of devices no longer registered, are resolved at the restart, with
// their ids: nobody else ever will.
func TestRestoreStateResolvesWhatItDrops(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e1 := newEngine(t, rs)
	opened := map[string][]string{}
	for _, a := range warm(t, e1) {
		if a.Rule != "seen" && a.Rule != "patrol-in" {
			opened[a.Rule] = append(opened[a.Rule], a.ID)
		}
	}
	data, err := e1.MarshalState()
	require.NoError(t, err)

	changed := strings.Replace(statefulRules, "threshold: 2}", "threshold: 3}", 1)                         // crowd changed
	changed = strings.Replace(changed, "  - {id: loiter, kind: dwell", "  - {id: loiter2, kind: dwell", 1) // loiter removed
	changed = strings.Replace(changed, "  - {id: F-1, kind: fence", "  - {id: F-2, kind: fence", 1)        // F-1 unregistered: its tamper incident
	rs2, ps := compileYAML(t, changed)
	require.Empty(t, ps)
	e2 := newEngine(t, rs2)
	resolved, err := e2.RestoreState(data)
	require.NoError(t, err)
	got := map[string][]string{}
	for _, a := range resolved {
		require.Equal(t, model.StateResolved, a.State)
		require.NotEmpty(t, a.Summary)
		got[a.Rule] = append(got[a.Rule], a.ID)
	}
	slices.Sort(got["loiter"])
	slices.Sort(opened["loiter"])
	assert.Equal(t, opened, got)
	// Counted like any resolved alert, by the rules still configured.
	assert.Equal(t, 1.0, testutil.ToFloat64(e2.m.raised.WithLabelValues("crowd", "resolved")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e2.m.raised.WithLabelValues("tamper", "resolved")))
}

func TestRestoreStateDropsChangedRules(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e1 := newEngine(t, rs)
	warm(t, e1)
	data, err := e1.MarshalState()
	require.NoError(t, err)

	rs2, ps := compileYAML(t, strings.Replace(statefulRules, "cooldown: 30m", "cooldown: 20m", 1))
	require.Empty(t, ps)
	e2 := newEngine(t, rs2)
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	got := only(e2.eval(e2.phones("F-1", at(22, 12), ruinsC, "460000000000001")), "seen")
	assert.Len(t, got, 1, "a changed rule starts afresh")

	_, err = e2.RestoreState([]byte(`{"version":99}`))
	assert.Error(t, err)
	_, err = e2.RestoreState([]byte(`not json`))
	assert.Error(t, err)
}

func TestRepeatInterval(t *testing.T) {
	rs, ps := compileYAML(t, strings.Replace(statefulRules, "when: tamper}", "when: tamper, repeat_interval: 1h}", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	f := only(e.eval(e.status("F-1", at(10, 0), model.Status{Tamper: model.SomeBool(true)})), "tamper")
	require.Len(t, f, 1)
	assert.Empty(t, only(e.Tick(at(10, 59)), "tamper"))
	r := only(e.Tick(at(11, 0)), "tamper")
	require.Len(t, r, 1)
	assert.Equal(t, f[0].ID, r[0].ID)
	assert.Equal(t, model.StateFiring, r[0].State)
	assert.Equal(t, at(11, 0), r[0].RaisedAt)
	assert.Equal(t, 0, f[0].Repeat, "the first send")
	assert.Equal(t, 1, r[0].Repeat, "a re-send is numbered: the outbox must not take it for a duplicate")
	assert.False(t, r[0].Late, "an hour after its reading, a re-send is still the incident as it fired, not late")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.m.raised.WithLabelValues("tamper", "firing")), "re-sends are not raised alerts")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.m.resent.WithLabelValues("tamper")))
	r = only(e.Tick(at(12, 0)), "tamper")
	require.Len(t, r, 1)
	assert.Equal(t, 2, r[0].Repeat)

	// The count survives a restart: re-sends after it are not duplicates of
	// those before it either.
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := newEngine(t, rs)
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	r = only(e2.Tick(at(13, 0)), "tamper")
	require.Len(t, r, 1)
	assert.Equal(t, 3, r[0].Repeat)
}

// An engine without rules saves what the whole snapshot would be too.
func TestStateWithoutRules(t *testing.T) {
	e := New(nil, Options{}, nil, nil)
	data, err := e.MarshalState()
	require.NoError(t, err)
	want, err := json.Marshal(snapshot{Version: stateVersion, LastSeen: e.lastSeenTimes(), Patrols: e.patrols})
	require.NoError(t, err)
	assert.Equal(t, string(want), string(withoutChecksum(t, data)))
	_, err = New(nil, Options{}, nil, nil).RestoreState(data)
	require.NoError(t, err)
}

// A silence rule changed by a reload resolves its incidents and starts
// watching afresh: a device that stays silent is raised again — under a
// new id — once the new rule's limit has passed since the reload. (It kept
// the id of the incident just resolved, which the outbox took for a
// duplicate: the device was never raised again.)
func TestSilenceRuleChangedByReload(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	now := at(22, 0)
	e.clock = func() time.Time { return now }
	require.Empty(t, only(e.Tick(now), "offline"))
	first := only(e.Tick(at(22, 11)), "offline")
	require.Len(t, first, 2, "F-1 and P-07, never heard")

	now = at(22, 12)
	rs2, ps := compileYAML(t, strings.Replace(statefulRules, "after: 10m}", "after: 10m, severity: high}", 1))
	require.Empty(t, ps)
	resolved := only(e.Swap(rs2), "offline")
	require.Len(t, resolved, 2)
	for _, a := range resolved {
		require.Equal(t, model.StateResolved, a.State)
	}
	assert.Empty(t, only(e.Tick(at(22, 21)), "offline"), "the changed rule watches from the reload")
	again := only(e.Tick(at(22, 23)), "offline")
	require.Len(t, again, 2, "still silent: raised again")
	ids := map[string]bool{first[0].ID: true, first[1].ID: true}
	for _, a := range again {
		require.Equal(t, model.StateFiring, a.State)
		require.False(t, ids[a.ID], "a new incident, not the resolved one's id")
	}
}

// A status incident of a device a reload unregisters is resolved by the
// reload: the device's reports are rejected from then on, so nothing else
// would ever resolve it.
func TestSwapResolvesStatusOfRemovedDevice(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	fired := only(e.eval(e.status("F-1", at(22, 10), model.Status{Tamper: model.SomeBool(true)})), "tamper")
	require.Len(t, fired, 1)

	rs2, ps := compileYAML(t, strings.Replace(statefulRules, "  - {id: F-1, kind: fence", "  - {id: F-2, kind: fence", 1))
	require.Empty(t, ps)
	res := only(e.Swap(rs2), "tamper")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, fired[0].ID, res[0].ID)
	assert.Equal(t, 0.0, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))
}

// An incident a changed rule opens is a new one even when it starts at the
// instant of the one the change resolved (a device repeating a ts): it had
// that one's id, and the outbox dropped it as a duplicate.
func TestChangedRuleOpensNewIncidentIDs(t *testing.T) {
	rs, ps := compileYAML(t, statefulRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	tampered := model.Status{Tamper: model.SomeBool(true)}
	fired := only(e.eval(e.status("F-1", at(22, 10), tampered)), "tamper")
	require.Len(t, fired, 1)

	rs2, ps := compileYAML(t, strings.Replace(statefulRules, "when: tamper}", "when: tamper, severity: critical}", 1))
	require.Empty(t, ps)
	resolved := only(e.Swap(rs2), "tamper")
	require.Len(t, resolved, 1)
	require.Equal(t, fired[0].ID, resolved[0].ID)

	again := only(e.eval(e.status("F-1", at(22, 10), tampered)), "tamper")
	require.Len(t, again, 1)
	require.Equal(t, model.StateFiring, again[0].State)
	require.NotEqual(t, fired[0].ID, again[0].ID)
}

// A rule's own summary stays in front of a closing of fenceline's own, once.
func TestClosedByReloadKeepsTheRuleSummaryOnce(t *testing.T) {
	rules := strings.Replace(statefulRules, "{id: tamper, kind: status, when: tamper}", `{id: tamper, kind: status, when: tamper, summary: "Send a patrol"}`, 1)
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	warm(t, e)
	rs2, ps := compileYAML(t, strings.Replace(rules, `summary: "Send a patrol"`, `summary: "Send a patrol", severity: critical`, 1))
	require.Empty(t, ps)
	got := only(e.Swap(rs2), "tamper")
	require.Len(t, got, 1)
	assert.Equal(t, "Send a patrol: Closed without being cleared (rule tamper changed by a reload; the condition may still hold): "+
		"Device F-1 at site mdl reports tamper true (condition: tamper), 22:10 local", got[0].Summary)
}

// A device a reload moves under a silence rule (another site) gets the grace
// period of a device the reload adds: it is not found silent for the time
// before the reload, when no rule expected anything of it.
func TestDeviceMovedUnderASilenceRuleGetsAGracePeriod(t *testing.T) {
	rules := strings.Replace(statefulRules, "{id: offline, kind: silence, after: 10m}", "{id: offline, kind: silence, sites: [mdl], after: 10m}", 1)
	rules = strings.Replace(rules, "devices:\n", "devices:\n  - {id: F-9, kind: fence, site: bjm, lat: 41.75, lon: 110.39}\n", 1)
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	now := at(22, 0)
	e.clock = func() time.Time { return now }
	e.Tick(now)
	for _, a := range only(e.Tick(at(22, 30)), "offline") {
		require.NotEqual(t, "F-9", a.Subject.Value, "not under the rule at bjm")
	}

	now = at(22, 31)
	rs2, ps := compileYAML(t, strings.Replace(rules, "{id: F-9, kind: fence, site: bjm,", "{id: F-9, kind: fence, site: mdl,", 1))
	require.Empty(t, ps)
	e.Swap(rs2)
	silentF9 := func(now time.Time) []model.Alert {
		var out []model.Alert
		for _, a := range only(e.Tick(now), "offline") {
			if a.Subject.Value == "F-9" {
				out = append(out, a)
			}
		}
		return out
	}
	assert.Empty(t, silentF9(at(22, 32)), "moved under the rule a minute ago")
	assert.Empty(t, silentF9(at(22, 41)), "10 minutes after the reload is not more than 10 minutes")
	got := silentF9(at(22, 42))
	require.Len(t, got, 1)
	assert.True(t, at(22, 41).Equal(got[0].At), "silent since the reload: %s", got[0].At)
}

const zonedStatusRules = `
devices:
  - {id: P-1, kind: patrol, site: mdl}
  - {id: F-1, kind: fence, site: mdl, lat: LAT, lon: 110.4875}
zones:
  - {id: ruins, site: mdl, circle: {lat: 41.9612, lon: 110.4875, radius_m: 1500}}
rules:
  - {id: tamper, kind: status, zones: [ruins], when: "tamper", repeat_interval: 10m}
`

// A status incident of a rule with zones is the unit's until a report
// clears it, wherever the unit is by then: a patrol that drove out of the
// zone and reports its enclosure closed resolves it (skipped as outside
// the rule's zones, it stayed open, re-sent every 10 minutes). Outside, a
// report opens nothing.
func TestStatusIncidentResolvedOutsideItsZones(t *testing.T) {
	rs, ps := compileYAML(t, strings.ReplaceAll(zonedStatusRules, "LAT", "41.9612"))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	in := model.Point{Lat: 41.9612, Lon: 110.4875}
	tampered, closed := model.Status{Tamper: model.SomeBool(true)}, model.Status{Tamper: model.SomeBool(false)}
	e.eval(e.position("P-1", at(12, 0), in))
	fired := only(e.eval(e.status("P-1", at(12, 1), tampered)), "tamper")
	require.Len(t, fired, 1)

	e.eval(e.position("P-1", at(12, 10), north(in, 5000)))
	assert.Empty(t, only(e.eval(e.status("P-1", at(12, 11), tampered)), "tamper"), "still tampered: still open")
	res := only(e.eval(e.status("P-1", at(12, 12), closed)), "tamper")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, fired[0].ID, res[0].ID)
	assert.Contains(t, res[0].Summary, "site mdl", "not said to be in the zone it left")
	assert.Zero(t, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))
	assert.Empty(t, only(e.Tick(at(23, 0)), "tamper"))

	assert.Empty(t, only(e.eval(e.status("P-1", at(12, 20), tampered)), "tamper"), "outside the rule's zones: opens nothing")
}

// A patrol's status incident is not closed by a restart or a reload because
// the patrol was outside the rule's zones at its latest position: it is the
// unit's until a report clears it.
func TestStatusIncidentOfAPatrolOutsideItsZonesSurvivesARestart(t *testing.T) {
	rs, ps := compileYAML(t, strings.ReplaceAll(zonedStatusRules, "LAT", "41.9612"))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	in := model.Point{Lat: 41.9612, Lon: 110.4875}
	e.eval(e.position("P-1", at(12, 0), in))
	fired := only(e.eval(e.status("P-1", at(12, 1), model.Status{Tamper: model.SomeBool(true)})), "tamper")
	require.Len(t, fired, 1)
	e.eval(e.position("P-1", at(12, 10), north(in, 5000)))
	assert.Empty(t, only(e.Swap(rs), "tamper"), "a reload")
	data, err := e.MarshalState()
	require.NoError(t, err)

	e, restored := restoredAt(t, rs, data, at(12, 30))
	assert.Empty(t, only(restored, "tamper"), "a restart on the same configuration")
	res := only(e.eval(e.status("P-1", at(12, 31), model.Status{Tamper: model.SomeBool(false)})), "tamper")
	require.Len(t, res, 1)
	assert.Equal(t, fired[0].ID, res[0].ID)
	assert.Equal(t, model.StateResolved, res[0].State)
}

// A reload that moves a unit out of a status rule's zones closes its open
// incident, as one moving it out of the rule's sites does; a restart on
// such a configuration (changed while fenceline was stopped) does the same.
func TestStatusIncidentOfAUnitNoLongerWatchedIsClosed(t *testing.T) {
	rules := strings.ReplaceAll(zonedStatusRules, "LAT", "41.9612")
	moved := strings.ReplaceAll(zonedStatusRules, "LAT", "42.2000")
	otherSite := strings.Replace(rules, "{id: tamper, kind: status,", "{id: tamper, kind: status, sites: [mdl],", 1)
	otherSite2 := strings.Replace(otherSite, "{id: F-1, kind: fence, site: mdl,", "{id: F-1, kind: fence, site: bjm,", 1)
	tests := []struct {
		name, before, after string
		restart             bool
	}{
		{"reload moves it out of the zones", rules, moved, false},
		{"restart, moved out of the zones", rules, moved, true},
		{"restart, moved to a site the rule does not cover", otherSite, otherSite2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, tc.before)
			require.Empty(t, ps)
			rs2, ps := compileYAML(t, tc.after)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			fired := only(e.eval(e.status("F-1", at(12, 0), model.Status{Tamper: model.SomeBool(true)})), "tamper")
			require.Len(t, fired, 1)
			var closed []model.Alert
			if tc.restart {
				data, err := e.MarshalState()
				require.NoError(t, err)
				var restored []model.Alert
				e, restored = restoredAt(t, rs2, data, at(12, 30))
				closed = only(restored, "tamper")
			} else {
				closed = only(e.Swap(rs2), "tamper")
			}
			require.Len(t, closed, 1)
			assert.Equal(t, fired[0].ID, closed[0].ID)
			assert.Equal(t, model.StateResolved, closed[0].State)
			assert.Contains(t, closed[0].Summary, "no longer watched by the rule")
			assert.Zero(t, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))
			assert.Empty(t, only(e.Tick(at(18, 0)), "tamper"), "not re-sent")
		})
	}
}

// A silence incident of a unit a restart's configuration no longer has the
// rule watch (moved to another site while fenceline was stopped) is closed
// at the restart, as a reload closes it: nothing would resolve it, its
// messages skipped by the rule.
func TestSilenceIncidentOfAUnitNoLongerWatchedIsClosedAtRestart(t *testing.T) {
	rules := `
devices:
  - {id: F-1, kind: fence, site: SITE, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: offline, kind: silence, sites: [mdl], after: 10m}
`
	rs, ps := compileYAML(t, strings.ReplaceAll(rules, "SITE", "mdl"))
	require.Empty(t, ps)
	moved, ps := compileYAML(t, strings.ReplaceAll(rules, "SITE", "bjm"))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	t0 := at(10, 0)
	e.Tick(t0)
	e.Evaluate(e.status("F-2", t0, model.Status{BatteryPct: model.Some(80)}), t0.Add(15*time.Minute))
	fired := only(e.Tick(t0.Add(11*time.Minute)), "offline")
	require.Len(t, fired, 1)
	require.Equal(t, "F-1", fired[0].Subject.Value)
	data, err := e.MarshalState()
	require.NoError(t, err)

	e, restored := restoredAt(t, moved, data, t0.Add(30*time.Minute))
	closed := only(restored, "offline")
	require.Len(t, closed, 1)
	assert.Equal(t, fired[0].ID, closed[0].ID)
	assert.Equal(t, model.StateResolved, closed[0].State)
	assert.Contains(t, closed[0].Summary, "no longer watched by the rule")
	assert.Zero(t, gauge(t, e, "fenceline_alerts_open_incidents", "offline"))
}

// A patrol registered at its post is where its latest fix puts it, for
// status rules with zones as for the rest: judged at the post, its tamper
// in the zone it drove into was missed, and its tamper at the post raised
// the post's zone's alert after it drove away. Before any fix, it is at
// its post.
func TestStatusOfAPatrolRegisteredAtItsPost(t *testing.T) {
	rules := `
devices:
  - {id: P-1, kind: patrol, site: mdl, lat: POST}
zones:
  - {id: ruins, site: mdl, circle: {lat: 41.9612, lon: 110.4875, radius_m: 1500}}
rules:
  - {id: tamper, kind: status, zones: [ruins], when: "tamper"}
`
	in := model.Point{Lat: 41.9612, Lon: 110.4875}
	out := north(in, 35_000)
	tampered := model.Status{Tamper: model.SomeBool(true)}
	for _, tc := range []struct {
		name      string
		post, fix model.Point
		noFix     bool
		fires     bool
	}{
		{name: "post outside, fix inside", post: out, fix: in, fires: true},
		{name: "post inside, fix outside", post: in, fix: out},
		{name: "post inside, no fix yet", post: in, noFix: true, fires: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, strings.Replace(rules, "lat: POST", fmt.Sprintf("lat: %v, lon: %v", tc.post.Lat, tc.post.Lon), 1))
			require.Empty(t, ps)
			e := newEngine(t, rs)
			if !tc.noFix {
				e.eval(e.position("P-1", at(12, 0), tc.fix))
			}
			got := only(e.eval(e.status("P-1", at(12, 1), tampered)), "tamper")
			if !tc.fires {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			want := tc.fix
			if tc.noFix {
				want = tc.post
			}
			assert.Equal(t, &want, got[0].Location)
		})
	}
}

// A position report without a fix (stored at the patrol's post, as the
// contract says) does not move the patrol back to its post: its tamper in
// the zone it drove into was missed, and no enter or exit comes of it.
func TestPatrolReportWithoutAFixStaysWhereItWas(t *testing.T) {
	rules := `
devices:
  - {id: P-1, kind: patrol, site: mdl, lat: POSTLAT, lon: 110.4875}
zones:
  - {id: ruins, site: mdl, circle: {lat: 41.9612, lon: 110.4875, radius_m: 1500}}
rules:
  - {id: tamper, kind: status, zones: [ruins], when: "tamper"}
  - {id: in-ruins, kind: enter, source: patrol, zones: [ruins]}
  - {id: out-ruins, kind: exit, source: patrol, zones: [ruins]}
  - {id: patrol-seen, kind: presence, source: patrol, cooldown: 0s}
  - {id: patrol-north, kind: presence, source: patrol, cooldown: 0s, when: "lat > 42"}
`
	in := model.Point{Lat: 41.9612, Lon: 110.4875}
	post := north(in, 35_000)
	rs, ps := compileYAML(t, strings.Replace(rules, "POSTLAT", fmt.Sprint(post.Lat), 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	require.Len(t, only(e.eval(e.position("P-1", at(12, 0), in)), "in-ruins"), 1)
	noFix := e.position("P-1", at(12, 1), post)
	noFix.Positions[0].Registered = true
	assert.Empty(t, e.eval(noFix), "no exit, no presence at the post (lat > 42 there): the report says nothing of where it is")
	got := only(e.eval(e.status("P-1", at(12, 2), model.Status{Tamper: model.SomeBool(true)})), "tamper")
	require.Len(t, got, 1)
	assert.Equal(t, &in, got[0].Location)
}

// An enter or exit rule without zones watches every zone: a reload that
// redraws one changes what it does as much as for a rule that lists it,
// and it forgets who was inside, as the listing rule does. Kept, its state
// of the old shape made a patrol that did not move "leave" the zone.
func TestZonelessFenceRuleForgetsARedrawnZone(t *testing.T) {
	const rules = `
devices:
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: ruins, site: mdl, circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
  - {id: far, site: mdl, circle: {lat: 42.5, lon: 110.4875, radius_m: 500}}
rules:
  - {id: %s-listed, kind: %s, source: patrol, zones: [ruins]}
  - {id: %s-any, kind: %s, source: patrol}
`
	for _, tc := range []struct {
		kind          string
		before, after string // ruins' centre latitude
	}{
		{kind: "exit", before: "41.9612", after: "41.9000"},  // moved away from the patrol
		{kind: "enter", before: "41.9000", after: "41.9612"}, // moved onto it
	} {
		t.Run(tc.kind, func(t *testing.T) {
			yaml := fmt.Sprintf(rules, tc.kind, tc.kind, tc.kind, tc.kind)
			first := strings.Replace(yaml, "lat: 41.9612", "lat: "+tc.before, 1)
			rs, ps := compileYAML(t, first)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			e.eval(e.position("P-07", at(22, 0), ruinsC))
			e.eval(e.position("P-07", at(22, 1), ruinsC))

			rs2, ps := compileYAML(t, strings.Replace(yaml, "lat: 41.9612", "lat: "+tc.after, 1))
			require.Empty(t, ps)
			e.Swap(rs2)
			got := e.eval(e.position("P-07", at(22, 2), ruinsC)) // the same place
			listed, anyZone := only(got, tc.kind+"-listed"), only(got, tc.kind+"-any")
			require.Len(t, anyZone, len(listed), "the same as the rule that lists the zone: %v", got)
			for i := range listed {
				assert.Equal(t, listed[i].Summary, anyZone[i].Summary)
			}
			if tc.kind == "exit" {
				assert.Empty(t, anyZone, "the patrol did not move")
			}

			// A zone's units or name change nothing of what it does: the
			// state stays.
			rs3, ps := compileYAML(t, strings.Replace(strings.Replace(yaml, "lat: 41.9612", "lat: "+tc.after, 1),
				"radius_m: 500}}\n  - {id: far", "radius_m: 500}, name: Old town}\n  - {id: far", 1))
			require.Empty(t, ps)
			fingerprint := func(rs *Ruleset) string {
				for _, r := range rs.Rules {
					if r.ID == tc.kind+"-any" {
						return r.Fingerprint()
					}
				}
				return ""
			}
			assert.Equal(t, fingerprint(rs2), fingerprint(rs3))
		})
	}
}
