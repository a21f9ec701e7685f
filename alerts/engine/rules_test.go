package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

func TestScheduleAcrossMidnight(t *testing.T) {
	compile := func(ws ...config.WindowSpec) *schedule {
		var ps config.Problems
		s := compileSchedule(&config.ScheduleSpec{TZ: "Asia/Shanghai", Windows: ws}, time.UTC, "f", "k", &ps)
		require.Empty(t, ps)
		return s
	}
	night := compile(config.WindowSpec{From: "20:00", To: "06:00"})
	friNight := compile(config.WindowSpec{From: "20:00", To: "06:00", Days: []string{"fri"}})
	day := compile(config.WindowSpec{From: "08:00", To: "24:00"})
	saturday := compile(config.WindowSpec{From: "00:00", To: "24:00", Days: []string{"sat"}}) // what check advises for a whole day
	// 2026-11-27 is a Friday.
	d := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, shanghai) }
	tests := []struct {
		name string
		s    *schedule
		t    time.Time
		want bool
	}{
		{"23:00 is in", night, d(26, 23, 0), true},
		{"05:59 is in", night, d(27, 5, 59), true},
		{"06:00 is out", night, d(27, 6, 0), false},
		{"12:00 is out", night, d(27, 12, 0), false},
		{"20:00 is in", night, d(27, 20, 0), true},
		{"19:59 is out", night, d(27, 19, 59), false},
		{"UTC instant read in Shanghai", night, time.Date(2026, 11, 26, 15, 30, 0, 0, time.UTC), true}, // 23:30 local
		{"UTC noon is 20:00 local", night, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), true},
		{"friday night window, Friday 21:00", friNight, d(27, 21, 0), true},
		{"friday night window, Saturday 05:00", friNight, d(28, 5, 0), true},
		{"friday night window, Thursday 21:00", friNight, d(26, 21, 0), false},
		{"friday night window, Friday 05:00 (Thursday's)", friNight, d(27, 5, 0), false},
		{"to 24:00, 23:59", day, d(27, 23, 59), true},
		{"to 24:00, 00:00", day, d(28, 0, 0), false},
		{"whole Saturday, 00:00", saturday, d(28, 0, 0), true},
		{"whole Saturday, 23:59", saturday, d(28, 23, 59), true},
		{"whole Saturday, Friday 23:59", saturday, d(27, 23, 59), false},
		{"whole Saturday, Sunday 00:00", saturday, d(29, 0, 0), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.s.active(tc.t))
		})
	}
}

func TestPresence(t *testing.T) {
	tests := []struct {
		name  string
		when  time.Time
		loc   model.Point
		imsi  string
		fires bool
	}{
		{"at night in the ruins", at(23, 10), ruinsIn, "460001234567890", true},
		{"at noon in the ruins", at(12, 0), ruinsIn, "460001234567890", false},
		{"at night outside the ruins", at(23, 10), ruinsOut, "460001234567890", false},
		{"at 05:59", at(5, 59), ruinsIn, "460001234567890", true},
		{"at 06:00", at(6, 0), ruinsIn, "460001234567890", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			got := only(e.eval(e.phones("F-AOL-01", tc.when, tc.loc, tc.imsi)), "night-phone-ruins")
			if !tc.fires {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			a := got[0]
			assert.Equal(t, model.StateFiring, a.State)
			assert.Equal(t, "high", a.Severity)
			assert.Equal(t, "mdl", a.Site)
			assert.Equal(t, "aolunsumu-ruins", a.Zone)
			assert.Equal(t, model.Subject{Kind: "imsi", Value: tc.imsi}, a.Subject)
			assert.Equal(t, []string{"station-mdl"}, a.Notify)
			assert.Equal(t, tc.when, a.At)
			assert.Equal(t, &tc.loc, a.Location)
			assert.Equal(t, 1, a.Count)
			assert.Equal(t, []model.Evidence{{Device: "F-AOL-01", Seq: 1, TS: tc.when}}, a.Evidence)
			assert.False(t, a.Late)
			assert.Len(t, a.ID, idHexLen)
			assert.Contains(t, a.Summary, "Aolunsumu ancient city (aolunsumu-ruins)")
			assert.Contains(t, a.Summary, tc.when.Format("15:04")+" local")
		})
	}
}

func TestPresenceCooldown(t *testing.T) {
	e := newEngine(t, loadRules(t))
	const imsi = "460001234567890"
	steps := []struct {
		name  string
		t     time.Time
		imsi  string
		fires bool
	}{
		{"first sighting", at(23, 10), imsi, true},
		{"10 minutes later: within the 30m cooldown", at(23, 20), imsi, false},
		{"another phone is its own subject", at(23, 21), "460001234567891", true},
		{"29 minutes after the first", at(23, 39), imsi, false},
		{"31 minutes after the first", at(23, 41), imsi, true},
	}
	for _, s := range steps {
		got := only(e.eval(e.phones("F-AOL-01", s.t, ruinsIn, s.imsi)), "night-phone-ruins")
		assert.Equal(t, s.fires, len(got) == 1, s.name)
	}
}

// A backlog replayed for an earlier evening raises one alert per cooldown
// of it, and those fire times never take the place of the latest live one:
// four of them once pushed it out of the key's slots, and the live phone's
// next reading, within the cooldown, fired again.
func TestCooldownBacklogKeepsTheLatestFireTime(t *testing.T) {
	e := newEngine(t, loadRules(t))
	const imsi, rule = "428991234567890", "foreign-sim-near-border"
	live := at(23, 0)
	require.Len(t, only(e.Evaluate(e.phones("F-AOL-01", live, ruinsIn, imsi), live), rule), 1)
	for i := range 2 * cooldownSlots {
		ts := at(18, 0).Add(time.Duration(i) * 15 * time.Minute) // 15 min apart: each past the 10m cooldown
		require.Len(t, only(e.Evaluate(e.phones("F-AOL-01", ts, ruinsIn, imsi), live.Add(time.Minute)), rule), 1, "backlog reading %d", i)
	}
	assert.Empty(t, only(e.Evaluate(e.phones("F-AOL-01", live.Add(3*time.Minute), ruinsIn, imsi), live.Add(3*time.Minute)), rule))
}

// A cooldown outlives its own length in processing time: a unit's reading
// from within it that arrives after a Tick past the cooldown (the unit's
// link was down) does not fire again.
func TestCooldownKeptForLateReadings(t *testing.T) {
	e := newEngine(t, loadRules(t))
	const imsi, rule = "428991234567890", "foreign-sim-near-border"
	require.Len(t, only(e.eval(e.phones("F-AOL-01", at(22, 0), ruinsIn, imsi)), rule), 1)
	e.Tick(at(22, 11))
	assert.Empty(t, only(e.Evaluate(e.phones("F-AOL-01", at(22, 5), ruinsIn, imsi), at(22, 12)), rule),
		"22:05 is within the 10m cooldown of the 22:00 alert")
	later := at(22, 12).Add(CooldownHorizon + time.Minute) // past the horizon since the key last matched
	e.Tick(later)
	assert.Len(t, only(e.Evaluate(e.phones("F-AOL-01", at(22, 7), ruinsIn, imsi), later), rule), 1,
		"forgotten after the horizon")
}

func TestForeignSIM(t *testing.T) {
	tests := []struct {
		name, imsi string
		fires      bool
	}{
		{"Mongolian SIM (428 prefix)", "428991234567890", true},
		{"Chinese SIM", "460001234567890", false},
		{"prefix must be at the start", "460428123456789", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			got := only(e.eval(e.phones("F-AOL-01", at(12, 0), ruinsOut, tc.imsi)), "foreign-sim-near-border")
			if !tc.fires {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, "critical", got[0].Severity)
			assert.Equal(t, "", got[0].Zone, "zone-less rule")
			assert.Contains(t, got[0].Summary, "(Mongolia, MCC 428)")
			assert.Contains(t, got[0].Summary, "foreign-sim")
		})
	}
}

func TestWatchlistPlate(t *testing.T) {
	tests := []struct {
		name, plate string
		fires       bool
	}{
		{"listed inline", "蒙B7K3Q2", true},
		{"listed in the file in lower case", "蒙B9X8Y7", true},
		{"not listed", "蒙B12345", false},
		{"no plate read", model.NoPlate, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			got := only(e.eval(e.pass("CP-07", at(12, 0), cp07, model.Pass{Plate: tc.plate})), "plate-of-interest")
			assert.Equal(t, tc.fires, len(got) == 1)
			if tc.fires {
				assert.Equal(t, model.Subject{Kind: "plate", Value: tc.plate}, got[0].Subject)
			}
		})
	}
}

func TestFastOutbound(t *testing.T) {
	tests := []struct {
		name  string
		pass  model.Pass
		fires bool
	}{
		{"outbound at 130", model.Pass{Plate: "蒙B12345", Direction: "outbound", SpeedKmh: model.Some(130)}, true},
		{"outbound at 100", model.Pass{Plate: "蒙B12345", Direction: "outbound", SpeedKmh: model.Some(100)}, false},
		{"inbound at 130", model.Pass{Plate: "蒙B12345", Direction: "inbound", SpeedKmh: model.Some(130)}, false},
		{"outbound, speed absent (zero)", model.Pass{Plate: "蒙B12345", Direction: "outbound"}, false},
		{"no plate, outbound at 150", model.Pass{Plate: model.NoPlate, Direction: "outbound", SpeedKmh: model.Some(150)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			got := only(e.eval(e.pass("CP-07", at(12, 0), cp07, tc.pass)), "fast-outbound")
			require.Equal(t, tc.fires, len(got) == 1)
			if tc.fires {
				assert.Equal(t, tc.pass.Plate, got[0].Subject.Value)
				// The summary says why it fired.
				assert.Contains(t, got[0].Summary, fmt.Sprintf(", outbound at %.0f km/h at ", tc.pass.SpeedKmh.V))
				assert.Contains(t, got[0].Summary, `(condition: direction == "outbound" and speed_kmh > 120)`)
			}
		})
	}
}

const countRules = `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
zones:
  - {id: ruins, site: mdl, name: Ruins, units: [station-mdl], circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
rules:
  - {id: crowd, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3, notify: [joint-command]}
  - {id: loiter, kind: dwell, source: phone, zones: [ruins], duration: 45m, max_gap: 10m}
`

func TestCount(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	see := func(ts time.Time, imsis ...string) []model.Alert {
		return only(e.eval(e.phones("F-1", ts, loc, imsis...)), "crowd")
	}
	assert.Empty(t, see(at(22, 0), "460000000000001", "460000000000002"), "two phones")
	assert.Empty(t, see(at(22, 1), "460000000000001"), "the same phone again is not a third")
	fired := see(at(22, 5), "460000000000003")
	require.Len(t, fired, 1, "third distinct phone reaches the threshold")
	f := fired[0]
	assert.Equal(t, 3, f.Count)
	assert.Equal(t, "ruins", f.Zone)
	assert.Equal(t, model.Subject{Kind: "zone", Value: "ruins"}, f.Subject)
	assert.Equal(t, []string{"joint-command", "station-mdl"}, f.Notify)
	assert.Len(t, f.Evidence, 3)
	assert.Empty(t, see(at(22, 6), "460000000000004"), "firing once, not per reading")

	// 22:14: the phones of 22:00 leave the window at 22:15, but 22:01's
	// phone 1 and 22:05's 3 and 22:06's 4 remain: still 3.
	assert.Empty(t, see(at(22, 15), "460000000000004"))
	// Nothing more; on tick at 22:17 the window (22:02, 22:17] holds 3 and 4.
	res := only(e.Tick(at(22, 17)), "crowd")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, f.ID, res[0].ID, "resolved shares the firing's id")
	assert.Equal(t, 0.0, gauge(t, e, "fenceline_alerts_open_incidents", "crowd"))

	// Readings older than the window are a backlog: they are counted in a
	// window of their own time (TestCountBacklog), and do not touch this one.
	assert.Empty(t, see(at(21, 0), "460000000000009", "460000000000008"))
}

// A crowd reported in one message is counted whole before its firing goes
// out: 30 phones at once are "30 phones", not the threshold's 3; a crowd
// that grows later is told by the re-sends, count and summary alike.
func TestCountFiringCountsItsWholeMessage(t *testing.T) {
	rs, ps := compileYAML(t, strings.Replace(countRules, "threshold: 3,", "threshold: 3, repeat_interval: 5m,", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	imsis := func(from, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("4600000000%05d", from+i))
		}
		return out
	}
	fired := only(e.Evaluate(e.phones("F-1", at(22, 0), loc, imsis(0, 30)...), at(22, 0)), "crowd")
	require.Len(t, fired, 1)
	f := fired[0]
	assert.Equal(t, 30, f.Count)
	assert.True(t, strings.HasPrefix(f.Summary, "30 phones within 15 min at Ruins (ruins) (threshold 3)"), f.Summary)
	assert.Len(t, f.Evidence, 1, "one message")

	// Ten more at 22:01; the re-send at 22:05 says 40, in both.
	assert.Empty(t, only(e.Evaluate(e.phones("F-1", at(22, 1), loc, imsis(30, 10)...), at(22, 1)), "crowd"))
	again := only(e.Tick(at(22, 5)), "crowd")
	require.Len(t, again, 1)
	assert.Equal(t, f.ID, again[0].ID)
	assert.Equal(t, 1, again[0].Repeat)
	assert.Equal(t, 40, again[0].Count)
	assert.True(t, strings.HasPrefix(again[0].Summary, "40 phones within 15 min"), again[0].Summary)
}

// Every alert fired has an ordinal of its own (its InfluxDB point time);
// an incident's re-sends and resolution share its firing's, across a
// restart too; numbering goes on past what the outbox took.
func TestAlertOrdinals(t *testing.T) {
	rules := strings.Replace(countRules, "threshold: 3,", "threshold: 3, repeat_interval: 5m,", 1)
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	fired := only(e.Evaluate(e.phones("F-1", at(22, 0), loc, "460000000000001", "460000000000002", "460000000000003"), at(22, 0)), "crowd")
	require.Len(t, fired, 1)
	ord := fired[0].Ordinal
	require.NotZero(t, ord)
	again := only(e.Tick(at(22, 5)), "crowd")
	require.Len(t, again, 1)
	assert.Equal(t, ord, again[0].Ordinal, "a re-send")

	data, err := e.MarshalState()
	require.NoError(t, err)
	rs2, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e2 := newEngine(t, rs2)
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	again = only(e2.Tick(at(22, 10)), "crowd")
	require.Len(t, again, 1)
	assert.Equal(t, ord, again[0].Ordinal, "a re-send after a restart")
	require.Len(t, e2.OpenFirings(), 1)
	assert.Equal(t, ord, e2.OpenFirings()[0].Ordinal)
	res := only(e2.Tick(at(22, 40)), "crowd")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, ord, res[0].Ordinal, "the resolution (its point is in the other half of the millisecond)")

	e2.OrdinalsFrom(5000)
	next := only(e2.Evaluate(e2.phones("F-1", at(23, 0), loc, "460000000000004", "460000000000005", "460000000000006"), at(23, 0)), "crowd")
	require.Len(t, next, 1)
	assert.Equal(t, uint64(5001), next[0].Ordinal)
}

