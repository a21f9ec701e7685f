package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// backlogRules is a site with two fence units in each of two zones, a
// short dwell rule and a short count rule, as a black-box tester set them.
const backlogRules = `
devices:
  - {id: F-AOL-01, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-AOL-02, kind: fence, site: mdl, lat: 41.9614, lon: 110.4877}
  - {id: F-BJM-09, kind: fence, site: bjm, lat: 41.7030, lon: 110.4350}
  - {id: F-BJM-10, kind: fence, site: bjm, lat: 41.7032, lon: 110.4352}
zones:
  - {id: ruins, site: mdl, name: Ruins, units: [station-mdl], circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
  - {id: east-field, site: bjm, name: East field, units: [station-bjm], circle: {lat: 41.7030, lon: 110.4350, radius_m: 500}}
rules:
  - {id: loiter, kind: dwell, source: phone, zones: [ruins], duration: 2m, max_gap: 45s}
  - {id: crowd, kind: count, source: phone, zones: [ruins, east-field], window: 2m, threshold: 3, repeat_interval: 20s}
`

func backlogEngine(t *testing.T) *testEngine {
	t.Helper()
	rs, ps := compileYAML(t, backlogRules)
	require.Empty(t, ps)
	return newEngine(t, rs)
}

// A stay whose sightings arrive out of order — a unit's backlog behind the
// newer sighting of another unit, or both units' backlogs shuffled — is one
// stay once its sightings are in: it fires when its whole length reaches
// duration, from its earliest sighting, and counts (and names in evidence)
// every sighting, the one that joined its parts included.
func TestDwellBacklogFillsTheGap(t *testing.T) {
	const imsi = "460000000000001"
	now := at(23, 0)
	type sighting struct {
		dev  string
		secs int // before now
	}
	tests := []struct {
		name     string
		arrivals []sighting
		firesAt  int    // index of the arrival that fires; -1: none
		count    int    // the firing's count
		length   string // the firing's "for …"
		resolved int    // the resolved alert's count
		stayed   string // the resolved alert's "stayed …"
		restart  int    // if not 0, fenceline restarts before this arrival
	}{
		{
			name: "one unit's backlog behind the other unit's newer sighting",
			arrivals: []sighting{{"F-AOL-01", 140}, {"F-AOL-02", 20},
				{"F-AOL-01", 120}, {"F-AOL-01", 100}, {"F-AOL-01", 80}, {"F-AOL-01", 60}, {"F-AOL-01", 40}},
			// T-60s is within max_gap of T-20s: it joins the two, 2 minutes.
			firesAt: 5, count: 6, length: "for 2 min ", resolved: 7, stayed: "stayed 2 min)",
		},
		{
			name: "two units' backlogs shuffled",
			arrivals: []sighting{{"F-AOL-01", 150}, {"F-AOL-02", 30}, {"F-AOL-01", 90}, {"F-AOL-02", 130},
				{"F-AOL-01", 10}, {"F-AOL-02", 110}, {"F-AOL-01", 70}, {"F-AOL-02", 50}},
			firesAt: 6, count: 7, length: "for 2 min 20 s ", resolved: 8, stayed: "stayed 2 min 20 s)",
		},
		{
			name: "two units' backlogs shuffled, across a restart",
			arrivals: []sighting{{"F-AOL-01", 150}, {"F-AOL-02", 30}, {"F-AOL-01", 90}, {"F-AOL-02", 130},
				{"F-AOL-01", 10}, {"F-AOL-02", 110}, {"F-AOL-01", 70}, {"F-AOL-02", 50}},
			firesAt: 6, count: 7, length: "for 2 min 20 s ", resolved: 8, stayed: "stayed 2 min 20 s)",
			restart: 3, // with two backlog stays, T-150s and T-90s
		},
		{
			name: "in order, for comparison",
			arrivals: []sighting{{"F-AOL-01", 140}, {"F-AOL-01", 120}, {"F-AOL-01", 100}, {"F-AOL-01", 80},
				{"F-AOL-01", 60}, {"F-AOL-01", 40}, {"F-AOL-02", 20}},
			firesAt: 6, count: 7, length: "for 2 min ", resolved: 7, stayed: "stayed 2 min)",
		},
		{
			name: "a gap the backlog does not fill stays a gap",
			arrivals: []sighting{{"F-AOL-01", 140}, {"F-AOL-02", 20},
				{"F-AOL-01", 120}, {"F-AOL-01", 100}, {"F-AOL-01", 40}},
			firesAt: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := backlogEngine(t)
			var fired []model.Alert
			for i, s := range tc.arrivals {
				if tc.restart != 0 && i == tc.restart {
					e = restart(t, e, e.rs)
				}
				ts := now.Add(-time.Duration(s.secs) * time.Second)
				got := only(e.Evaluate(e.phones(s.dev, ts, ruinsIn, imsi), now), "loiter")
				if i != tc.firesAt {
					require.Empty(t, got, "arrival %d (T-%ds)", i, s.secs)
					continue
				}
				require.Len(t, got, 1, "arrival %d (T-%ds)", i, s.secs)
				fired = got
			}
			res := only(e.Tick(now.Add(46*time.Second)), "loiter")
			if tc.firesAt < 0 {
				assert.Empty(t, res)
				return
			}
			f := fired[0]
			assert.Equal(t, model.StateFiring, f.State)
			assert.Equal(t, tc.count, f.Count, "every sighting of the stay so far")
			assert.Contains(t, f.Summary, tc.length, "from its earliest sighting")
			assert.Len(t, f.Evidence, tc.count, "one entry per message: %v", f.Evidence)
			seen := map[int64]bool{}
			for _, ev := range f.Evidence {
				seen[ev.TS.UnixNano()] = true
			}
			for _, s := range tc.arrivals[:tc.firesAt+1] {
				assert.True(t, seen[now.Add(-time.Duration(s.secs)*time.Second).UnixNano()], "T-%ds in the evidence", s.secs)
			}

			require.Len(t, res, 1)
			assert.Equal(t, model.StateResolved, res[0].State)
			assert.Equal(t, f.ID, res[0].ID)
			assert.Equal(t, tc.resolved, res[0].Count, "every sighting of the stay")
			assert.Contains(t, res[0].Summary, tc.stayed)
			assert.Equal(t, 0.0, gauge(t, e, "fenceline_alerts_backlog_readings_unused_total", "loiter"))
		})
	}
}

