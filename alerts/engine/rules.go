package engine

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

func zoneID(z *zone.Zone) string {
	if z == nil {
		return ""
	}
	return z.ID
}

func (r *reading) evidence() model.Evidence {
	return model.Evidence{Device: r.b.Meta.Device, Seq: r.b.Seq, TS: r.sentTime()}
}

// sentTime is r's ts as the unit sent it (and as it is stored), where r.t
// is never after the time it was evaluated (eventTime): evidence names the
// point an analyst finds in InfluxDB.
func (r *reading) sentTime() time.Time {
	switch {
	case r.det != nil:
		return r.det.Time
	case r.pass != nil:
		return r.pass.Time
	case r.pos != nil:
		return r.pos.Time
	case r.st != nil:
		return r.st.Time
	}
	return r.t
}

// evictOne makes room in a map at its bound. Go's map iteration order gives
// arbitrary entries in O(1); of the first evictProbe, the one last touched
// longest ago (by age, when given) is taken, so that at the bound it is
// nearly always an old subject that goes, not one seen seconds ago whose
// next sighting a rule is waiting for (a cloned plate's second checkpoint).
// An entry with an incident open matters more: one without is taken when
// the probe finds one; if all of them have one, the incident of the entry
// taken is returned, for the caller to resolve (a receiver must not be
// left with a firing alert for ever).
func evictOne[K comparable, V any](st *ruleState, e *Engine, m map[K]V, open func(V) *incident, age func(V) time.Time) *incident {
	var victim K
	var inc *incident
	var victimAge time.Time
	seen := 0
	for k, v := range m {
		var o *incident
		if open != nil {
			o = open(v)
		}
		var a time.Time
		if age != nil {
			a = age(v)
		}
		if seen == 0 || (inc != nil && o == nil) || (inc == nil && o == nil && a.Before(victimAge)) {
			victim, inc, victimAge = k, o, a
		}
		if seen++; (inc == nil && age == nil) || seen == evictProbe {
			break
		}
	}
	delete(m, victim)
	st.m.evicted.Inc()
	e.warnEvery("evict:"+st.rule.ID, time.Minute, "rule state at its bound; evicting entries",
		"rule", st.rule.ID, "bound", MaxTrackedPerRule)
	return inc
}

// evictProbe is how many entries evictOne looks at for one without an
// open incident.
const evictProbe = 16

// evictedSummary is the summary of an incident resolved because its rule's
// state was at its bound.
const evictedSummary = "no longer tracked: the rule's state is at its bound, see fenceline_alerts_state_evicted_total"