// A window Tick drops (drained) is gone for the next reading too, though
// the rule remembers its zone's window by the zone's index (countAt): the
// next crowd is counted in a window of its own, from nothing.
func TestCountWindowDroppedByTickStartsAgain(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	see := func(ts time.Time, imsis ...string) []model.Alert {
		return only(e.eval(e.phones("F-1", ts, loc, imsis...)), "crowd")
	}
	assert.Empty(t, see(at(22, 0), "460000000000001", "460000000000002"))
	assert.Empty(t, only(e.Tick(at(22, 30)), "crowd"))
	st := e.rules["crowd"]
	require.Empty(t, st.count, "the drained window is dropped")
	assert.Empty(t, see(at(22, 31), "460000000000003"), "one phone in the new window, not three")
	require.Len(t, st.count, 1)
	assert.Len(t, st.count["ruins"].Seen, 1)
	fired := see(at(22, 32), "460000000000004", "460000000000005")
	require.Len(t, fired, 1)
	assert.Equal(t, 3, fired[0].Count)
}

// A unit's backlog delivered after newer readings of its zone is counted in
// the backlog's own time: a crowd of hours ago is raised, late, as the
// docs promise ("fenceline raises the alerts of the period the backlog
// covers"), and drains on its own.
func TestCountBacklog(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	now := at(23, 0)
	see := seeAt(e, "crowd", now)
	require.Empty(t, see(now.Add(-2*time.Second), "460000000000001"), "a live phone")
	require.Empty(t, see(at(20, 0), "460000000000101"))
	require.Empty(t, see(at(20, 1), "460000000000102"))
	fired := see(at(20, 2), "460000000000103")
	require.Len(t, fired, 1, "three phones within 15 minutes, three hours ago")
	assert.Equal(t, model.StateFiring, fired[0].State)
	assert.True(t, fired[0].Late)
	assert.Equal(t, at(20, 2), fired[0].At)
	assert.Equal(t, 3, fired[0].Count)
	assert.Len(t, fired[0].Evidence, 3)

	// The live window is untouched: two more live phones make three.
	live := see(now.Add(-time.Second), "460000000000002", "460000000000003")
	require.Len(t, live, 1)
	assert.NotEqual(t, fired[0].ID, live[0].ID)
	assert.False(t, live[0].Late)

	// It survives a restart, and with nothing more of the backlog, its
	// window drains in processing time.
	e = restart(t, e, countRuleset(t))
	var resolved []model.Alert
	for _, a := range only(e.Tick(now.Add(16*time.Minute)), "crowd") {
		if a.ID == fired[0].ID {
			resolved = append(resolved, a)
		}
	}
	require.Len(t, resolved, 1)
	assert.Equal(t, model.StateResolved, resolved[0].State)
}

// countRuleset compiles countRules (again, as a restart does).
func countRuleset(t *testing.T) *Ruleset {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	return rs
}

// restart saves e's state and restores it into a new engine on rs, as a
// restart does; the same rules leave nothing to resolve.
func restart(t *testing.T, e *testEngine, rs *Ruleset) *testEngine {
	t.Helper()
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := newEngine(t, rs)
	resolved, err := e2.RestoreState(data)
	require.NoError(t, err)
	require.Empty(t, resolved)
	e2.seq = e.seq
	return e2
}

// seePhoneAt is seeAt for one phone.
func seePhoneAt(e *testEngine, rule string, now time.Time, imsi string) func(ts time.Time) []model.Alert {
	see := seeAt(e, rule, now)
	return func(ts time.Time) []model.Alert { return see(ts, imsi) }
}

// seeAt returns what reports phones seen by F-1 in the ruins at an event
// time, processed at now, and returns the alerts of rule.
func seeAt(e *testEngine, rule string, now time.Time) func(ts time.Time, imsis ...string) []model.Alert {
	return func(ts time.Time, imsis ...string) []model.Alert {
		return only(e.Evaluate(e.phones("F-1", ts, ruinsIn, imsis...), now), rule)
	}
}

// A backlog crowd that straddles the start of the zone's window — its
// first phones older than the window, its last inside it — is whole in
// the backlog window.
func TestCountBacklogStraddlesTheWindow(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	now := at(23, 0)
	see := seeAt(e, "crowd", now)
	require.Empty(t, see(now, "460000000000001"), "live")
	require.Empty(t, see(now.Add(-20*time.Minute), "460000000000101"), "older than the 15-minute window")
	require.Empty(t, see(now.Add(-17*time.Minute), "460000000000102"))
	fired := see(now.Add(-10*time.Minute), "460000000000103")
	require.Len(t, fired, 1, "three phones within 10 minutes")
	assert.Equal(t, now.Add(-10*time.Minute), fired[0].At)
	assert.Equal(t, 3, fired[0].Count)

	// The zone's own window holds the live phone and the last one only.
	require.Empty(t, see(now, "460000000000001"))
}

// A backlog crowd wholly inside the zone's window is the zone's crowd: the
// backlog window a unit's older messages started, carried on by the late
// readings, does not open a second incident for it (one crowd, two ids,
// both firing and each resolving).
func TestCountBacklogInsideTheWindowIsOneCrowd(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	now := at(23, 0)
	see := seeAt(e, "crowd", now)
	var got []model.Alert
	got = append(got, see(now.Add(-30*time.Second), "460000000000001")...) // the zone's newest
	// One phone, a message a minute: a backlog from before the window into it.
	for m := 51; m >= 1; m-- {
		got = append(got, see(now.Add(-time.Duration(m)*time.Minute), "460000000000002")...)
	}
	for i := range 3 { // new phones, two minutes ago
		got = append(got, see(now.Add(-139*time.Second+time.Duration(i)*time.Second), fmt.Sprintf("46000000000010%d", i))...)
	}
	ids := map[string]bool{}
	for _, a := range got {
		require.Equal(t, model.StateFiring, a.State)
		ids[a.ID] = true
	}
	require.Len(t, ids, 1, "one crowd, one incident: %v", got)
}

// A backlog older than the backlog window starts it again, unless it has an
// incident open.
func TestCountBacklogRestarts(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	now := at(23, 0)
	see := seeAt(e, "crowd", now)
	require.Empty(t, see(now, "460000000000001"))
	require.Empty(t, see(at(21, 0), "460000000000101", "460000000000102"), "a backlog of two")
	require.Empty(t, see(at(19, 0), "460000000000201", "460000000000202"), "an older backlog starts again: two, not four")
	fired := see(at(19, 1), "460000000000203")
	require.Len(t, fired, 1)
	assert.Equal(t, at(19, 1), fired[0].At)
	require.Empty(t, see(at(17, 0), "460000000000301", "460000000000302", "460000000000303"), "an open backlog incident keeps its window")
	assert.Equal(t, 3.0, gauge(t, e, "fenceline_alerts_backlog_readings_unused_total", "crowd"), "and the readings it could not use are counted")
}

func TestCountResolvesOnReadings(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	got := only(e.eval(e.phones("F-1", at(22, 0), loc, "460000000000001", "460000000000002", "460000000000003")), "crowd")
	require.Len(t, got, 1)
	got = only(e.eval(e.phones("F-1", at(22, 20), loc, "460000000000001")), "crowd")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.Equal(t, 3, got[0].Count, "the incident keeps its peak count")
}

// A presence rule without zones keeps its cooldown per site: its alert
// goes to the site of the unit that saw the subject, and a second site's
// units must hear of a foreign SIM that moved into their area.
func TestPresenceWithoutZonesCoolsDownPerSite(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-9, kind: fence, site: bjm, lat: 41.9612, lon: 110.4975}
watchlists:
  foreign-sim: {kind: imsi, entries: ["428*"]}
rules:
  - {id: foreign-sim, kind: presence, source: phone, watchlist: foreign-sim, cooldown: 10m}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	var sites []string
	for i, dev := range []string{"F-1", "F-2", "F-9", "F-1", "F-9"} {
		for _, a := range only(e.eval(e.phones(dev, at(22, i), ruinsIn, "428990000000001")), "foreign-sim") {
			sites = append(sites, a.Site)
		}
	}
	assert.Equal(t, []string{"mdl", "bjm"}, sites, "once per site within the cooldown")
}

// A unit whose clock runs a minute and a half fast (within the contract's
// five minutes) does not move the crowd's window into the future: the
// phones seen a moment ago stay in it, and no alert says it happened after
// it was raised. The evidence keeps the ts the unit sent.
func TestCountReadingFromAFastClock(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	now := at(22, 0)
	got := only(e.Evaluate(e.phones("F-1", now, ruinsIn, "460000000000001", "460000000000002", "460000000000003"), now), "crowd")
	require.Len(t, got, 1)
	fast := e.phones("F-1", now.Add(25*time.Minute), ruinsIn, "460000000000004")
	assert.Empty(t, only(e.Evaluate(fast, now.Add(100*time.Millisecond)), "crowd"), "not resolved by a clock error")
	// Resolved when the window does drain, with an `at` no later than the
	// time it was raised.
	got = only(e.Evaluate(e.phones("F-1", now.Add(20*time.Minute), ruinsIn, "460000000000005"), now.Add(20*time.Minute)), "crowd")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.False(t, got[0].At.After(got[0].RaisedAt), "at %s, raised at %s", got[0].At, got[0].RaisedAt)
}

// A count incident's evidence is the readings in its window: an earlier
// incident's crowd, gone from the window, is not evidence of the next one.
func TestCountEvidenceIsTheWindow(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	see := func(ts time.Time, imsis ...string) []model.Alert {
		return only(e.eval(e.phones("F-1", ts, ruinsIn, imsis...)), "crowd")
	}
	first := see(at(22, 0), "460000000000001", "460000000000002", "460000000000003")
	require.Len(t, first, 1)
	require.Len(t, first[0].Evidence, 1, "one message")
	resolved := see(at(22, 20), "460000000000004")
	require.Len(t, resolved, 1)
	require.Equal(t, model.StateResolved, resolved[0].State)

	second := see(at(22, 21), "460000000000005", "460000000000006")
	require.Len(t, second, 1)
	require.Equal(t, model.StateFiring, second[0].State)
	require.NotEqual(t, first[0].ID, second[0].ID)
	cut := second[0].At.Add(-15 * time.Minute)
	for _, ev := range second[0].Evidence {
		assert.True(t, ev.TS.After(cut), "evidence of %s is outside the window (%s, %s]", ev.TS.Format("15:04"), cut.Format("15:04"), second[0].At.Format("15:04"))
	}
	assert.Len(t, second[0].Evidence, 2, "the messages of 22:20 and 22:21")
}

func TestDwell(t *testing.T) {
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	const imsi = "460000000000001"
	type step struct {
		t     time.Time
		state string // "" none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"seen every 5 minutes for 45 minutes", []step{
			{at(22, 0), ""}, {at(22, 5), ""}, {at(22, 10), ""}, {at(22, 15), ""}, {at(22, 20), ""},
			{at(22, 25), ""}, {at(22, 30), ""}, {at(22, 35), ""}, {at(22, 40), ""}, {at(22, 45), "firing"},
			{at(22, 50), ""},
		}},
		{"a gap longer than max_gap restarts the stay", []step{
			{at(22, 0), ""}, {at(22, 10), ""}, {at(22, 20), ""}, {at(22, 30), ""},
			{at(22, 41), ""}, // 11 minutes gap: a new stay from 22:41
			{at(22, 50), ""}, {at(23, 0), ""}, {at(23, 10), ""}, {at(23, 20), ""}, {at(23, 26), "firing"},
		}},
		{"a gap of exactly max_gap is continuous", []step{
			{at(22, 0), ""}, {at(22, 10), ""}, {at(22, 20), ""}, {at(22, 30), ""}, {at(22, 40), ""}, {at(22, 45), "firing"},
		}},
		{"after firing, a long gap resolves and a new stay begins", []step{
			{at(22, 0), ""}, {at(22, 10), ""}, {at(22, 20), ""}, {at(22, 30), ""}, {at(22, 40), ""}, {at(22, 45), "firing"},
			{at(23, 30), "resolved"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, countRules)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			var firingID string
			for _, s := range tc.steps {
				got := only(e.eval(e.phones("F-1", s.t, loc, imsi)), "loiter")
				if s.state == "" {
					assert.Empty(t, got, s.t.Format("15:04"))
					continue
				}
				require.Len(t, got, 1, s.t.Format("15:04"))
				assert.Equal(t, s.state, got[0].State)
				if s.state == model.StateFiring {
					firingID = got[0].ID
					assert.Equal(t, model.Subject{Kind: "imsi", Value: imsi}, got[0].Subject)
				} else {
					assert.Equal(t, firingID, got[0].ID)
				}
			}
		})
	}
}

// A stay's resolved alert counts the whole stay and gives its latest
// evidence; its firing gave those that made it long enough.
func TestDwellResolvedCountsTheWholeStay(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	var fired []model.Alert
	for m := 0; m <= 55; m += 5 { // 22:00 to 22:55: fires at 22:45, then two more
		fired = append(fired, only(e.eval(e.phones("F-1", at(22, m), loc, "460000000000001")), "loiter")...)
	}
	require.Len(t, fired, 1)
	assert.Equal(t, 10, fired[0].Count)
	res := only(e.Tick(at(23, 30)), "loiter")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, 12, res[0].Count, "every sighting of the stay")
	last := res[0].Evidence[len(res[0].Evidence)-1]
	assert.True(t, at(22, 55).Equal(last.TS), "the latest sighting is its evidence: %v", last)
	assert.Contains(t, res[0].Summary, "stayed 55 min")
}

// A backlog delivered after the subject's newer readings is a stay of its
// own time: a phone that loitered hours ago fires, late, and its stay ends
// on its own — across a restart too.
func TestDwellBacklog(t *testing.T) {
	const imsi = "460000000000001"
	e := newEngine(t, countRuleset(t))
	now := at(23, 30)
	see := seePhoneAt(e, "loiter", now, imsi)
	require.Empty(t, see(now.Add(-time.Minute)), "seen now")
	for _, m := range []int{0, 10, 20, 30, 40} {
		require.Empty(t, see(at(20, m)), "20:%02d", m)
	}
	fired := see(at(20, 45))
	require.Len(t, fired, 1, "45 minutes at the ruins, three hours ago")
	assert.Equal(t, model.StateFiring, fired[0].State)
	assert.True(t, fired[0].Late)
	assert.Equal(t, at(20, 45), fired[0].At)
	assert.Equal(t, 6, fired[0].Count)

	e = restart(t, e, countRuleset(t))

	res := only(e.Tick(now.Add(11*time.Minute)), "loiter")
	require.Len(t, res, 1, "the backlog's stay ends; the present one never fired")
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, fired[0].ID, res[0].ID)
	assert.True(t, res[0].Late, "a backlog's stay ends late")
}