// A stay that a newer sighting ended is kept as a backlog stay only while
// it could still be joined: one that fired was resolved, and its backlog
// does not raise it again; and a subject keeps at most two backlog stays.
func TestDwellEndedStayKeptAsBacklog(t *testing.T) {
	const imsi = "460000000000001"
	now := at(23, 0)
	e := backlogEngine(t)
	see := func(secs int) []model.Alert {
		return only(e.Evaluate(e.phones("F-AOL-01", now.Add(-time.Duration(secs)*time.Second), ruinsIn, imsi), now), "loiter")
	}
	for s := 600; s >= 480; s -= 20 {
		got := see(s)
		if s == 480 {
			require.Len(t, got, 1, "two minutes from T-600s")
		} else {
			require.Empty(t, got)
		}
	}
	res := see(400)
	require.Len(t, res, 1, "a gap of 80 s ends the stay")
	assert.Equal(t, model.StateResolved, res[0].State)
	require.Empty(t, see(460), "the ended stay had fired: not a backlog stay to join")
	require.Empty(t, see(440))
	require.Empty(t, see(420))

	st := e.rules["loiter"]
	assert.LessOrEqual(t, len(st.dwell), 3, "the current stay and two backlog stays at most")
	for k := range st.dwell {
		assert.LessOrEqual(t, k.backlog, int32(2))
	}
}

