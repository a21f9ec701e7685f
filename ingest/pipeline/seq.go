package pipeline

// seqWindow is how many recent seqs per device are remembered to tell a
// redelivery (seen before) from a device restart (seq far behind).
const seqWindow = 256

// seqTracker follows each device's message counter. It is bounded by the
// registry: only registered devices reach it.
type seqTracker struct {
	devices map[string]*seqState
}

type seqState struct {
	max  int64
	seen [seqWindow / 64]uint64 // bit i%seqWindow: seq i seen, for max-seqWindow < i <= max
	// prev is the other counter of the last reset: a unit that restarted
	// may still send its buffer from before (those are the old counter's,
	// not a reset again with a gap of millions), and a single stray old
	// message looks like a reset until the next one. Each message goes to
	// the closer of the two. prev is dropped once it has not been used
	// for seqWindow messages, or when the two counters come so close that
	// they could not be told apart.
	prev     *seqState
	prevIdle int
}

func newSeqTracker() *seqTracker { return &seqTracker{devices: map[string]*seqState{}} }

func (s *seqState) bit(seq int64) (int, uint64) {
	i := int(seq % seqWindow)
	return i / 64, 1 << (i % 64)
}

// observe records seq for device and reports whether it was seen before.
// Gaps, duplicates and restarts are counted.
func (t *seqTracker) observe(device string, seq int64, m *metrics) (duplicate bool) {
	st, ok := t.devices[device]
	if !ok {
		st = &seqState{max: seq}
		t.devices[device] = st
		w, b := st.bit(seq)
		st.seen[w] |= b
		return false
	}
	if p := st.prev; p != nil {
		switch {
		case st.prevIdle >= seqWindow || dist(st.max, p.max) <= seqWindow:
			st.prev = nil
		case dist(seq, p.max) < dist(seq, st.max):
			// The other counter's message: swap them.
			cur := *st
			cur.prev, cur.prevIdle = nil, 0
			*st = *p
			st.prev, st.prevIdle = &cur, 0
		default:
			st.prevIdle++
		}
	}
	switch {
	case seq > st.max:
		if gap := seq - st.max - 1; gap > 0 {
			m.seqGaps.Inc()
			m.seqMissing.Add(float64(gap))
		}
		// Forget the seqs that fall out of the window.
		if seq-st.max >= seqWindow {
			st.seen = [seqWindow / 64]uint64{}
		} else {
			for s := st.max + 1; s <= seq; s++ {
				w, b := st.bit(s)
				st.seen[w] &^= b
			}
		}
		st.max = seq
	case seq > st.max-seqWindow:
		w, b := st.bit(seq)
		if st.seen[w]&b != 0 {
			m.seqDuplicates.Inc()
			return true
		}
		m.seqLate.Inc() // an older message arriving after newer ones
	default:
		// Far behind: the device restarted its counter (or this is a
		// stray old message: see prev).
		m.seqResets.Inc()
		old := *st
		old.prev, old.prevIdle = nil, 0
		*st = seqState{max: seq, prev: &old}
	}
	w, b := st.bit(seq)
	st.seen[w] |= b
	return false
}

func dist(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}