// A stay whose first sightings arrive as a backlog after the subject's
// newer ones is one stay: it fires when its whole length reaches duration,
// and an incident its backlog part opened is its incident.
func TestDwellBacklogJoinsTheStay(t *testing.T) {
	const imsi = "460000000000001"
	now := at(23, 5)
	t.Run("fires on its whole length", func(t *testing.T) {
		e := newEngine(t, countRuleset(t))
		see := seePhoneAt(e, "loiter", now, imsi)
		require.Empty(t, see(at(23, 0)), "live")
		for _, m := range []int{20, 25, 30, 35, 40, 45, 50, 55} {
			require.Empty(t, see(at(22, m)), "backlog 22:%02d", m)
		}
		fired := see(at(23, 5))
		require.Len(t, fired, 1, "22:20 to 23:05 without a gap over 10 minutes: 45 minutes")
		assert.Equal(t, at(23, 5), fired[0].At)
		assert.Contains(t, fired[0].Summary, "for 45 min")
	})
	t.Run("an incident of the backlog goes on", func(t *testing.T) {
		e := newEngine(t, countRuleset(t))
		see := seePhoneAt(e, "loiter", now, imsi)
		require.Empty(t, see(at(23, 0)), "live")
		var fired []model.Alert
		for m := 0; m <= 55; m += 5 {
			fired = append(fired, see(at(22, m))...)
		}
		require.Len(t, fired, 1, "the backlog's stay reached 45 minutes at 22:45")
		assert.True(t, fired[0].Late)
		for m := 5; m <= 40; m += 5 {
			require.Empty(t, see(at(23, m)), "one stay, one incident: 23:%02d", m)
		}
		res := only(e.Tick(now.Add(11*time.Minute)), "loiter")
		require.Len(t, res, 1)
		assert.Equal(t, model.StateResolved, res[0].State)
		assert.Equal(t, fired[0].ID, res[0].ID)
	})
}

// A backlog older than the backlog's stay starts it again, unless that
// stay has an incident open.
func TestDwellBacklogRestarts(t *testing.T) {
	const imsi = "460000000000001"
	e := newEngine(t, countRuleset(t))
	now := at(23, 30)
	see := seePhoneAt(e, "loiter", now, imsi)
	require.Empty(t, see(now))
	require.Empty(t, see(at(21, 0)), "a backlog")
	for _, m := range []int{0, 10, 20, 30, 40} {
		require.Empty(t, see(at(19, m)), "an older backlog starts again: 19:%02d", m)
	}
	fired := see(at(19, 45))
	require.Len(t, fired, 1)
	assert.Equal(t, at(19, 45), fired[0].At)
	require.Empty(t, see(at(17, 0)), "an open backlog stay keeps its time")
	assert.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_backlog_readings_unused_total", "loiter"), "and the reading it could not use is counted")
}

func TestDwellResolvesOnTick(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	for m := 0; m <= 45; m += 5 {
		e.eval(e.phones("F-1", at(22, m), loc, "460000000000001"))
	}
	assert.Empty(t, only(e.Tick(at(22, 55)), "loiter"), "10 minutes is not more than max_gap")
	res := only(e.Tick(at(22, 56)), "loiter")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, at(22, 45), res[0].At, "resolved at the last sighting")
	assert.Contains(t, res[0].Summary, "no longer seen")
	assert.False(t, res[0].Late, "known max_gap after a sighting that came on time: not late")
}

// restarted is an engine started at now on the saved state data, after an
// unclean stop that lost the sightings up to lostUntil, or a clean one.
func restarted(t *testing.T, rs *Ruleset, data []byte, now time.Time, unclean bool, lostUntil time.Time) *testEngine {
	t.Helper()
	e, _ := restoredAt(t, rs, data, now)
	if unclean {
		e.AfterUncleanStop(lostUntil)
	}
	return e
}

// restoredAt is an engine started at now on the saved state data, with the
// alerts the restore raised (incidents closed as no longer watched).
func restoredAt(t *testing.T, rs *Ruleset, data []byte, now time.Time) (*testEngine, []model.Alert) {
	t.Helper()
	e := newEngine(t, rs)
	e.clock = func() time.Time { return now }
	out, err := e.RestoreState(data)
	require.NoError(t, err)
	return e, out
}

// After an unclean stop, the sightings evaluated since the last save are
// gone with their acks, up to when the next save was due: a subject still
// there must not be taken for gone. Its stay's next sighting within max_gap
// of then continues it, and Tick ends it only max_gap after then without
// one. A subject away longer was away: its sightings would have waited in
// the broker. A clean stop's state knows every sighting: a gap is a gap.
func TestDwellAcrossAnUncleanStop(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	for _, tc := range []struct {
		name      string
		unclean   bool
		lostUntil time.Time // the sightings lost with the crash could be up to then
		resumed   bool      // the stay goes on: no resolution, no new firing
	}{
		{"unclean, seen on until the crash: the stay goes on", true, at(22, 58), true},
		{"unclean, the crash soon after the save: away 17 minutes", true, at(22, 46), false},
		{"clean: a gap over max_gap ends it", false, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, rs)
			var fired []model.Alert
			for m := 0; m <= 45; m += 5 {
				fired = append(fired, only(e.eval(e.phones("F-1", at(22, m), loc, "460000000000001")), "loiter")...)
			}
			require.Len(t, fired, 1)
			data, err := e.MarshalState() // saved at 22:45
			require.NoError(t, err)

			e2 := restarted(t, rs, data, at(23, 0), tc.unclean, tc.lostUntil)
			ticked := only(e2.Tick(at(23, 1)), "loiter")
			got := append(ticked, only(e2.Evaluate(e2.phones("F-1", at(23, 2), loc, "460000000000001"), at(23, 2)), "loiter")...)
			if tc.resumed {
				assert.Empty(t, got)
				assert.Empty(t, only(e2.Tick(at(23, 11)), "loiter"), "seen at 23:02")
				gone := only(e2.Tick(at(23, 13)), "loiter")
				require.Len(t, gone, 1, "no longer seen")
				assert.Equal(t, fired[0].ID, gone[0].ID)
				assert.Equal(t, model.StateResolved, gone[0].State)
			} else {
				require.NotEmpty(t, got)
				assert.Equal(t, model.StateResolved, got[0].State)
			}
		})
	}
}

// After an unclean stop an open crowd resolves no earlier than a window
// after the sightings lost with the crash could be: the phones still there
// are seen again within a window. One that left before was gone: a clean
// stop's state, or a crash soon after the save, resolves it.
func TestCountAcrossAnUncleanStop(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	phones := []string{"460000000000001", "460000000000002", "460000000000003"}
	for _, tc := range []struct {
		name      string
		unclean   bool
		lostUntil time.Time
		open      bool
	}{
		{"unclean, seen again before the crash: the crowd stays open", true, at(22, 10), true},
		{"unclean, the crash soon after the save: resolved", true, at(22, 1), false},
		{"clean: a window without them resolves it", false, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, rs)
			fired := only(e.eval(e.phones("F-1", at(22, 0), ruinsIn, phones...)), "crowd")
			require.Len(t, fired, 1)
			data, err := e.MarshalState() // saved at 22:00
			require.NoError(t, err)

			e2 := restarted(t, rs, data, at(22, 16), tc.unclean, tc.lostUntil)
			got := only(e2.Tick(at(22, 16)), "crowd")
			if !tc.open {
				require.Len(t, got, 1)
				assert.Equal(t, model.StateResolved, got[0].State)
				return
			}
			assert.Empty(t, got)
			assert.Empty(t, only(e2.Evaluate(e2.phones("F-1", at(22, 17), ruinsIn, phones...), at(22, 17)), "crowd"), "the same crowd, still open")
			assert.Empty(t, only(e2.Tick(at(22, 31)), "crowd"))
			gone := only(e2.Tick(at(22, 33)), "crowd")
			require.Len(t, gone, 1, "a window without them")
			assert.Equal(t, fired[0].ID, gone[0].ID)
			assert.Equal(t, model.StateResolved, gone[0].State)
		})
	}
}

// A stay a newer sighting ends (after a gap over max_gap) is resolved at its
// last sighting, on time when that sighting came on time, late when it was
// a backlog's.
func TestDwellEndedByASightingIsLateOnlyForABacklog(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	for _, tc := range []struct {
		name  string
		delay time.Duration // between a sighting and its processing
		late  bool
	}{
		{"live", 0, false},
		{"a backlog three hours late", 3 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, rs)
			loc := model.Point{Lat: 41.9612, Lon: 110.4875}
			var fired []model.Alert
			for m := 0; m <= 45; m += 5 {
				fired = append(fired, only(e.Evaluate(e.phones("F-1", at(18, m), loc, "460000000000001"), at(18, m).Add(tc.delay)), "loiter")...)
			}
			require.Len(t, fired, 1)
			assert.Equal(t, tc.late, fired[0].Late, "the firing")
			res := only(e.Evaluate(e.phones("F-1", at(19, 5), loc, "460000000000001"), at(19, 5).Add(tc.delay)), "loiter")
			require.Len(t, res, 1)
			assert.Equal(t, model.StateResolved, res[0].State)
			assert.Equal(t, at(18, 45), res[0].At)
			assert.Equal(t, tc.late, res[0].Late, "the resolution")
		})
	}
}

func TestVelocity(t *testing.T) {
	a := model.Point{Lat: 41.70, Lon: 110.435}
	tests := []struct {
		name   string
		km     float64
		dt     time.Duration
		fires  bool
		plate2 string
	}{
		{"80 km in 10 minutes (480 km/h)", 80, 10 * time.Minute, true, ""},
		{"30.05 km in 10 minutes (180.3 km/h, just above)", 30.05, 10 * time.Minute, true, ""},
		{"20 km in 30 minutes (40 km/h)", 20, 30 * time.Minute, false, ""},
		{"80 km in 30 minutes (160 km/h)", 80, 30 * time.Minute, false, ""},
		{"5 km at the same instant", 5, 0, true, ""},
		{"500 m at the same instant (noise)", 0.5, 0, false, ""},
		{"the same place twice", 0, time.Minute, false, ""},
		{"80 km in 10 minutes, another plate", 80, 10 * time.Minute, false, "蒙B54321"},
		{"80 km in 10 minutes, no plate", 80, 10 * time.Minute, false, model.NoPlate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			plate := "蒙B12345"
			p1 := plate
			if tc.plate2 == model.NoPlate {
				p1 = model.NoPlate
			}
			assert.Empty(t, only(e.eval(e.pass("CP-12", at(10, 0), a, model.Pass{Plate: p1})), "cloned-plate"))
			p2 := plate
			if tc.plate2 != "" {
				p2 = tc.plate2
			}
			b := north(a, tc.km*1000)
			got := only(e.eval(e.pass("CP-07", at(10, 0).Add(tc.dt), b, model.Pass{Plate: p2})), "cloned-plate")
			if !tc.fires {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			v := got[0]
			assert.Equal(t, model.StateFiring, v.State)
			assert.Equal(t, 2, v.Count)
			assert.Equal(t, "CP-12", v.Evidence[0].Device)
			assert.Equal(t, "CP-07", v.Evidence[1].Device)
			assert.Equal(t, b, *v.Location, "location is the later sighting")
			assert.Contains(t, v.Summary, fmt.Sprintf("%.1f km apart", tc.km))
			assert.Contains(t, v.Summary, "CP-12 at", "a checkpoint without a name by its id")
			assert.Contains(t, v.Summary, "CP-07 (G210 north of Baotou) at", "with its name")
		})
	}
}

// A speed just above the maximum never reads as the maximum.
func TestKmhAbove(t *testing.T) {
	tests := []struct {
		name     string
		kmh, max float64
		want     string
	}{
		{"well above: whole km/h", 480.4, 180, "480"},
		{"rounds to the maximum: a decimal", 180.3, 180, "180.3"},
		{"rounds below the maximum: a decimal", 180.04, 180.0, "180.04"},
		{"a fractional maximum, rounded above it", 181.52, 181.5, "182"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, kmhAbove(tc.kmh, tc.max))
		})
	}
}

// A checkpoint's backlog delivered after newer passes of the plate is
// compared with the passes of its own time: a clone three hours ago is
// raised, late, whatever arrived since.
func TestVelocityBacklog(t *testing.T) {
	a := model.Point{Lat: 41.70, Lon: 110.435}
	b := north(a, 111_000)
	now := at(23, 0)
	type pass struct {
		dev string
		t   time.Time
		p   model.Point
	}
	tests := []struct {
		name   string
		passes []pass // the last one is the backlog that completes the clone pair
	}{
		{"the live pass between the two", []pass{{"CP-12", at(20, 0), a}, {"CP-12", now, a}, {"CP-07", at(20, 1), b}}},
		{"the live pass first", []pass{{"CP-12", now, a}, {"CP-12", at(20, 0), a}, {"CP-07", at(20, 1), b}}},
		{"the backlog pair in reverse", []pass{{"CP-12", now, a}, {"CP-07", at(20, 1), b}, {"CP-12", at(20, 0), a}}},
		{"behind more newer passes than the rule keeps", []pass{
			{"CP-12", at(22, 20), a}, {"CP-12", at(22, 30), a}, {"CP-12", at(22, 40), a}, {"CP-12", at(22, 50), a}, {"CP-12", now, a},
			{"CP-12", at(20, 0), a}, {"CP-07", at(20, 1), b}}},
		{"behind more newer passes, in reverse", []pass{
			{"CP-12", at(22, 20), a}, {"CP-12", at(22, 30), a}, {"CP-12", at(22, 40), a}, {"CP-12", at(22, 50), a}, {"CP-12", now, a},
			{"CP-07", at(20, 1), b}, {"CP-12", at(20, 0), a}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, loadRules(t))
			var got []model.Alert
			for i, p := range tc.passes {
				got = only(e.Evaluate(e.pass(p.dev, p.t, p.p, model.Pass{Plate: "蒙B90003"}), now), "cloned-plate")
				if i < len(tc.passes)-1 {
					require.Empty(t, got, "pass %d", i)
				}
			}
			require.Len(t, got, 1)
			v := got[0]
			assert.True(t, v.Late)
			assert.Equal(t, at(20, 1), v.At, "the later of the pair")
			require.Len(t, v.Evidence, 2)
			assert.Equal(t, at(20, 0), v.Evidence[0].TS)
			assert.Equal(t, at(20, 1), v.Evidence[1].TS)
		})
	}
}

// A backlog behind more passes than the rule keeps is compared within the
// backlog's own latest sightings, kept across a restart; one older than all
// of those too is counted as evicted.
func TestVelocityBacklogIsBounded(t *testing.T) {
	e := newEngine(t, loadRules(t))
	a := model.Point{Lat: 41.70, Lon: 110.435}
	now := at(23, 0)
	pass := func(ts time.Time, p model.Point) []model.Alert {
		return only(e.Evaluate(e.pass("CP-12", ts, p, model.Pass{Plate: "蒙B90003"}), now), "cloned-plate")
	}
	for m := range velocityHistory {
		require.Empty(t, pass(at(22, 10*m), a))
	}
	for m := range velocityHistory {
		require.Empty(t, pass(at(20, 10*m), a), "backlog 20:%02d", 10*m)
	}
	e = restart(t, e, loadRules(t))
	got := only(e.Evaluate(e.pass("CP-07", at(20, 31), north(a, 111_000), model.Pass{Plate: "蒙B90003"}), now), "cloned-plate")
	require.Len(t, got, 1, "the backlog's sightings survived the restart")
	assert.True(t, at(20, 30).Equal(got[0].Evidence[0].TS), "the pair: %v", got[0].Evidence)

	require.Empty(t, pass(at(19, 0), a), "older than everything kept")
	assert.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_state_evicted_total", "cloned-plate"))
}

