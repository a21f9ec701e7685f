package engine

import (
	"strings"

	"github.com/fenceline/fenceline/internal/model"
)

// subjectID identifies a subject: the state of stateful rules (cooldowns,
// count windows, dwell stays, velocity sightings, inside-states) is keyed
// by it rather than by the subject's strings, so that a reading's lookups
// hash and compare one number. Phones' identifiers in the decoder's
// canonical form are packed into the number itself, without a table: an
// IMSI or IMEI of at most 16 digits as its length and value, a MAC address
// as its 48 bits. Other subjects (plates, patrols, devices, identifiers in
// another form) are interned in a subjectTable and carry their index.
type subjectID uint64

// The top four bits of a subjectID say what the rest holds.
const (
	sidInterned = iota // bits 0-31: index in the subjectTable
	sidIMSI            // bits 54-58: number of digits; bits 0-53: their value
	sidIMEI            // same
	sidMAC             // bits 0-47: the address
	sidTagShift = 60
	sidLenShift = 54
)

func (id subjectID) tag() int { return int(id >> sidTagShift) }

// packDigits packs 1-16 ASCII digits, ok false for anything else. Leading
// zeros are kept by the length.
func packDigits(tag int, s string) (subjectID, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	return subjectID(tag)<<sidTagShift | subjectID(len(s))<<sidLenShift | subjectID(v), true
}

// packMAC packs a MAC address in the decoder's form (aa:bb:cc:dd:ee:ff,
// lower-case hex), ok false for anything else.
func packMAC(s string) (subjectID, bool) {
	if len(s) != 17 {
		return 0, false
	}
	var v uint64
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return 0, false
			}
			continue
		}
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return sidMAC<<sidTagShift | subjectID(v), true
}

// unpack returns the subject of a packed id.
func (id subjectID) unpack() model.Subject {
	switch id.tag() {
	case sidIMSI, sidIMEI:
		n := int(id>>sidLenShift) & 0x1f
		v := uint64(id & (1<<sidLenShift - 1))
		b := make([]byte, n)
		for i := n - 1; i >= 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		kind := "imsi"
		if id.tag() == sidIMEI {
			kind = "imei"
		}
		return model.Subject{Kind: kind, Value: string(b)}
	case sidMAC:
		const hex = "0123456789abcdef"
		b := make([]byte, 17)
		v := uint64(id & (1<<48 - 1))
		for i := 16; i >= 0; i-- {
			if i%3 == 2 {
				b[i] = ':'
				continue
			}
			b[i] = hex[v&0xf]
			v >>= 4
		}
		return model.Subject{Kind: "mac", Value: string(b)}
	}
	return model.Subject{}
}

// subjectTable interns the subjects that are not packed. Each interned
// subject owns a copy of its value: the decoder's strings are substrings of
// one string per message, which state kept for hours must not pin. Ids of subjects no state refers
// to any more are freed by a sweep (Engine.maybeSweepSubjects), which runs
// only between messages, when no id is held outside the state.
type subjectTable struct {
	byKind [numSubjectKinds]map[string]subjectID
	other  map[model.Subject]subjectID // kinds outside the list below (none today)
	subj   []model.Subject             // by id; the zero Subject on a free id
	free   []subjectID
	// sweepAt is the number of interned subjects at which the next sweep
	// runs: twice what the last sweep kept, and at least minSubjectSweep.
	sweepAt int
}

// The kinds of subject the rules key state by.
const (
	subjIMSI = iota
	subjIMEI
	subjMAC
	subjPlate
	subjPatrol
	subjDevice
	numSubjectKinds
)

var subjectKinds = [numSubjectKinds]string{"imsi", "imei", "mac", "plate", "patrol", "device"}

// minSubjectSweep is the fewest interned subjects a sweep waits for.
const minSubjectSweep = 4096

func subjectKind(kind string) int {
	for i, k := range subjectKinds {
		if k == kind {
			return i
		}
	}
	return -1
}

func newSubjectTable() *subjectTable {
	t := &subjectTable{other: map[model.Subject]subjectID{}, sweepAt: minSubjectSweep}
	for i := range t.byKind {
		t.byKind[i] = map[string]subjectID{}
	}
	return t
}

// id returns the id of s: packed if it can be, else interned.
func (t *subjectTable) id(s model.Subject) subjectID {
	s = canonical(s)
	switch s.Kind {
	case "imsi":
		if id, ok := packDigits(sidIMSI, s.Value); ok {
			return id
		}
	case "imei":
		if id, ok := packDigits(sidIMEI, s.Value); ok {
			return id
		}
	case "mac":
		if id, ok := packMAC(s.Value); ok {
			return id
		}
	}
	return t.intern(s)
}

