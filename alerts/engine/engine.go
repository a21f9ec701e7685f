package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/alerts/watchlist"
	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

// Engine evaluates a Ruleset on readings and keeps the state of its rules.
//
// It is NOT safe for concurrent use: the pipeline calls it from one
// goroutine (readings, ticks, reloads and state snapshots alike), which
// keeps the hot path free of locks.
type Engine struct {
	rs   *Ruleset
	opts Options
	log  *slog.Logger
	m    *metrics
	// incidents counts incidents opened and resolved: the state a crash
	// would lose changed. Read from any goroutine (IncidentChanges).
	incidents atomic.Uint64
	clock     func() time.Time // for Swap, which is not handed a time

	rules    map[string]*ruleState
	order    []*ruleState
	bySource [numSources][]*ruleState
	silence  []*ruleState

	// lastSeen is the processing time of each device's latest message;
	// watchSince is when the engine began watching it (its first tick, or
	// the tick after the reload that added it). A device is silent when
	// neither is within its limit, so neither a fresh start nor a restart
	// raises silence for every device at once. lastSeen holds pointers, so
	// that a message reads and moves on its device's time in one lookup.
	lastSeen   map[string]*time.Time
	watchSince map[string]time.Time
	// deaf is set while fenceline takes no messages from the broker (see
	// Listening); heardFrom is when it took them again.
	deaf      bool
	heardFrom time.Time
	patrols   map[string]patrolPos
	// units is each device's latest status: every field as the latest
	// report that carried it said (see unitStatus). A device a reload
	// removes keeps its status, across restarts for unitKeep after its
	// latest report: one removed by a mistake and put back is still
	// tampered.
	units map[string]*model.Status
	// subjects interns the subjects rule state is keyed by; it outlives
	// reloads, as the state of unchanged rules does.
	subjects *subjectTable
	sidMemo  sidMemo

	// Scratch reused for every reading (the engine is single-goroutine).
	vm          vm.VM
	hits        []*zone.Zone
	collectHit  func(*zone.Zone) bool
	near        []*zone.Zone // the zones within nearH of the current reading, if nearOK
	nearH       float64
	nearOK      bool
	collectNear func(*zone.Zone) bool
	envs        []envSlot
	whenFailed  bool // the last condition evaluated failed at run time
	// views caches, per position and source, the zones containing the
	// position and the rules to run there (see viewAt); zoneIdx lists, per
	// source and zone, the indexes (in bySource) of the rules with zones
	// that name it, and noPos the rules of a reading without a position.
	// All three are rebuilt by install.
	views   *viewCache
	zoneIdx [numSources]map[*zone.Zone][]int32
	noPos   [numSources]zoneView
	marks   []bool
	// watchMemo holds the current reading's match against each watchlist,
	// by watchSlot: several rules often share one list.
	watchMemo []answer
	// whenMemo holds the current reading's answer to each condition that
	// several rules share, by whenSlot (see Rule.whenSlot).
	whenMemo  []answer
	clocks    [4]localClock
	nextClock int
	inside    []string
	cur       reading
	// evalRule and evalOut are the rule being evaluated on e.cur and the
	// alerts raised before it: what a recover keeps (see evalFrom).
	evalRule *ruleState
	evalOut  []model.Alert

	logged map[string]loggedWarning // rate limit of repeated warnings, by key

	// calls numbers the calls of Evaluate and Tick, so that state can tell
	// what the current call raised (countZone.firedIn).
	calls uint64
	// readings numbers the readings evaluated (see ruleState.velTaken).
	readings uint64
	// grown are the count incidents the current call fired whose crowd
	// grew with the rest of the message (see countGrown).
	grown []grownCount
	// ordinal is the last model.Alert.Ordinal given: every alert fired has
	// one of its own, which its re-sends and resolution share. Saved with
	// the state, and raised at a start past those the outbox holds
	// (OrdinalsFrom), so that none is given twice.
	ordinal uint64

	// norms holds the normal forms of the current reading's identifiers,
	// by watchIdent, for those whose bit in normSet is set (see match).
	norms   [numWatchIdents]string
	normSet uint8
}

type envSlot struct {
	zone string
	env  any
}

// New returns an engine running rs. log may be nil; reg may be nil (no
// metrics registered). The metrics are registered on reg, so a process
// makes one engine and reloads with Swap rather than building another.
func New(rs *Ruleset, opts Options, log *slog.Logger, reg prometheus.Registerer) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opts:       opts.withDefaults(),
		log:        log.With("component", "alerts.engine"),
		m:          newMetrics(reg),
		clock:      time.Now,
		rules:      map[string]*ruleState{},
		lastSeen:   map[string]*time.Time{},
		watchSince: map[string]time.Time{},
		patrols:    map[string]patrolPos{},
		units:      map[string]*model.Status{},
		subjects:   newSubjectTable(),
		logged:     map[string]loggedWarning{},
	}
	e.collectHit = func(z *zone.Zone) bool { e.hits = append(e.hits, z); return true }
	e.collectNear = func(z *zone.Zone) bool { e.near = append(e.near, z); return true }
	if rs == nil {
		rs = &Ruleset{}
	}
	e.install(rs, nil)
	return e
}