// A velocity rule keeps a plate's latest sightings only, across a restart
// too.
func TestVelocityHistoryIsBounded(t *testing.T) {
	e := newEngine(t, loadRules(t))
	a := model.Point{Lat: 41.70, Lon: 110.435}
	for m := range 3 * velocityHistory {
		e.Evaluate(e.pass("CP-12", at(20, m), a, model.Pass{Plate: "蒙B90003"}), at(23, 0))
	}
	st := e.rules["cloned-plate"]
	require.Len(t, st.vel, 1)
	kept := 0
	for _, h := range st.vel {
		require.Len(t, h, velocityHistory)
		assert.Equal(t, at(20, 3*velocityHistory-1), h[len(h)-1].T, "the latest kept")
		kept = len(h)
	}
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := newEngine(t, loadRules(t))
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	restored := e2.rules["cloned-plate"].vel
	require.Len(t, restored, 1)
	for _, h := range restored {
		require.Len(t, h, kept)
		for i, s := range h {
			assert.True(t, s.T.Equal(at(20, 3*velocityHistory-kept+i)), "sighting %d at %s", i, s.T)
		}
	}
}

func TestVelocityCooldown(t *testing.T) {
	e := newEngine(t, loadRules(t))
	a := model.Point{Lat: 41.70, Lon: 110.435}
	b := north(a, 80_000)
	n := 0
	for i := 0; i < 4; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		n += len(only(e.eval(e.pass("CP-07", at(10, i), p, model.Pass{Plate: "蒙B12345"})), "cloned-plate"))
	}
	assert.Equal(t, 1, n, "ping-pong within the cooldown is one alert")
}

// A velocity alert's evidence names each pass at the ts its unit sent, the
// point an analyst finds in InfluxDB, though a clock ahead is judged at
// now: the sighting keeps both, across a restart too.
func TestVelocityEvidenceNamesTheSentTS(t *testing.T) {
	rs := loadRules(t)
	e := newEngine(t, rs)
	plate := model.Pass{Plate: "蒙B12345"}
	cp12 := model.Point{Lat: 41.70, Lon: 110.435}
	sent := at(12, 3) // CP-07's clock 3 minutes ahead
	require.Empty(t, only(e.Evaluate(e.pass("CP-07", sent, cp07, plate), at(12, 0)), "cloned-plate"))
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := restarted(t, rs, data, at(12, 1), false, time.Time{})
	got := only(e2.Evaluate(e2.pass("CP-12", at(12, 1), cp12, plate), at(12, 1)), "cloned-plate")
	require.Len(t, got, 1)
	require.Len(t, got[0].Evidence, 2)
	assert.True(t, got[0].Evidence[0].TS.Equal(sent), "the pass as sent: %v", got[0].Evidence[0].TS)
	assert.True(t, got[0].Evidence[1].TS.Equal(at(12, 1)), "%v", got[0].Evidence[1].TS)
	// The summary's times are the ones the speed was judged on, and say
	// what the fast clock said.
	assert.Contains(t, got[0].Summary, "in 1 min (")
	assert.Contains(t, got[0].Summary, e2.localTime(at(12, 0), at(12, 1))+" (its clock said "+strings.TrimSuffix(e2.localTime(sent, at(12, 1)), " local")+")")
	assert.NotContains(t, got[0].Summary[strings.Index(got[0].Summary, "CP-12"):], "its clock said", "CP-12's clock was right")
}

const fenceRules = `
devices:
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: strip, site: mdl, name: Strip, units: [joint-command], geojson: {"type":"Polygon","coordinates":[[[109.80,42.68],[110.50,42.68],[110.50,42.72],[109.80,42.72],[109.80,42.68]]]}}
rules:
  - {id: in-strip, kind: enter, source: patrol, zones: [strip], hysteresis_m: 20}
  - {id: out-strip, kind: exit, source: patrol, zones: [strip], hysteresis_m: 20}
  - {id: in-any, kind: enter, source: patrol}
`

func TestEnterExitHysteresis(t *testing.T) {
	edge := model.Point{Lat: stripEdge, Lon: 110.1}
	m := func(metres float64) model.Point { return north(edge, metres) } // + inside, - outside
	tests := []struct {
		name        string
		path        []float64 // metres north of the southern edge
		enter, exit int
	}{
		{"first sighting deep inside is an enter", []float64{500}, 1, 0},
		{"first sighting outside is nothing", []float64{-500}, 0, 0},
		{"jitter along the edge is one enter, no exit", []float64{-500, 25, -5, 8, -12, 15, -18, 3, -2, 30}, 1, 0},
		{"in, out beyond the hysteresis, in again", []float64{-500, 100, -100, 100}, 2, 1},
		{"inside but within hysteresis of the edge does not enter", []float64{-500, 10, 15}, 0, 0},
		{"first sighting just inside, within hysteresis", []float64{10}, 0, 0},
		{"straight out from far inside", []float64{500, -5000}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, fenceRules)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			var enter, exit int
			for i, d := range tc.path {
				got := e.eval(e.position("P-07", at(10, i), m(d)))
				enter += len(only(got, "in-strip"))
				exit += len(only(got, "out-strip"))
			}
			assert.Equal(t, tc.enter, enter, "enters")
			assert.Equal(t, tc.exit, exit, "exits")
		})
	}
}

// A backlog of positions older than the patrol's latest (its unit's link
// was down) is compared fix by fix along a side of its own: its crossings
// are raised, late, at their own time. Its first fix only sets the side (the
// patrol may have been inside since an enter the live fixes reported), and
// a fix older than the backlog's latest starts it again.
func TestEnterExitBacklog(t *testing.T) {
	edge := model.Point{Lat: stripEdge, Lon: 110.1}
	type fix struct {
		min    int     // past 10:00
		metres float64 // north of the southern edge: + inside, - outside
	}
	tests := []struct {
		name          string
		live, backlog []fix
		enters, exits []int // minutes of the backlog's crossings
	}{
		{"in and out while the link was down", []fix{{50, -500}, {52, -500}}, []fix{{20, -500}, {22, 500}, {24, -500}}, []int{22}, []int{24}},
		{"inside all along is no enter", []fix{{10, -500}, {30, 500}, {50, 500}}, []fix{{35, 500}, {40, 500}}, nil, nil},
		{"a first fix inside only sets the side", []fix{{50, -500}}, []fix{{20, 500}, {22, -500}}, nil, []int{22}},
		{"jitter within the hysteresis is no crossing", []fix{{50, -500}}, []fix{{20, -500}, {21, 10}, {22, -10}}, nil, nil},
		{"an older fix starts the backlog again", []fix{{50, -500}}, []fix{{30, -500}, {32, 500}, {20, 500}, {22, -500}}, []int{32}, []int{22}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, fenceRules)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			for _, f := range tc.live {
				e.eval(e.position("P-07", at(10, f.min), north(edge, f.metres)))
			}
			var enters, exits []int
			for _, f := range tc.backlog {
				for _, a := range e.Evaluate(e.position("P-07", at(10, f.min), north(edge, f.metres)), at(11, 0)) {
					if a.Rule != "in-strip" && a.Rule != "out-strip" {
						continue
					}
					assert.True(t, a.Late, "%s at %s is late", a.Rule, a.At)
					if a.Rule == "in-strip" {
						enters = append(enters, a.At.Minute())
					} else {
						exits = append(exits, a.At.Minute())
					}
				}
			}
			assert.Equal(t, tc.enters, enters, "enters")
			assert.Equal(t, tc.exits, exits, "exits")
		})
	}
}

// Enter/exit rules of different hysteresis each see the zones near enough
// for theirs (a reading's rules share the search of one hysteresis).
func TestExitRulesOfDifferentHysteresis(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: strip, site: mdl, geojson: {"type":"Polygon","coordinates":[[[109.80,42.68],[110.50,42.68],[110.50,42.72],[109.80,42.72],[109.80,42.68]]]}}
rules:
  - {id: out-0, kind: exit, source: patrol, zones: [strip]}
  - {id: out-100, kind: exit, source: patrol, zones: [strip], hysteresis_m: 100}
  - {id: out-0-too, kind: exit, source: patrol, zones: [strip]}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	edge := model.Point{Lat: stripEdge, Lon: 110.1}
	exits := func(i int, metres float64) []string {
		var rules []string
		for _, a := range e.eval(e.position("P-07", at(10, i), north(edge, metres))) {
			rules = append(rules, a.Rule)
		}
		return rules
	}
	assert.Empty(t, exits(0, 500), "deep inside")
	assert.Equal(t, []string{"out-0", "out-0-too"}, exits(1, -50), "50 m out: beyond no hysteresis, within 100 m")
	assert.Equal(t, []string{"out-100"}, exits(2, -500), "500 m out")
}

// A zone drawn in segments has one boundary: a fix near the seam between
// two of them is deep inside, and enters.
func TestEnterNearASeamOfAZoneInSegments(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: strip, site: mdl, geojson: {"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[112.0,44.0],[112.1,44.0],[112.1,44.1],[112.0,44.1],[112.0,44.0]]]}},
      {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[112.1,44.0],[112.2,44.0],[112.2,44.1],[112.1,44.1],[112.1,44.0]]]}}]}}
rules:
  - {id: in-strip, kind: enter, source: patrol, zones: [strip], hysteresis_m: 100}
  - {id: out-strip, kind: exit, source: patrol, zones: [strip], hysteresis_m: 100}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	var enter, exit int
	for i, p := range []model.Point{{Lat: 44.5, Lon: 112.1}, {Lat: 44.05, Lon: 112.10025}, {Lat: 44.06, Lon: 112.09990}, {Lat: 44.5, Lon: 112.1}} {
		got := e.eval(e.position("P-07", at(10, i), p))
		enter += len(only(got, "in-strip"))
		exit += len(only(got, "out-strip"))
	}
	assert.Equal(t, 1, enter, "enters")
	assert.Equal(t, 1, exit, "exits")
}

// A fix an enter/exit rule's filters refuse is not seen by the rule: it
// moves the patrol to neither side, so a coarse fix cannot swallow the real
// entry after it, and a patrol that went in before the night window opened
// is reported at its first fix inside the window.
func TestEnterExitFiltersRefuseAFixWhole(t *testing.T) {
	const rules = `
devices:
  - {id: P-07, kind: patrol, site: mdl}
zones:
  - {id: strip, site: mdl, geojson: {"type":"Polygon","coordinates":[[[109.80,42.68],[110.50,42.68],[110.50,42.72],[109.80,42.72],[109.80,42.68]]]}}
  - {id: port, site: mdl, circle: {lat: 42.62, lon: 110.15, radius_m: 1500}}
rules:
  - {id: in-fine, kind: enter, source: patrol, zones: [strip], when: 'accuracy_m < 50'}
  - {id: out-fine, kind: exit, source: patrol, zones: [strip], when: 'accuracy_m < 50'}
  - {id: in-strip-only, kind: enter, source: patrol, when: 'zone == "strip"'}
  - {id: in-night, kind: enter, source: patrol, zones: [strip], schedule: {tz: Asia/Shanghai, windows: [{from: "20:00", to: "06:00"}]}}
  - {id: out-night, kind: exit, source: patrol, zones: [strip], schedule: {tz: Asia/Shanghai, windows: [{from: "20:00", to: "06:00"}]}}
`
	inside := model.Point{Lat: 42.70, Lon: 110.1}
	outside := model.Point{Lat: 42.60, Lon: 110.1}
	port := model.Point{Lat: 42.62, Lon: 110.15}
	type fix struct {
		t   time.Time
		p   model.Point
		acc float64
	}
	tests := []struct {
		name  string
		fixes []fix
		want  map[string]int // alerts per rule
	}{
		{"a coarse fix inside does not swallow the entry after it",
			[]fix{{at(10, 0), outside, 5}, {at(10, 1), inside, 500}, {at(10, 2), inside, 5}},
			map[string]int{"in-fine": 1, "out-fine": 0}},
		{"a coarse fix outside is no exit, so no second entry",
			[]fix{{at(10, 0), inside, 5}, {at(10, 1), outside, 900}, {at(10, 2), inside, 5}},
			map[string]int{"in-fine": 1, "out-fine": 0}},
		{"when naming a zone ignores the fix elsewhere",
			[]fix{{at(10, 0), port, 5}, {at(10, 1), inside, 5}},
			map[string]int{"in-strip-only": 1}},
		{"in before the window opens: entered at the first fix inside it",
			[]fix{{at(19, 40), outside, 5}, {at(19, 50), inside, 5}, {at(21, 0), inside, 5}},
			map[string]int{"in-night": 1, "out-night": 0}},
		{"out before the window closes, back in after it opens: no crossing at night",
			[]fix{{at(5, 0), inside, 5}, {at(7, 0), outside, 5}, {at(19, 0), inside, 5}, {at(21, 0), inside, 5}},
			map[string]int{"in-night": 1, "out-night": 0}},
		{"left during the day: the exit is seen at the first fix of the night",
			[]fix{{at(5, 0), inside, 5}, {at(7, 0), outside, 5}, {at(21, 0), outside, 5}},
			map[string]int{"in-night": 1, "out-night": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, rules)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			got := map[string]int{}
			for _, f := range tc.fixes {
				b := e.batch("P-07", model.StreamPosition, f.t)
				b.Positions = append(b.Positions, model.Position{Stamp: model.Stamp{Time: f.t}, Loc: f.p, AccuracyM: model.Some(f.acc)})
				for _, a := range e.eval(b) {
					got[a.Rule]++
				}
			}
			for rule, n := range tc.want {
				assert.Equal(t, n, got[rule], rule)
			}
		})
	}
}

