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
		// Far behind: the device restarted its counter.
		m.seqResets.Inc()
		st.seen = [seqWindow / 64]uint64{}
		st.max = seq
	}
	w, b := st.bit(seq)
	st.seen[w] |= b
	return false
}