// install makes rs current, reusing the states in keep by rule id.
func (e *Engine) install(rs *Ruleset, keep map[string]*ruleState) {
	e.rs = rs
	e.rules = make(map[string]*ruleState, len(rs.Rules))
	e.order = e.order[:0]
	e.silence = e.silence[:0]
	for s := range e.bySource {
		e.bySource[s] = e.bySource[s][:0]
	}
	for _, r := range rs.Rules {
		st := keep[r.ID]
		if st == nil {
			st = newRuleState(r, e.m.forRule(r.ID))
			if keep != nil {
				st.since = e.clock()
			}
		}
		st.rule = r
		e.rules[r.ID] = st
		e.order = append(e.order, st)
		if r.Kind == KindSilence {
			e.silence = append(e.silence, st)
		} else {
			e.bySource[r.Source] = append(e.bySource[r.Source], st)
		}
		st.m.open.Set(float64(st.open))
	}
	for src, rules := range e.bySource {
		e.zoneIdx[src] = map[*zone.Zone][]int32{}
		v := &e.noPos[src]
		*v = zoneView{src: Source(src)}
		for i, st := range rules {
			if !zonedRule(st.rule) {
				v.rules = append(v.rules, candidate{st: st})
				continue
			}
			for _, z := range st.rule.zones {
				e.zoneIdx[src][z] = append(e.zoneIdx[src][z], int32(i))
			}
		}
	}
	e.views = new(viewCache) // the zones or the rules may have changed
	e.watchMemo = make([]answer, len(rs.lists))
	e.whenMemo = make([]answer, rs.sharedWhens)
}

// zonedRule reports whether a rule runs only on readings inside its zones:
// enter/exit rules watch their zones from outside too.
func zonedRule(r *Rule) bool {
	return len(r.zones) > 0 && r.Kind != KindEnter && r.Kind != KindExit
}

// Ruleset returns the ruleset in force.
func (e *Engine) Ruleset() *Ruleset { return e.rs }

// sourceOf maps a stream to the source rules read it as.
func sourceOf(s model.Stream) Source {
	switch s {
	case model.StreamDetections:
		return SourcePhone
	case model.StreamPasses:
		return SourceVehicle
	case model.StreamPosition:
		return SourcePatrol
	case model.StreamStatus:
		return SourceStatus
	}
	return SourceNone
}

// Evaluate runs every rule on the accepted readings of one message and
// returns the alerts they raise or resolve. Each reading is evaluated at
// its own event time (so readings that arrive days late still fall in the
// right schedule window and cooldown); now is the processing time, which
// becomes raised_at, decides late (now - at > LateAfter) and counts as the
// device's last-seen time for silence rules.
func (e *Engine) Evaluate(b *model.Batch, now time.Time) []model.Alert {
	if b == nil {
		return nil
	}
	var out []model.Alert
	e.calls++
	e.maybeSweepSubjects()
	dev := b.Meta.Device
	var prev time.Time
	last, heard := e.lastSeen[dev]
	if heard {
		prev, *last = *last, now
	} else {
		t := now
		e.lastSeen[strings.Clone(dev)] = &t // the key outlives the message it is part of
	}
	out = e.resolveSilence(dev, prev, heard, now, out)

	src := sourceOf(b.Stream)
	r := &e.cur
	*r = reading{src: src, b: b}
	switch src {
	case SourcePhone:
		out = e.evalEach(len(b.Detections), func(i int) bool {
			d := &b.Detections[i]
			r.det, r.t, r.p, r.hasPos = d, eventTime(d.Time, now), d.Loc, true
			return true
		}, now, out)
		e.m.readingsC[src].Add(float64(len(b.Detections)))
	case SourceVehicle:
		out = e.evalEach(len(b.Passes), func(i int) bool {
			p := &b.Passes[i]
			r.pass, r.t, r.p, r.hasPos = p, eventTime(p.Time, now), p.Loc, true
			return true
		}, now, out)
		e.m.readingsC[src].Add(float64(len(b.Passes)))
	case SourcePatrol:
		out = e.evalEach(len(b.Positions), func(i int) bool {
			p := &b.Positions[i]
			t := eventTime(p.Time, now)
			if p.Registered {
				// A report without a fix (stored at the patrol's post) says
				// nothing of where the patrol is: it neither moves it back
				// to its post nor is seen there by any rule (a presence or
				// a stay at the post, `lat` in a `when`). Its message still
				// tells silence rules the patrol is alive.
				return false
			}
			if pp, ok := e.patrols[dev]; !ok || !t.Before(pp.Seen) {
				e.patrols[dev] = patrolPos{Loc: p.Loc, Seen: t}
			}
			r.pos, r.t, r.p, r.hasPos = p, t, p.Loc, true
			return true
		}, now, out)
		e.m.readingsC[src].Add(float64(len(b.Positions)))
	case SourceStatus:
		pos, has := e.devicePos(dev, b.Device)
		out = e.evalEach(len(b.Statuses), func(i int) bool {
			s := &b.Statuses[i]
			u, latest := e.unitStatus(dev, s)
			if !latest {
				// Older than the unit's latest report: it changes nothing,
				// for a rule that has not judged that latest report (new by
				// a reload) too. The unit's order is its ts as sent, not
				// capped at now: a report a fast clock sent is the latest
				// until the unit's clock passes it.
				return false
			}
			r.st, r.rep, r.t, r.p, r.hasPos = u, s, eventTime(s.Time, now), pos, has
			return true
		}, now, out)
		e.m.readingsC[src].Add(float64(len(b.Statuses)))
	}
	if len(e.grown) > 0 {
		e.countGrown(now, out)
	}
	*r = reading{}
	e.evalRule, e.evalOut = nil, nil
	e.sidMemo.reset() // let go of the message's strings
	e.norms = [numWatchIdents]string{}
	return out
}