func TestEnterWithoutZonesWatchesEveryZone(t *testing.T) {
	rs, ps := compileYAML(t, fenceRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := only(e.eval(e.position("P-07", at(10, 0), model.Point{Lat: 42.70, Lon: 110.1})), "in-any")
	require.Len(t, got, 1)
	assert.Equal(t, "strip", got[0].Zone)
	assert.Equal(t, model.Subject{Kind: "patrol", Value: "P-07"}, got[0].Subject)
	assert.Contains(t, got[0].Summary, "Patrol P-07 entered Strip (strip)")
	// Older positions do not move the patrol back in time.
	assert.Empty(t, e.eval(e.position("P-07", at(9, 0), model.Point{Lat: 40, Lon: 110})))
}

// An alert about a zone is the zone's site's, whatever site the device that
// saw it belongs to: a patrol of btu entering mdl's strip is mdl's alert
// (its topic, its station); an alert without a zone keeps the device's site.
func TestAlertSiteIsTheZones(t *testing.T) {
	rs, ps := compileYAML(t, strings.Replace(fenceRules, "  - {id: P-07, kind: patrol, site: mdl}\n",
		"  - {id: P-07, kind: patrol, site: mdl}\n  - {id: P-01, kind: patrol, site: btu, name: Baotou north}\n", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := only(e.eval(e.position("P-01", at(10, 0), model.Point{Lat: 42.70, Lon: 110.1})), "in-strip")
	require.Len(t, got, 1)
	assert.Equal(t, "mdl", got[0].Site)
	assert.Equal(t, "strip", got[0].Zone)
	assert.Equal(t, []string{"joint-command"}, got[0].Notify)
	assert.True(t, strings.HasPrefix(got[0].Summary, "Patrol P-01 (Baotou north) entered Strip (strip)"), "the patrol's name: %s", got[0].Summary)
}

func TestSilence(t *testing.T) {
	e := newEngine(t, loadRules(t))
	t0 := at(10, 0)
	assert.Empty(t, e.Tick(t0), "a fresh start fires nothing")
	e.Evaluate(e.phones("F-AOL-01", t0, ruinsOut, "460000000000001"), t0.Add(time.Minute))
	assert.Empty(t, only(e.Tick(t0.Add(10*time.Minute)), "unit-offline"), "10 minutes is not more than 10 minutes")
	got := only(e.Tick(t0.Add(10*time.Minute+time.Second)), "unit-offline")
	devs := map[string]model.Alert{}
	for _, a := range got {
		devs[a.Subject.Value] = a
		assert.Equal(t, "device", a.Subject.Kind)
	}
	// CP-07 expects a message every 10m, like `after`; F-AOL-01 spoke at +1m.
	assert.ElementsMatch(t, []string{"CP-07", "CP-12", "P-07", "P-08"}, keys(devs))
	got = only(e.Tick(t0.Add(11*time.Minute+time.Second)), "unit-offline")
	require.Len(t, got, 1)
	assert.Equal(t, "F-AOL-01", got[0].Subject.Value)
	assert.Equal(t, &model.Point{Lat: 41.96, Lon: 110.4861}, got[0].Location)
	assert.Empty(t, only(e.Tick(t0.Add(12*time.Minute)), "unit-offline"), "once per incident")

	res := only(e.Evaluate(e.pass("CP-07", t0.Add(20*time.Minute), cp07, model.Pass{Plate: "蒙B12345"}), t0.Add(20*time.Minute)), "unit-offline")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Equal(t, devs["CP-07"].ID, res[0].ID)
}

// A unit's silence is measured from its last message, also when fenceline
// restarted during it: the firing waits a full limit after the start (the
// messages of the restart's downtime may still be queued), but the
// resolution says how long the unit was really silent.
func TestSilenceAcrossRestartCountsFromTheLastMessage(t *testing.T) {
	e := newEngine(t, loadRules(t))
	t0 := at(10, 0)
	e.Tick(t0)
	e.Evaluate(e.phones("F-AOL-01", t0, ruinsOut, "460000000000001"), t0)
	data, err := e.MarshalState()
	require.NoError(t, err)

	e2 := newEngine(t, loadRules(t))
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	e2.Tick(t0.Add(30 * time.Minute)) // the restart
	var fired []model.Alert
	for _, a := range only(e2.Tick(t0.Add(40*time.Minute+time.Second)), "unit-offline") {
		if a.Subject.Value == "F-AOL-01" {
			fired = append(fired, a)
		}
	}
	require.Len(t, fired, 1)
	res := only(e2.Evaluate(e2.phones("F-AOL-01", t0.Add(50*time.Minute), ruinsOut, "460000000000001"), t0.Add(50*time.Minute)), "unit-offline")
	require.Len(t, res, 1)
	assert.Equal(t, fired[0].ID, res[0].ID)
	assert.Contains(t, res[0].Summary, "reporting again after 50 min of silence", res[0].Summary)
	assert.True(t, strings.HasPrefix(fired[0].Summary, "Fence F-AOL-01 "), fired[0].Summary)
	assert.True(t, strings.HasPrefix(res[0].Summary, "Fence F-AOL-01 reporting again"), "named as the firing named it: %s", res[0].Summary)
}

// A silence rule with zones watches the devices inside them, and its
// alerts carry the zone and notify its units, like every zoned rule's.
func TestSilenceWithZones(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 42.5, lon: 110.0}
zones:
  - {id: ruins, site: mdl, units: [station-mdl], circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
rules:
  - {id: ruins-offline, kind: silence, zones: [ruins], after: 10m, notify: [joint-command]}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	require.Empty(t, e.Tick(at(10, 0)))
	got := only(e.Tick(at(10, 11)), "ruins-offline")
	require.Len(t, got, 1, "F-2 is outside the zone")
	assert.Equal(t, "F-1", got[0].Subject.Value)
	assert.Equal(t, "ruins", got[0].Zone)
	assert.Equal(t, []string{"joint-command", "station-mdl"}, got[0].Notify)
}

// A silence is noticed as it happens, in processing time: its firing is
// never late, also when a schedule holds it until its window opens long
// after the silence began (its `at`).
func TestSilenceIsNeverLate(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: night-offline, kind: silence, after: 10m, schedule: {tz: Asia/Shanghai, windows: [{from: "22:00", to: "06:00"}]}}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	e.Evaluate(e.phones("F-1", at(20, 0), ruinsIn, "460000000000001"), at(20, 0))
	assert.Empty(t, only(e.Tick(at(21, 0)), "night-offline"), "outside the window")
	got := only(e.Tick(at(22, 0)), "night-offline")
	require.Len(t, got, 1)
	assert.True(t, got[0].At.Before(at(21, 50)), "at: long before the window opened, %s", got[0].At)
	assert.False(t, got[0].Late)
	res := only(e.Evaluate(e.phones("F-1", at(22, 30), ruinsIn, "460000000000001"), at(22, 30)), "night-offline")
	require.Len(t, res, 1)
	assert.False(t, res[0].Late)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestStatus(t *testing.T) {
	e := newEngine(t, loadRules(t))
	full := model.Some(87)
	steps := []struct {
		name  string
		s     model.Status
		state string
	}{
		{"healthy", model.Status{BatteryPct: full, Tamper: model.SomeBool(false)}, ""},
		{"tamper", model.Status{BatteryPct: full, Tamper: model.SomeBool(true)}, "firing"},
		{"still tampered: once", model.Status{BatteryPct: full, Tamper: model.SomeBool(true)}, ""},
		{"low battery, still matching", model.Status{BatteryPct: model.Some(10)}, ""},
		{"healthy again", model.Status{BatteryPct: full, Tamper: model.SomeBool(false)}, "resolved"},
		{"battery absent is not a low battery", model.Status{Power: "solar"}, ""},
		{"battery 0 reported is", model.Status{BatteryPct: model.Some(0)}, "firing"},
	}
	var id string
	var fired []model.Evidence
	for i, s := range steps {
		got := only(e.eval(e.status("F-AOL-01", at(10, i), s.s)), "unit-tamper")
		if s.state == "" {
			assert.Empty(t, got, s.name)
			continue
		}
		require.Len(t, got, 1, s.name)
		assert.Equal(t, s.state, got[0].State, s.name)
		if s.state == model.StateResolved {
			assert.Equal(t, id, got[0].ID)
			// Its evidence: the report that fired, and the one its
			// summary quotes, that cleared it.
			require.Len(t, got[0].Evidence, 2, s.name)
			assert.Equal(t, fired[0], got[0].Evidence[0])
			assert.True(t, at(10, i).Equal(got[0].Evidence[1].TS), "the clearing report: %v", got[0].Evidence[1])
		}
		id, fired = got[0].ID, got[0].Evidence
	}
}

func TestLateData(t *testing.T) {
	e := newEngine(t, loadRules(t))
	ev := at(23, 10).Add(-48 * time.Hour)
	now := at(12, 0)
	got := only(e.Evaluate(e.phones("F-AOL-01", ev, ruinsIn, "428991234567890"), now), "night-phone-ruins")
	require.Len(t, got, 1, "evaluated at its own (night) time, not at noon")
	assert.True(t, got[0].Late)
	assert.Equal(t, ev, got[0].At)
	assert.Equal(t, now, got[0].RaisedAt)
	assert.Contains(t, got[0].Summary, "2026-11-24 23:10 local")

	live := only(e.Evaluate(e.phones("F-AOL-01", at(23, 10), ruinsIn, "428991234567891"), at(23, 11)), "night-phone-ruins")
	require.Len(t, live, 1)
	assert.False(t, live[0].Late)

	// A backlog replayed in a burst raises one alert per cooldown of the
	// period it covers, not one per reading.
	n := 0
	for m := 0; m < 60; m += 2 {
		n += len(only(e.Evaluate(e.phones("F-AOL-01", ev.Add(time.Duration(m)*time.Minute), ruinsIn, "460000000000001"), now), "night-phone-ruins"))
	}
	assert.Equal(t, 2, n, "60 minutes of backlog with a 30m cooldown")
}

func TestNearestPatrols(t *testing.T) {
	e := newEngine(t, loadRules(t))
	now := at(23, 10)
	e.Evaluate(e.position("P-07", now.Add(-5*time.Minute), north(ruinsIn, 3200)), now)
	e.Evaluate(e.position("P-08", now.Add(-time.Hour), north(ruinsIn, 100)), now) // too old
	got := only(e.Evaluate(e.phones("F-AOL-01", now, ruinsIn, "460000000000001"), now), "night-phone-ruins")
	require.Len(t, got, 1)
	require.Len(t, got[0].NearestPatrols, 1)
	assert.Equal(t, model.PatrolRef{Device: "P-07", DistanceKm: 3.2, Seen: now.Add(-5 * time.Minute)}, got[0].NearestPatrols[0])
}

// An alert about a patrol's own tracker (tamper, a flat battery) does not
// offer that patrol as the nearest help.
func TestNearestPatrolsLeaveOutTheSubject(t *testing.T) {
	e := newEngine(t, loadRules(t))
	now := at(23, 10)
	e.Evaluate(e.position("P-07", now.Add(-5*time.Minute), ruinsIn), now)
	e.Evaluate(e.position("P-08", now.Add(-5*time.Minute), north(ruinsIn, 2000)), now)
	got := only(e.Evaluate(e.status("P-07", now, model.Status{Tamper: model.SomeBool(true)}), now), "unit-tamper")
	require.Len(t, got, 1)
	require.Equal(t, model.Subject{Kind: "device", Value: "P-07"}, got[0].Subject)
	require.Len(t, got[0].NearestPatrols, 1)
	assert.Equal(t, "P-08", got[0].NearestPatrols[0].Device)
}

// A device's summary names it once, in its place.
func TestStatusSummaryNamesTheDeviceOnce(t *testing.T) {
	e := newEngine(t, loadRules(t))
	got := only(e.Evaluate(e.status("CP-07", at(23, 10), model.Status{Tamper: model.SomeBool(true)}), at(23, 10)), "unit-tamper")
	require.Len(t, got, 1)
	assert.Equal(t, 1, strings.Count(got[0].Summary, "G210 north of Baotou"), got[0].Summary)
}

func TestAlertIDStable(t *testing.T) {
	s := model.Subject{Kind: "imsi", Value: "428991234567890"}
	a := alertID("r", s, "z", at(23, 10), "")
	assert.Equal(t, a, alertID("r", s, "z", at(23, 10).UTC(), ""), "same instant, any zone offset")
	assert.NotEqual(t, a, alertID("r", s, "z", at(23, 11), ""))
	assert.NotEqual(t, a, alertID("r", s, "y", at(23, 10), ""))
	assert.NotEqual(t, a, alertID("r2", s, "z", at(23, 10), ""))
}

func TestWhenSeesZoneOfZonelessRule(t *testing.T) {
	rs, ps := compileYAML(t, strings.Replace(countRules, "rules:\n", "rules:\n  - {id: in-ruins, kind: presence, source: phone, when: 'zone == \"ruins\" && mcc == \"460\"'}\n", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := only(e.eval(e.phones("F-1", at(10, 0), model.Point{Lat: 41.9612, Lon: 110.4875}, "460000000000001")), "in-ruins")
	require.Len(t, got, 1)
	assert.Equal(t, "", got[0].Zone, "a rule without zones sends zone \"\"")
	assert.Empty(t, only(e.eval(e.phones("F-1", at(10, 1), ruinsOut, "460000000000002")), "in-ruins"))
}

// A reading in two overlapping zones is in both: a zoneless rule's `zone ==`
// holds for either (it saw only the first, by id).
func TestWhenSeesEveryZoneOfAnOverlap(t *testing.T) {
	rules := strings.Replace(countRules, "rules:\n", `  - {id: annex, site: mdl, circle: {lat: 41.9612, lon: 110.4875, radius_m: 300}}
rules:
  - {id: in-annex, kind: presence, source: phone, when: 'zone == "annex"'}
  - {id: in-ruins, kind: presence, source: phone, when: 'zone == "ruins"'}
  - {id: nowhere, kind: presence, source: phone, when: 'zone == ""'}
`, 1)
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := e.eval(e.phones("F-1", at(10, 0), model.Point{Lat: 41.9612, Lon: 110.4875}, "460000000000001"))
	assert.Len(t, only(got, "in-annex"), 1)
	assert.Len(t, only(got, "in-ruins"), 1)
	assert.Empty(t, only(got, "nowhere"))
	got = e.eval(e.phones("F-1", at(10, 1), ruinsOut, "460000000000002"))
	assert.Len(t, only(got, "nowhere"), 1, "outside every zone, zone is \"\"")
	assert.Empty(t, only(got, "in-ruins"))
}

func TestStateIsBounded(t *testing.T) {
	e := newEngine(t, loadRules(t))
	b := e.phones("F-AOL-01", at(12, 0), ruinsOut)
	for i := 0; i <= MaxTrackedPerRule; i++ {
		b.Detections = append(b.Detections, model.Detection{Stamp: model.Stamp{Time: at(12, 0)}, Loc: ruinsOut,
			IMSI: fmt.Sprintf("428%012d", i), MCC: "428"})
	}
	got := e.eval(b)
	assert.Len(t, only(got, "foreign-sim-near-border"), MaxTrackedPerRule+1, "every phone alerts once")
	st := e.rules["foreign-sim-near-border"]
	assert.Len(t, st.cool, MaxTrackedPerRule)
	assert.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_state_evicted_total", "foreign-sim-near-border"))
}

// Eviction at the bound takes an entry without an open incident when it
// can; an open one it takes is resolved, never dropped without a word.
func TestEvictionResolvesOpenIncidents(t *testing.T) {
	t.Run("an entry without an incident goes first", func(t *testing.T) {
		e := newEngine(t, countRuleset(t))
		st := e.rules["loiter"]
		m := map[dwellKey]*dwellEntry{
			{subj: 1}: {Open: &incident{}}, {subj: 2}: {}, {subj: 3}: {Open: &incident{}},
		}
		for range 20 {
			mm := maps.Clone(m)
			require.Nil(t, evictOne(st, e.Engine, mm, func(de *dwellEntry) *incident { return de.Open }, nil))
			require.NotContains(t, mm, dwellKey{subj: 2})
		}
	})
	t.Run("of those the probe finds, the one touched longest ago goes", func(t *testing.T) {
		e := newEngine(t, countRuleset(t))
		st := e.rules["loiter"]
		m := map[dwellKey]*dwellEntry{}
		for i := range evictProbe {
			m[dwellKey{subj: subjectID(i + 1)}] = &dwellEntry{Processed: at(12, i+1)}
		}
		m[dwellKey{subj: 100}] = &dwellEntry{Processed: at(11, 0)} // the oldest
		for range 20 {
			mm := maps.Clone(m)
			delete(mm, dwellKey{subj: subjectID(1 + len(m)%evictProbe)}) // evictProbe entries in all
			require.Nil(t, evictOne(st, e.Engine, mm, func(de *dwellEntry) *incident { return de.Open }, func(de *dwellEntry) time.Time { return de.Processed }))
			require.NotContains(t, mm, dwellKey{subj: 100})
		}
	})
	t.Run("a dwell incident evicted is resolved", func(t *testing.T) {
		e := newEngine(t, countRuleset(t))
		fired := only(e.Evaluate(e.phones("F-1", at(22, 0), ruinsIn, "460000000000001"), at(22, 0)), "loiter")
		require.Empty(t, fired)
		for m := 5; m <= 45; m += 5 {
			fired = append(fired, only(e.Evaluate(e.phones("F-1", at(22, m), ruinsIn, "460000000000001"), at(22, m)), "loiter")...)
		}
		require.Len(t, fired, 1)
		st := e.rules["loiter"]
		// Fill the rule's state to its bound with stays that all have an
		// incident open: the next new subject must evict one of them.
		for i := len(st.dwell); i < MaxTrackedPerRule; i++ {
			st.dwell[dwellKey{subj: subjectID(1_000_000 + i)}] = &dwellEntry{Open: &incident{Alert: model.Alert{ID: fmt.Sprint(i), Rule: "loiter"}}}
			st.open++
		}
		got := only(e.Evaluate(e.phones("F-1", at(22, 46), ruinsIn, "460000000000002"), at(22, 46)), "loiter")
		require.Len(t, got, 1)
		assert.Equal(t, model.StateResolved, got[0].State)
		assert.Contains(t, got[0].Summary, "no longer tracked")
		assert.Len(t, st.dwell, MaxTrackedPerRule)
		assert.Equal(t, float64(MaxTrackedPerRule-1), gauge(t, e, "fenceline_alerts_open_incidents", "loiter"), "one resolved")
	})
}

// A velocity rule at its bound forgets old plates, not the one seen a
// moment ago at the first checkpoint of a clone.
func TestVelocityAtItsBoundKeepsRecentSightings(t *testing.T) {
	e := newEngine(t, loadRules(t))
	a := model.Point{Lat: 41.70, Lon: 110.435}
	require.Empty(t, only(e.Evaluate(e.pass("CP-12", at(10, 0), a, model.Pass{Plate: "蒙B12345"}), at(10, 0)), "cloned-plate"))
	st := e.rules["cloned-plate"]
	for i := len(st.vel); i < MaxTrackedPerRule; i++ {
		id := e.subjects.id(model.Subject{Kind: "plate", Value: fmt.Sprintf("京B%06d", i)})
		st.vel[id] = []sighting{{T: at(9, 0), Processed: at(9, 0)}}
	}
	// Twice as many new plates as the rule holds, processed (a backlog)
	// before the clone's first sighting: it stays the newest entry.
	for n := 0; n < 2*MaxTrackedPerRule; n += 1000 {
		b := e.batch("CP-07", model.StreamPasses, at(9, 30))
		for i := range 1000 {
			b.Passes = append(b.Passes, model.Pass{Stamp: model.Stamp{Time: at(9, 30), Index: i}, Loc: a, Plate: fmt.Sprintf("京A%06d", n+i)})
		}
		e.Evaluate(b, at(9, 30))
	}
	got := only(e.Evaluate(e.pass("CP-07", at(10, 2), north(a, 80_000), model.Pass{Plate: "蒙B12345"}), at(10, 2)), "cloned-plate")
	require.Len(t, got, 1, "the clone's first sighting was kept")
}

// A count window at its bound keeps its latest subjects, forgetting its
// oldest: it drains when they leave, not one window after its first ones.
func TestCountWindowAtItsBound(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	see := func(ts time.Time, imsis ...string) []model.Alert {
		return only(e.Evaluate(e.phones("F-1", ts, ruinsIn, imsis...), ts), "crowd")
	}
	require.Empty(t, see(at(22, 0), "460000000000001"))
	cz := e.rules["crowd"].count["ruins"]
	for i := len(cz.Seen); i < MaxSubjectsPerZone; i++ {
		cz.Seen[subjectID(1_000_000+i)] = at(22, 0).UnixNano()
	}
	fired := see(at(22, 10), "460000000000002", "460000000000003", "460000000000004")
	require.Len(t, fired, 1)
	assert.Len(t, cz.Seen, MaxSubjectsPerZone)
	assert.Equal(t, 3.0, gauge(t, e, "fenceline_alerts_state_evicted_total", "crowd"))

	// 22:16: the subjects of 22:00 have left the window; the three of
	// 22:10 are still in it.
	assert.Empty(t, only(e.Tick(at(22, 16)), "crowd"), "still three phones within 15 minutes")
	res := only(e.Tick(at(22, 26)), "crowd")
	require.Len(t, res, 1, "drained 15 minutes after the latest phones")
	assert.Equal(t, model.StateResolved, res[0].State)
}

func TestCountThresholdWithinTheBound(t *testing.T) {
	_, ps := compileYAML(t, strings.Replace(countRules, "threshold: 3", "threshold: 10001", 1))
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].Error(), "threshold: at most 10000: a window holds at most 20000 subjects")
	_, ps = compileYAML(t, strings.Replace(countRules, "threshold: 3", "threshold: 10000", 1))
	require.Empty(t, ps)
}

// A zone refused by its own problem is not called unknown again by the
// rules that use it.
func TestRefusedZoneIsOneProblem(t *testing.T) {
	_, ps := compileYAML(t, strings.Replace(countRules,
		"circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}",
		`geojson: '{"type":"Polygon","coordinates":[[[179,41],[-179,41],[-179,42],[179,42],[179,41]]]}'`, 1))
	require.Len(t, ps, 1, "%v", ps)
	assert.Contains(t, ps[0].Error(), "antimeridian")
}

// A repeated warning is one line per interval, and the next line says how
// many were not logged.
func TestWarnEveryCountsWhatItHolds(t *testing.T) {
	e := newEngine(t, countRuleset(t))
	var buf bytes.Buffer
	e.log = slog.New(slog.NewTextHandler(&buf, nil))
	now := at(12, 0)
	e.clock = func() time.Time { return now }
	for range 3 {
		e.warnEvery("evict:loiter", time.Minute, "rule state at its bound; evicting entries", "rule", "loiter")
	}
	require.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	require.NotContains(t, buf.String(), "same_warnings_not_logged")
	now = now.Add(time.Minute)
	e.warnEvery("evict:loiter", time.Minute, "rule state at its bound; evicting entries", "rule", "loiter")
	require.Equal(t, 2, strings.Count(buf.String(), "\n"), buf.String())
	require.Contains(t, buf.String(), "same_warnings_not_logged=2")
}

// Lists of one kind share the reading's normal form (the engine normalises
// it once per reading), and rules of one list its answer (the rules after
// the first are skipped when the reading is not on it): each list still
// answers for itself, every rule of a list it is on fires, and the next
// reading is not answered from the previous one's.
func TestWatchlistsOfOneKind(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}
watchlists:
  foreign: {kind: imsi, entries: ["428*"]}
  wanted: {kind: imsi, entries: ["460001234567890"]}
rules:
  - {id: foreign-sim, kind: presence, source: phone, watchlist: foreign}
  - {id: wanted-sim, kind: presence, source: phone, watchlist: wanted}
  - {id: foreign-sim-too, kind: presence, source: phone, watchlist: foreign}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := e.eval(e.phones("F-1", at(12, 0), model.Point{Lat: 41.96, Lon: 110.48},
		"428991234567890", "460001234567890", "460009999999999", "428990000000001"))
	fired := map[string][]string{}
	for _, a := range got {
		fired[a.Rule] = append(fired[a.Rule], a.Subject.Value)
	}
	assert.Equal(t, map[string][]string{
		"foreign-sim":     {"428991234567890", "428990000000001"},
		"wanted-sim":      {"460001234567890"},
		"foreign-sim-too": {"428991234567890", "428990000000001"},
	}, fired)
}

// Summaries tell the time in alerts.timezone (the duty officers' clock),
// even for a rule whose schedule keeps another zone's hours.
func TestSummaryTimeIsInAlertsTimezone(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: utc-hours, kind: presence, source: phone, schedule: {tz: UTC, windows: [{from: "00:00", to: "12:00"}]}}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	got := e.eval(e.phones("F-1", at(9, 38), ruinsC, "460000000000001")) // 01:38 UTC
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Summary, "09:38 local")
}

