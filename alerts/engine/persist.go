package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// stateVersion is bumped when the snapshot format changes incompatibly;
// an engine refuses a snapshot of another version rather than misread it.
const stateVersion = 1

// snapshot is the engine's state as saved across restarts: small (open
// incidents, cooldowns, windows bounded by the rules' durations) and JSON,
// so that an operator can read it.
type snapshot struct {
	Version     int                  `json:"version"`
	LastSeen    map[string]time.Time `json:"last_seen"`
	Patrols     map[string]patrolPos `json:"patrols"`
	Units       map[string]unitSnap  `json:"units,omitempty"`
	LastOrdinal uint64               `json:"last_ordinal,omitempty"`
	Rules       []ruleSnapshot       `json:"rules"`
}

// unitKeep is how long the latest status of a unit no longer registered is
// kept across restarts, after its latest report.
const unitKeep = 30 * 24 * time.Hour

// unitSnap is a unit's latest status as saved (see Engine.unitStatus):
// the fields it has reported, and the ts of the latest report merged.
type unitSnap struct {
	TS         time.Time `json:"ts"`
	BatteryPct *float64  `json:"battery_pct,omitempty"`
	TempC      *float64  `json:"temp_c,omitempty"`
	UptimeS    *int64    `json:"uptime_s,omitempty"`
	Tamper     *bool     `json:"tamper,omitempty"`
	Power      string    `json:"power,omitempty"`
	SignalDbm  *float64  `json:"signal_dbm,omitempty"`
	Queue      *int64    `json:"queue,omitempty"`
	FW         string    `json:"fw,omitempty"`
}