// A backlog of a zone's units that falls within the span of the crowd
// incident the zone has open — its window's reach back from where it
// fired, to now — is that crowd, already reported: it opens no second
// incident. A backlog older than that is a crowd of its own time.
func TestCountBacklogWithinTheOpenIncident(t *testing.T) {
	now := at(23, 0)
	phones := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("4600180000%05d", i))
		}
		return out
	}
	tests := []struct {
		name     string
		live     int // phones the live unit reports every 20 s, T-180 s to T
		backlog  int // seconds before now
		phones   int
		ownCrowd bool // the backlog is a crowd of its own (a second id)
	}{
		{name: "after the firing, older than the window", live: 4, backlog: 150, phones: 3},
		{name: "before the firing, within its window's reach", live: 4, backlog: 250, phones: 3},
		{name: "older than the incident's reach", live: 4, backlog: 320, phones: 3, ownCrowd: true},
		{name: "no incident open", live: 2, backlog: 150, phones: 3, ownCrowd: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := backlogEngine(t)
			var liveID string
			for s := 180; s >= 0; s -= 20 {
				ts := now.Add(-time.Duration(s) * time.Second)
				for _, a := range only(e.Evaluate(e.phones("F-BJM-09", ts, model.Point{Lat: 41.7030, Lon: 110.4350}, phones(tc.live)...), ts), "crowd") {
					if a.State == model.StateFiring && a.Repeat == 0 {
						require.Empty(t, liveID, "one live incident")
						liveID = a.ID
					}
				}
			}
			if tc.live >= 3 {
				require.NotEmpty(t, liveID)
			}
			ts := now.Add(-time.Duration(tc.backlog) * time.Second)
			got := only(e.Evaluate(e.phones("F-BJM-10", ts, model.Point{Lat: 41.7032, Lon: 110.4352}, phones(tc.phones)...), now), "crowd")
			for tick := now.Add(time.Second); tick.Before(now.Add(4 * time.Minute)); tick = tick.Add(time.Second) {
				got = append(got, only(e.Tick(tick), "crowd")...)
			}
			ids := map[string]bool{}
			for _, a := range got {
				ids[a.ID] = true
			}
			delete(ids, liveID)
			if !tc.ownCrowd {
				assert.Empty(t, ids, "no incident besides the live one")
				return
			}
			require.Len(t, ids, 1, "a crowd of its own time")
			var own []model.Alert
			for _, a := range got {
				if ids[a.ID] && a.Repeat == 0 {
					own = append(own, a)
				}
			}
			require.Len(t, own, 2)
			assert.Equal(t, model.StateFiring, own[0].State)
			assert.Equal(t, ts, own[0].At)
			assert.Equal(t, model.StateResolved, own[1].State)
		})
	}
}

// twoUnitsAtTheRuins are two fence units side by side at the ruins, to
// deliver one phone's readings, or one crowd's, twice; the rules follow.
const twoUnitsAtTheRuins = `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
  - {id: F-2, kind: fence, site: mdl, lat: 41.9612, lon: 110.4876}
zones:
  - {id: ruins, site: mdl, name: Ruins, units: [station-mdl], circle: {lat: 41.9612, lon: 110.4875, radius_m: 500}}
rules:
`

// A count window drains on Tick by processing time; a late reading of
// another unit must not wind it back. Judged against the zone's latest
// event time rather than its drained clock, a phone of a crowd that had
// left (resolved on Tick) came back into the window and the crowd was
// raised again as a new incident; and a late reading that reset the
// drain's reference kept a crowd that had left firing until a later tick.
func TestCountLateReadingDoesNotWindBackTheDrain(t *testing.T) {
	rules := twoUnitsAtTheRuins + "  - {id: crowd, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}\n"
	engine := func(t *testing.T) (*testEngine, func(dev string, ts, now time.Time, imsis ...string) []model.Alert) {
		rs, ps := compileYAML(t, rules)
		require.Empty(t, ps)
		e := newEngine(t, rs)
		return e, func(dev string, ts, now time.Time, imsis ...string) []model.Alert {
			return only(e.Evaluate(e.phones(dev, ts, ruinsIn, imsis...), now), "crowd")
		}
	}
	t.Run("a crowd resolved is not raised again", func(t *testing.T) {
		e, see := engine(t)
		require.Empty(t, see("F-1", at(21, 58), at(21, 58), "460000000000001"))
		require.Len(t, see("F-1", at(22, 10), at(22, 10), "460000000000002", "460000000000003"), 1)
		res := only(e.Tick(at(22, 14)), "crowd")
		require.Len(t, res, 1, "21:58's phone left the window (21:59, 22:14]")
		require.Equal(t, model.StateResolved, res[0].State)
		// F-2 saw phone 1 at 21:57; its message arrives at 22:14:30.
		assert.Empty(t, see("F-2", at(21, 57), at(22, 14).Add(30*time.Second), "460000000000001"))
	})
	t.Run("a crowd that left resolves on time", func(t *testing.T) {
		e, see := engine(t)
		require.Len(t, see("F-1", at(22, 10), at(22, 10), "460000000000001", "460000000000002", "460000000000003"), 1)
		require.Empty(t, only(e.Tick(at(22, 24)), "crowd"), "22:10's phones are still within (22:09, 22:24]")
		// F-2's reading of another phone at 22:00 arrives at 22:24:30.
		require.Empty(t, see("F-2", at(22, 0), at(22, 24).Add(30*time.Second), "460000000000004"))
		assert.Len(t, only(e.Tick(at(22, 26)), "crowd"), 1, "nothing seen since 22:10: the window (22:11, 22:26] is empty")
	})
}