const originRules = `
devices:
  - {id: CP-A, kind: checkpoint, site: mdl, lat: 42.30, lon: 110.15}
  - {id: CP-B, kind: checkpoint, site: mdl, lat: 42.40, lon: 110.25}
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: fast-outbound, kind: presence, source: vehicle, when: 'direction == "outbound" && speed_kmh > 120'}
  - {id: tamper, kind: status, when: "tamper"}
`

// An alert one reading raises (an event, a status incident) has an id that
// names the reading: two readings of one instant are two alerts — which the
// outbox would otherwise drop as duplicates of each other — while the same
// reading evaluated again (a redelivery after state was lost) is the same.
func TestEventAlertIDsNameTheirReading(t *testing.T) {
	rs, ps := compileYAML(t, originRules)
	require.Empty(t, ps)
	unread := model.Pass{Plate: model.NoPlate, Direction: "outbound", SpeedKmh: model.Some(150)}

	t.Run("unread plates at two checkpoints in one second", func(t *testing.T) {
		e := newEngine(t, rs)
		a := only(e.eval(e.pass("CP-A", at(12, 0), cp07, unread)), "fast-outbound")
		b := only(e.eval(e.pass("CP-B", at(12, 0), cp07, unread)), "fast-outbound")
		require.Len(t, a, 1)
		require.Len(t, b, 1)
		assert.NotEqual(t, a[0].ID, b[0].ID)

		again := newEngine(t, rs) // the same message, evaluated afresh
		c := only(again.eval(again.pass("CP-A", at(12, 0), cp07, unread)), "fast-outbound")
		require.Len(t, c, 1)
		assert.Equal(t, a[0].ID, c[0].ID)
	})

	t.Run("a status incident reopened at the same ts", func(t *testing.T) {
		e := newEngine(t, rs)
		n := at(12, 0)
		first := only(e.eval(e.status("F-1", n, model.Status{Tamper: model.SomeBool(true)})), "tamper")
		gone := only(e.eval(e.status("F-1", n, model.Status{Tamper: model.SomeBool(false)})), "tamper")
		second := only(e.eval(e.status("F-1", n, model.Status{Tamper: model.SomeBool(true)})), "tamper")
		require.Len(t, first, 1)
		require.Len(t, gone, 1)
		require.Len(t, second, 1)
		assert.Equal(t, first[0].ID, gone[0].ID, "a resolved carries its firing's id")
		assert.NotEqual(t, first[0].ID, second[0].ID, "a new incident, not a duplicate of the first")
	})
}