// canonical is the form of s the rules' state is keyed by, as watchlists
// compare them: a plate without its separators ("1598 УБА" and "1598УБА"
// are one vehicle, for a velocity rule's sightings and a cooldown alike),
// an IMEI by its first 14 digits (with or without its check digit or
// software version, one handset).
func canonical(s model.Subject) model.Subject {
	switch s.Kind {
	case "plate":
		s.Value = model.PlateKey(s.Value)
	case "imei":
		if len(s.Value) > 14 {
			s.Value = s.Value[:14]
		}
	}
	return s
}

// lookup returns the id of s, in its canonical form, if interned.
func (t *subjectTable) lookup(s model.Subject) (subjectID, bool) {
	if k := subjectKind(s.Kind); k >= 0 {
		id, ok := t.byKind[k][s.Value]
		return id, ok
	}
	id, ok := t.other[s]
	return id, ok
}

// intern returns the id of s, in its canonical form (id's callers have
// put it in it once: a plate's takes a scan of its runes), interning a copy
// of it if needed.
func (t *subjectTable) intern(s model.Subject) subjectID {
	if id, ok := t.lookup(s); ok {
		return id
	}
	k := subjectKind(s.Kind)
	if k >= 0 {
		s.Kind = subjectKinds[k]
	} else {
		s.Kind = strings.Clone(s.Kind)
	}
	s.Value = strings.Clone(s.Value)
	var id subjectID
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.subj[id] = s
	} else {
		id = subjectID(len(t.subj))
		t.subj = append(t.subj, s)
	}
	if k >= 0 {
		t.byKind[k][s.Value] = id
	} else {
		t.other[s] = id
	}
	return id
}

// get returns the subject of id.
func (t *subjectTable) get(id subjectID) model.Subject {
	if id.tag() != sidInterned {
		return id.unpack()
	}
	return t.subj[id]
}

// len is the number of interned subjects.
func (t *subjectTable) len() int { return len(t.subj) - len(t.free) }

// sweep frees the ids live does not mark.
func (t *subjectTable) sweep(live []bool) {
	for i, s := range t.subj {
		if live[i] || s == (model.Subject{}) {
			continue
		}
		if k := subjectKind(s.Kind); k >= 0 {
			delete(t.byKind[k], s.Value)
		} else {
			delete(t.other, s)
		}
		t.subj[i] = model.Subject{}
		t.free = append(t.free, subjectID(i))
	}
	t.sweepAt = max(2*t.len(), minSubjectSweep)
}

// maybeSweepSubjects frees the ids of subjects no rule state refers to any
// more, once the table has grown to its sweepAt. Called between messages
// and on Tick only: a sweep must not run while an id is held outside the
// state.
func (e *Engine) maybeSweepSubjects() {
	t := e.subjects
	if t.len() < t.sweepAt {
		return
	}
	live := make([]bool, len(t.subj))
	mark := func(id subjectID) {
		if id.tag() == sidInterned {
			live[id] = true
		}
	}
	for _, st := range e.order {
		for k := range st.cool {
			mark(k.subj)
		}
		for _, cz := range st.count {
			for id := range cz.Seen {
				mark(id)
			}
		}
		for k := range st.dwell {
			mark(k.subj)
		}
		for id := range st.vel {
			mark(id)
		}
		for id := range st.velOld {
			mark(id)
		}
		for id := range st.fence {
			mark(id)
		}
	}
	t.sweep(live)
}

// sid returns the interned id of subj, remembered for the current reading:
// several rules of one reading usually share its subject.
func (e *Engine) sid(subj model.Subject) subjectID {
	m := &e.sidMemo
	for i := range m.n {
		if m.subj[i].Value == subj.Value && m.subj[i].Kind == subj.Kind {
			return m.id[i]
		}
	}
	id := e.subjects.id(subj)
	m.remember(subj, id)
	return id
}

// sidMemo holds the subjects interned for the current reading.
type sidMemo struct {
	n    int
	subj [3]model.Subject
	id   [3]subjectID
}

func (m *sidMemo) reset() { *m = sidMemo{} }

// remember holds id as subj's (subjectTable.id's) for the current reading,
// if there is room.
func (m *sidMemo) remember(subj model.Subject, id subjectID) {
	if m.n < len(m.subj) {
		m.subj[m.n], m.id[m.n] = subj, id
		m.n++
	}
}