// allow applies the rule's cooldown to key at event time t: it reports
// whether an alert may fire, and if so remembers t. Event time, not
// processing time, so that a site's backlog replayed after days raises one
// alert per cooldown of the period it covers, not one per reading nor one
// for the whole backlog.
func (e *Engine) allow(st *ruleState, key coolKey, t, now time.Time) bool {
	cd := st.rule.cooldown
	if cd <= 0 {
		return true
	}
	ce := st.cool[key]
	if ce == nil {
		if len(st.cool) >= MaxTrackedPerRule {
			evictOne(st, e, st.cool, nil, func(ce *coolEntry) time.Time { return ce.Touched })
		}
		ce = &coolEntry{}
		st.cool[key] = ce
	}
	ce.Touched = now
	for i := range ce.Fired {
		if first, last := ce.span(i); !first.IsZero() && t.After(first.Add(-cd)) && t.Before(last.Add(cd)) {
			return false
		}
	}
	// t joins the spans it is less than two cooldowns from (one before
	// it, one after it, or both, which it joins into one).
	joined := -1
	for i := range ce.Fired {
		first, last := ce.span(i)
		if first.IsZero() || !t.After(first.Add(-2*cd)) || !t.Before(last.Add(2*cd)) {
			continue
		}
		if joined < 0 {
			joined = i
			ce.Fired[i], ce.Until[i] = minTime(first, t), maxTime(last, t)
			continue
		}
		jf, jl := ce.span(joined)
		ce.Fired[joined], ce.Until[joined] = minTime(jf, first), maxTime(jl, last)
		ce.Fired[i], ce.Until[i] = time.Time{}, time.Time{}
	}
	if joined >= 0 {
		return true
	}
	// A new run: in an empty slot, else in place of the run that ended
	// first — never the newest, so that a backlog's alerts do not push out
	// the one live data raised a minute ago (its next reading would fire
	// again).
	i, oldest := -1, time.Time{}
	for j := range ce.Fired {
		first, last := ce.span(j)
		if first.IsZero() {
			i = j
			break
		}
		if i < 0 || last.Before(oldest) {
			i, oldest = j, last
		}
	}
	ce.Fired[i], ce.Until[i] = t, time.Time{}
	return true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// presence: every matching reading fires, deduplicated by the cooldown per
// rule+subject+zone; for a rule without zones, per rule+subject+site: its
// alert goes to the site of the unit that saw the subject, and the units
// of a second site must hear of a foreign SIM that moved into theirs
// within the cooldown. No resolved: a presence is an event, not a state.
func (e *Engine) applyPresence(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	key := coolKey{subj: e.sid(subj), zone: zoneID(z)}
	if z == nil {
		key.zone = "site " + r.b.Site // no zone id has a space
	}
	if subj.Value == model.NoPlate {
		key.device = r.b.Meta.Device
	}
	if !e.allow(st, key, r.t, now) {
		return out
	}
	what := describeSubject(subj, r)
	if st.rule.watch != nil {
		what += " on watchlist " + st.rule.watch.Name
	}
	if r.pass != nil {
		what += passFacts(r.pass)
	}
	sum := fmt.Sprintf("%s at %s, %s", upperFirst(what), e.place(z, r.b.Meta.Device, r.b.Site), e.localTime(r.t, now))
	if z != nil && r.src != SourcePatrol { // a patrol is its own sensor
		sum += " (seen by " + r.b.Meta.Device + ")"
	}
	if st.rule.Spec.When != "" {
		// What made it fire ("speed_kmh > 120"), as status summaries say.
		sum += " (condition: " + e.condition(st.rule) + ")"
	}
	ev := [1]model.Evidence{r.evidence()}
	return append(out, e.fire(st, alertIn{
		subj: subj, zone: z, site: r.b.Site, at: r.t, start: r.t, origin: r.origin(), loc: &r.p, count: 1,
		evidence: ev[:], summary: sum,
	}, now))
}

// passFacts is what a duty officer wants to know of a pass besides its
// plate: ", outbound at 146 km/h".
func passFacts(p *model.Pass) string {
	var parts []string
	if p.Direction != "" && p.Direction != "unknown" {
		parts = append(parts, p.Direction)
	}
	if p.SpeedKmh.OK {
		parts = append(parts, fmt.Sprintf("at %.0f km/h", p.SpeedKmh.V))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, " ")
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// count: distinct subjects in a zone within the sliding window reach the
// threshold → firing (once); they drop below → resolved. The window is in
// event time, per zone: (clock-window, clock], clock being the latest
// event time seen in the zone. A reading older than the window is a
// backlog (a unit whose link was down) and is counted in the zone's backlog
// window (lateCount), unless the zone's window has an incident open whose
// span it falls in (after the window's reach when it fired): that crowd is
// the one the incident reports, and the reading changes nothing. Rules
// without zones count per site.
func (e *Engine) applyCount(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	var cz *countZone
	if z != nil {
		cz = st.zoneCount(z)
	} else {
		cz = st.count["@"+r.b.Site] // a lookup by concatenation does not allocate
	}
	if cz == nil {
		cz, out = e.newCountZone(st, countKey(z, r.b.Site), z, r.b.Site, now, out)
	}
	w := st.rule.window
	// A reading behind newer readings of the zone (another unit's, late)
	// is judged against the window's drained clock: a crowd that left, and
	// was resolved on Tick, must not come back with it. A reading newer
	// than the zone's latest continues the window from there, as the
	// messages the broker kept while fenceline was stopped do: judged
	// against a clock drained through the stop, a crowd that stayed was
	// resolved and raised again.
	ref := cz.Clock
	if !r.t.After(cz.Clock) {
		ref = cz.clockAt(now)
	}
	if !cz.Clock.IsZero() && !r.t.After(ref.Add(-w)) {
		if cz.Open != nil && r.t.After(cz.Open.Alert.At.Add(-w)) {
			// Within the span of the zone's open incident: from its
			// window's reach when it fired, to now. The crowd it reported
			// is this backlog's crowd too, not one of its own time.
			return out
		}
		if cz, out = e.lateCount(st, z, r, now, out); cz == nil {
			return out
		}
		return e.countIn(st, cz, r, subj, z, now, out)
	}
	late := r.t.Before(cz.Clock)
	out = e.countIn(st, cz, r, subj, z, now, out)
	if late && !(cz.Open != nil && r.t.After(cz.Open.Alert.At.Add(-w))) {
		// A late reading inside the zone's window may also continue the
		// backlog window of its time: a backlog crowd that straddles the
		// start of the zone's window is whole in the backlog window. (A
		// reading at the zone's head never goes there: the backlog window
		// stays behind the zone's.) Not one within the span of the zone's
		// open incident: that crowd is the incident's, and the backlog
		// window would report it a second time.
		if lz := st.count[countKey(z, r.b.Site)+lateSuffix]; lz != nil && !lz.Clock.IsZero() && r.t.After(lz.Clock.Add(-w)) {
			out = e.countIn(st, lz, r, subj, z, now, out)
		}
	}
	return out
}

// countIn counts r in the window cz.
func (e *Engine) countIn(st *ruleState, cz *countZone, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	id := e.sid(subj)
	t := r.t.UnixNano()
	prev, ok := cz.Seen[id]
	switch {
	case !ok && len(cz.Seen) >= MaxSubjectsPerZone:
		// At the bound, the oldest of a few subjects makes room: the
		// window keeps its latest subjects, and drains when they leave
		// rather than one window after its first ones.
		oldK, oldT, n := subjectID(0), int64(math.MaxInt64), 0
		for k, v := range cz.Seen {
			if v < oldT {
				oldK, oldT = k, v
			}
			if n++; n == evictProbe {
				break
			}
		}
		st.m.evicted.Inc()
		e.warnEvery("evict-count:"+st.rule.ID, time.Minute, "count window at its bound; forgetting its oldest subjects",
			"rule", st.rule.ID, "bound", MaxSubjectsPerZone)
		if t >= oldT { // not older than what it replaces (a message's readings share a time)
			delete(cz.Seen, oldK)
			cz.Seen[id] = t
		}
	case !ok || t > prev:
		cz.Seen[id] = t
		if !ok && (cz.minSeen.IsZero() || r.t.Before(cz.minSeen)) {
			cz.minSeen = r.t
		}
	}
	cz.advance(r.t, now)
	cz.Evidence = addEvidence(cz.Evidence, &cz.evRing, r.evidence())
	return e.checkCount(st, cz, z, cz.Clock, r, now, out)
}

// clockAt is the window's clock at processing time now: its latest event
// time, moved on by the processing time since (as Tick drains it).
func (cz *countZone) clockAt(now time.Time) time.Time {
	if d := now.Sub(cz.Processed); d > 0 && !cz.Clock.IsZero() {
		return cz.Clock.Add(d)
	}
	return cz.Clock
}

// advance takes a reading of event time t into the window's clock at now:
// the zone's latest reading moves the clock to it, and the drain runs from
// there; a reading behind it changes neither (a late reading of another
// unit that reset the drain kept a crowd that left firing).
func (cz *countZone) advance(t, now time.Time) {
	if cz.Clock.IsZero() || t.After(cz.Clock) {
		cz.Clock, cz.Processed = t, now
	}
}

// countKey is the key of a zone's window in ruleState.count ("@site" for a
// rule without zones); lateSuffix marks its backlog window.
func countKey(z *zone.Zone, site string) string {
	if z != nil {
		return z.ID
	}
	return "@" + site
}

const lateSuffix = "\x00late"

func (e *Engine) newCountZone(st *ruleState, key string, z *zone.Zone, site string, now time.Time, out []model.Alert) (*countZone, []model.Alert) {
	if len(st.count) >= MaxTrackedPerRule {
		if inc := evictOne(st, e, st.count, func(cz *countZone) *incident { return cz.Open }, nil); inc != nil {
			out = append(out, e.closedUncleared(st, inc, now, evictedSummary))
		}
		st.countGen++ // the window evicted may be one countAt holds
	}
	cz := &countZone{Zone: zoneID(z), Site: site, Seen: map[subjectID]int64{}}
	st.count[key] = cz
	return cz, out
}

// lateCount returns the backlog window of the zone of r, a reading older
// than the zone's window: a crowd of three hours ago, delivered when its
// unit's link came back, is a crowd of three hours ago, raised late, even
// though the zone has newer readings. The backlog window is a window like
// the zone's own, with its clock in the backlog's time: it fires and
// resolves on its own (its incident starts at its own clock, so it has an
// id of its own), and drains after its last reading as the zone's does.
// The backlogs of a zone's units are counted together when they come
// interleaved, as units reconnecting together send them. A reading older
// than the backlog window too starts it again from that reading, unless
// the backlog window has an incident open; then it is ignored (nil).
func (e *Engine) lateCount(st *ruleState, z *zone.Zone, r *reading, now time.Time, out []model.Alert) (*countZone, []model.Alert) {
	key := countKey(z, r.b.Site) + lateSuffix
	lz := st.count[key]
	if lz == nil {
		return e.newCountZone(st, key, z, r.b.Site, now, out)
	}
	if lz.Clock.IsZero() || r.t.After(lz.Clock.Add(-st.rule.window)) {
		return lz, out
	}
	if lz.Open != nil {
		st.m.unused.Inc()
		return nil, out
	}
	clear(lz.Seen)
	*lz = countZone{Zone: lz.Zone, Site: lz.Site, Seen: lz.Seen, Evidence: lz.Evidence[:0]}
	return lz, out
}

// checkCount prunes the window at clock and fires or resolves; r is the
// reading just counted (nil on Tick), which names an incident it opens.
func (e *Engine) checkCount(st *ruleState, cz *countZone, z *zone.Zone, clock time.Time, r *reading, now time.Time, out []model.Alert) []model.Alert {
	w := st.rule.window
	cut := clock.Add(-w)
	if !cz.minSeen.After(cut) { // something expired: prune (amortised)
		cz.Evidence = evidenceAfter(cz.Evidence, &cz.evRing, cut)
		cutN := cut.UnixNano()
		minN, found := int64(0), false
		for s, t := range cz.Seen {
			if t <= cutN {
				delete(cz.Seen, s)
			} else if !found || t < minN {
				minN, found = t, true
			}
		}
		cz.minSeen = time.Time{}
		if found {
			cz.minSeen = time.Unix(0, minN)
		}
	}
	n := len(cz.Seen)
	th := st.rule.threshold
	if (n >= th) == (cz.Open == nil) && !(cz.Open != nil && now.Before(cz.holdUntil)) {
		return e.countChanged(st, cz, z, clock, cut, r, n, now, out)
	}
	if cz.Open != nil && n > cz.Open.Alert.Count {
		// The crowd grew: its count now, its summary when it next goes out
		// (a re-send, or the firing this call raised: see countGrown).
		cz.Open.Alert.Count = n
		if cz.firedIn == e.calls && r != nil && !cz.grown {
			cz.grown = true
			e.grown = append(e.grown, grownCount{st: st, cz: cz, z: z})
		}
	}
	return out
}

// grownCount is a count incident that fired in the current call and grew
// since, with what its summary needs.
type grownCount struct {
	st *ruleState
	cz *countZone
	z  *zone.Zone
}

// countGrown brings the firings the call raised for crowds that grew with
// the rest of their message up to date, once the message is counted: 30
// phones reported at once are a crowd of 30, not of the threshold.
func (e *Engine) countGrown(now time.Time, out []model.Alert) {
	for _, g := range e.grown {
		cz := g.cz
		cz.grown = false
		if cz.Open == nil {
			continue
		}
		a := &cz.Open.Alert
		e.summariseCount(g.st, cz, g.z, now)
		cz.Evidence = evidenceAfter(cz.Evidence, &cz.evRing, cz.Clock.Add(-g.st.rule.window))
		a.Evidence = slices.Clone(cz.Evidence)
		if f := &out[cz.firedOut]; f.ID == a.ID && f.State == model.StateFiring {
			f.Count, f.Summary, f.Evidence = a.Count, a.Summary, slices.Clone(a.Evidence)
		}
	}
	clear(e.grown)
	e.grown = e.grown[:0]
}

// summariseCount brings the summary of cz's open incident up to its count.
func (e *Engine) summariseCount(st *ruleState, cz *countZone, z *zone.Zone, now time.Time) {
	a := &cz.Open.Alert
	a.Summary = st.rule.summarised(e.countSummary(st, cz, z, a.Count, a.At, now))
}

// countSummary is the summary of a count incident firing with n subjects at
// clock.
func (e *Engine) countSummary(st *ruleState, cz *countZone, z *zone.Zone, n int, clock, now time.Time) string {
	return fmt.Sprintf("%d %s within %s at %s (threshold %d), %s",
		n, countNoun(st.rule.Source, n), shortDur(st.rule.window), e.countPlace(cz, z), st.rule.threshold, e.localTime(clock, now))
}

// countNoun is what n subjects of src are: "1 phone", "3 phones".
func countNoun(src Source, n int) string {
	noun := "subject"
	switch src {
	case SourcePhone:
		noun = "phone"
	case SourceVehicle:
		noun = "vehicle"
	case SourcePatrol:
		noun = "patrol"
	}
	if n == 1 {
		return noun
	}
	return noun + "s"
}

func (e *Engine) countPlace(cz *countZone, z *zone.Zone) string {
	switch {
	case z != nil:
		return e.place(z, "", "")
	case cz.Zone != "":
		return cz.Zone
	}
	return "site " + cz.Site
}

// countChanged fires or resolves cz's incident: n subjects crossed the
// threshold, one way or the other.
func (e *Engine) countChanged(st *ruleState, cz *countZone, z *zone.Zone, clock, cut time.Time, r *reading, n int, now time.Time, out []model.Alert) []model.Alert {
	th := st.rule.threshold
	switch {
	case n >= th && cz.Open == nil:
		subj := model.Subject{Kind: "zone", Value: cz.Zone}
		var loc *model.Point
		if z != nil {
			c := z.Center()
			loc = &c
		} else {
			subj = model.Subject{Kind: "site", Value: cz.Site}
		}
		// The readings behind this count only: those of subjects that left
		// the window (an earlier incident's crowd) are not its evidence.
		cz.Evidence = evidenceAfter(cz.Evidence, &cz.evRing, cut)
		origin := ""
		if r != nil {
			origin = r.origin()
		}
		a := e.fire(st, alertIn{
			subj: subj, zone: z, site: cz.Site, at: clock, start: clock, origin: origin, loc: loc, count: n,
			evidence: cz.Evidence,
			summary:  e.countSummary(st, cz, z, n, clock, now),
		}, now)
		cz.Open = e.opened(st, a, now)
		cz.firedIn, cz.firedOut = e.calls, len(out)
		out = append(out, a)
	case n < th && cz.Open != nil:
		// A drain by Tick moves the clock on by processing time: late when
		// the window's latest reading came late.
		out = append(out, e.resolved(st, cz.Open, clock, now, e.late(clock, now),
			fmt.Sprintf("%d %s within %s at %s, below threshold %d, %s",
				n, countNoun(st.rule.Source, n), shortDur(st.rule.window), e.countPlace(cz, z), th, e.localTime(clock, now))))
		cz.Open = nil
	}
	return out
}

// tickCount moves each zone's clock on by the processing time since its
// last reading, so that windows drain (and resolve) when readings stop.
func (e *Engine) tickCount(st *ruleState, now time.Time, out []model.Alert) []model.Alert {
	for key, cz := range st.count {
		clock := cz.clockAt(now)
		var z *zone.Zone
		if cz.Zone != "" && e.rs.Zones != nil {
			z = e.rs.Zones.Get(cz.Zone)
		}
		out = e.checkCount(st, cz, z, clock, nil, now, out)
		if len(cz.Seen) == 0 && cz.Open == nil {
			delete(st.count, key)
			st.countGen++ // countAt may hold it
		}
	}
	return e.tickRepeat(st, now, out)
}

// dwell: one subject seen in a zone with no gap longer than max_gap for
// duration → firing; resolved when the gap exceeds max_gap. Gaps between
// readings are measured in event time; the end of a stay, when no reading
// comes, is noticed on Tick by processing time since the stay's latest
// reading was processed. A reading older than the current stay by more than
// max_gap belongs to an earlier stay: a backlog (see stay).
func (e *Engine) applyDwell(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	return e.stay(st, dwellKey{subj: e.sid(subj), zone: st.rule.zoneIndex(z)}, r, subj, z, now, out)
}

// stay applies r to the subject's stays in a zone: key (backlog 0) is its
// current stay; keys backlog 1 to dwellBacklogStays hold older stays, each
// older than the one before by more than max_gap, which run in their own
// time as the current one does in the present. A reading older than a stay
// by more than max_gap — a unit's backlog delivered after newer readings —
// goes to the newest older stay it reaches, or makes one: a phone that
// loitered at the ruins three hours ago fires, late, with an id of its own,
// and its stay ends after max_gap without a reading. A stay that a newer
// reading ends (a gap over max_gap) without having fired becomes the next
// older stay, for a backlog that fills the gap to join the two (see
// joinOlderStay). A reading older than every stay, when all are kept,
// starts the oldest again, unless it has an incident open; then it is
// ignored.
func (e *Engine) stay(st *ruleState, key dwellKey, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	gap, dur := st.rule.maxGap, st.rule.duration
	de := st.dwell[key]
	for de != nil && eventSub(de.First, r.t) > gap {
		older, oe := olderStay(st, key)
		if oe == nil { // older than every stay kept
			if key.backlog < dwellBacklogStays {
				key.backlog++
				de = nil
				break
			}
			if de.Open != nil {
				st.m.unused.Inc()
				return out
			}
			de.restart(r)
			break
		}
		key, de = older, oe
	}
	switch {
	case de == nil:
		if len(st.dwell) >= MaxTrackedPerRule {
			if inc := evictOne(st, e, st.dwell, func(de *dwellEntry) *incident { return de.Open }, func(de *dwellEntry) time.Time { return de.Processed }); inc != nil {
				out = append(out, e.closedUncleared(st, inc, now, evictedSummary))
			}
		}
		de = &dwellEntry{Site: r.b.Site, First: r.t, Last: r.t, Loc: r.p}
		st.dwell[key] = de
	case eventSub(r.t, de.Last) > gap && !r.t.Before(de.bridgeUntil):
		// The stay ended; this reading starts a new one.
		if de.Open != nil {
			out = append(out, e.stayEnded(st, de, now, e.dwellGone(st, subj, z, r, de, now)))
			de.restart(r)
		} else if pushOlder(st, key, de) {
			de = &dwellEntry{Site: r.b.Site, First: r.t, Last: r.t, Loc: r.p}
			st.dwell[key] = de
		} else {
			de.restart(r)
		}
	case r.t.Before(de.First):
		if de.Open == nil {
			de.First = r.t
			e.joinOlderStay(st, key, de, r)
		}
	}
	if !r.t.Before(de.Last) {
		// The site too: a rule without zones follows a subject from site
		// to site, and its alerts go where it was seen last, as their
		// summary and location say.
		de.Last, de.Loc, de.Site = r.t, r.p, r.b.Site
	}
	de.Processed = now
	de.bridgeUntil = time.Time{}
	de.Sightings++
	de.Evidence = addEvidence(de.Evidence, &de.evRing, r.evidence())
	if de.Open == nil && eventSub(de.Last, de.First) >= dur {
		loc := de.Loc
		a := e.fire(st, alertIn{
			subj: subj, zone: z, site: de.Site, at: de.Last, start: de.First, origin: r.origin(), loc: &loc, count: de.Sightings,
			evidence: inOrder(de.Evidence, &de.evRing),
			summary: fmt.Sprintf("%s at %s for %s (since %s), %s", upperFirst(describeSubject(subj, r)),
				e.place(z, r.b.Meta.Device, r.b.Site), shortDur(de.Last.Sub(de.First)),
				e.localTime(de.First, now), e.localTime(de.Last, now)),
		}, now)
		de.Open = e.opened(st, a, now)
		out = append(out, a)
	}
	return out
}

// dwellBacklogStays is how many stays older than its current one a subject
// keeps in a zone: the stay a newer sighting ended, and one a backlog
// older still makes (or the two stays of a backlog that arrived shuffled).
// Each is one entry of the rule's state, and ends as any stay does.
const dwellBacklogStays = 2

// restart makes de a new stay that starts at r.
func (de *dwellEntry) restart(r *reading) {
	*de = dwellEntry{Site: r.b.Site, First: r.t, Last: r.t, Loc: r.p, Evidence: de.Evidence[:0]}
}

// olderStay is the newest of the subject's stays older than the stay of
// key, if one is kept.
func olderStay(st *ruleState, key dwellKey) (dwellKey, *dwellEntry) {
	for key.backlog < dwellBacklogStays {
		key.backlog++
		if oe := st.dwell[key]; oe != nil {
			return key, oe
		}
	}
	return key, nil
}

// pushOlder keeps de, the stay of key that a newer reading ended without
// its having fired, as the next older stay: a backlog may yet fill the gap
// and join the two. A stay it displaces goes one further back, or, the
// oldest, is forgotten; a stay with an incident open is not displaced (de
// is forgotten instead). It reports whether de was kept.
func pushOlder(st *ruleState, key dwellKey, de *dwellEntry) bool {
	kept := false
	for key.backlog < dwellBacklogStays {
		key.backlog++
		oe := st.dwell[key]
		if (oe != nil && oe.Open != nil) || (oe == nil && len(st.dwell) >= MaxTrackedPerRule) {
			break
		}
		st.dwell[key] = de
		kept = true
		if oe == nil {
			break
		}
		de = oe
	}
	return kept
}

// joinOlderStay makes the next older stay, if r (a late reading that just
// moved the start of the stay de of key back) reaches it, part of de: a
// stay whose sightings arrived in two parts — the first ones as a backlog,
// or on both sides of a newer sighting that came first — is one stay, with
// every sighting of both, and fires once its whole length reaches
// duration. An incident the older stay had opened becomes the stay's. The
// stays older than the one joined move up a place.
func (e *Engine) joinOlderStay(st *ruleState, key dwellKey, de *dwellEntry, r *reading) {
	bk, be := olderStay(st, key)
	if be == nil || r.t.Sub(be.Last) > st.rule.maxGap {
		return
	}
	de.First = be.First
	de.Sightings += be.Sightings
	de.Open = be.Open
	// The older stay's evidence first (how the stay began), then de's.
	list := inOrder(be.Evidence, &be.evRing)
	ring := be.evRing
	ring.lastOK = false
	for _, ev := range inOrder(de.Evidence, &de.evRing) {
		list = addEvidence(list, &ring, ev)
	}
	de.Evidence, de.evRing = list, ring
	delete(st.dwell, bk)
	for next := bk; next.backlog < dwellBacklogStays; {
		next.backlog++
		if ne := st.dwell[next]; ne != nil {
			delete(st.dwell, next)
			st.dwell[bk] = ne
			bk.backlog++
		}
	}
}

func (e *Engine) dwellGone(st *ruleState, subj model.Subject, z *zone.Zone, r *reading, de *dwellEntry, now time.Time) string {
	if z == nil {
		// A rule without zones: the subject was where it was seen last,
		// which need not be the site the incident was raised at.
		return fmt.Sprintf("%s no longer seen (last seen at site %s %s, stayed %s)", upperFirst(describeSubject(subj, r)),
			de.Site, e.localTime(de.Last, now), shortDur(de.Last.Sub(de.First)))
	}
	return fmt.Sprintf("%s no longer seen at %s (last seen %s, stayed %s)", upperFirst(describeSubject(subj, r)),
		e.place(z, "", ""), e.localTime(de.Last, now), shortDur(de.Last.Sub(de.First)))
}

// stayEnded resolves the incident of the stay de, which ended at its last
// sighting: the resolved alert counts the whole stay's sightings and gives
// its latest evidence, where the firing gave those that made the stay long
// enough.
func (e *Engine) stayEnded(st *ruleState, de *dwellEntry, now time.Time, summary string) model.Alert {
	de.Open.Alert.Count = de.Sightings
	de.Open.Alert.Evidence = slices.Clone(inOrder(de.Evidence, &de.evRing))
	// The stay ended at its last sighting, and that is its `at`; the end is
	// known max_gap later (by Tick, or by a sighting after the gap), so the
	// resolution is late only when that last sighting came late itself.
	return e.resolved(st, de.Open, de.Last, now, e.late(de.Last, de.Processed), summary)
}

func (e *Engine) tickDwell(st *ruleState, now time.Time, out []model.Alert) []model.Alert {
	gap := st.rule.maxGap
	for key, de := range st.dwell {
		if now.Sub(de.Processed) <= gap {
			continue
		}
		if de.Open != nil {
			var z *zone.Zone
			if key.zone >= 0 && int(key.zone) < len(st.rule.zones) {
				z = st.rule.zones[key.zone]
			}
			out = append(out, e.stayEnded(st, de, now, e.dwellGone(st, de.Open.Alert.Subject, z, nil, de, now)))
		}
		delete(st.dwell, key)
	}
	return e.tickRepeat(st, now, out)
}

// sightingTime is when a velocity rule took s to be, for a summary, and,
// when its unit's clock was ahead (the time taken is capped at now), what
// that clock said: the evidence names the pass at it.
func (e *Engine) sightingTime(s *sighting, now time.Time) string {
	t := e.localTime(s.T, now)
	if !s.Sent.IsZero() {
		if sent := e.localTime(s.Sent, now); sent != t {
			t += " (its clock said " + strings.TrimSuffix(sent, " local") + ")"
		}
	}
	return t
}

// velocity: a subject seen at two places whose distance over the time
// between the sightings implies more than max_kmh (a cloned plate, a
// cloned SIM). Each new sighting is compared with the subject's sightings
// just before and just after it in event time — for readings in order, its
// latest one; for a checkpoint's backlog delivered after newer passes of
// the plate, the passes of that time, which is where a clone shows. The
// rule keeps a subject's latest velocityHistory sightings. Pairs closer
// than VelocityMinDistanceM are ignored (GPS noise, neighbouring units),
// and two sightings at the same instant at different places are an
// infinite speed. A velocity alert is a one-shot event (firing only),
// deduplicated per subject by the rule's cooldown.
func (e *Engine) applyVelocity(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	if !r.hasPos || st.velTaken == e.readings {
		return out
	}
	st.velTaken = e.readings
	cur := sighting{T: r.t, Loc: r.p, Device: r.b.Meta.Device, Seq: r.b.Seq, Site: r.b.Site, Zone: zoneID(z), Processed: now}
	if sent := r.sentTime(); !sent.Equal(r.t) {
		cur.Sent = sent // a clock ahead: T is capped at now
	}
	id := e.sid(subj)
	h, ok := st.vel[id]
	if !ok && len(st.vel) >= MaxTrackedPerRule {
		evictOne(st, e, st.vel, nil, func(h []sighting) time.Time { return h[len(h)-1].Processed })
	}
	i := sightingIndex(h, cur.T) // at the end, nearly always
	if i > 0 {
		out = e.velocityPair(st, r, subj, id, z, &h[i-1], &cur, now, out)
	}
	if i < len(h) {
		out = e.velocityPair(st, r, subj, id, z, &h[i], &cur, now, out)
	}
	if i == 0 && len(h) == velocityHistory {
		// Older than every sighting kept (a backlog behind a plate seen
		// often since): its earlier neighbour is among the backlog's own.
		return e.velocityBacklog(st, r, subj, id, z, &cur, now, out)
	}
	n := len(h)
	h = insertSighting(h, i, cur)
	h[len(h)-1].Processed = now // the latest's, for expiry: the subject is still about
	if len(h) != n {
		st.vel[id] = h
	}
	return out
}

// velocityBacklog compares cur, a backlog sighting older than every
// sighting of the subject's list, with its neighbours among the subject's
// backlog sightings, and keeps it there (the latest velocityHistory). A
// sighting older than all of those too is dropped, counted as evicted.
func (e *Engine) velocityBacklog(st *ruleState, r *reading, subj model.Subject, id subjectID, z *zone.Zone, cur *sighting, now time.Time, out []model.Alert) []model.Alert {
	old := st.velOld[id]
	i := sightingIndex(old, cur.T)
	if i > 0 {
		out = e.velocityPair(st, r, subj, id, z, &old[i-1], cur, now, out)
	}
	if i < len(old) {
		out = e.velocityPair(st, r, subj, id, z, &old[i], cur, now, out)
	}
	if i == 0 && len(old) == velocityHistory {
		st.m.evicted.Inc()
		e.warnEvery("velocity-backlog:"+st.rule.ID, time.Minute, "velocity backlog older than every sighting kept; not compared with older ones",
			"rule", st.rule.ID, "kept", velocityHistory)
		return out
	}
	st.velOld[id] = insertSighting(old, i, *cur)
	return out
}

// velocityPair fires if the subject could not have been at both sightings.
func (e *Engine) velocityPair(st *ruleState, r *reading, subj model.Subject, id subjectID, z *zone.Zone, a, b *sighting, now time.Time, out []model.Alert) []model.Alert {
	d := distanceM(a.Loc, b.Loc)
	if d < VelocityMinDistanceM {
		return out
	}
	dt := absDur(b.T.Sub(a.T))
	kmh := math.Inf(1)
	if dt > 0 {
		kmh = d / 1000 / dt.Hours()
	}
	if kmh <= st.rule.maxKmh {
		return out
	}
	early, late := *a, *b
	if late.T.Before(early.T) {
		early, late = late, early
	}
	if !e.allow(st, coolKey{subj: id}, late.T, now) {
		return out
	}
	speed := "at the same instant"
	if !math.IsInf(kmh, 1) {
		speed = fmt.Sprintf("in %s (%s km/h, max %s)", shortDur(dt), kmhAbove(kmh, st.rule.maxKmh),
			strconv.FormatFloat(st.rule.maxKmh, 'f', -1, 64))
	}
	lz := z
	if late.Zone != zoneID(z) && e.rs.Zones != nil {
		lz = e.rs.Zones.Get(late.Zone)
	}
	ev := []model.Evidence{
		{Device: early.Device, Seq: early.Seq, TS: early.sentTime()},
		{Device: late.Device, Seq: late.Seq, TS: late.sentTime()},
	}
	return append(out, e.fire(st, alertIn{
		subj: subj, zone: lz, zoneID: late.Zone, site: late.Site, at: late.T, start: late.T,
		origin: sightingOrigin(late.Device, late.Seq), loc: &late.Loc,
		count: 2, evidence: ev,
		summary: fmt.Sprintf("%s seen %.1f km apart %s: %s at %s, %s at %s", upperFirst(describeSubject(subj, r)),
			d/1000, speed, e.deviceLabel(early.Device), e.sightingTime(&early, now), e.deviceLabel(late.Device), e.sightingTime(&late, now)),
	}, now))
}

// kmhAbove formats a speed above max in whole km/h, or with the decimals
// it takes to read above max: 180.3 km/h against a maximum of 180 is
// "180.3", never "180".
func kmhAbove(kmh, max float64) string {
	for prec := 0; ; prec++ {
		s := strconv.FormatFloat(kmh, 'f', prec, 64)
		if v, _ := strconv.ParseFloat(s, 64); v > max || prec == 6 {
			return s
		}
	}
}

// applyFence runs an enter/exit rule: the subject's previous inside-state
// per zone against the current one (as Tile38's fences do), with
// hysteresis: once inside, a subject counts as outside only when it is
// more than hysteresis_m outside the boundary, and once outside, as inside
// only when it is more than hysteresis_m inside. Zones the subject is not
// known to be inside count as outside, so the first-ever sighting more than
// hysteresis_m inside a zone is an enter (a patrol switched on inside the
// strip is in the strip).
// A position the rule's filters refuse is not seen at all, as in every
// kind: outside the schedule it changes nothing, and in a zone whose `when`
// it fails (a fix too coarse to trust) the subject keeps its side there.
// Were the side updated and only the alert withheld, one coarse fix inside
// would swallow the real entry after it, and a patrol that went in before
// the night window opened would never be reported in the strip at night.
// Positions older than the subject's latest do not move it back in time:
// they are a backlog (a unit whose link was down sends its buffer late),
// compared fix by fix along a side of its own (fenceEntry.backlog), and the
// crossings along it are raised, late. A backlog's first fix — and a fix
// older than the backlog's latest, which starts it again — has nothing
// before it to compare with: it only sets the side, as a first sighting
// would but without the enter (the subject may well have been inside since
// before: an enter the live positions reported already). Nor is a
// backlog's last fix compared with the newer positions.
func (e *Engine) applyFence(st *ruleState, r *reading, now time.Time, out []model.Alert) []model.Alert {
	rule := st.rule
	if !r.hasPos || !e.active(rule.sched, r.t) {
		return out
	}
	subj, ok := e.subjectOf(rule, r)
	if !ok {
		return out
	}
	id := e.sid(subj)
	fe := st.fence[id]
	if fe == nil {
		if len(st.fence) >= MaxTrackedPerRule {
			evictOne(st, e, st.fence, nil, func(fe *fenceEntry) time.Time { return fe.Processed })
		}
		fe = &fenceEntry{}
		st.fence[id] = fe
	} else if r.t.Before(fe.Last) {
		fe.Processed = now
		b := fe.backlog
		if b == nil || r.t.Before(b.last) {
			b = &fenceTrack{}
			fe.backlog = b
			e.fenceStep(st, r, subj, nil, false, now, nil) // the side only
		} else {
			out = e.fenceStep(st, r, subj, b.inside, true, now, out)
		}
		b.inside, b.last = append(b.inside[:0], e.inside...), r.t
		return out
	}
	fe.Last, fe.Processed = r.t, now
	out = e.fenceStep(st, r, subj, fe.Inside, true, now, out)
	fe.Inside = append(fe.Inside[:0], e.inside...)
	return out
}

// fenceStep works out the zones of the rule r is inside (in e.inside), the
// subject having been inside was before it, and, if raise, raises the
// crossings.
func (e *Engine) fenceStep(st *ruleState, r *reading, subj model.Subject, was []string, raise bool, now time.Time, out []model.Alert) []model.Alert {
	rule := st.rule
	h := rule.hysteresis

	if !e.nearOK || e.nearH != h { // the enter/exit rules of a reading share one search per hysteresis
		e.near = e.near[:0]
		if e.rs.Zones != nil {
			e.rs.Zones.Near(r.p, h, e.collectNear)
		}
		slices.SortFunc(e.near, func(a, b *zone.Zone) int { return strings.Compare(a.ID, b.ID) })
		e.nearOK, e.nearH = true, h
	}
	e.inside = e.inside[:0]
	for _, z := range e.near {
		if rule.zoneSet != nil {
			if _, in := rule.zoneSet[z]; !in {
				continue
			}
		}
		wasIn := slices.Contains(was, z.ID)
		if rule.when != nil && !e.when(st, r, z) {
			if wasIn {
				e.inside = append(e.inside, z.ID)
			}
			continue
		}
		d := z.DistanceM(r.p)
		var in bool
		if wasIn {
			in = d >= -h
		} else {
			in = d > h || (h == 0 && d >= 0)
		}
		if in {
			e.inside = append(e.inside, z.ID)
		}
		if raise && in != wasIn && ((rule.Kind == KindEnter && in) || (rule.Kind == KindExit && !in)) {
			out = e.crossing(st, r, subj, z, now, out)
		}
	}
	// Zones it was inside that are not even near any more: it left them,
	// unless the rule's `when` refuses the fix there.
	for _, id := range was {
		if slices.Contains(e.inside, id) || containsZone(e.near, id) {
			continue
		}
		var z *zone.Zone
		if e.rs.Zones != nil {
			z = e.rs.Zones.Get(id)
		}
		switch {
		case z == nil:
		case rule.when != nil && !e.when(st, r, z):
			e.inside = append(e.inside, id)
		case raise && rule.Kind == KindExit:
			out = e.crossing(st, r, subj, z, now, out)
		}
	}
	return out
}

func containsZone(zs []*zone.Zone, id string) bool {
	for _, z := range zs {
		if z.ID == id {
			return true
		}
	}
	return false
}

// crossing raises the alert of an enter or exit, if its cooldown lets it
// (applyFence has applied the rule's filters).
func (e *Engine) crossing(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, now time.Time, out []model.Alert) []model.Alert {
	rule := st.rule
	if !e.allow(st, coolKey{subj: e.sid(subj), zone: z.ID}, r.t, now) {
		return out
	}
	verb := "entered"
	if rule.Kind == KindExit {
		verb = "left"
	}
	ev := [1]model.Evidence{r.evidence()}
	return append(out, e.fire(st, alertIn{
		subj: subj, zone: z, site: r.b.Site, at: r.t, start: r.t, origin: r.origin(), loc: &r.p, count: 1, evidence: ev[:],
		summary: fmt.Sprintf("%s %s %s, %s", upperFirst(describeSubject(subj, r)), verb, e.place(z, "", ""),
			e.localTime(r.t, now)),
	}, now))
}

// status: a status report matching `when` → firing, once while reports
// keep matching; a report that no longer matches → resolved. Reports older
// than the latest one evaluated are ignored, matching or not: the device's
// latest report says how it is, and an old tamper report delivered late
// must not open an incident a newer report has already ended (nothing
// would resolve it until the next report). So every device's latest time
// is kept (one entry per registered device at most).
func (e *Engine) applyStatus(st *ruleState, r *reading, subj model.Subject, z *zone.Zone, match bool, now time.Time, out []model.Alert) []model.Alert {
	dev := r.b.Meta.Device
	se := st.status[dev]
	if se == nil {
		se = &statusEntry{}
		st.status[dev] = se
	} else if r.t.Before(se.Last) {
		return out
	}
	se.Last = r.t
	switch {
	case match && se.Open == nil:
		var loc *model.Point
		if r.hasPos {
			p := r.p
			loc = &p
		}
		ev := [1]model.Evidence{r.evidence()}
		a := e.fire(st, alertIn{
			subj: subj, zone: z, site: r.b.Site, at: r.t, start: r.t, origin: r.origin(), loc: loc, count: 1, evidence: ev[:],
			summary: fmt.Sprintf("%s at %s reports %s (condition: %s), %s", upperFirst(describeSubject(subj, r)),
				e.statusPlace(z, dev, r.b.Site), statusFacts(r.st), e.condition(st.rule), e.localTime(r.t, now)),
		}, now)
		se.Open = e.opened(st, a, now)
		// The fields of the report itself, as versions that judged each
		// report alone kept them: going back to one, a report of the
		// tamper alone still resolves a tamper incident.
		se.FiredWith = statusCarried(r.rep) & st.rule.statusReads
		out = append(out, a)
	case !match && se.Open != nil && statusResolves(statusCarried(r.st), st.rule.statusReads, se.FiredWith):
		a := e.resolved(st, se.Open, r.t, now, e.late(r.t, now),
			fmt.Sprintf("%s at %s reports %s, no longer %s, %s", upperFirst(describeSubject(subj, r)),
				e.statusPlace(z, dev, r.b.Site), statusFacts(r.st), e.condition(st.rule), e.localTime(r.t, now)))
		// The report that fired, and the one the summary quotes, that
		// cleared it.
		a.Evidence = append(a.Evidence, r.evidence())
		out = append(out, a)
		se.Open = nil
	}
	return out
}

// statusPlace is where a status report's device is: its zone or its name
// when it has them, else its site (the summary names the device already).
func (e *Engine) statusPlace(z *zone.Zone, dev, site string) string {
	if d := e.rs.Registry.Lookup(dev); z == nil && (d == nil || d.Name == "") {
		return "site " + site
	}
	return e.place(z, dev, site)
}

// condition is the rule's `when` as its alerts' summaries quote it.
func (e *Engine) condition(r *Rule) string {
	c := readableWhen(r.Spec.When)
	if e.opts.HideConditionLiterals {
		c = withoutLiterals(c)
	}
	return c
}

// withoutLiterals is expr with the text of its string literals, and its
// numbers of five digits or more, replaced by "…": `imsi in ["46001…1"]`
// becomes `imsi in ["…"]`, while `speed_kmh > 120` and `mcc == "…"` still
// say what kind of condition it is.
func withoutLiterals(expr string) string {
	var b strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++ // an escaped quote does not end it
				}
				j++
			}
			b.WriteByte(c)
			b.WriteString("…")
			if j < len(expr) {
				b.WriteByte(c)
			}
			i = j + 1
		case c >= '0' && c <= '9' && (i == 0 || !identByte(expr[i-1])):
			// A number runs on through letters (0x1A2B…, 1e10) and
			// separators; its digits count in any base.
			j, digits := i, 0
			for j < len(expr) && (identByte(expr[j]) || expr[j] == '.') {
				if d := expr[j] | 0x20; d >= '0' && d <= '9' || d >= 'a' && d <= 'f' {
					digits++
				}
				j++
			}
			if digits >= 5 {
				b.WriteString("…")
			} else {
				b.WriteString(expr[i:j])
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func identByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// readableWhen is a condition as a duty officer reads it: "or", "and" and
// "not" for the operators only programmers read ("!=" stays).
func readableWhen(expr string) string {
	expr = strings.NewReplacer("||", " or ", "&&", " and ", "!=", "\x00").Replace(expr)
	expr = strings.NewReplacer("!", " not ", "\x00", "!=").Replace(expr)
	return strings.Join(strings.Fields(expr), " ")
}

// statusResolves reports whether a unit's status carrying the fields
// carried, for which the condition (reading the fields reads) no longer
// holds, resolves an incident opened by a status that carried firedWith of
// them: if it carries them all, or, where they are not known, any field the
// condition reads. The unit's status holds every field it reported (see
// Engine.unitStatus), so this matters where it was not kept: a state saved
// by a version that did not keep it. A status of none says nothing about
// the condition, nor does one of the battery alone about a tamper: the
// incident stays. A condition that reads no status field is resolved by
// any report.
func statusResolves(carried, reads, firedWith uint8) bool {
	switch {
	case reads == 0:
		return true
	case firedWith != 0:
		return carried&firedWith == firedWith
	}
	return carried&reads != 0
}

// statusFacts prints the fields a status carried.
func statusFacts(s *model.Status) string {
	if s == nil {
		return ""
	}
	var parts []string
	if s.BatteryPct.OK {
		parts = append(parts, fmt.Sprintf("battery %g%%", s.BatteryPct.V))
	}
	if s.Tamper.OK {
		parts = append(parts, fmt.Sprintf("tamper %t", s.Tamper.V))
	}
	if s.TempC.OK {
		parts = append(parts, fmt.Sprintf("%g °C", s.TempC.V))
	}
	if s.Power != "" {
		parts = append(parts, "power "+statusText(s.Power))
	}
	if s.SignalDbm.OK {
		parts = append(parts, fmt.Sprintf("signal %g dBm", s.SignalDbm.V))
	}
	if s.Queue.OK {
		parts = append(parts, fmt.Sprintf("queue %d", s.Queue.V))
	}
	if s.FW != "" {
		parts = append(parts, "fw "+statusText(s.FW))
	}
	if len(parts) == 0 {
		return "no fields"
	}
	return strings.Join(parts, ", ")
}

// silenceWatches reports whether a silence rule watches device d: its kind
// (the rule's source), its site (the rule's sites) and, for rules with
// zones, its registered position inside one of them.
func (e *Engine) silenceWatches(r *Rule, d *model.Device) bool {
	ok, _ := e.silenceZone(r, d)
	return ok
}

// silenceZone is silenceWatches, with the first of the rule's zones that
// holds the device (nil for a rule without zones): its alerts carry that
// zone, and notify its units.
func (e *Engine) silenceZone(r *Rule, d *model.Device) (bool, *zone.Zone) {
	if r.devKind != "" && d.Kind != r.devKind {
		return false, nil
	}
	if !siteOK(r.sites, d.Site) {
		return false, nil
	}
	if len(r.zones) == 0 {
		return true, nil
	}
	pos, ok := e.devicePos(d.ID, d)
	if !ok {
		return false, nil
	}
	for _, z := range r.zones {
		if z.Contains(pos) {
			return true, z
		}
	}
	return false, nil
}

// silence: a device that has sent nothing for its expect_every (or the
// rule's after) → firing; resolved by its next message. Measured in
// processing time against the engine's own last-seen times: the device's
// own clock says nothing about a message that never came.
func (e *Engine) tickSilence(st *ruleState, now time.Time, out []model.Alert) []model.Alert {
	rule := st.rule
	inSchedule := rule.sched.active(now)
	e.rs.Registry.All(func(d *model.Device) {
		if _, open := st.silence[d.ID]; open || !inSchedule || e.deaf {
			return
		}
		watched, z := e.silenceZone(rule, d)
		if !watched {
			return
		}
		limit := rule.after
		if d.ExpectEvery > 0 {
			limit = d.ExpectEvery
		}
		var last time.Time
		lp, heard := e.lastSeen[d.ID]
		if heard {
			last = *lp
		}
		ref := last
		if ws := e.watchSince[d.ID]; ws.After(ref) {
			ref = ws
		}
		if st.since.After(ref) {
			ref = st.since
		}
		if e.heardFrom.After(ref) {
			ref = e.heardFrom
		}
		if now.Sub(ref) <= limit {
			return
		}
		var loc *model.Point
		if p, ok := e.devicePos(d.ID, d); ok {
			loc = &p
		}
		since := "nothing heard since the engine started watching it at " + e.localTime(ref, now)
		if heard {
			since = "last message " + e.localTime(last, now)
		}
		subj := model.Subject{Kind: "device", Value: d.ID}
		a := e.fire(st, alertIn{
			subj: subj, zone: z, site: d.Site, at: ref.Add(limit), start: ref, loc: loc,
			evidence: nil, onTime: true,
			summary: fmt.Sprintf("%s %s (%ssite %s) silent for more than %s (%s)", upperFirst(string(d.Kind)), d.ID,
				nameAnd(d.Name), d.Site, shortDur(limit), since),
		}, now)
		st.silence[d.ID] = e.opened(st, a, now)
		out = append(out, a)
	})
	return e.tickRepeat(st, now, out)
}

// nameAnd is a device's name and a comma, for "(name, site mdl)"; nothing
// for a device without one.
func nameAnd(name string) string {
	if name == "" {
		return ""
	}
	return name + ", "
}

// resolveSilence resolves the open silence incidents of a device that just
// sent a message; its previous message, if heard, was processed at prev.
func (e *Engine) resolveSilence(dev string, prev time.Time, heard bool, now time.Time, out []model.Alert) []model.Alert {
	for _, st := range e.silence {
		inc, ok := st.silence[dev]
		if !ok {
			continue
		}
		delete(st.silence, dev)
		// The silence lasted since the previous message. Never heard, it
		// is measured from when fenceline began watching (the firing's
		// time less the limit), which is also the firing's reference after
		// a restart: the silence itself began before that.
		// Named as the firing named it ("Fence F-SIL-01").
		what := "Device"
		if d := e.rs.Registry.Lookup(dev); d != nil {
			what = upperFirst(string(d.Kind))
		}
		summary := fmt.Sprintf("%s %s reporting again after %s of silence (last message %s)", what, dev,
			shortDur(now.Sub(prev)), e.localTime(prev, now))
		if !heard {
			summary = fmt.Sprintf("%s %s reporting again after %s of silence", what, dev,
				shortDur(now.Sub(inc.Alert.At.Add(-e.silenceLimit(st.rule, dev)))))
		}
		out = append(out, e.resolved(st, inc, now, now, false, summary))
	}
	return out
}

func (e *Engine) silenceLimit(r *Rule, dev string) time.Duration {
	if d := e.rs.Registry.Lookup(dev); d != nil && d.ExpectEvery > 0 {
		return d.ExpectEvery
	}
	return r.after
}

// tickRepeat re-sends the firing alert of open incidents every
// repeat_interval (processing time), same id, for receivers that expire
// alerts they do not hear about.
func (e *Engine) tickRepeat(st *ruleState, now time.Time, out []model.Alert) []model.Alert {
	if st.rule.repeat <= 0 || st.open == 0 {
		return out
	}
	resend := func(inc *incident, update func(a *model.Alert)) {
		if inc != nil && now.Sub(inc.LastSent) >= st.rule.repeat {
			inc.LastSent = now
			inc.Repeats++
			// The incident as it fired, late or not: a re-send is not
			// raised from an old reading.
			a := inc.Alert
			a.RaisedAt, a.Repeat = now, inc.Repeats
			a.Evidence = slices.Clone(a.Evidence)
			if update != nil {
				update(&a)
			}
			out = append(out, a)
			st.m.resent.Inc()
		}
	}
	for _, cz := range st.count {
		if cz.Open != nil && now.Sub(cz.Open.LastSent) >= st.rule.repeat {
			// A crowd that grew says how big it is now.
			var z *zone.Zone
			if e.rs.Zones != nil && cz.Zone != "" {
				z = e.rs.Zones.Get(cz.Zone)
			}
			e.summariseCount(st, cz, z, now)
		}
		resend(cz.Open, nil)
	}
	for _, de := range st.dwell {
		// A stay that goes on says how long it is now.
		resend(de.Open, func(a *model.Alert) {
			a.Count = de.Sightings
			a.Evidence = slices.Clone(inOrder(de.Evidence, &de.evRing))
			where := ""
			if de.Site != a.Site {
				where = " at site " + de.Site // a rule without zones: seen elsewhere since
			}
			a.Summary += fmt.Sprintf("; still there: %s in all, last seen %s%s", shortDur(de.Last.Sub(de.First)), e.localTime(de.Last, now), where)
		})
	}
	for _, se := range st.status {
		resend(se.Open, nil)
	}
	for _, inc := range st.silence {
		resend(inc, nil)
	}
	return out
}