// cooldown: 0s is a choice, not the default: every matching reading fires.
func TestCooldownZeroIsNone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cooldown string
		fired    int
	}{
		{"absent: the default 10m", "", 1},
		{"0s: none", ", cooldown: 0s", 3},
		{"2m", ", cooldown: 2m", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
watchlists:
  foreign-sim: {kind: imsi, entries: ["428*"]}
rules:
  - {id: foreign, kind: presence, source: phone, watchlist: foreign-sim`+tc.cooldown+`}
`)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			n := 0
			for _, ts := range []time.Time{at(12, 0), at(12, 0).Add(time.Second), at(12, 3)} {
				n += len(only(e.eval(e.phones("F-1", ts, ruinsIn, "428991234567890")), "foreign"))
			}
			assert.Equal(t, tc.fired, n)
		})
	}
}

// An old status report delivered after a newer one is ignored whether or
// not the newer one matched: a tamper report of 50 minutes ago, arriving
// after "no tamper", must not open an incident nothing would resolve.
func TestStatusOlderReportIgnored(t *testing.T) {
	rs, ps := compileYAML(t, originRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	n := at(12, 0)
	require.Empty(t, only(e.eval(e.status("F-1", n, model.Status{Tamper: model.SomeBool(false)})), "tamper"))
	require.Empty(t, only(e.eval(e.status("F-1", n.Add(-50*time.Minute), model.Status{Tamper: model.SomeBool(true)})), "tamper"))
	assert.Zero(t, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))

	// A newer matching report still fires.
	require.Len(t, only(e.eval(e.status("F-1", n.Add(time.Minute), model.Status{Tamper: model.SomeBool(true)})), "tamper"), 1)
}

// The same for a rule that has not judged the newer report: a reload
// changed its `when`, and the old tamper report delivered since still
// opens nothing.
func TestStatusOlderReportIgnoredByARuleNewSinceTheLatest(t *testing.T) {
	rs, ps := compileYAML(t, originRules)
	require.Empty(t, ps)
	changed, ps := compileYAML(t, strings.Replace(originRules, `when: "tamper"`, `when: "tamper || battery_pct < 20"`, 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	n := at(12, 0)
	require.Empty(t, only(e.eval(e.status("F-1", n, model.Status{Tamper: model.SomeBool(false)})), "tamper"))
	e.Swap(changed)
	assert.Empty(t, only(e.Evaluate(e.status("F-1", n.Add(-time.Hour), model.Status{Tamper: model.SomeBool(true)}), n.Add(5*time.Minute)), "tamper"))
	assert.Zero(t, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))
}

// A unit's reports are in the order of their ts as sent, for the status it
// is in and for the rules alike: after a report from a clock 4 minutes fast
// (within the contract's 5), the reports of its corrected clock are older,
// and ignored until their ts passes it. Judged on their capped event time
// instead, "tamper false" resolved the incident while the unit's status
// stayed "tamper true", and its next battery report opened it again.
func TestStatusReportsInTheOrderOfTheirTS(t *testing.T) {
	rs, ps := compileYAML(t, originRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	n := at(12, 0)
	require.Len(t, only(e.Evaluate(e.status("F-1", n.Add(4*time.Minute), model.Status{Tamper: model.SomeBool(true)}), n), "tamper"), 1)
	assert.Empty(t, only(e.Evaluate(e.status("F-1", n.Add(time.Minute), model.Status{Tamper: model.SomeBool(false)}), n.Add(time.Minute)), "tamper"),
		"older than the unit's latest report: ignored")
	assert.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_open_incidents", "tamper"))
	res := only(e.Evaluate(e.status("F-1", n.Add(5*time.Minute), model.Status{Tamper: model.SomeBool(false)}), n.Add(5*time.Minute)), "tamper")
	require.Len(t, res, 1)
	assert.Equal(t, model.StateResolved, res[0].State)
	assert.Empty(t, only(e.Evaluate(e.status("F-1", n.Add(10*time.Minute), model.Status{BatteryPct: model.Some(80)}), n.Add(10*time.Minute)), "tamper"))
}

// A report that carries none of the fields a status rule's condition reads
// (a heartbeat of its signal only), or not all those the report that fired
// carried, says nothing about the condition: it resolves nothing, where one
// that carries them and no longer matches does. A condition that reads no
// status field is resolved by any report that does not match.
func TestStatusReportWithoutTheFieldsResolvesNothing(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: unit-tamper, kind: status, when: "tamper || battery_pct < 15"}
  - {id: on-battery, kind: status, when: '!has_battery_pct && power == "battery"'}
  - {id: before-one, kind: status, when: 'ts.Hour() < 13'}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	low := model.Status{BatteryPct: model.Some(5)}
	fired := only(e.eval(e.status("F-1", at(12, 0), low)), "unit-tamper")
	require.Len(t, fired, 1)
	for i, heartbeat := range []model.Status{
		{SignalDbm: model.Some(-90)},
		{FW: "2.3.1", Queue: model.SomeInt(0)},
		{},
	} {
		require.Empty(t, only(e.eval(e.status("F-1", at(12, 1+i), heartbeat)), "unit-tamper"), "report %d: stays open", i)
	}
	require.Empty(t, only(e.eval(e.status("F-1", at(12, 5), low)), "unit-tamper"), "the same incident, still open")
	got := only(e.eval(e.status("F-1", at(12, 6), model.Status{BatteryPct: model.Some(80)})), "unit-tamper")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.Equal(t, fired[0].ID, got[0].ID)

	// has_battery_pct reads battery_pct: a report of the battery resolves.
	require.Len(t, only(e.eval(e.status("F-2", at(12, 0), model.Status{Power: "battery"})), "on-battery"), 1)
	require.Empty(t, only(e.eval(e.status("F-2", at(12, 1), model.Status{SignalDbm: model.Some(-90)})), "on-battery"))
	got = only(e.eval(e.status("F-2", at(12, 2), model.Status{BatteryPct: model.Some(60), Power: "battery"})), "on-battery")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)

	// No status field read: any report that does not match resolves (the
	// incident of F-1's first report, at 12:00).
	got = only(e.eval(e.status("F-1", at(13, 0), model.Status{})), "before-one")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)

	// Opened by a tamper report: a report of the battery alone says
	// nothing of the tamper, and resolves nothing, across a restart too;
	// one of the tamper does.
	tampered := only(e.eval(e.status("F-1", at(14, 0), model.Status{Tamper: model.SomeBool(true)})), "unit-tamper")
	require.Len(t, tampered, 1)
	require.Empty(t, only(e.eval(e.status("F-1", at(14, 1), model.Status{BatteryPct: model.Some(80)})), "unit-tamper"))
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := newEngine(t, rs)
	_, err = e2.RestoreState(data)
	require.NoError(t, err)
	require.Empty(t, only(e2.eval(e2.status("F-1", at(14, 2), model.Status{BatteryPct: model.Some(80)})), "unit-tamper"), "after a restart")
	got = only(e2.eval(e2.status("F-1", at(14, 3), model.Status{Tamper: model.SomeBool(false)})), "unit-tamper")
	require.Len(t, got, 1)
	assert.Equal(t, tampered[0].ID, got[0].ID)
	assert.Equal(t, model.StateResolved, got[0].State)
}

// A status rule judges the unit's latest status — each field as the latest
// report that carried it said — not the report alone: a tamper reported
// while a low-battery incident is open keeps it open when the battery is
// charged again, and a tamper incident stays open on a report of the
// tamper closed while the battery is still low. Across a restart too.
func TestStatusJudgesTheUnitsLatestStatus(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: CP-1, kind: checkpoint, site: st, lat: 41.9612, lon: 110.4875}
  - {id: CP-2, kind: checkpoint, site: st, lat: 41.9612, lon: 110.4875}
rules:
  - {id: tamper, kind: status, when: "tamper || battery_pct < 15"}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	fired := e.eval(e.status("CP-1", at(12, 0), model.Status{BatteryPct: model.Some(10), TempC: model.Some(-5)}))
	require.Len(t, fired, 1)
	require.Empty(t, e.eval(e.status("CP-1", at(12, 1), model.Status{Tamper: model.SomeBool(true), BatteryPct: model.Some(10)})))
	require.Empty(t, e.eval(e.status("CP-1", at(12, 2), model.Status{BatteryPct: model.Some(60)})), "charged, but the enclosure is still open")
	require.Empty(t, e.eval(e.status("CP-1", at(11, 0), model.Status{Tamper: model.SomeBool(false)})), "a backlog older than the latest says nothing of now")
	got := e.eval(e.status("CP-1", at(12, 3), model.Status{Tamper: model.SomeBool(false)}))
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.Equal(t, fired[0].ID, got[0].ID)
	assert.Contains(t, got[0].Summary, "reports battery 60%, tamper false", "the status it judged")

	// The other order, and a restart between the reports.
	fired = e.eval(e.status("CP-2", at(12, 0), model.Status{Tamper: model.SomeBool(true)}))
	require.Len(t, fired, 1)
	require.Empty(t, e.eval(e.status("CP-2", at(12, 1), model.Status{Tamper: model.SomeBool(true), BatteryPct: model.Some(3)})))
	data, err := e.MarshalState()
	require.NoError(t, err)
	e2 := restarted(t, rs, data, at(12, 0), false, time.Time{})
	require.Empty(t, e2.eval(e2.status("CP-2", at(12, 2), model.Status{Tamper: model.SomeBool(false)})), "closed, but the battery is at 3%")
	got = e2.eval(e2.status("CP-2", at(12, 3), model.Status{BatteryPct: model.Some(50)}))
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.Equal(t, fired[0].ID, got[0].ID)
}

// A stay's re-sends (repeat_interval) say how long it is now and how many
// sightings it has, not the firing's figures again.
func TestDwellRepeatSaysHowLongNow(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}
rules:
  - {id: linger, kind: dwell, source: phone, duration: 10m, max_gap: 5m, repeat_interval: 10m}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	var fired []model.Alert
	for i := range 9 { // 12:00 to 12:16
		fired = append(fired, e.eval(e.phones("F-1", at(12, 2*i), ruinsIn, "460001234567890"))...)
	}
	require.Len(t, fired, 1)
	require.Equal(t, 6, fired[0].Count)
	re := e.Tick(at(12, 20).Add(30 * time.Second)) // 10 min after the firing, within max_gap of the last sighting
	require.Len(t, re, 1)
	assert.Equal(t, fired[0].ID, re[0].ID)
	assert.Equal(t, 1, re[0].Repeat)
	assert.Equal(t, 9, re[0].Count, "the stay's sightings now")
	assert.Len(t, re[0].Evidence, 9, "and their messages")
	assert.Contains(t, re[0].Summary, "; still there: 16 min in all, last seen 12:16")
}

// A dwell rule without zones follows a phone from site to site: its alert
// goes to the site it was seen at last, which its summary and location
// name, and so does its resolution.
func TestDwellWithoutZonesAcrossSites(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}
  - {id: F-3, kind: fence, site: bjm, lat: 41.70, lon: 110.43}
rules:
  - {id: linger, kind: dwell, source: phone, duration: 10m, max_gap: 5m}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	var got []model.Alert
	for i := range 6 {
		dev, at, loc := "F-1", at(12, 2*i), model.Point{Lat: 41.96, Lon: 110.48}
		if i%2 == 1 {
			dev, loc = "F-3", model.Point{Lat: 41.70, Lon: 110.43}
		}
		got = append(got, e.eval(e.phones(dev, at, loc, "460001234567890"))...)
	}
	require.Len(t, got, 1)
	assert.Equal(t, "bjm", got[0].Site, "seen last at F-3")
	assert.Contains(t, got[0].Summary, "F-3")
	assert.Equal(t, &model.Point{Lat: 41.70, Lon: 110.43}, got[0].Location)
	// Seen once more, back at F-1: the incident is bjm's, and its
	// resolution goes there, saying where the phone was seen last.
	require.Empty(t, e.eval(e.phones("F-1", at(12, 12), model.Point{Lat: 41.96, Lon: 110.48}, "460001234567890")))
	res := e.Tick(at(12, 30))
	require.Len(t, res, 1)
	assert.Equal(t, "bjm", res[0].Site)
	assert.Contains(t, res[0].Summary, "no longer seen (last seen at site mdl 12:12")
}

// An incident keeps the fields of the report that fired it (not the
// unit's whole status): a version that judged each report alone, gone back
// to, resolves it on a report of those fields.
func TestStatusFiredWithTheReportsFields(t *testing.T) {
	e := newEngine(t, loadRules(t)) // unit-tamper: tamper || battery_pct < 15
	require.Empty(t, e.eval(e.status("CP-07", at(12, 0), model.Status{BatteryPct: model.Some(50)})))
	require.Len(t, e.eval(e.status("CP-07", at(12, 1), model.Status{Tamper: model.SomeBool(true)})), 1)
	assert.Equal(t, statusFields["tamper"], e.rules["unit-tamper"].status["CP-07"].FiredWith)
}

// A change of what an open status incident reads counts as an incident
// change (its message's ack waits for a save); a report changing nothing
// it reads, or of a unit without an open incident, does not.
func TestStatusChangesAnOpenIncidentReads(t *testing.T) {
	e := newEngine(t, loadRules(t)) // unit-tamper: tamper || battery_pct < 15
	changes := e.IncidentChanges()
	changed := func(s model.Status) bool {
		e.eval(e.status("CP-07", at(12, 0).Add(time.Duration(e.seq["CP-07"])*time.Second), s))
		c := e.IncidentChanges() != changes
		changes = e.IncidentChanges()
		return c
	}
	require.False(t, changed(model.Status{BatteryPct: model.Some(50)}), "no incident open")
	require.True(t, changed(model.Status{Tamper: model.SomeBool(true)}), "the incident opened")
	require.True(t, changed(model.Status{BatteryPct: model.Some(10)}), "a field the open incident reads")
	require.False(t, changed(model.Status{BatteryPct: model.Some(10)}), "the same value again")
	require.False(t, changed(model.Status{TempC: model.Some(-20), SignalDbm: model.Some(-90)}), "fields it does not read")
}

// A unit a reload removes and a later reload puts back is still as it last
// reported: its tamper, closed by the removal as unknown, fires again on its
// next report, whatever that report carries.
func TestStatusOfAUnitRemovedAndPutBack(t *testing.T) {
	rules := `
devices:
  - {id: CP-1, kind: checkpoint, site: st, lat: 41.9612, lon: 110.4875}
  - {id: CP-3, kind: checkpoint, site: st, lat: 41.9612, lon: 110.4875}
rules:
  - {id: tamper, kind: status, when: "tamper || battery_pct < 15"}
`
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	without, ps := compileYAML(t, strings.Replace(rules, "  - {id: CP-3, kind: checkpoint, site: st, lat: 41.9612, lon: 110.4875}\n", "", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	require.Len(t, e.eval(e.status("CP-3", at(12, 0), model.Status{Tamper: model.SomeBool(true)})), 1)
	closed := only(e.Swap(without), "tamper")
	require.Len(t, closed, 1, "closed as the unit is no longer watched")
	// A restart while it is removed.
	data, err := e.MarshalState()
	require.NoError(t, err)
	e = restarted(t, without, data, at(12, 0), false, time.Time{})
	e.Swap(rs)
	got := e.eval(e.status("CP-3", at(12, 5), model.Status{BatteryPct: model.Some(50)}))
	require.Len(t, got, 1, "still tampered")
	assert.Equal(t, model.StateFiring, got[0].State)
}

// A status incident opened within its rule's schedule resolves when the
// unit reports the condition gone outside the schedule; a report still
// matching outside it neither resolves it nor opens another.
func TestStatusResolvesOutsideSchedule(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: night-tamper, kind: status, when: tamper, schedule: {tz: Asia/Shanghai, windows: [{from: "20:00", to: "06:00"}]}}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	tampered, fine := model.Status{Tamper: model.SomeBool(true)}, model.Status{Tamper: model.SomeBool(false)}
	fired := only(e.eval(e.status("F-1", at(5, 58), tampered)), "night-tamper")
	require.Len(t, fired, 1)
	require.Empty(t, only(e.eval(e.status("F-1", at(6, 1), tampered)), "night-tamper"), "still tampered: stays open")
	require.Empty(t, only(e.eval(e.status("F-2", at(6, 1), tampered)), "night-tamper"), "outside: nothing opens")
	got := only(e.eval(e.status("F-1", at(6, 2), fine)), "night-tamper")
	require.Len(t, got, 1)
	assert.Equal(t, model.StateResolved, got[0].State)
	assert.Equal(t, fired[0].ID, got[0].ID)
	require.Empty(t, only(e.eval(e.status("F-1", at(12, 0), tampered)), "night-tamper"), "outside: nothing opens")
}

// A status condition that fails at run time leaves the incident as it is:
// taken as false, it resolved an incident the unit still reported.
func TestStatusConditionErrorChangesNothing(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: old-fw, kind: status, when: 'int(fw) < 2 || tamper'}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	fired := only(e.eval(e.status("F-1", at(12, 0), model.Status{FW: "1", Tamper: model.SomeBool(true)})), "old-fw")
	require.Len(t, fired, 1)
	require.Empty(t, only(e.eval(e.status("F-1", at(12, 1), model.Status{FW: "2.3.1", Tamper: model.SomeBool(true)})), "old-fw"), "not resolved by an error")
	require.Equal(t, 1.0, gauge(t, e, "fenceline_alerts_when_errors_total", "old-fw"))
	require.Empty(t, only(e.eval(e.status("F-1", at(12, 2), model.Status{FW: "1", Tamper: model.SomeBool(true)})), "old-fw"), "still the one incident")
	got := only(e.eval(e.status("F-1", at(12, 3), model.Status{FW: "3", Tamper: model.SomeBool(false)})), "old-fw")
	require.Len(t, got, 1)
	assert.Equal(t, fired[0].ID, got[0].ID)
	assert.Equal(t, model.StateResolved, got[0].State)
}

// Summaries read as a duty officer reads: a status condition with "or",
// not "||".
func TestStatusSummaryReadable(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: unit-tamper, kind: status, when: "tamper || battery_pct < 15"}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	fired := only(e.eval(e.status("F-1", at(12, 0), model.Status{Tamper: model.SomeBool(true)})), "unit-tamper")
	require.Len(t, fired, 1)
	assert.Contains(t, fired[0].Summary, "Device F-1 at site mdl reports tamper true (condition: tamper or battery_pct < 15)",
		"a device without a name is not named twice")
	gone := only(e.eval(e.status("F-1", at(12, 1), model.Status{Tamper: model.SomeBool(false)})), "unit-tamper")
	require.Len(t, gone, 1)
	assert.Contains(t, gone[0].Summary, "reports tamper false, no longer tamper or battery_pct < 15")

	// A unit's text is quoted unless it is one word, its line separators
	// and controls escaped: a summary is one line, and no unit writes a
	// line or a sentence of it. fw 1.0 stays bare.
	for i, tc := range []struct{ power, want string }{
		{"mains", "power mains,"},
		{"mains\u2028Tamper cleared by technician", `power "mains\u2028Tamper cleared by technician"`},
		{"solar\u0085x", `power "solar\u0085x"`},
		{"mains\u3164\u3164Tamper cleared", `power "mains\u3164\u3164Tamper cleared"`},
		{"say \"hi\"\u2028", `power "say \"hi\"\u2028"`},
		{"电池 供电", `power "电池 供电",`},
		{"电池", "power 电池,"},
		{"mains. Tamper cleared", `power "mains. Tamper cleared",`},
		{"mains.", `power "mains.",`},
		{"mains, tamper false", `power "mains, tamper false",`},
	} {
		got := only(e.eval(e.status("F-1", at(13, 2*i), model.Status{Tamper: model.SomeBool(true), Power: tc.power, FW: "1.0"})), "unit-tamper")
		require.Len(t, got, 1)
		assert.Contains(t, got[0].Summary, tc.want)
		assert.Contains(t, got[0].Summary, ", fw 1.0 ")
		assert.NotContains(t, got[0].Summary, "\u2028")
		assert.NotContains(t, got[0].Summary, "\u0085")
		require.Len(t, only(e.eval(e.status("F-1", at(13, 2*i+1), model.Status{Tamper: model.SomeBool(false)})), "unit-tamper"), 1)
	}
}

// A count incident opened again at the event time of an earlier one (a unit
// whose clock repeats a ts) is an incident of its own, with its own id.
func TestCountIncidentReopenedAtTheSameTime(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	ts := at(12, 0)
	first := only(e.eval(e.phones("F-1", ts, ruinsIn, "460000000000001", "460000000000002", "460000000000003")), "crowd")
	require.Len(t, first, 1)
	gone := only(e.Tick(ts.Add(time.Hour)), "crowd")
	require.Len(t, gone, 1)
	second := only(e.eval(e.phones("F-1", ts, ruinsIn, "460000000000001", "460000000000002", "460000000000003")), "crowd")
	require.Len(t, second, 1)
	assert.Equal(t, first[0].ID, gone[0].ID)
	assert.NotEqual(t, first[0].ID, second[0].ID)
}

// A plate read with and without its space is one vehicle for the rules'
// state: a velocity rule pairs its sightings, a cooldown holds for both.
func TestPlateWithAndWithoutSpaceIsOneSubject(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: CP-A, kind: checkpoint, site: mdl, lat: 42.30, lon: 110.15}
  - {id: CP-B, kind: checkpoint, site: mdl, lat: 42.60, lon: 110.15}
watchlists:
  mongolian: {kind: plate, entries: ["1598 УБА"]}
rules:
  - {id: velo, kind: velocity, source: vehicle, max_kmh: 180}
  - {id: listed, kind: presence, source: vehicle, watchlist: mongolian}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	a := model.Point{Lat: 42.30, Lon: 110.15}
	b := model.Point{Lat: 42.60, Lon: 110.15} // 33 km north
	first := e.eval(e.pass("CP-A", at(12, 0), a, model.Pass{Plate: "1598 УБА"}))
	second := e.eval(e.pass("CP-B", at(12, 1), b, model.Pass{Plate: "1598УБА"}))
	assert.Len(t, only(first, "listed"), 1)
	assert.Empty(t, only(second, "listed"), "within the cooldown of the same vehicle")
	assert.Len(t, only(second, "velo"), 1, "33 km in a minute: the same vehicle at both")
}

func TestReadableWhen(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tamper || battery_pct < 15", "tamper or battery_pct < 15"},
		{`temp_c < -35 && !(power == "mains") && power != "solar"`, `temp_c < -35 and not (power == "mains") and power != "solar"`},
		{"!tamper", "not tamper"},
	} {
		assert.Equal(t, tc.want, readableWhen(tc.in), tc.in)
	}
}

// Durations in summaries read as times, not metres ("within 2m").
func TestShortDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "0 s",
		45 * time.Second:                "45 s",
		2 * time.Minute:                 "2 min",
		150 * time.Second:               "2 min 30 s",
		time.Hour:                       "1 h",
		65*time.Minute + 20*time.Second: "1 h 5 min",
		47 * time.Hour:                  "47 h",
		76 * time.Hour:                  "3 d 4 h",
		-90 * time.Second:               "-1 min 30 s",
	} {
		assert.Equal(t, want, shortDur(d), "%v", d)
	}
}

func TestCountNoun(t *testing.T) {
	assert.Equal(t, "phone", countNoun(SourcePhone, 1))
	assert.Equal(t, "phones", countNoun(SourcePhone, 0))
	assert.Equal(t, "vehicles", countNoun(SourceVehicle, 3))
	assert.Equal(t, "patrol", countNoun(SourcePatrol, 1))
}

// A resolution's at is never after its raised_at: a window drained by Tick
// moves its clock on by a monotonic duration, which can pass the wall clock
// by a few nanoseconds.
func TestResolvedNeverAfterRaisedAt(t *testing.T) {
	rs, ps := compileYAML(t, countRules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	st := e.order[0]
	now := at(12, 0)
	inc := &incident{Alert: model.Alert{ID: "x", Rule: st.rule.ID, State: model.StateFiring, At: at(11, 0)}}
	st.open++
	a := e.resolved(st, inc, now.Add(10*time.Nanosecond), now, false, "gone")
	assert.Equal(t, now, a.At)
	assert.Equal(t, now, a.RaisedAt)
}

func TestWithoutLiterals(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"strings of every quote", `imsi in ["460019999999991", '460019999999992'] or plate == ` + "`蒙B12345`", `imsi in ["…", '…'] or plate == ` + "`…`"},
		{"an escaped quote does not end a string", `plate == "a\"b" and tamper`, `plate == "…" and tamper`},
		{"long numbers, not short ones", `int(imsi) == 460019999999991 and speed_kmh > 120 and battery_pct < 5.5`, `int(imsi) == … and speed_kmh > 120 and battery_pct < 5.5`},
		{"digits of a name stay", `rssi2 > -70`, `rssi2 > -70`},
		{"numbers in other bases", `int(imsi) == 0x1A2633E9F6C5C or x == 0b1011011 or speed_kmh > 1e2`, `int(imsi) == … or x == … or speed_kmh > 1e2`},
		{"an unterminated string", `plate == "蒙B`, `plate == "…`},
		{"nothing to hide", `tamper or battery_pct < 15`, `tamper or battery_pct < 15`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, withoutLiterals(tc.in))
		})
	}
}

// With privacy on, a summary quotes its rule's condition without the
// identifiers it may name: next to the hash of one of them, it would say
// which IMSI the hash is.
func TestSummaryHidesConditionLiterals(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: watched, kind: presence, source: phone, when: 'imsi in ["460019999999991", "460019999999992"] or imei == "35209900176148"'}
`)
	require.Empty(t, ps)
	for _, hide := range []bool{false, true} {
		e := newEngine(t, rs)
		e.opts.HideConditionLiterals = hide
		got := only(e.eval(e.phones("F-1", at(22, 0), ruinsIn, "460019999999991")), "watched")
		require.Len(t, got, 1)
		if hide {
			assert.Contains(t, got[0].Summary, `(condition: imsi in ["…", "…"] or imei == "…")`)
			assert.NotContains(t, got[0].Summary, "460019999999992")
			assert.NotContains(t, got[0].Summary, "35209900176148")
		} else {
			assert.Contains(t, got[0].Summary, `(condition: imsi in ["460019999999991", "460019999999992"] or imei == "35209900176148")`)
		}
	}
}