// snapUnit copies u: the snapshot is written on another goroutine while
// the engine merges the unit's next reports into u (pointers into it were
// a data race, and could save a field newer than the report time beside
// it).
func snapUnit(u *model.Status) unitSnap {
	s := unitSnap{TS: u.Time, Power: u.Power, FW: u.FW}
	if u.BatteryPct.OK {
		s.BatteryPct = ptr(u.BatteryPct.V)
	}
	if u.TempC.OK {
		s.TempC = ptr(u.TempC.V)
	}
	if u.UptimeS.OK {
		s.UptimeS = ptr(u.UptimeS.V)
	}
	if u.Tamper.OK {
		s.Tamper = ptr(u.Tamper.V)
	}
	if u.SignalDbm.OK {
		s.SignalDbm = ptr(u.SignalDbm.V)
	}
	if u.Queue.OK {
		s.Queue = ptr(u.Queue.V)
	}
	return s
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

func (s unitSnap) status() *model.Status {
	u := &model.Status{Stamp: model.Stamp{Time: s.TS}, Power: s.Power, FW: s.FW}
	if s.BatteryPct != nil {
		u.BatteryPct = model.OptFloat{V: *s.BatteryPct, OK: true}
	}
	if s.TempC != nil {
		u.TempC = model.OptFloat{V: *s.TempC, OK: true}
	}
	if s.UptimeS != nil {
		u.UptimeS = model.OptInt{V: *s.UptimeS, OK: true}
	}
	if s.Tamper != nil {
		u.Tamper = model.OptBool{V: *s.Tamper, OK: true}
	}
	if s.SignalDbm != nil {
		u.SignalDbm = model.OptFloat{V: *s.SignalDbm, OK: true}
	}
	if s.Queue != nil {
		u.Queue = model.OptInt{V: *s.Queue, OK: true}
	}
	return u
}

type ruleSnapshot struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`

	Cooldowns []cooldownSnap `json:"cooldowns,omitempty"`
	Counts    []countSnap    `json:"counts,omitempty"`
	Dwell     []dwellSnap    `json:"dwell,omitempty"`
	Velocity  []velSnap      `json:"velocity,omitempty"`
	Fence     []fenceSnap    `json:"fence,omitempty"`
	Status    []statusSnap   `json:"status,omitempty"`
	Silence   []silenceSnap  `json:"silence,omitempty"`
}

type cooldownSnap struct {
	Key coolKeySnap `json:"key"`
	coolEntry
}

// coolKeySnap is a coolKey with its subject spelt out.
type coolKeySnap struct {
	Subject model.Subject `json:"subject"`
	Zone    string        `json:"zone"`
	Device  string        `json:"device,omitempty"`
}

type seenSnap struct {
	Subject model.Subject `json:"subject"`
	T       time.Time     `json:"t"`
}

type countSnap struct {
	Key string `json:"key"`
	countZone
	Subjects []seenSnap `json:"subjects"`
}

type dwellSnap struct {
	Subject model.Subject `json:"subject"`
	Zone    string        `json:"zone"`
	Backlog bool          `json:"backlog,omitempty"`
	dwellEntry
}

type velSnap struct {
	Subject model.Subject `json:"subject"`
	Backlog bool          `json:"backlog,omitempty"` // one of velOld's
	sighting
}

type fenceSnap struct {
	Subject model.Subject `json:"subject"`
	fenceEntry
}

type statusSnap struct {
	Device string `json:"device"`
	statusEntry
}

type silenceSnap struct {
	Device string `json:"device"`
	incident
}

// MarshalState saves what a restart must not lose: open incidents (so that
// they are resolved, not forgotten), cooldowns (so that nothing is raised
// twice), count windows, dwell timers, velocity sightings, enter/exit
// inside-states, the latest patrol positions and device last-seen times.
// The output is deterministic for the same state. WriteState writes the
// same bytes without holding them all.
func (e *Engine) MarshalState() ([]byte, error) {
	var b bytes.Buffer
	if err := e.WriteState(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteState writes the state MarshalState returns to w: Snapshot, then
// its Save.
func (e *Engine) WriteState(w io.Writer) error {
	return e.Snapshot().Save(w)
}

// StateSnapshot is a copy of the engine's state, taken by Snapshot where
// the engine may be used, to be written (Save) anywhere: the engine goes
// on meanwhile. Copying is the quick part; sorting and encoding (about
// 80 ms for 18 MB, 100,000s of entries, on this project's 2-core machine)
// are Save's, so that saving the state does not hold up the readings.
type StateSnapshot struct {
	lastSeen map[string]time.Time
	patrols  map[string]patrolPos
	units    map[string]unitSnap
	ordinal  uint64
	rules    []ruleSnapshot
	attached []attachment
}

type attachment struct {
	key string
	v   json.Marshaler
}

// Attach saves v's JSON with the state, under the top-level key key: the
// state of another component that must be saved in one file with the
// engine's, copied at the same instant (read it back from the file with
// encoding/json; RestoreState ignores it). v is encoded by Save.
func (s *StateSnapshot) Attach(key string, v json.Marshaler) {
	s.attached = append(s.attached, attachment{key, v})
}

// Snapshot copies the engine's state. It shares nothing the engine will
// change: evidence lists, inside-states and open incidents are copied.
func (e *Engine) Snapshot() *StateSnapshot {
	s := &StateSnapshot{lastSeen: e.lastSeenTimes(), patrols: maps.Clone(e.patrols), ordinal: e.ordinal}
	if len(e.units) > 0 {
		s.units = make(map[string]unitSnap, len(e.units))
		for id, u := range e.units {
			s.units[id] = snapUnit(u)
		}
	}
	for _, st := range e.order {
		s.rules = append(s.rules, e.snapshotRule(st))
	}
	return s
}

// lastSeenTimes is a copy of the devices' last-seen times.
func (e *Engine) lastSeenTimes() map[string]time.Time {
	m := make(map[string]time.Time, len(e.lastSeen))
	for id, t := range e.lastSeen {
		m[id] = *t
	}
	return m
}

// Save writes the snapshot as JSON to w, one rule at a time: a
// snapshot of a busy engine is megabytes of JSON, and encoding it whole
// every few seconds cost as much memory again as the daemon's live heap
// (the peaks of its RSS). The output is deterministic for the same state.
// Its last key is a checksum of what comes before it (see checkSaved).
func (s *StateSnapshot) Save(out io.Writer) error {
	sum := crc32.New(castagnoli)
	w := io.MultiWriter(out, sum)
	// The fields of snapshot, in its order, as json.Marshal writes them.
	lastSeen, err := json.Marshal(s.lastSeen)
	if err != nil {
		return fmt.Errorf("marshal alert engine state: %w", err)
	}
	patrols, err := json.Marshal(s.patrols)
	if err != nil {
		return fmt.Errorf("marshal alert engine state: %w", err)
	}
	units := ""
	if len(s.units) > 0 {
		b, err := json.Marshal(s.units)
		if err != nil {
			return fmt.Errorf("marshal alert engine state: %w", err)
		}
		units = `"units":` + string(b) + ","
	}
	ordinal := ""
	if s.ordinal != 0 {
		ordinal = `"last_ordinal":` + strconv.FormatUint(s.ordinal, 10) + ","
	}
	if _, err := fmt.Fprintf(w, `{"version":%d,"last_seen":%s,"patrols":%s,%s%s"rules":`, stateVersion, lastSeen, patrols, units, ordinal); err != nil {
		return fmt.Errorf("write alert engine state: %w", err)
	}
	enc := stateEncoder{w: w, chunk: saveChunk}
	for i := range s.rules {
		rs := &s.rules[i]
		rs.sort()
		sep := byte(',')
		if i == 0 {
			sep = '['
		}
		if err := enc.writeRule(sep, rs); err != nil {
			return fmt.Errorf("write alert engine state: %w", err)
		}
		if enc.bad {
			return fmt.Errorf("marshal alert engine state of rule %s: %w", rs.ID, refused(rs))
		}
	}
	tail := "]"
	if len(s.rules) == 0 {
		tail = "null"
	}
	if _, err := io.WriteString(w, tail); err != nil {
		return fmt.Errorf("write alert engine state: %w", err)
	}
	for _, a := range s.attached {
		k, _ := json.Marshal(a.key) // a string always marshals
		b, err := a.v.MarshalJSON()
		if err != nil {
			return fmt.Errorf("marshal %s with the alert engine state: %w", a.key, err)
		}
		if _, err := fmt.Fprintf(w, ",%s:%s", k, b); err != nil {
			return fmt.Errorf("write alert engine state: %w", err)
		}
	}
	if _, err := fmt.Fprintf(out, "%s%08x\"}", checksumKey, sum.Sum32()); err != nil {
		return fmt.Errorf("write alert engine state: %w", err)
	}
	return nil
}

// checksumKey starts the last key of a save: its CRC-32C (Castagnoli), in
// hex, of the bytes before it.
const checksumKey = `,"checksum":"crc32c:`

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkSaved refuses a save whose checksum does not match its content: a
// disk fault (or an edit) that leaves the JSON readable, a flipped digit in
// a time or a seq, would otherwise restore a state that was never saved.
// A save without a checksum, from a version of fenceline before it had
// one, is taken as it is.
func checkSaved(data []byte) error {
	i := bytes.LastIndex(data, []byte(`,"checksum":`))
	if i < 0 {
		return nil
	}
	tail := data[i:]
	if len(tail) != len(checksumKey)+8+2 || !bytes.HasPrefix(tail, []byte(checksumKey)) || !bytes.HasSuffix(tail, []byte(`"}`)) {
		return fmt.Errorf("alert engine state damaged: its checksum %.40q is not one fenceline writes", tail)
	}
	want, err := strconv.ParseUint(string(tail[len(checksumKey):len(checksumKey)+8]), 16, 32)
	if err != nil {
		return fmt.Errorf("alert engine state damaged: its checksum %.40q is not one fenceline writes", tail)
	}
	if got := crc32.Checksum(data[:i], castagnoli); got != uint32(want) {
		return fmt.Errorf("alert engine state damaged: its content does not match its checksum (crc32c %08x, saved %08x)", got, want)
	}
	return nil
}

// snapshotRule copies the state of one rule, unsorted (see sort). It runs
// while the pipeline waits: each list is allocated once at its size, and
// the evidence lists of all the rule's windows and stays are copied into
// one allocation.
func (e *Engine) snapshotRule(st *ruleState) ruleSnapshot {
	rs := ruleSnapshot{ID: st.rule.ID, Fingerprint: st.rule.fingerprint}
	subj := e.subjects.get
	nEv, nVel := 0, 0
	for _, cz := range st.count {
		nEv += len(cz.Evidence)
	}
	for _, de := range st.dwell {
		nEv += len(de.Evidence)
	}
	for _, h := range st.vel {
		nVel += len(h)
	}
	for _, h := range st.velOld {
		nVel += len(h)
	}
	evidence := evidenceSlab(make([]model.Evidence, 0, nEv))
	rs.Cooldowns = sized[cooldownSnap](len(st.cool))
	for k, c := range st.cool {
		rs.Cooldowns = append(rs.Cooldowns, cooldownSnap{
			Key: coolKeySnap{Subject: subj(k.subj), Zone: k.zone, Device: k.device}, coolEntry: *c})
	}
	rs.Counts = sized[countSnap](len(st.count))
	for k, cz := range st.count {
		inOrder(cz.Evidence, &cz.evRing)
		cs := countSnap{Key: k, countZone: *cz}
		cs.Evidence, cs.Open, cs.Seen = evidence.clone(cz.Evidence), cloneIncident(cz.Open), nil
		cs.Subjects = sized[seenSnap](len(cz.Seen))
		for id, t := range cz.Seen {
			cs.Subjects = append(cs.Subjects, seenSnap{Subject: subj(id), T: time.Unix(0, t).UTC()})
		}
		rs.Counts = append(rs.Counts, cs)
	}
	rs.Dwell = sized[dwellSnap](len(st.dwell))
	for k, de := range st.dwell {
		inOrder(de.Evidence, &de.evRing)
		zone := ""
		if k.zone >= 0 && int(k.zone) < len(st.rule.zones) {
			zone = st.rule.zones[k.zone].ID
		}
		ds := dwellSnap{Subject: subj(k.subj), Zone: zone, Backlog: k.backlog != 0, dwellEntry: *de}
		ds.Evidence, ds.Open = evidence.clone(de.Evidence), cloneIncident(de.Open)
		rs.Dwell = append(rs.Dwell, ds)
	}
	rs.Velocity = sized[velSnap](nVel)
	for k, h := range st.vel {
		for _, v := range st.velOld[k] {
			rs.Velocity = append(rs.Velocity, velSnap{Subject: subj(k), Backlog: true, sighting: v})
		}
		for _, v := range h {
			rs.Velocity = append(rs.Velocity, velSnap{Subject: subj(k), sighting: v})
		}
	}
	rs.Fence = sized[fenceSnap](len(st.fence))
	for k, f := range st.fence {
		fs := fenceSnap{Subject: subj(k), fenceEntry: *f}
		fs.Inside = slices.Clone(f.Inside)
		fs.backlog = nil // not saved
		rs.Fence = append(rs.Fence, fs)
	}
	rs.Status = sized[statusSnap](len(st.status))
	for k, se := range st.status {
		ss := statusSnap{Device: k, statusEntry: *se}
		ss.Open = cloneIncident(se.Open)
		rs.Status = append(rs.Status, ss)
	}
	rs.Silence = sized[silenceSnap](len(st.silence))
	for k, inc := range st.silence {
		rs.Silence = append(rs.Silence, silenceSnap{Device: k, incident: *inc})
	}
	return rs
}

// sized is an empty slice with room for n elements, nil for none: a list
// left empty stays nil, as appending to nil leaves it (a count window's
// subjects are saved as null then, not []).
func sized[T any](n int) []T {
	if n == 0 {
		return nil
	}
	return make([]T, 0, n)
}

// evidenceSlab hands out copies of evidence lists from one allocation.
type evidenceSlab []model.Evidence

// clone copies list as slices.Clone does (nil stays nil). Past the slab's
// capacity it goes on in a new one: earlier copies keep the old.
func (s *evidenceSlab) clone(list []model.Evidence) []model.Evidence {
	if list == nil {
		return nil
	}
	n := len(*s)
	*s = append(*s, list...)
	return (*s)[n:len(*s):len(*s)]
}

// cloneIncident copies an open incident: the engine changes its counters
// (count, last sent, repeats) in place. The alert's slices are never
// changed once it fired, and are shared.
func cloneIncident(inc *incident) *incident {
	if inc == nil {
		return nil
	}
	c := *inc
	return &c
}

// sort puts the rule's state in a deterministic order.
func (rs *ruleSnapshot) sort() {
	slices.SortFunc(rs.Cooldowns, func(a, b cooldownSnap) int { return cmpKey(a.Key, b.Key) })
	for i := range rs.Counts {
		slices.SortFunc(rs.Counts[i].Subjects, func(a, b seenSnap) int { return cmpSubject(a.Subject, b.Subject) })
	}
	slices.SortFunc(rs.Counts, func(a, b countSnap) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(rs.Dwell, func(a, b dwellSnap) int {
		if c := cmpKey(coolKeySnap{Subject: a.Subject, Zone: a.Zone}, coolKeySnap{Subject: b.Subject, Zone: b.Zone}); c != 0 {
			return c
		}
		if c := cmpBool(a.Backlog, b.Backlog); c != 0 {
			return c
		}
		return b.First.Compare(a.First) // a subject's older stays, newest first
	})
	// A subject's sightings stay in their order (by event time, the
	// backlog's first): restoring appends them.
	rs.Velocity = sortRunsStable(rs.Velocity, func(a, b *velSnap) int { return cmpSubject(a.Subject, b.Subject) })
	slices.SortFunc(rs.Fence, func(a, b fenceSnap) int { return cmpSubject(a.Subject, b.Subject) })
	slices.SortFunc(rs.Status, func(a, b statusSnap) int { return strings.Compare(a.Device, b.Device) })
	slices.SortFunc(rs.Silence, func(a, b silenceSnap) int { return strings.Compare(a.Device, b.Device) })
}

// sortRunsStable sorts s by cmp, keeping the order of equal elements, as
// slices.SortStableFunc does, but moves each run of adjacent equal
// elements whole, once: Snapshot lists a subject's velocity sightings
// together, and a stable sort of tens of thousands of these large entries,
// shifting them many times over, took as long as encoding them. It
// returns the sorted elements in a new slice unless s was in order.
func sortRunsStable[T any](s []T, cmp func(a, b *T) int) []T {
	type run struct{ from, to int }
	var runs []run
	sorted := true
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && cmp(&s[i], &s[j]) == 0 {
			j++
		}
		if len(runs) > 0 && cmp(&s[runs[len(runs)-1].from], &s[i]) > 0 {
			sorted = false
		}
		runs = append(runs, run{i, j})
		i = j
	}
	if sorted {
		return s
	}
	slices.SortFunc(runs, func(a, b run) int {
		if c := cmp(&s[a.from], &s[b.from]); c != 0 {
			return c
		}
		return a.from - b.from // stable
	})
	out := make([]T, 0, len(s))
	for _, r := range runs {
		out = append(out, s[r.from:r.to]...)
	}
	return out
}

func cmpSubject(a, b model.Subject) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

func cmpKey(a, b coolKeySnap) int {
	if c := cmpSubject(a.Subject, b.Subject); c != 0 {
		return c
	}
	if c := strings.Compare(a.Zone, b.Zone); c != 0 {
		return c
	}
	return strings.Compare(a.Device, b.Device)
}

// AfterUncleanStop says the restored state was saved before an unclean
// stop (a crash, a kill): the readings evaluated after that save were acked,
// and the broker does not send them again, so subjects may have been seen
// until lostUntil (when the next save was due), unknown to the state, and
// those still there must not be taken for gone (a resolution, then a new
// firing with a new id). A stay's (dwell) next sighting continues it if it
// is within max_gap of lostUntil, whatever its gap from the last one known,
// and Tick ends none before max_gap after lostUntil. An open crowd (count)
// resolves no earlier than a window after lostUntil. A subject away longer
// (fenceline down for an hour) is away: the sightings of a subject still
// there waited in the broker, and come first.
func (e *Engine) AfterUncleanStop(lostUntil time.Time) {
	if now := e.clock(); lostUntil.After(now) {
		lostUntil = now
	}
	for _, st := range e.rules {
		for _, de := range st.dwell {
			if de.Processed.Before(lostUntil) {
				de.Processed = lostUntil
			}
			de.bridgeUntil = lostUntil.Add(st.rule.maxGap)
		}
		for _, cz := range st.count {
			if cz.Open != nil {
				cz.holdUntil = lostUntil.Add(st.rule.window)
			}
		}
	}
}

// RestoreState restores a snapshot taken by MarshalState, normally right
// after New at start-up, and returns the alerts that resolve what it could
// not restore. The state of a rule is restored only if the rule still
// exists with the same definition (fingerprint); the rest is dropped and
// logged — the same choice Swap makes, and as in Swap the open incidents of
// a rule changed or removed while fenceline was stopped are resolved now
// (their firing alerts are in the snapshot), as are those of devices no
// longer registered: otherwise they would stay firing on the receivers'
// side for ever. Silence is measured from the restart, whatever the saved
// last-seen times say: while fenceline was down nobody listened, so a
// device's silence then proves nothing.
func (e *Engine) RestoreState(data []byte) ([]model.Alert, error) {
	if err := checkSaved(data); err != nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("unmarshal alert engine state: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("unmarshal alert engine state: version %d, want %d", s.Version, stateVersion)
	}
	now := e.clock()
	var out []model.Alert
	reg := e.rs.Registry
	for id, t := range s.LastSeen {
		if reg.Lookup(id) != nil {
			e.lastSeen[id] = &t
		}
	}
	for id, p := range s.Patrols {
		if reg.Lookup(id) != nil {
			e.patrols[id] = p
		}
	}
	for id, u := range s.Units {
		// A unit a reload removed is kept a while: put back, it is still
		// as it last reported (see Engine.units).
		if reg.Lookup(id) != nil || now.Sub(u.TS) < unitKeep {
			e.units[id] = u.status()
		}
	}
	e.ordinal = max(e.ordinal, s.LastOrdinal)
	var restored, dropped int
	for i := range s.Rules {
		rs := &s.Rules[i]
		old := e.rules[rs.ID]
		if old == nil || old.rule.fingerprint != rs.Fingerprint {
			dropped++
			why := "rule " + rs.ID + " changed while fenceline was stopped"
			if old == nil {
				why = "rule " + rs.ID + " removed while fenceline was stopped"
			}
			n := len(out)
			out = rs.resolveOpen(out, now, why, func(string) bool { return true })
			if old != nil { // a removed rule has no series left to count in
				old.m.resolved.Add(float64(len(out) - n))
			}
			continue
		}
		// Incidents of devices no longer registered are resolved; their
		// entries are dropped below.
		n := len(out)
		out = rs.resolveOpen(out, now, "device no longer registered", func(dev string) bool { return dev != "" && reg.Lookup(dev) == nil })
		old.m.resolved.Add(float64(len(out) - n))
		restored++
		st := newRuleState(old.rule, old.m)
		intern := e.subjects.id
		for _, c := range rs.Cooldowns {
			if st.cool != nil {
				ce := c.coolEntry
				ce.Next = ((ce.Next % cooldownSlots) + cooldownSlots) % cooldownSlots
				st.cool[coolKey{subj: intern(c.Key.Subject), zone: c.Key.Zone, device: c.Key.Device}] = &ce
			}
		}
		for _, c := range rs.Counts {
			if st.count == nil {
				break
			}
			cz := c.countZone
			cz.Seen = make(map[subjectID]int64, len(c.Subjects))
			for _, ss := range c.Subjects {
				cz.Seen[intern(ss.Subject)] = ss.T.UnixNano()
				if cz.minSeen.IsZero() || ss.T.Before(cz.minSeen) {
					cz.minSeen = ss.T
				}
			}
			if cz.Open.restored() != nil {
				st.open++
			}
			st.count[c.Key] = &cz
		}
		for _, d := range rs.Dwell {
			if st.dwell == nil {
				break
			}
			zi := int32(-1)
			if d.Zone != "" {
				if zi = zoneIndexByID(old.rule, d.Zone); zi < 0 {
					continue // not one of the rule's zones: cannot be with the same fingerprint
				}
			}
			de := d.dwellEntry
			if de.Open.restored() != nil {
				st.open++
			}
			key := dwellKey{subj: intern(d.Subject), zone: zi}
			if d.Backlog {
				// A subject's older stays, newest first (see sort), in
				// their places after its current one.
				key.backlog = 1
				for st.dwell[key] != nil && key.backlog < dwellBacklogStays {
					key.backlog++
				}
			}
			st.dwell[key] = &de
		}
		for _, v := range rs.Velocity {
			if st.vel == nil {
				break
			}
			id := intern(v.Subject)
			lists := st.vel
			if v.Backlog {
				lists = st.velOld
			}
			h := lists[id]
			lists[id] = insertSighting(h, sightingIndex(h, v.T), v.sighting)
		}
		for _, f := range rs.Fence {
			if st.fence == nil {
				break
			}
			fe := f.fenceEntry
			st.fence[intern(f.Subject)] = &fe
		}
		for _, ss := range rs.Status {
			if st.status == nil || reg.Lookup(ss.Device) == nil {
				continue
			}
			se := ss.statusEntry
			if se.Open.restored() != nil {
				st.open++
			}
			st.status[ss.Device] = &se
		}
		for _, si := range rs.Silence {
			if st.silence == nil || reg.Lookup(si.Device) == nil {
				continue
			}
			inc := si.incident
			st.silence[si.Device] = inc.restored()
			st.open++
		}
		*old = *st
		old.m.open.Set(float64(old.open))
		old.m.tracked.Set(float64(old.entries())) // not 0 until the first tick
	}
	out = e.closeUnwatched(now, out)
	e.log.Info("alert engine state restored", "rules_restored", restored, "rules_dropped", dropped,
		"devices", len(e.lastSeen), "resolved", len(out))
	return out, nil
}

// resolveOpen appends a resolved alert for each open incident of the saved
// rule whose device (status and silence incidents; "" for the others) gone
// says is gone.
func (rs *ruleSnapshot) resolveOpen(out []model.Alert, now time.Time, why string, gone func(device string) bool) []model.Alert {
	resolve := func(inc *incident) {
		a := inc.restored().Alert
		a.State, a.At, a.RaisedAt, a.Late, a.Repeat = model.StateResolved, now, now, false, 0
		a.Summary = unclearedSummary(why, a.Summary)
		a.NearestPatrols = []model.PatrolRef{}
		out = append(out, a)
	}
	for _, c := range rs.Counts {
		if c.Open != nil && gone("") {
			resolve(c.Open)
		}
	}
	for _, d := range rs.Dwell {
		if d.Open != nil && gone("") {
			resolve(d.Open)
		}
	}
	for _, st := range rs.Status {
		if st.Open != nil && gone(st.Device) {
			resolve(st.Open)
		}
	}
	for i := range rs.Silence {
		if gone(rs.Silence[i].Device) {
			resolve(&rs.Silence[i].incident)
		}
	}
	return out
}

// zoneIndexByID is the index of the zone with the given id in the rule's
// zones, or -1.
func zoneIndexByID(r *Rule, id string) int32 {
	for i, z := range r.zones {
		if z.ID == id {
			return int32(i)
		}
	}
	return -1
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}