// After a clean stop with a crowd open, the broker's messages of the time
// fenceline was down come first at the start. A crowd that stayed is the
// open incident: nothing to send. A crowd that formed meanwhile is one
// incident. Judged against a window drained through the stop, the first
// was resolved and raised again, the second raised twice.
func TestCountAfterARestartTheBrokersMessagesContinueTheWindow(t *testing.T) {
	phones := []string{"460000000000001", "460000000000002", "460000000000003"}
	for _, tc := range []struct {
		name string
		tick bool // the pipeline's tick falls in the replay
	}{{"replayed", false}, {"a tick mid-replay", true}} {
		t.Run("a crowd that stayed, "+tc.name, func(t *testing.T) {
			rs := countRuleset(t)
			e := newEngine(t, rs)
			var got []model.Alert
			for m := 0; m <= 10; m++ { // live: one phone a message, each every 3 minutes
				ts := at(22, m)
				got = append(got, only(e.Evaluate(e.phones("F-1", ts, ruinsIn, phones[m%3]), ts), "crowd")...)
			}
			require.Len(t, got, 1, "the crowd fired live")
			data, err := e.MarshalState() // a clean stop at 22:10
			require.NoError(t, err)
			e2, _ := restoredAt(t, rs, data, at(23, 0))
			e2.seq = e.seq
			got = nil
			for m := 11; m <= 60; m++ { // the broker's messages, first
				ts := at(22, 0).Add(time.Duration(m) * time.Minute)
				now := at(23, 0).Add(time.Duration(m-11) * 500 * time.Millisecond)
				if tc.tick && m == 30 {
					got = append(got, only(e2.Tick(at(23, 0).Add(10*time.Second)), "crowd")...)
				}
				got = append(got, only(e2.Evaluate(e2.phones("F-1", ts, ruinsIn, phones[m%3]), now), "crowd")...)
			}
			got = append(got, only(e2.Tick(at(23, 0).Add(10*time.Second)), "crowd")...)
			assert.Empty(t, got, "the open incident %s carries on", got)
		})
	}
	t.Run("a crowd that formed meanwhile", func(t *testing.T) {
		rs := countRuleset(t)
		e := newEngine(t, rs)
		for m := 5; m <= 10; m++ {
			ts := at(22, m)
			require.Empty(t, only(e.Evaluate(e.phones("F-1", ts, ruinsIn, phones[0]), ts), "crowd"))
		}
		data, err := e.MarshalState() // a clean stop at 22:10
		require.NoError(t, err)
		e2, _ := restoredAt(t, rs, data, at(23, 0))
		e2.seq = e.seq
		var got []model.Alert
		for m := 11; m <= 60; m++ { // the broker's messages: the crowd from 22:20
			ts := at(22, 0).Add(time.Duration(m) * time.Minute)
			imsis := phones[:1]
			if m >= 20 {
				imsis = phones
			}
			got = append(got, only(e2.Evaluate(e2.phones("F-1", ts, ruinsIn, imsis...), at(23, 0).Add(time.Duration(m-11)*100*time.Millisecond)), "crowd")...)
		}
		for m := 1; m <= 20; m++ { // live: the crowd stays until 23:20
			ts := at(23, m)
			got = append(got, only(e2.Evaluate(e2.phones("F-1", ts, ruinsIn, phones...), ts), "crowd")...)
			got = append(got, only(e2.Tick(ts.Add(30*time.Second)), "crowd")...)
		}
		ids := map[string]bool{}
		for _, a := range got {
			ids[a.ID] = true
			assert.NotEqual(t, model.StateResolved, a.State, "the crowd is still there")
		}
		assert.Len(t, ids, 1, "one crowd, one incident: %v", got)
	})
}