// While fenceline takes no messages from the broker no unit can be heard,
// so none is declared silent; once it takes them again, each unit has a
// full limit, as after a start, for what the broker queued meanwhile.
func TestSilenceNotWhileDeaf(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: offline, kind: silence, after: 10m}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	t0 := at(10, 0)
	e.Evaluate(e.phones("F-1", t0, ruinsIn, "460000000000001"), t0)
	e.Listening(false, t0.Add(time.Minute))
	assert.Empty(t, only(e.Tick(t0.Add(30*time.Minute)), "offline"), "nothing can be heard: no silence")
	e.Listening(true, t0.Add(40*time.Minute))
	assert.Empty(t, only(e.Tick(t0.Add(45*time.Minute)), "offline"), "within a limit of listening again")
	got := only(e.Tick(t0.Add(50*time.Minute+time.Second)), "offline")
	require.Len(t, got, 1, "a full limit after listening again")
	assert.Equal(t, "F-1", got[0].Subject.Value)
	e.Listening(true, t0.Add(51*time.Minute)) // still listening: no new grace
	e.Evaluate(e.phones("F-1", t0.Add(52*time.Minute), ruinsIn, "460000000000001"), t0.Add(52*time.Minute))
	assert.Empty(t, only(e.Tick(t0.Add(62*time.Minute)), "offline"))
	require.Len(t, only(e.Tick(t0.Add(62*time.Minute+time.Second)), "offline"), 1, "the grace does not move on while listening")
}

// overlappingZones are two checkpoints 111 km apart, CP-A in two zones
// (strip and port overlap there), CP-B in a third; the rules follow.
const overlappingZones = `
devices:
  - {id: CP-A, kind: checkpoint, site: mdl, lat: 41.70, lon: 110.435}
  - {id: CP-B, kind: checkpoint, site: mdl, lat: 42.70, lon: 110.435}
zones:
  - {id: strip, site: mdl, circle: {lat: 41.70, lon: 110.435, radius_m: 3000}}
  - {id: port, site: mdl, circle: {lat: 41.70, lon: 110.435, radius_m: 1000}}
  - {id: north, site: mdl, circle: {lat: 42.70, lon: 110.435, radius_m: 1000}}
rules:
`

// A pass in two of a velocity rule's zones (they overlap) is one sighting:
// kept twice, the rule held two passes of a plate rather than four, and a
// checkpoint's backlog from 111 km away a minute after the oldest was
// compared only with a later pass; the clone was missed. It raises one
// alert, not one per zone.
func TestVelocityOverlappingZonesKeepOneSighting(t *testing.T) {
	rules := overlappingZones + "  - {id: clone, kind: velocity, source: vehicle, zones: [strip, port, north], max_kmh: 180}\n"
	for _, tc := range []struct {
		name string
		a    model.Point
	}{
		{"in two zones", model.Point{Lat: 41.70, Lon: 110.435}},
		{"in one zone", model.Point{Lat: 41.70, Lon: 110.435 + 0.03}}, // strip only
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, ps := compileYAML(t, rules)
			require.Empty(t, ps)
			e := newEngine(t, rs)
			b := model.Point{Lat: 42.70, Lon: 110.435}
			plate := model.Pass{Plate: "蒙B12345"}
			now := at(23, 0)
			for _, ts := range []time.Time{at(21, 0), at(22, 0), at(22, 30)} {
				require.Empty(t, only(e.Evaluate(e.pass("CP-A", ts, tc.a, plate), now), "clone"))
			}
			for _, h := range e.rules["clone"].vel {
				assert.Len(t, h, 3, "one sighting per pass")
			}
			// CP-B's backlog: the plate 111 km away a minute after 21:00.
			assert.Len(t, only(e.Evaluate(e.pass("CP-B", at(21, 1), b, plate), now), "clone"), 1, "a clone, raised once")
		})
	}
	// A backlog pass older than every sighting kept, in two of the zones,
	// with no cooldown to hide a second alert: one pair, one alert.
	rs, ps := compileYAML(t, strings.Replace(rules, "max_kmh: 180}", "max_kmh: 180, cooldown: 0s}", 1))
	require.Empty(t, ps)
	e := newEngine(t, rs)
	a, b := model.Point{Lat: 41.70, Lon: 110.435}, model.Point{Lat: 42.70, Lon: 110.435}
	plate := model.Pass{Plate: "蒙B12345"}
	for _, ts := range []time.Time{at(22, 0), at(22, 10), at(22, 20), at(22, 30)} {
		require.Empty(t, only(e.Evaluate(e.pass("CP-B", ts, b, plate), at(23, 0)), "clone"))
	}
	assert.Len(t, only(e.Evaluate(e.pass("CP-A", at(21, 59), a, plate), at(23, 0)), "clone"), 1, "one pass, one alert")
}

// A cooldown remembers a replayed backlog's alerts as one span, not one
// slot each: after one unit's backlog of a morning raised an alert every
// 30 minutes, a second unit's backlog of the same phone and hours raised
// them all again (four slots held only the last four). Times between two
// alerts more than two cooldowns apart still fire.
func TestCooldownRemembersABacklogsAlerts(t *testing.T) {
	rules := twoUnitsAtTheRuins + "  - {id: at-ruins, kind: presence, source: phone, zones: [ruins], cooldown: 30m}\n"
	rs, ps := compileYAML(t, rules)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	const imsi = "460000000000001"
	now := at(12, 0)
	see := func(dev string, ts time.Time) int {
		return len(only(e.Evaluate(e.phones(dev, ts, ruinsIn, imsi), now), "at-ruins"))
	}
	require.Equal(t, 1, see("F-1", now), "live")
	fired := 0
	for m := 0; m <= 150; m += 10 { // F-1's backlog: 06:00 to 08:30, a scan every 10 minutes
		fired += see("F-1", at(6, 0).Add(time.Duration(m)*time.Minute))
	}
	require.Equal(t, 6, fired, "06:00, 06:30, 07:00, 07:30, 08:00, 08:30")
	for m := 0; m <= 150; m += 10 { // F-2's backlog of the same phone, a minute later each
		assert.Zero(t, see("F-2", at(6, 1).Add(time.Duration(m)*time.Minute)), "within 30 minutes of an alert raised")
	}
	assert.Zero(t, see("F-2", at(11, 45)), "within 30 minutes of the live alert")
	assert.Equal(t, 1, see("F-2", at(10, 0)), "more than 30 minutes from every alert")
	assert.Zero(t, see("F-1", at(8, 59)), "within the cooldown of 08:30")
	assert.Equal(t, 1, see("F-1", at(9, 1)), "past it")
}

// A velocity rule whose `when` reads the zone takes a reading in the first
// of its zones the condition passes in: taken in the first zone only,
// whatever the condition said there, the pass was lost and the clone
// missed.
func TestVelocityWhenOnTheZone(t *testing.T) {
	rules := overlappingZones + "  - {id: clone, kind: velocity, source: vehicle, zones: [strip, port, north], max_kmh: 180, when: 'zone != \"%s\"'}\n"
	for _, not := range []string{"strip", "port"} {
		t.Run("zone != "+not, func(t *testing.T) {
			rs, ps := compileYAML(t, fmt.Sprintf(rules, not))
			require.Empty(t, ps)
			e := newEngine(t, rs)
			plate := model.Pass{Plate: "蒙B12345"}
			require.Empty(t, only(e.Evaluate(e.pass("CP-A", at(22, 0), model.Point{Lat: 41.70, Lon: 110.435}, plate), at(23, 0)), "clone"))
			assert.Len(t, only(e.Evaluate(e.pass("CP-B", at(22, 1), model.Point{Lat: 42.70, Lon: 110.435}, plate), at(23, 0)), "clone"), 1,
				"the pass at CP-A is in a zone the condition passes in")
		})
	}
}

// A run of alerts apart from the four a cooldown keeps takes the place of
// the run that ended first, not of the next slot of a ring: a live alert
// at 12:00 after backlogs of 06:00, 04:00 and 02:00 pushed out 10:00's.
func TestCooldownForgetsTheOldestRun(t *testing.T) {
	rs, ps := compileYAML(t, twoUnitsAtTheRuins+"  - {id: seen, kind: presence, source: phone, zones: [ruins], cooldown: 30m}\n")
	require.Empty(t, ps)
	e := newEngine(t, rs)
	see := func(dev string, ts time.Time) int {
		return len(only(e.Evaluate(e.phones(dev, ts, ruinsIn, "460000000000001"), at(12, 0)), "seen"))
	}
	for _, hh := range []int{10, 6, 4, 2, 12} {
		require.Equal(t, 1, see("F-1", at(hh, 0)), "%02d:00", hh)
	}
	assert.Zero(t, see("F-2", at(10, 5)), "within the cooldown of 10:00's alert")
	assert.Equal(t, 1, see("F-2", at(2, 5)), "02:00's run, the oldest, was forgotten")
}
