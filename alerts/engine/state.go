package engine

import (
	"slices"
	"time"

	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

// The engine's state, per rule. Everything keyed by subject is bounded by
// MaxTrackedPerRule; windows are bounded by their duration. Subjects are
// interned (subjectID, see subjects.go).

// ruleState is what one rule remembers between readings.
type ruleState struct {
	rule *Rule
	m    ruleMetrics
	open int // open incidents, mirrored in the open_incidents gauge

	cool   map[coolKey]*coolEntry   // presence, velocity, enter/exit
	count  map[string]*countZone    // count: by zone id ("@site" without zones)
	dwell  map[dwellKey]*dwellEntry // dwell
	vel    map[subjectID][]sighting // velocity: latest sightings per subject, by event time
	velOld map[subjectID][]sighting // velocity: backlog sightings older than all of vel's
	// velTaken is the number (Engine.readings) of the last reading a
	// velocity rule took: one in two of its zones (they overlap) is one
	// sighting, taken in the first zone whose `when` it passes. Kept once
	// per zone, it halved the history a backlog is compared with, and a
	// backlog's pair fired once per zone.
	velTaken uint64
	fence    map[subjectID]*fenceEntry // enter/exit
	status   map[string]*statusEntry   // status: by device
	silence  map[string]*incident      // silence: open incident by device
	// countAt remembers, by index in the rule's zones, the window count
	// holds for that zone, so that a reading finds it without hashing the
	// zone's id. An entry is valid while its gen is countGen, which every
	// removal from count moves on (see zoneCount).
	countAt  []countSlot
	countGen uint64
	// since is when a reload installed the rule (zero for the rules the
	// engine started with): a silence rule added or changed by a reload
	// measures silence from then, as the engine does from its start. From
	// the device's last message instead, a device still silent would get
	// an incident with the id of the one the change resolved, which the
	// outbox takes for a duplicate: it would never be raised again.
	since time.Time
}

func newRuleState(r *Rule, m ruleMetrics) *ruleState {
	st := &ruleState{rule: r, m: m}
	switch r.Kind {
	case KindPresence:
		st.cool = map[coolKey]*coolEntry{}
	case KindVelocity:
		st.cool = map[coolKey]*coolEntry{}
		st.vel = map[subjectID][]sighting{}
		st.velOld = map[subjectID][]sighting{}
	case KindEnter, KindExit:
		st.cool = map[coolKey]*coolEntry{}
		st.fence = map[subjectID]*fenceEntry{}
	case KindCount:
		st.count = map[string]*countZone{}
	case KindDwell:
		st.dwell = map[dwellKey]*dwellEntry{}
	case KindStatus:
		st.status = map[string]*statusEntry{}
	case KindSilence:
		st.silence = map[string]*incident{}
	}
	return st
}

// entries is the size of the state, for the state_entries gauge.
func (st *ruleState) entries() int {
	n := len(st.cool) + len(st.dwell) + len(st.vel) + len(st.velOld) + len(st.fence) + len(st.status) + len(st.silence)
	for _, cz := range st.count {
		n += len(cz.Seen)
	}
	return n
}

// incident is an open stateful alert: the firing alert as sent, so that a
// resolved (or a repeat) carries the same id, subject and zone.
type incident struct {
	Alert    model.Alert `json:"alert"`
	LastSent time.Time   `json:"last_sent"` // processing time, for repeat_interval
	Repeats  int         `json:"repeats,omitempty"`
	// Ordinal is Alert.Ordinal, which the alert's JSON leaves out (it is
	// no part of the payload): kept so that the incident's re-sends and
	// resolution after a restart have their firing's.
	Ordinal uint64 `json:"ordinal,omitempty"`
}

// restored gives a restored incident's alert its ordinal back.
func (inc *incident) restored() *incident {
	if inc != nil {
		inc.Alert.Ordinal = inc.Ordinal
	}
	return inc
}

// coolKey identifies what a cooldown suppresses: rule (implicit) + subject
// + zone id. device is set only for vehicles without a plate, so that two
// checkpoints each report their own unread plates.
type coolKey struct {
	subj   subjectID
	zone   string
	device string
}

// coolEntry remembers the fire times (event time) of one key, as a few
// spans: slot i holds the fire times from Fired[i] to Until[i] (Fired[i]
// alone when Until[i] is zero), each less than two cooldowns from the
// next, so that every time within a cooldown of the span is within a
// cooldown of one of them. A backlog replayed over hours fires every
// cooldown and takes one slot, not one per alert (with one slot per fire
// time, a second unit's backlog of the same hours fired again). A state
// saved before spans has no Until: its fire times are spans of one.
type coolEntry struct {
	Fired   [cooldownSlots]time.Time `json:"fired"`
	Until   [cooldownSlots]time.Time `json:"until,omitzero"` // zero: a span of one fire time
	Next    int                      `json:"next"`           // the ring's next slot before runs: read and written, no longer used
	Touched time.Time                `json:"touched"`        // processing time, for expiry
}

// span is slot i's first and last fire time (both zero when it is empty).
func (ce *coolEntry) span(i int) (first, last time.Time) {
	first, last = ce.Fired[i], ce.Until[i]
	if last.IsZero() || last.Before(first) {
		last = first
	}
	return first, last
}

// countZone is one sliding window of a count rule.
type countZone struct {
	Zone string `json:"zone"`
	Site string `json:"site"`
	// Seen is the latest event time (Unix nanoseconds) of each subject in
	// the window: without the time.Time's location pointer the map holds
	// no pointers, so the garbage collector does not scan its thousands of
	// entries, and a slot is 16 bytes rather than 32.
	Seen map[subjectID]int64 `json:"-"`
	// Clock is the latest event time seen in the zone: the window is
	// (Clock-window, Clock]. Between readings the zone's clock moves on at
	// the pace of processing time from Processed, so that a crowd that
	// leaves is resolved on Tick: it is Clock + (now - Processed) then
	// (clockAt), and only a reading newer than Clock moves it (advance).
	Clock     time.Time        `json:"clock"`
	Processed time.Time        `json:"processed"`
	Evidence  []model.Evidence `json:"evidence"`
	Open      *incident        `json:"open,omitempty"`
	minSeen   time.Time
	evRing    evidenceRing
	// firedIn and firedOut place the firing alert of Open while the call
	// that raised it runs: call firedIn of the engine (see Engine.calls),
	// at index firedOut of its output. The rest of the message's readings
	// are counted into it before it goes out (see checkCount).
	firedIn  uint64
	firedOut int
	grown    bool // listed in Engine.grown
	// holdUntil: the open incident does not resolve before it (processing
	// time; see AfterUncleanStop).
	holdUntil time.Time
}

type countSlot struct {
	cz  *countZone
	gen uint64
}

// zoneCount is count[z.ID], z being one of the rule's zones.
func (st *ruleState) zoneCount(z *zone.Zone) *countZone {
	i := st.rule.zoneIndex(z)
	if i < 0 {
		return st.count[z.ID]
	}
	if int(i) < len(st.countAt) {
		if s := st.countAt[i]; s.cz != nil && s.gen == st.countGen {
			return s.cz
		}
	}
	cz := st.count[z.ID]
	if cz != nil {
		if len(st.countAt) < len(st.rule.zones) {
			st.countAt = make([]countSlot, len(st.rule.zones))
		}
		st.countAt[i] = countSlot{cz: cz, gen: st.countGen}
	}
	return cz
}

// dwellKey is a subject and the index of a zone in the rule's zones (-1
// for a rule without zones): a rule whose state survives a reload has the
// same zones in the same order. backlog is 0 for the current stay, and 1
// to dwellBacklogStays for the stays older than it, newest first: a
// backlog's, or one a newer sighting ended (see stay). Without padding, the
// key hashes and compares as 16 plain bytes.
type dwellKey struct {
	subj    subjectID
	zone    int32
	backlog int32 // 0 to dwellBacklogStays
}

// dwellEntry is one of a subject's stays in one zone.
type dwellEntry struct {
	Site      string           `json:"site"`
	First     time.Time        `json:"first"` // event time the stay began
	Last      time.Time        `json:"last"`  // latest sighting (event time)
	Processed time.Time        `json:"processed"`
	Loc       model.Point      `json:"loc"`
	Sightings int              `json:"sightings"`
	Evidence  []model.Evidence `json:"evidence"`
	Open      *incident        `json:"open,omitempty"`
	evRing    evidenceRing
	// bridgeUntil: a sighting of event time before it continues the stay
	// whatever its gap from the last one known (see AfterUncleanStop).
	bridgeUntil time.Time
}

// sighting is the last place a subject was seen, for velocity rules.
type sighting struct {
	T         time.Time   `json:"t"`
	Loc       model.Point `json:"loc"`
	Device    string      `json:"device"`
	Seq       int64       `json:"seq"`
	Site      string      `json:"site"`
	Zone      string      `json:"zone"`
	Processed time.Time   `json:"processed"`
	// Sent is the ts as the unit sent it, when that is after T (a clock
	// ahead, capped at now): the evidence names it, the point an analyst
	// finds in InfluxDB.
	Sent time.Time `json:"sent,omitzero"`
}

// sentTime is the sighting's ts as sent.
func (s *sighting) sentTime() time.Time {
	if s.Sent.IsZero() {
		return s.T
	}
	return s.Sent
}

// velocityHistory is how many of a subject's sightings a velocity rule
// keeps: enough for a checkpoint's backlog to meet the sightings of its own
// time among the passes that arrived since, few enough that a plate seen
// all day costs little (most plates are seen once or twice, and their
// lists stay that short).
const velocityHistory = 4

// sightingIndex is where a sighting at t goes in h (in event time order):
// after the sightings at or before t.
func sightingIndex(h []sighting, t time.Time) int {
	i := len(h)
	if i > 0 && t.Before(h[i-1].T) {
		i, _ = slices.BinarySearchFunc(h, t, func(s sighting, t time.Time) int {
			if s.T.After(t) {
				return 1
			}
			return -1
		})
	}
	return i
}

// insertSighting puts s at index i of a subject's sightings (in event time
// order), dropping the oldest when the list is full (or s itself, older
// than every sighting kept).
func insertSighting(h []sighting, i int, s sighting) []sighting {
	if len(h) < velocityHistory {
		return slices.Insert(h, i, s)
	}
	if i > 0 {
		copy(h[:i-1], h[1:i])
		h[i-1] = s
	}
	return h
}

// fenceEntry is the inside-state of one subject for an enter/exit rule:
// the zones it is inside (every other zone counts as outside).
type fenceEntry struct {
	Inside    []string  `json:"inside"`
	Last      time.Time `json:"last"` // event time of the latest position
	Processed time.Time `json:"processed"`
	// backlog is the side of the subject along a backlog: positions
	// older than Last, delivered late (see applyFence). It is not saved: a
	// restart starts a backlog's comparison again from its next fix.
	backlog *fenceTrack
}

// fenceTrack is a subject's side along a backlog: the zones it was inside
// at its latest fix so far.
type fenceTrack struct {
	inside []string
	last   time.Time
}

// statusEntry is a device's standing for a status rule.
type statusEntry struct {
	Last time.Time `json:"last"` // event time of the latest status evaluated
	Open *incident `json:"open,omitempty"`
	// FiredWith are the fields of the condition the report that opened
	// Open carried (statusFields bits; 0: not known, a save from before it
	// was kept): a report resolves it only if it carries them all — a
	// tamper incident is not resolved by a report of the battery alone.
	FiredWith uint8 `json:"fired_with,omitempty"`
}

// patrolPos is the latest position of a patrol, for nearest_patrols.
type patrolPos struct {
	Loc  model.Point `json:"loc"`
	Seen time.Time   `json:"seen"` // event time of the fix
}

// Evidence lists are bounded by MaxEvidence: the first evidenceKeep entries
// are kept (how it started) and the rest slides (what is happening now). A
// full list's sliding part is a ring, rotated by rot, so that adding costs
// one write rather than a shift; inOrder straightens it for readers.
const (
	evidenceKeep  = MaxEvidence / 2
	evidenceSlide = MaxEvidence - evidenceKeep
)

// evidenceRing is the bookkeeping of an evidence list: its rotation, and a
// copy of its latest entry's message (when valid), so that the repeat check
// reads the entry that holds the list rather than the list.
type evidenceRing struct {
	rot     uint8
	lastOK  bool
	lastSeq int64
	lastDev string
}

// addEvidence appends ev to list (kept by ring). A repeat of the latest
// entry's message is skipped: the readings of one message add one entry.
func addEvidence(list []model.Evidence, ring *evidenceRing, ev model.Evidence) []model.Evidence {
	n := len(list)
	switch {
	case n == 0:
	case ring.lastOK:
		if ring.lastSeq == ev.Seq && ring.lastDev == ev.Device {
			return list
		}
	default: // restored from a snapshot
		last := n - 1
		if n == MaxEvidence {
			last = evidenceKeep + (int(ring.rot)+evidenceSlide-1)%evidenceSlide
		}
		if l := &list[last]; l.Seq == ev.Seq && l.Device == ev.Device {
			return list
		}
	}
	ring.lastOK, ring.lastSeq, ring.lastDev = true, ev.Seq, ev.Device
	if n < MaxEvidence {
		if n == cap(list) {
			// Room for two (most lists stay short), then for all: two
			// allocations for a long list, rather than append's five
			// up to a capacity of 16.
			c := MaxEvidence
			if n == 0 {
				c = 2
			}
			list = slices.Grow(list, c-n)
		}
		return append(list, ev)
	}
	list[evidenceKeep+int(ring.rot)] = ev // the oldest of the sliding part
	ring.rot = uint8((int(ring.rot) + 1) % evidenceSlide)
	return list
}

// inOrder puts list (kept by ring) back in order, in place, and returns it.
func inOrder(list []model.Evidence, ring *evidenceRing) []model.Evidence {
	if r := ring.rot; r != 0 && len(list) == MaxEvidence {
		slide := list[evidenceKeep:]
		slices.Reverse(slide[:r])
		slices.Reverse(slide[r:])
		slices.Reverse(slide)
	}
	ring.rot = 0
	return list
}

// evidenceAfter puts list (kept by ring) in order and keeps, in place, the
// entries whose reading is later than cut: a count window's evidence once
// readings have left the window.
func evidenceAfter(list []model.Evidence, ring *evidenceRing, cut time.Time) []model.Evidence {
	list = inOrder(list, ring)
	kept := slices.DeleteFunc(list, func(ev model.Evidence) bool { return !ev.TS.After(cut) })
	if len(kept) != len(list) {
		// The latest entry may be gone: the repeat check reads the list
		// again, as for a list restored from a snapshot.
		ring.lastOK = false
	}
	return kept
}