// eventTime is a reading's time for the rules: its ts, but never after now.
// A unit's clock a minute fast is within the contract's five minutes, and
// its reading would otherwise move event time past everyone else's: a
// crowd's window would drop the phones seen a moment ago and resolve the
// crowd at once, with an `at` after its raised_at; a dwell or a silence
// would be measured from the future. Storage keeps the ts as sent.
func eventTime(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// eventSub is a.Sub(b) for event times, on a dwell's path for every
// sighting: Sub checks every result for overflow (an Add and an Equal, a
// tenth of a stay's cost), which cannot happen for times less than 136
// years apart. Event times carry no monotonic reading, so the two agree.
func eventSub(a, b time.Time) time.Duration {
	if s := a.Unix() - b.Unix(); s > -1<<32 && s < 1<<32 {
		return time.Duration(s)*time.Second + time.Duration(a.Nanosecond()-b.Nanosecond())
	}
	return a.Sub(b)
}

// unitStatus merges the status report s of device dev into the device's
// latest status and returns that: the rules judge how a unit is, not what
// one report mentions. A unit reports any subset of the fields, so a
// report of its battery alone says nothing about its tamper switch: a
// tamper reported open an hour ago is still open, and `tamper ||
// battery_pct < 15` still holds, whatever the battery. The result carries
// s's own stamp (its ts and index name the evidence). A report older than
// the latest merged (a backlog delivered late) changes nothing, and latest
// is false.
//
// A change of a field that an open status incident of the unit reads
// counts as an incident change (IncidentChanges): its message's ack waits
// for a save of the state that holds it. Lost with a crash (the report
// acked, so not delivered again), the unit's status would be its older
// one, and the incident could be resolved on it: a tamper reported closed
// while the battery, reported at 10% since, was taken for the 50% before.
// Without an incident open a change does not wait: every battery report
// of every unit waiting for a save cost the load profile a third more CPU
// and its alerts' p99 latency went past 50 ms; a crash then forgets at most
// the fields reported since the last save (a rule joining fields with &&
// judges the next report on the older values, until they are reported
// again).
func (e *Engine) unitStatus(dev string, s *model.Status) (u *model.Status, latest bool) {
	u = e.units[dev]
	if u == nil {
		u = &model.Status{}
		e.units[strings.Clone(dev)] = u // the key outlives the message
	} else if s.Time.Before(u.Time) {
		return nil, false
	}
	if changed := mergeStatus(u, s); changed != 0 {
		for _, st := range e.bySource[SourceStatus] {
			if se := st.status[dev]; se != nil && se.Open != nil && st.rule.statusReads&changed != 0 {
				e.incidents.Add(1)
				break
			}
		}
	}
	return u, true
}

// mergeStatus sets in u every field s carries, and s's stamp, and returns
// the fields whose value changed (statusFields bits). Text fields are
// copied: u outlives the message s is part of.
func mergeStatus(u, s *model.Status) (changed uint8) {
	u.Stamp = s.Stamp
	for _, f := range [...]struct {
		dst, src *model.OptFloat
		bit      uint8
	}{
		{&u.BatteryPct, &s.BatteryPct, 1 << 0}, {&u.TempC, &s.TempC, 1 << 1}, {&u.SignalDbm, &s.SignalDbm, 1 << 5},
	} {
		if f.src.OK && *f.dst != *f.src {
			*f.dst = *f.src
			changed |= f.bit
		}
	}
	if s.UptimeS.OK && u.UptimeS != s.UptimeS {
		u.UptimeS = s.UptimeS
		changed |= 1 << 2
	}
	if s.Queue.OK && u.Queue != s.Queue {
		u.Queue = s.Queue
		changed |= 1 << 6
	}
	if s.Tamper.OK && u.Tamper != s.Tamper {
		u.Tamper = s.Tamper
		changed |= 1 << 3
	}
	if s.Power != "" && s.Power != u.Power {
		u.Power = strings.Clone(s.Power)
		changed |= 1 << 4
	}
	if s.FW != "" && s.FW != u.FW {
		u.FW = strings.Clone(s.FW)
		changed |= 1 << 7
	}
	return changed
}

// devicePos is where a device is: a patrol's latest fix, else its
// registered position. A patrol registered at its post moves: judged at the
// post, its tamper in the zone it drove into was missed, and one at the
// post raised the post's zone's alert 35 km away.
func (e *Engine) devicePos(id string, d *model.Device) (model.Point, bool) {
	if d == nil {
		d = e.rs.Registry.Lookup(id)
	}
	if pp, ok := e.patrols[id]; ok && (d == nil || !d.HasPos || d.Kind == model.KindPatrol) {
		return pp.Loc, true
	}
	if d != nil && d.HasPos {
		return d.Pos, true
	}
	return model.Point{}, false
}

// evalEach evaluates the readings of the current message: set(i) makes
// e.cur its i-th reading, or says it is seen by no rule.
//
// A rule that fails on a reading with a panic (a bug, never the reading's
// fault: readings are validated) costs that rule's alerts from it, not the
// daemon: a panic out of here would end the process, and the broker would
// deliver the message again at every start, stopping every site's alerts
// until the bug is mended. The alerts of the rules that ran on the reading
// before it stay, and the next reading goes on. One recover serves the whole
// message (see evalFrom): a deferred recover per reading was 3% of the
// pipeline's profile.
func (e *Engine) evalEach(n int, set func(i int) bool, now time.Time, out []model.Alert) []model.Alert {
	for i := 0; i < n; {
		i, out = e.evalFrom(i, n, set, now, out)
	}
	return out
}

// evalFrom evaluates readings i to n-1, and returns where to go on: n, or
// the reading after one a rule failed on.
func (e *Engine) evalFrom(i, n int, set func(i int) bool, now time.Time, out []model.Alert) (next int, res []model.Alert) {
	defer func() {
		if p := recover(); p != nil {
			e.ruleFailed(e.evalRule, &e.cur, p)
			next, res = i+1, e.evalOut
		}
	}()
	for ; i < n; i++ {
		e.evalRule, e.evalOut = nil, out
		if set(i) {
			out = e.evalReading(&e.cur, now, out)
		}
	}
	return n, out
}

// evalReading runs the rules of r's source that apply at r's position on
// r. The order of the checks is cheapest first: site, zone, watchlist,
// schedule, then `when`. Before each rule, the rule and the alerts so far
// are noted for evalFrom's recover.
func (e *Engine) evalReading(r *reading, now time.Time, out []model.Alert) []model.Alert {
	e.readings++
	e.envs = e.envs[:0]
	clear(e.watchMemo)
	clear(e.whenMemo)
	e.nearOK = false
	e.normSet = 0
	e.sidMemo.n = 0
	// Only the rules that apply here are visited: rules with zones are
	// skipped without a look unless a zone of theirs contains r, which is
	// what keeps a thousand zones cheap.
	v := e.viewAt(r)
	for i := range v.rules {
		c := &v.rules[i]
		st := c.st
		e.evalRule, e.evalOut = st, out
		rule := st.rule
		if !siteOK(rule.sites, r.b.Site) {
			continue
		}
		if rule.Kind == KindEnter || rule.Kind == KindExit {
			out = e.applyFence(st, r, now, out)
			continue
		}
		if rule.watch != nil && e.watchMemo[rule.watchSlot] == no {
			continue // an earlier rule found the reading off the list
		}
		subj, ok := e.subjectOf(rule, r)
		if !ok {
			continue
		}
		active := rule.sched == nil || e.active(rule.sched, r.t)
		if !active && rule.Kind != KindStatus {
			continue
		}
		if len(rule.zones) == 0 {
			out = e.evalIn(st, r, subj, nil, active, now, out)
			continue
		}
		for _, z := range c.zones {
			out = e.evalIn(st, r, subj, z, active, now, out)
		}
	}
	if r.src == SourceStatus {
		e.evalRule, e.evalOut = nil, out // a failure past the view's rules is no rule of it
		out = e.statusOutsideZones(v, r, now, out)
	}
	return out
}

// statusOutsideZones judges r for the status rules with zones that r's
// unit has an incident open with and is no longer in the zones of (a
// patrol that drove out, a position unknown since a restart): r may
// resolve it, and opens nothing there. Skipped, the incident would stay
// open, re-sent by repeat_interval, whatever the unit reports.
func (e *Engine) statusOutsideZones(v *zoneView, r *reading, now time.Time, out []model.Alert) []model.Alert {
	dev := r.b.Meta.Device
	for _, st := range e.bySource[SourceStatus] {
		se := st.status[dev]
		if se == nil || se.Open == nil || len(st.rule.zones) == 0 || !siteOK(st.rule.sites, r.b.Site) || v.has(st) {
			continue
		}
		subj, ok := e.subjectOf(st.rule, r)
		if !ok {
			continue
		}
		active := st.rule.sched == nil || e.active(st.rule.sched, r.t)
		out = e.evalIn(st, r, subj, nil, active, now, out)
	}
	return out
}

// evalIn applies the rule of st to r in zone z (nil: the rule has no
// zones), a reading that passed the rule's site, zone, watchlist and
// schedule filters, feeding it to the rule's kind; active says whether r
// is within the rule's schedule. A status rule is the one kind whose
// incidents a reading resolves, so it hears its devices' reports outside
// its schedule too: they resolve an incident its condition no longer holds
// for, and open none. A condition that failed at run time changes nothing
// of a status incident: taken as false, it would resolve one the condition
// may well still hold for. The other kinds hear only the readings `when`
// holds for (every reading without one).
func (e *Engine) evalIn(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, active bool, now time.Time, out []model.Alert) []model.Alert {
	e.whenFailed = false
	match := st.rule.when == nil || e.when(st, r, z)
	switch st.rule.Kind {
	case KindStatus:
		if e.whenFailed || match && !active {
			return out
		}
		return e.applyStatus(st, r, subj, z, match, now, out)
	}
	if !match {
		return out
	}
	switch st.rule.Kind {
	case KindPresence:
		return e.applyPresence(st, r, subj, z, now, out)
	case KindCount:
		return e.applyCount(st, r, subj, z, now, out)
	case KindDwell:
		return e.applyDwell(st, r, subj, z, now, out)
	case KindVelocity:
		return e.applyVelocity(st, r, subj, z, now, out)
	}
	return out
}

// hasZone reports whether z is one of the rule's zones: a scan for the
// usual handful, a map beyond.
func (r *Rule) hasZone(z *zone.Zone) bool {
	if len(r.zones) <= 8 {
		for _, rz := range r.zones {
			if rz == z {
				return true
			}
		}
		return false
	}
	_, ok := r.zoneSet[z]
	return ok
}

// zoneIndex is the index of z in the rule's zones, -1 if z is nil (or not
// one of them).
func (r *Rule) zoneIndex(z *zone.Zone) int32 {
	if z == nil {
		return -1
	}
	if len(r.zones) <= 8 {
		for i, rz := range r.zones {
			if rz == z {
				return int32(i)
			}
		}
		return -1
	}
	if i, ok := r.zoneSet[z]; ok {
		return i
	}
	return -1
}

// active is schedule.active with the local clock of recent (time, zone)
// pairs cached: twenty night rules on the phones of one message read the
// same wall clock, and converting it is the dearest part of the check.
func (e *Engine) active(s *schedule, t time.Time) bool {
	if s == nil {
		return true
	}
	for i := range e.clocks {
		c := &e.clocks[i]
		if c.loc == s.loc && c.t.Equal(t) {
			return s.activeAt(c.min, c.wd)
		}
	}
	c := localClock{t: t, loc: s.loc}
	lt := t.In(s.loc)
	hh, mm, _ := lt.Clock()
	c.min, c.wd = hh*60+mm, lt.Weekday()
	e.clocks[e.nextClock] = c
	e.nextClock = (e.nextClock + 1) % len(e.clocks)
	return s.activeAt(c.min, c.wd)
}

type localClock struct {
	t   time.Time
	loc *time.Location
	min int
	wd  time.Weekday
}

func siteOK(sites []string, site string) bool {
	if len(sites) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(sites, site)
	return ok
}

// zonesAt returns the zones containing r's position, sorted by id.
func (e *Engine) zonesAt(r *reading) []*zone.Zone {
	return e.viewAt(r).zones
}

// when evaluates the rule's expression on r in zone z (nil: the rule has no
// zones). A run-time error (there are few once it compiled: a modulo by
// zero) counts as false, is counted and logged.
//
// A rule without zones whose condition reads `zone` tests it against each
// zone containing r (true if any passes; "" when none does): a reading in
// two overlapping zones is in both.
func (e *Engine) when(st *ruleState, r *reading, z *zone.Zone) bool {
	switch {
	case z != nil:
		return e.whenIn(st, r, z.ID)
	case st.rule.whenZone:
		hits := e.zonesAt(r)
		for _, h := range hits {
			if e.whenIn(st, r, h.ID) {
				return true
			}
		}
		return len(hits) == 0 && e.whenIn(st, r, "")
	}
	return e.whenIn(st, r, "")
}

// whenIn evaluates the rule's expression on r with zone zid.
func (e *Engine) whenIn(st *ruleState, r *reading, zid string) bool {
	if f := st.rule.whenFast; f != nil {
		s := st.rule.whenSlot
		if s < 0 {
			return f(r, zid)
		}
		m := &e.whenMemo[s]
		if *m == notAsked {
			*m = no
			if f(r, zid) {
				*m = yes
			}
		}
		return *m == yes
	}
	var env any
	for i := range e.envs {
		if e.envs[i].zone == zid {
			env = e.envs[i].env
			break
		}
	}
	if env == nil {
		env = boxEnv(r, zid)
		e.envs = append(e.envs, envSlot{zone: zid, env: env})
	}
	v, err := e.vm.Run(st.rule.when, env)
	if err != nil {
		e.whenFailed = true
		st.m.whenErr.Inc()
		e.warnEvery("when:"+st.rule.ID, time.Minute, "rule condition failed; taken as false",
			"rule", st.rule.ID, "err", withoutIdentifiers(err.Error(), r))
		return false
	}
	ok, _ := v.(bool)
	return ok
}

// withoutIdentifiers is msg with the reading's identifiers withheld: an
// expression error can quote the value it failed on (`int(plate)` says
// "invalid operation: int(蒙B7K3Q2)"), and the log must not hold an IMSI,
// IMEI, MAC address or plate.
func withoutIdentifiers(msg string, r *reading) string {
	var ids [3]string
	switch {
	case r.det != nil:
		ids = [3]string{r.det.IMSI, r.det.IMEI, r.det.MAC}
	case r.pass != nil:
		ids = [3]string{r.pass.Plate, r.pass.Image}
	}
	for _, id := range ids {
		if id != "" {
			msg = strings.ReplaceAll(msg, id, "<withheld>")
		}
	}
	return msg
}

// usesZone reports whether an expression reads `zone`, so that rules that
// do not are spared the zone lookup.
func usesZone(p *vm.Program) bool {
	if p == nil {
		return false
	}
	return ast.Find(p.Node(), func(n ast.Node) bool {
		id, ok := n.(*ast.IdentifierNode)
		return ok && id.Value == "zone"
	}) != nil
}

// statusFields are the fields of a status report, as bits of a mask.
var statusFields = map[string]uint8{
	"battery_pct": 1 << 0, "temp_c": 1 << 1, "uptime_s": 1 << 2, "tamper": 1 << 3,
	"power": 1 << 4, "signal_dbm": 1 << 5, "queue": 1 << 6, "fw": 1 << 7,
}

// statusFieldsRead is the mask of the status fields p reads, directly or
// through their has_ companions.
func statusFieldsRead(p *vm.Program) uint8 {
	if p == nil {
		return 0
	}
	var mask uint8
	ast.Find(p.Node(), func(n ast.Node) bool {
		if id, ok := n.(*ast.IdentifierNode); ok {
			mask |= statusFields[strings.TrimPrefix(id.Value, "has_")]
		}
		return false
	})
	return mask
}

// statusCarried is the mask of the fields st carries.
func statusCarried(st *model.Status) uint8 {
	var mask uint8
	for _, f := range [...]struct {
		ok  bool
		bit uint8
	}{
		{st.BatteryPct.OK, 1 << 0}, {st.TempC.OK, 1 << 1}, {st.UptimeS.OK, 1 << 2}, {st.Tamper.OK, 1 << 3},
		{st.Power != "", 1 << 4}, {st.SignalDbm.OK, 1 << 5}, {st.Queue.OK, 1 << 6}, {st.FW != "", 1 << 7},
	} {
		if f.ok {
			mask |= f.bit
		}
	}
	return mask
}

// subjectOf returns who r is about for rule, and false when the rule cannot
// apply (no usable identifier, or not on the rule's watchlist).
//
// Phones are identified by imsi, else imei, else mac; a rule with a
// watchlist uses the identifier the list holds. Vehicles are identified by
// plate. A pass without a plate (无牌) only reaches presence rules without
// a watchlist (subject plate 无牌): it cannot be on a list, and count,
// dwell, velocity and enter/exit cannot tell two unread plates apart.
func (e *Engine) subjectOf(rule *Rule, r *reading) (model.Subject, bool) {
	switch r.src {
	case SourcePhone:
		d := r.det
		if rule.watch != nil {
			v := ""
			switch rule.watchID {
			case watchIMSI:
				v = d.IMSI
			case watchIMEI:
				v = d.IMEI
			case watchMAC:
				v = d.MAC
			}
			if v == "" || !e.match(rule, v) {
				return model.Subject{}, false
			}
			return model.Subject{Kind: rule.watch.Kind, Value: v}, true
		}
		switch {
		case d.IMSI != "":
			return model.Subject{Kind: "imsi", Value: d.IMSI}, true
		case d.IMEI != "":
			return model.Subject{Kind: "imei", Value: d.IMEI}, true
		case d.MAC != "":
			return model.Subject{Kind: "mac", Value: d.MAC}, true
		}
		return model.Subject{}, false
	case SourceVehicle:
		p := r.pass.Plate
		if p == "" || p == model.NoPlate {
			if rule.Kind != KindPresence || rule.watch != nil {
				return model.Subject{}, false
			}
			return model.Subject{Kind: "plate", Value: model.NoPlate}, true
		}
		if rule.watch != nil && !e.match(rule, p) {
			return model.Subject{}, false
		}
		return model.Subject{Kind: "plate", Value: p}, true
	case SourcePatrol:
		return model.Subject{Kind: "patrol", Value: r.b.Meta.Device}, true
	case SourceStatus:
		return model.Subject{Kind: "device", Value: r.b.Meta.Device}, true
	}
	return model.Subject{}, false
}

// match is rule.watch.Match(v), v being the reading's identifier of the
// kind the list holds, remembered for the current reading: several rules
// often share one list, and lists of one kind share the normal form of the
// reading's identifier of that kind (the normaliser is the kind's), which
// is worked out once.
func (e *Engine) match(rule *Rule, v string) bool {
	m := &e.watchMemo[rule.watchSlot]
	if *m != notAsked {
		return *m == yes
	}
	id := rule.watchID
	if e.normSet&(1<<id) == 0 {
		e.norms[id] = e.normalise(rule.watch, id, v)
		e.normSet |= 1 << id
	}
	*m = no
	if rule.watch.MatchNormal(e.norms[id]) {
		*m = yes
	}
	return *m == yes
}

// normalise is the normal form of v, the reading's identifier id, for
// lists of its kind ("" when v cannot be of the kind: matches nothing). An
// IMSI that packs into a subject id (1 to 16 digits, as the decoder gives
// every IMSI) is its own normal form, and its id, remembered for the
// reading, spares the stateful rules a second scan of its digits (see
// TestNormaliseShortcut).
func (e *Engine) normalise(l *watchlist.List, id watchIdent, v string) string {
	if id == watchIMSI {
		if sid, ok := packDigits(sidIMSI, v); ok {
			e.sidMemo.remember(model.Subject{Kind: watchlist.KindIMSI, Value: v}, sid)
			return v
		}
	}
	n, _ := l.Normalise(v)
	return n
}

// answer is a yes-or-no answer about the current reading, once worked out.
type answer uint8

const (
	notAsked answer = iota
	yes
	no
)

// watchIdent is which of a reading's identifiers a watchlist holds, worked
// out when the rule is compiled rather than from the list's kind (a
// string) for every reading.
type watchIdent uint8

const (
	watchIMSI watchIdent = iota
	watchIMEI
	watchMAC
	watchPlate
	numWatchIdents
)

func watchIdentOf(kind string) watchIdent {
	switch kind {
	case watchlist.KindIMEI:
		return watchIMEI
	case watchlist.KindMAC:
		return watchMAC
	case watchlist.KindPlate:
		return watchPlate
	}
	return watchIMSI
}

// Listening tells the engine whether fenceline takes messages from the
// broker. While it does not, no unit can be heard, so none is declared
// silent; once it does again, each unit has a full limit, as after a start,
// for the messages the broker queued meanwhile to arrive. A lost broker
// would otherwise declare every unit silent at once.
func (e *Engine) Listening(up bool, now time.Time) {
	if up && e.deaf {
		e.heardFrom = now
	}
	e.deaf = !up
}

// Tick runs the time-driven part of the rules at processing time now:
// silence, the expiry of count windows and dwell stays, repeat_interval
// re-sends, and the eviction of state that can no longer matter. The
// pipeline calls it every alerts.evaluate_every.
func (e *Engine) Tick(now time.Time) []model.Alert {
	var out []model.Alert
	e.calls++
	e.maybeSweepSubjects()
	e.rs.Registry.All(func(d *model.Device) {
		if _, ok := e.watchSince[d.ID]; !ok {
			e.watchSince[d.ID] = now
		}
	})
	for _, st := range e.order {
		switch st.rule.Kind {
		case KindSilence:
			out = e.tickSilence(st, now, out)
		case KindCount:
			out = e.tickCount(st, now, out)
		case KindDwell:
			out = e.tickDwell(st, now, out)
		case KindStatus:
			out = e.tickRepeat(st, now, out)
		case KindVelocity:
			for k, h := range st.vel {
				if now.Sub(h[len(h)-1].Processed) > VelocityHorizon {
					delete(st.vel, k)
					delete(st.velOld, k)
				}
			}
			for k := range st.velOld {
				if _, ok := st.vel[k]; !ok {
					delete(st.velOld, k)
				}
			}
		case KindEnter, KindExit:
			for k, f := range st.fence {
				if now.Sub(f.Processed) > FenceHorizon {
					delete(st.fence, k)
				}
			}
		}
		if st.cool != nil {
			// Kept past the cooldown: a unit's buffered reading from within
			// it may yet arrive (its link down a while), and must not fire
			// again.
			keep := max(st.rule.cooldown, CooldownHorizon)
			for k, c := range st.cool {
				if now.Sub(c.Touched) > keep {
					delete(st.cool, k)
				}
			}
		}
		st.m.tracked.Set(float64(st.entries()))
	}
	for id, pp := range e.patrols {
		if now.Sub(pp.Seen) > e.opts.PatrolMaxAge && e.rs.Registry.Lookup(id) == nil {
			delete(e.patrols, id)
		}
	}
	return out
}

// Swap installs a new ruleset (a reload). A rule whose definition is
// unchanged — same spec, same specs of its zones and watchlist — keeps its
// state: open incidents, windows, cooldowns, dwell timers, sightings and
// inside-states. A rule that was removed or changed loses its state, and
// its open incidents are resolved now (summary says why): otherwise they
// would stay firing on the receivers' side for ever. Device last-seen
// times and patrol positions are kept for devices still registered.
func (e *Engine) Swap(rs *Ruleset) []model.Alert {
	if rs == nil {
		return nil
	}
	now := e.clock()
	oldReg := e.rs.Registry
	var out []model.Alert
	keep := make(map[string]*ruleState, len(rs.Rules))
	next := make(map[string]*Rule, len(rs.Rules))
	for _, r := range rs.Rules {
		next[r.ID] = r
	}
	var kept int
	var changed, removed []string
	for _, st := range e.order {
		nr := next[st.rule.ID]
		switch {
		case nr == nil:
			removed = append(removed, st.rule.ID)
			out = e.resolveAll(st, now, "rule "+st.rule.ID+" removed by a reload", out)
			e.m.dropRule(st.rule.ID)
		case nr.fingerprint != st.rule.fingerprint:
			changed = append(changed, st.rule.ID)
			out = e.resolveAll(st, now, "rule "+st.rule.ID+" changed by a reload", out)
		default:
			kept++
			keep[nr.ID] = st
		}
	}
	e.install(rs, keep)
	// Devices that left the registry: forget them, and resolve their
	// silence incidents (nobody will ever hear from them again).
	for id := range e.lastSeen {
		if rs.Registry.Lookup(id) == nil {
			delete(e.lastSeen, id)
		}
	}
	for id := range e.watchSince {
		d := rs.Registry.Lookup(id)
		if d == nil {
			delete(e.watchSince, id)
			continue
		}
		// A device moved (another site, kind or place) may come under
		// silence rules it was not under: it gets the grace period of a
		// device the reload adds, rather than being found silent for the
		// time before the reload.
		if od := oldReg.Lookup(id); od != nil && (od.Site != d.Site || od.Kind != d.Kind || od.HasPos != d.HasPos || od.Pos != d.Pos) {
			e.watchSince[id] = now
		}
	}
	for id := range e.patrols {
		if rs.Registry.Lookup(id) == nil {
			delete(e.patrols, id)
		}
	}
	out = e.closeUnwatched(now, out)
	// The rules changed or removed are named: their open incidents were
	// closed, and an operator looking at a "closed without being cleared"
	// wants to know why (at most maxNamed each, the count says the rest).
	e.log.Info("ruleset swapped", "rules", len(rs.Rules), "kept", kept, "changed", len(changed), "removed", len(removed),
		"added", len(rs.Rules)-kept-len(changed), "resolved", len(out),
		"changed_rules", firstIDs(changed), "removed_rules", firstIDs(removed))
	return out
}

// closeUnwatched closes the silence and status incidents of devices their
// rule no longer watches: a device gone from the registry, moved to a site
// (or out of the zones) the rule does not cover. Their reports are rejected
// (unregistered) or skipped, so nothing would resolve them, and
// repeat_interval would re-send them for ever. Their entries go too. A
// reload and a restart on another configuration make the same choice.
func (e *Engine) closeUnwatched(now time.Time, out []model.Alert) []model.Alert {
	reg := e.rs.Registry
	for _, st := range e.silence {
		for id, inc := range st.silence {
			if d := reg.Lookup(id); d == nil || !e.silenceWatches(st.rule, d) {
				out = append(out, e.closedUncleared(st, inc, now, "device "+id+" no longer watched by the rule"))
				delete(st.silence, id)
			}
		}
	}
	for _, st := range e.bySource[SourceStatus] {
		for id, se := range st.status {
			if d := reg.Lookup(id); d == nil || !e.statusWatches(st.rule, d) {
				if se.Open != nil {
					out = append(out, e.closedUncleared(st, se.Open, now, "device "+id+" no longer watched by the rule"))
				}
				delete(st.status, id)
			}
		}
	}
	return out
}

// statusWatches reports whether the status rule r hears d's reports: d is
// at one of r's sites and, where r has zones and d a registered position
// (a unit that does not move), in one of them. A patrol is not judged by
// where it was last, nor by its post: its incident is its own until a
// report clears it, wherever it is by then (statusOutsideZones).
func (e *Engine) statusWatches(r *Rule, d *model.Device) bool {
	if !siteOK(r.sites, d.Site) {
		return false
	}
	if len(r.zones) == 0 || !d.HasPos || d.Kind == model.KindPatrol {
		return true
	}
	for _, z := range r.zones {
		if z.Contains(d.Pos) {
			return true
		}
	}
	return false
}

// firstIDs is ids for a log line: at most maxNamed of them, then how many
// more.
func firstIDs(ids []string) string {
	const maxNamed = 20
	if len(ids) > maxNamed {
		return strings.Join(ids[:maxNamed], ",") + " and " + strconv.Itoa(len(ids)-maxNamed) + " more"
	}
	return strings.Join(ids, ",")
}

// resolveAll resolves every open incident of st (its rule goes away).
func (e *Engine) resolveAll(st *ruleState, now time.Time, why string, out []model.Alert) []model.Alert {
	for _, cz := range st.count {
		if cz.Open != nil {
			out = append(out, e.closedUncleared(st, cz.Open, now, why))
			cz.Open = nil
		}
	}
	for _, de := range st.dwell {
		if de.Open != nil {
			out = append(out, e.closedUncleared(st, de.Open, now, why))
			de.Open = nil
		}
	}
	for _, se := range st.status {
		if se.Open != nil {
			out = append(out, e.closedUncleared(st, se.Open, now, why))
			se.Open = nil
		}
	}
	for id, inc := range st.silence {
		out = append(out, e.closedUncleared(st, inc, now, why))
		delete(st.silence, id)
	}
	st.m.open.Set(0)
	return out
}

// OrdinalsFrom makes the next alert's ordinal greater than n: the largest
// the outbox holds, which may be past the saved state's after a crash.
func (e *Engine) OrdinalsFrom(n uint64) { e.ordinal = max(e.ordinal, n) }

// OpenFirings returns the firing alert of every open incident, as it was
// raised. At a start, those the outbox never took (a crash after the state
// save that held the incident, before its alert was queued) go to it
// again: a duty officer must get the firing that its resolution will
// follow.
func (e *Engine) OpenFirings() []model.Alert {
	var out []model.Alert
	for _, st := range e.order {
		for _, cz := range st.count {
			if cz.Open != nil {
				out = append(out, cz.Open.Alert)
			}
		}
		for _, de := range st.dwell {
			if de.Open != nil {
				out = append(out, de.Open.Alert)
			}
		}
		for _, se := range st.status {
			if se.Open != nil {
				out = append(out, se.Open.Alert)
			}
		}
		for _, inc := range st.silence {
			out = append(out, inc.Alert)
		}
	}
	return out
}

// warnEvery logs at most once per interval per key, so that a broken rule
// does not flood the log at the rate of readings; a line says how many of
// the same were not logged since the last one.
func (e *Engine) warnEvery(key string, every time.Duration, msg string, args ...any) {
	e.logEvery(slog.LevelWarn, key, every, msg, args...)
}

// logEvery is warnEvery at the given level.
func (e *Engine) logEvery(level slog.Level, key string, every time.Duration, msg string, args ...any) {
	now := e.clock()
	w, ok := e.logged[key]
	if ok && now.Sub(w.at) < every {
		w.suppressed++
		e.logged[key] = w
		return
	}
	e.logged[key] = loggedWarning{at: now}
	if w.suppressed > 0 {
		args = append(args, "same_warnings_not_logged", w.suppressed)
	}
	e.log.Log(context.Background(), level, msg, args...)
}

// ruleFailed counts and logs the panic p of the rule of st (nil: before
// any rule) on r. The log names the rule, the device and the message, and
// carries the stack for the bug report; never the reading's identifiers.
func (e *Engine) ruleFailed(st *ruleState, r *reading, p any) {
	id := ""
	if st != nil {
		id = st.rule.ID
		st.m.failed.Inc()
	} else {
		e.m.failures.WithLabelValues(id).Inc()
	}
	var dev string
	var seq int64
	if r.b != nil {
		dev, seq = r.b.Meta.Device, r.b.Seq
	}
	e.logEvery(slog.LevelError, "failed:"+id, time.Minute,
		"a rule failed on a reading (a bug in fenceline): the reading is stored, but the alerts this rule would raise from it are lost; please report it with this line",
		"rule", id, "device", dev, "seq", seq, "source", r.src.String(),
		"panic", withoutIdentifiers(fmt.Sprint(p), r), "stack", string(debug.Stack()))
}

type loggedWarning struct {
	at         time.Time
	suppressed int
}
