package pipeline

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/model"
)

// payloadSum is the checksum that tells a redelivered message (the same
// payload) from another one with the same seq. CRC-32C: a CPU instruction
// on the machines fenceline runs on. A signature member (devicesig) is left
// out: the same message signed again — a unit re-keyed, sending its buffer
// again — is the same message.
func payloadSum(payload []byte) uint32 {
	if start, end, ok := devicesig.SigSpan(payload); ok {
		return crc32.Update(crc32.Checksum(payload[:start], castagnoli), castagnoli, payload[end:])
	}
	return crc32.Checksum(payload, castagnoli)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seqWindow is how many recent seqs per device are remembered to tell a
// redelivery (seen before) from a device restart (seq far behind).
const seqWindow = 256

// rejectedSum marks the checksum a message rejected whole is recorded with
// at its seq (see Pipeline.takeSeq): it keeps the seq's place (received,
// not missing) without being the message's checksum, so that the same
// message sent again is no duplicate of one taken (observeAt).
const rejectedSum = 0x5eed_dead

// rejected reports whether the window holds seq as the place of the message
// of checksum sum, rejected whole (see rejectedSum).
func (st *seqState) rejected(seq int64, sum uint32) bool {
	return seq <= st.max && seq > st.max-seqWindow && st.hasSeq(seq) && st.sums[seq%seqWindow] == sum^rejectedSum
}

// maxSeqJump is the largest forward jump taken for lost messages: a seq
// further ahead (a unit's counter garbled, or set to 2^53) is a new counter,
// not billions of messages missing, which would also leave the missing
// counter too large for a float64 to count on by one.
const maxSeqJump = 1_000_000

// seqTracker follows each device's message counter. It is bounded by the
// registry: only registered devices reach it.
type seqTracker struct {
	devices map[string]*seqState
	// onGap, when set, hears of each gap counted missing: missing messages
	// of device between seqs from and to (see Pipeline.noteGap); onStray
	// of a jump to a stray seq, whose missing were not (strayJump).
	onGap   func(device string, missing, from, to int64)
	onStray func(device string, stray, missing int64)
	// onArrived, when set, hears of each message counted missing that came
	// (counted recovered), but for a stray's (onStray).
	onArrived func(device string, seq int64)
}

func (t *seqTracker) noteArrived(device string, seq int64) {
	if t.onArrived != nil {
		t.onArrived(device, seq)
	}
}

func (t *seqTracker) noteGap(device string, missing, from, to int64) {
	if t.onGap != nil && missing > 0 {
		t.onGap(device, missing, from, to)
	}
}

type seqState struct {
	max  int64
	seen [seqWindow / 64]uint64 // bit i%seqWindow: seq i seen, for max-seqWindow < i <= max
	// sums holds a checksum of the message seen at each seq of the window:
	// a redelivery is the same message again, while a different message
	// with a seq already seen is a unit that restarted its counter (soon
	// after its last restart, within the window) — not a duplicate to keep
	// from the rules.
	sums [seqWindow]uint32
	// levels holds the move level of the message seen at each seq of the
	// window (see observe), so that its redelivery takes its points again.
	levels [seqWindow]uint8
	// prev is the other counter of the last reset: a unit that restarted
	// may still send its buffer from before (those are the old counter's,
	// not a reset again with a gap of millions), and a single stray old
	// message looks like a reset until the next one. Each message goes to
	// the closer of the two (a redelivery: the one that has it). prev is
	// dropped once it has not been used for seqWindow messages.
	prev     *seqState
	prevIdle int
	// unsure: restored from a state saved before an unclean stop, so the
	// messages between max and the device's first message since may have
	// been received (and stored) after that save. The first jump forward
	// is counted as unknown, not as missing.
	unsure bool
	// missing marks the seqs of the window counted in
	// fenceline_ingest_sequence_missing_messages_total and not seen since:
	// one that arrives after all (a unit's buffer sent out of order) is
	// counted recovered, so that missing minus recovered is what was lost.
	missing [seqWindow / 64]uint64
	// unread counts the device's messages received since its last seq
	// whose own seq could not be read (malformed JSON, another schema
	// version): dead-lettered, so not lost, and the gap they leave is
	// theirs, not one of messages missing. unreadSum is the checksum of
	// the latest of them: the broker's redelivery of it (DUP) takes no
	// second place, while one a crash made the saved counters forget does.
	unread    int64
	unreadSum uint32
	// gaps are the runs of seqs counted missing that are behind the
	// window: a unit that sent a live message (its latest seq) before
	// uploading its buffer, perhaps twice (its link dropped again). A
	// buffer's messages come in order: each that is a run's next counts
	// recovered, rather than looking like a counter restart. Not saved:
	// after a restart of fenceline, such a buffer counts as a restart.
	gaps []gapRun
	// last is what the device's latest messages were, across its
	// counters: see staleRetained.
	last lastTaken
	// since and newest are the ts (Unix ms) of the counter's first message
	// and of its newest, 0 when unknown: a message older than since, and
	// not newer than the other counter's newest, is not this counter's
	// (see older).
	since, newest int64
	// beforeJump is the counter as it was before its last message jumped
	// ahead (seqs skipped), until the next message tells a stray
	// seq (a garbled counter, 3 then 1000000 then 4) from a gap: see
	// strayJump. jumpTS is the jumping message's ts, jumpMissing what its
	// gap counted missing. Not saved: a restart between the two keeps the
	// gap.
	beforeJump  *seqState
	jumpTS      int64
	jumpMissing int64
	// hist is the device's, whichever counter runs (nil until its first
	// restart): see levelHistory.
	hist *levelHistory
}

// levelHistory remembers, for a device whose counter restarted, the message
// taken at each seq (its checksum and move level), whichever counter sent
// it: a new counter's message at a seq takes the level after the latest
// one's, and a message of any of them sent again is a duplicate, taking its
// level again. A unit without a real-time clock restarts at seq 1 and the
// same ts again and again, its boots of various lengths: the counter before
// the last restart does not know the seqs only an older boot sent (boots of
// 3, 1 and 3 messages: the third's seq 2 met the first's), nor the messages
// of older boots its buffer may send again. Slot seq%seqWindow holds one
// seq: its latest message, and in older those before (at most
// model.MoveLevels-1, only for seqs more than one counter sent).
type levelHistory struct {
	seqs   [seqWindow]int64 // the seq of each slot; -1: none
	sums   [seqWindow]uint32
	levels [seqWindow]uint8
	older  map[int64][]levelSum
}

type levelSum struct {
	sum   uint32
	level uint8
}

func newLevelHistory() *levelHistory {
	h := &levelHistory{older: map[int64][]levelSum{}}
	for i := range h.seqs {
		h.seqs[i] = -1
	}
	return h
}

// latest is the level of the latest message taken at seq.
func (h *levelHistory) latest(seq int64) (uint8, bool) {
	i := seq % seqWindow
	return h.levels[i], h.seqs[i] == seq
}

// find is the level of the message of checksum sum taken at seq, if one was.
func (h *levelHistory) find(seq int64, sum uint32) (uint8, bool) {
	i := seq % seqWindow
	if h.seqs[i] != seq {
		return 0, false
	}
	if h.sums[i] == sum {
		return h.levels[i], true
	}
	for _, o := range h.older[seq] {
		if o.sum == sum {
			return o.level, true
		}
	}
	return 0, false
}

func (h *levelHistory) put(seq int64, sum uint32, level uint8) {
	i := seq % seqWindow
	switch old := h.seqs[i]; {
	case old == seq:
		o := append(h.older[seq], levelSum{h.sums[i], h.levels[i]})
		if len(o) > model.MoveLevels-1 {
			o = o[1:]
		}
		h.older[seq] = o
	case old >= 0:
		delete(h.older, old)
	}
	h.seqs[i], h.sums[i], h.levels[i] = seq, sum, level
}

// strayJump reports whether the counter's last message, which jumped ahead,
// was a stray seq: the message after it, newer, goes on from where the
// counter was before the jump, below it (a buffer sent after a live message
// goes on from there too, but is older than it; after a real gap the next
// message goes on above the jump). Then the
// counter is put back as it was, its jump kept as the other counter, and
// the missing its gap counted counts recovered: nothing was lost.
//
// It returns the stray seq and the missing its gap counted, 0 when there
// was none.
func (st *seqState) strayJump(seq, ts int64, m *metrics) (stray, missing int64) {
	b := st.beforeJump
	st.beforeJump = nil
	if b == nil || ts <= st.jumpTS || seq <= b.max || seq >= st.max || seq > b.max+seqWindow {
		return 0, 0
	}
	stray, missing = st.max, st.jumpMissing
	m.seqRecovered.Add(float64(st.jumpMissing))
	m.seqResets.Inc() // the stray is a message of another counter
	strayState := *st
	strayState.prev, strayState.prevIdle = nil, 0
	last := st.last
	*st = *b
	st.prev, st.prevIdle, st.last, st.hist = &strayState, 0, last, strayState.hist
	return stray, missing
}

// lastTaken remembers, for the retained copies a broker sends at every
// subscription, the device's latest message taken on each of its topics
// (by stream: a device publishes on one topic a stream), and the latest ts
// of all of them.
type lastTaken struct {
	latest int64              // Unix ms; 0 when unknown (a save from before it was kept)
	sums   [numStreams]uint32 // checksum of the latest message on each stream's topic
	known  uint8              // bit s: sums[s] is known
	levels [numStreams]uint8  // the move level of that message
}

// gapRun is a run of seqs behind the window, of a gap that ended at end
// (the live message's seq): from..lo-1 recovered in order (one of them
// again is counted a redelivery), lo and the left seqs after it still
// missing.
// It stays within the gap: the seqs after end are no buffer's, and one of
// them far behind is more likely a counter restarted than sent again.
type gapRun struct{ from, lo, left, end int64 }

// maxGapRuns bounds a device's runs: the oldest goes first.
const maxGapRuns = 4

// fillGap reports whether seq is the next of a run, and takes it.
func (s *seqState) fillGap(seq int64) bool {
	for i := range s.gaps {
		if r := &s.gaps[i]; r.left > 0 && seq == r.lo {
			r.lo++
			r.left--
			return true
		}
	}
	return false
}

// gapRecovered reports whether seq was taken by fillGap already.
func (s *seqState) gapRecovered(seq int64) bool {
	for _, r := range s.gaps {
		if seq >= r.from && seq < r.lo {
			return true
		}
	}
	return false
}

// leaveWindow takes gone, a seq leaving the window: still missing, it goes
// on the run it continues (or starts one); seen, it goes on a run filled
// up to it (a buffer filled in order that went on in the window).
func (s *seqState) leaveWindow(gone int64, missing, seen bool) {
	for i := range s.gaps {
		r := &s.gaps[i]
		switch {
		case missing && r.lo+r.left == gone && gone < r.end:
			r.left++
			return
		case seen && r.left == 0 && r.from < r.lo && r.lo == gone && gone < r.end:
			r.lo++
			return
		}
	}
	if missing {
		s.addGap(gapRun{gone, gone, 1, s.max + 1})
	}
}

func (s *seqState) addGap(r gapRun) {
	if len(s.gaps) == maxGapRuns {
		s.gaps = slices.Delete(s.gaps, 0, 1)
	}
	s.gaps = append(s.gaps, r)
}

func newSeqTracker() *seqTracker { return &seqTracker{devices: map[string]*seqState{}} }

func (s *seqState) bit(seq int64) (int, uint64) {
	i := int(seq % seqWindow)
	return i / 64, 1 << (i % 64)
}

// observe records seq (of a message whose checksum is sum) for device and
// reports whether it was seen before. Gaps, duplicates and restarts are
// counted.
//
// level is the move level of the message's point times
// (model.Batch.MovePointTimes): when its device's other counter — before a
// restart, or after it — has sent another message with the same seq, whose
// readings could hold the same points if they carry the same millisecond
// (a unit restarted with its clock set back, or sending again a seq whose
// first message it lost), the level after that message's. A unit that
// restarts again and again at one ts (no real-time clock) keeps
// model.MoveLevels restarts apart. A redelivery takes the level its first
// delivery took; across a restart of fenceline too, as far as the counters
// saved with the alert state (SeqSnapshot) hold it.
// observeRejected takes the seq of device's message of checksum sum,
// rejected whole (see rejectedSum); the same message rejected again (its
// dead letter published again too soon: still over budget, its ts still
// ahead) changes nothing, and is no duplicate.
func (t *seqTracker) observeRejected(device string, seq int64, sum uint32, m *metrics) {
	if st := t.devices[device]; st != nil && st.rejected(seq, sum) {
		return
	}
	t.observe(device, seq, sum^rejectedSum, m)
}

func (t *seqTracker) observe(device string, seq int64, sum uint32, m *metrics) (duplicate bool, level uint8) {
	return t.observeAt(device, seq, sum, 0, m)
}

// observeAt is observe for a message of ts (Unix ms; 0: unknown). A message
// behind the device's latest seq, within the window and not seen, is a late
// one (a buffer's, sent out of order) — unless it is newer than every
// message taken from the device: a late message was made before the newer
// ones, so that is a unit that restarted its counter below the seqs the
// window holds (one first heard at seq 48, restarted at 1), whose messages
// would otherwise count out of order one after another, and its losses not
// at all.
func (t *seqTracker) observeAt(device string, seq int64, sum uint32, ts int64, m *metrics) (duplicate bool, level uint8) {
	st, ok := t.devices[device]
	if !ok {
		st = &seqState{max: seq, since: ts, newest: ts}
		t.devices[device] = st
		st.mark(seq, sum, 0)
		return false, 0
	}
	if stray, missing := st.strayJump(seq, ts, m); stray > 0 && t.onStray != nil && missing > 0 {
		t.onStray(device, stray, missing)
	}
	if i := seq % seqWindow; st.rejected(seq, sum) {
		// The message rejected whole at this seq (over its device's
		// budget, a ts ahead), sent again: its dead letter published
		// again. The rules never saw it: it is taken now.
		st.sums[i] = sum
		if h := st.hist; h != nil && h.seqs[i] == seq && h.sums[i] == sum^rejectedSum {
			h.sums[i] = sum
		}
		return false, st.levels[i]
	}
	if h := st.hist; h != nil {
		if l, ok := h.find(seq, sum); ok {
			m.seqDuplicates.Inc() // sent again, by whichever counter
			return true, l
		}
	}
	switch {
	case st.fillGap(seq):
		// The next message of a buffer behind the window (see gaps).
		m.seqLate.Inc()
		m.seqRecovered.Inc()
		t.noteArrived(device, seq)
		st.prevIdle++
		return false, 0
	case st.gapRecovered(seq):
		// Most likely a redelivery of such a buffer's message, and counted
		// so; but with no checksum kept this far back, it may be a unit
		// whose counter restarted into the range: it goes to the rules
		// again (as any message this far behind did), rather than risk a
		// missed alert.
		m.seqDuplicates.Inc()
		return false, 0
	}
	if p := st.prev; p != nil {
		switch {
		case seq > p.max-seqWindow && seq <= p.max && p.has(seq, sum):
			m.seqDuplicates.Inc() // a redelivery of the other counter's
			return true, p.levels[seq%seqWindow]
		case st.prevIdle >= seqWindow:
			st.prev = nil
		case (dist(seq, p.max) < dist(seq, st.max) || older(ts, st, p)) && !p.hasSeq(seq):
			// The other counter's message: swap them. A seq that counter
			// has already used is not its message (that would be a
			// redelivery, found above): it is the current counter's,
			// however close to the other's end (a unit restarted just
			// after seq 5 whose new seq 4 was lost sends 1, 2, 3, 5).
			// Closer in seq, or made before the current counter began:
			// the buffer of a unit restarted before it could send it,
			// filling the old counter's gap.
			cur := *st
			cur.prev, cur.prevIdle = nil, 0
			*st = *p
			st.prev, st.prevIdle, st.last, st.hist = &cur, 0, cur.last, cur.hist
		default:
			st.prevIdle++
		}
	}
	unsure, unread := st.unsure, st.unread
	st.unsure, st.unread = false, 0
	switch {
	case seq > st.max && seq-st.max <= maxSeqJump:
		gap := seq - st.max - 1
		gap -= min(gap, unread)
		var before *seqState
		if gap > 0 && ts > 0 {
			c := *st
			c.gaps = slices.Clone(st.gaps)
			before = &c
		}
		// The seqs that fall out of the window: missing ones, and those of
		// a buffer filled in order, go on its runs behind it.
		for s := st.max + 1; s <= min(seq, st.max+seqWindow); s++ {
			w, b := st.bit(s)
			if missing, seen := st.missing[w]&b != 0, st.seen[w]&b != 0; missing || seen {
				st.leaveWindow(s-seqWindow, missing, seen)
			}
			st.seen[w] &^= b
			st.missing[w] &^= b
		}
		if gap > 0 && unsure {
			m.seqUnknown.Add(float64(gap))
		} else if gap > 0 {
			m.seqGaps.Inc()
			m.seqMissing.Add(float64(gap))
			// The unreadable messages came first (delivery is in order):
			// the gap's last seqs are the ones missing.
			for s := max(seq-gap, seq-seqWindow+1); s < seq; s++ {
				w, b := st.bit(s)
				st.missing[w] |= b
			}
			if behind := gap - (seqWindow - 1); behind > 0 {
				st.addGap(gapRun{seq - gap, seq - gap, behind, seq})
			}
			t.noteGap(device, gap, st.max, seq)
		}
		if before != nil {
			st.beforeJump, st.jumpTS, st.jumpMissing = before, ts, 0
			if !unsure {
				st.jumpMissing = gap
			}
		}
		st.max = seq
	case seq <= st.max && seq > st.max-seqWindow && !st.hasSeq(seq) && (ts == 0 || st.last.latest == 0 || ts <= st.last.latest):
		m.seqLate.Inc() // an older message arriving after newer ones
		if w, b := st.bit(seq); st.missing[w]&b != 0 {
			st.missing[w] &^= b
			m.seqRecovered.Inc()
			t.noteArrived(device, seq)
		}
	case seq <= st.max && seq > st.max-seqWindow && st.has(seq, sum):
		m.seqDuplicates.Inc()
		return true, st.levels[seq%seqWindow]
	default:
		// Far behind or far ahead, another message with a seq seen, or
		// one behind newer than all: the device restarted its counter (or
		// this is a stray message: see prev).
		m.seqResets.Inc()
		old := *st
		old.prev, old.prevIdle = nil, 0
		if old.hist == nil {
			old.hist = newLevelHistory()
			for s := max(0, old.max-seqWindow+1); s <= old.max; s++ {
				if old.hasSeq(s) {
					old.hist.put(s, old.sums[s%seqWindow], old.levels[s%seqWindow])
				}
			}
		}
		*st = seqState{max: seq, prev: &old, last: old.last, since: ts, newest: ts, hist: old.hist}
	}
	if h := st.hist; h != nil {
		if l, ok := h.latest(seq); ok {
			level = model.NextMoveLevel(l)
		}
		h.put(seq, sum, level)
	} else if p := st.prev; p != nil && seq > p.max-seqWindow && seq <= p.max && p.hasSeq(seq) {
		level = model.NextMoveLevel(p.levels[seq%seqWindow]) // restored from a save without the history
	}
	st.mark(seq, sum, level)
	st.newest = max(st.newest, ts)
	return false, level
}

// unreadable records that device sent a message whose seq could not be
// read, of checksum sum; dup is its DUP flag (see seqState.unread). A
// device not seen before has no gap to explain.
func (t *seqTracker) unreadable(device string, sum uint32, dup bool) {
	st, ok := t.devices[device]
	if !ok || st.unread >= maxSeqJump || dup && st.unread > 0 && st.unreadSum == sum {
		return
	}
	st.unread++
	st.unreadSum = sum
}

// staleRetained reports whether a retained message on stream's topic, with
// seq, checksum sum and ts (Unix ms), is the broker's copy of a message
// taken before. A broker sends a topic's retained message on every
// (re)subscription, so after a restart it comes again however many messages
// the device sent since; taken as new, it would be evaluated again (an old
// tamper status alerting once more) and count a false counter restart.
//
// The copy is of the latest message the unit published retained on the
// topic: where it publishes there retained (its statuses, say), that is the
// latest message taken from the topic, whose checksum is kept, saved with
// the counters. Another message is new to fenceline: a unit that restarted
// its counter, and perhaps its clock, while fenceline was down, and whose
// first message (a tamper status, retained at QoS 0) is its only copy. It
// goes on as any other message: observe counts it (a restart, a message
// late) and finds it a duplicate if it is one of the window.
//
// Where the topic's latest message is not known (a device's counters saved
// by a fenceline from before it was kept), a retained message behind the
// device's latest seq — behind the window, or in it with another payload
// than the one seen at that seq — is taken for a copy, unless its ts is
// newer than every message taken from the device.
//
// level is the move level a copy takes, the message's.
func (t *seqTracker) staleRetained(device string, stream model.Stream, seq int64, sum uint32, ts int64) (stale bool, level uint8) {
	st, ok := t.devices[device]
	if !ok {
		return false, 0
	}
	if s := streamIndex(stream); st.last.known&(1<<s) != 0 {
		return st.last.sums[s] == sum, st.last.levels[s]
	}
	if seq > st.max || st.last.latest != 0 && ts > st.last.latest {
		return false, 0
	}
	return seq <= st.max-seqWindow || st.hasSeq(seq) && !st.has(seq, sum), 0
}

// isLast reports whether sum is the checksum of the latest message taken
// from device on stream's topic.
func (t *seqTracker) isLast(device string, stream model.Stream, sum uint32) bool {
	st, ok := t.devices[device]
	s := streamIndex(stream)
	return ok && st.last.known&(1<<s) != 0 && st.last.sums[s] == sum
}

// took records that device's message on stream's topic, of checksum sum and
// ts (Unix ms), was taken (evaluated, or found a duplicate), at move level.
func (t *seqTracker) took(device string, stream model.Stream, sum uint32, ts int64, level uint8) {
	if st, ok := t.devices[device]; ok {
		s := streamIndex(stream)
		st.last.latest = max(st.last.latest, ts)
		st.last.sums[s] = sum
		st.last.known |= 1 << s
		st.last.levels[s] = level
	}
}

// mark records seq with the checksum of its message, and its move level.
func (s *seqState) mark(seq int64, sum uint32, level uint8) {
	w, b := s.bit(seq)
	s.seen[w] |= b
	s.sums[seq%seqWindow] = sum
	s.levels[seq%seqWindow] = level
}

// hasSeq reports whether seq (in the window) was seen.
func (s *seqState) hasSeq(seq int64) bool {
	w, b := s.bit(seq)
	return s.seen[w]&b != 0
}

// has reports whether seq (in the window) was seen with checksum sum.
func (s *seqState) has(seq int64, sum uint32) bool {
	return s.hasSeq(seq) && s.sums[seq%seqWindow] == sum
}

// older reports whether a message of ts was made before the current
// counter st began, where the other counter p began before it: p's.
//
// It must not be newer than p's newest message either: a unit restarted
// with a clock running fast, which NTP then set back, sends messages older
// than its new counter's first, but made after the old counter's last.
func older(ts int64, st, p *seqState) bool {
	return ts > 0 && p.since > 0 && ts < st.since && p.since < st.since && (p.newest == 0 || ts <= p.newest)
}

func dist(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// SeqSnapshot is a copy of the devices' seq counters, to be saved with the
// alert engine's state. Taken between two evaluations (Pipeline.WithEngine),
// it holds the seq of every message the engine's copy has evaluated, and of
// no other: after a restart a message that state holds is a duplicate, not
// evaluated again (a unit that sends its last messages again, a redelivery
// of a message evaluated but not yet acked), and one it does not hold is
// evaluated.
type SeqSnapshot map[string]seqState

// SeqSnapshot copies the seq counters. Call it within WithEngine.
func (p *Pipeline) SeqSnapshot() SeqSnapshot {
	s := make(SeqSnapshot, len(p.seqs.devices))
	for id, st := range p.seqs.devices {
		c := *st
		if st.prev != nil {
			prev := *st.prev
			c.prev = &prev
		}
		if st.hist != nil {
			// A copy the pipeline does not change while it is saved: the
			// map of older messages too.
			h := *st.hist
			h.older = make(map[int64][]levelSum, len(st.hist.older))
			for seq, os := range st.hist.older {
				h.older[seq] = slices.Clone(os)
			}
			c.hist = &h
		}
		s[id] = c
	}
	return s
}

// seqSavedLen is the length of one counter's binary form: max, the seen and
// moved bitsets, the sums; then prevIdle and a byte of flags (whether the
// other counter follows, whether the counter is unsure). Saves since the missing bitset and the unread
// count came add seqExtLen: the missing bitset, unread and unreadSum, then
// the other counter's missing bitset when it is there. A save without them
// is read as having none. The moved bitset marks the seqs whose message
// took moved point times; since there are levels of them, saves end with
// the levels and the topics' latest messages (seqLastLen: lastTaken's
// latest, sums, known and levels, then the window's levels, since and
// newest, and the other counter's when it is there), then the device's levelHistory if
// it has one (seqHistLen). In a save without them a moved seq is at level 4
// (the one there was) and the latest messages are unknown.
const (
	seqSavedLen = 8 + 2*seqWindow/8 + 4*seqWindow
	seqExtLen   = seqWindow/8 + 8 + 4
	seqLastLen  = 8 + 5*numStreams + 1 + seqWindow + 16
	seqHistLen  = 13 * seqWindow // levelHistory's slots, when the device has one; then its older messages
)

// The flags byte after prevIdle: the other counter follows; the counter is
// unsure (restored after an unclean stop, its device not heard since: a
// clean stop before then must not make its first jump a loss).
const (
	flagPrev   = 1
	flagUnsure = 2
)

// oldMoveLevel is the level of a seq a save without levels marks moved.
const oldMoveLevel = 4

// MarshalJSON writes each device's counters as base64 of their binary form
// (a device's window of checksums is a kilobyte).
func (s SeqSnapshot) MarshalJSON() ([]byte, error) {
	out := make(map[string][]byte, len(s))
	for id, st := range s {
		b := make([]byte, 0, 2*seqSavedLen+9+seqExtLen+seqWindow/8+seqLastLen+seqWindow+8)
		b = st.appendBinary(b)
		b = binary.BigEndian.AppendUint64(b, uint64(st.prevIdle))
		var flags byte
		if st.prev != nil {
			flags |= flagPrev
		}
		if st.unsure {
			flags |= flagUnsure
		}
		b = append(b, flags)
		if st.prev != nil {
			b = st.prev.appendBinary(b)
		}
		b = appendWords(b, st.missing[:])
		b = binary.BigEndian.AppendUint64(b, uint64(st.unread))
		b = binary.BigEndian.AppendUint32(b, st.unreadSum)
		if st.prev != nil {
			b = appendWords(b, st.prev.missing[:])
		}
		b = binary.BigEndian.AppendUint64(b, uint64(st.last.latest))
		for _, sum := range st.last.sums {
			b = binary.BigEndian.AppendUint32(b, sum)
		}
		b = append(b, st.last.known)
		b = append(b, st.last.levels[:]...)
		b = append(b, st.levels[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(st.since))
		b = binary.BigEndian.AppendUint64(b, uint64(st.newest))
		if st.prev != nil {
			b = append(b, st.prev.levels[:]...)
			b = binary.BigEndian.AppendUint64(b, uint64(st.prev.since))
			b = binary.BigEndian.AppendUint64(b, uint64(st.prev.newest))
		}
		if h := st.hist; h != nil {
			b = h.appendBinary(b)
		}
		out[id] = b
	}
	return json.Marshal(out)
}

func (s *seqState) appendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(s.max))
	for _, w := range s.seen {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	var moved [seqWindow / 64]uint64
	for i, l := range s.levels {
		if l != 0 {
			moved[i/64] |= 1 << (i % 64)
		}
	}
	b = appendWords(b, moved[:])
	for _, v := range s.sums {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// readSeqState reads one device's counters as MarshalJSON wrote them, with
// or without the extension (seqExtLen).
func readSeqState(b []byte) (*seqState, error) {
	n := len(b)
	if n < seqSavedLen+9 {
		return nil, fmt.Errorf("%d bytes", n)
	}
	flags := b[seqSavedLen+8]
	withPrev := flags&flagPrev != 0
	want, ext, last := seqSavedLen+9, seqExtLen, seqLastLen
	if withPrev {
		want += seqSavedLen
		ext += seqWindow / 8
		last += seqWindow + 16
	}
	if n != want && n != want+ext && n != want+ext+last && n < want+ext+last+seqHistLen {
		return nil, fmt.Errorf("%d bytes", n)
	}
	st := &seqState{unsure: flags&flagUnsure != 0}
	b = st.readBinary(b)
	st.prevIdle = int(binary.BigEndian.Uint64(b))
	b = b[9:]
	if withPrev {
		st.prev = new(seqState)
		b = st.prev.readBinary(b)
	}
	if len(b) == 0 {
		return st, nil // saved before the extension
	}
	b = readWords(b, st.missing[:])
	st.unread = int64(binary.BigEndian.Uint64(b))
	st.unreadSum = binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if withPrev {
		b = readWords(b, st.prev.missing[:])
	}
	if len(b) > 0 {
		st.last.latest = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		for i := range st.last.sums {
			st.last.sums[i] = binary.BigEndian.Uint32(b)
			b = b[4:]
		}
		st.last.known = b[0]
		b = b[1+copy(st.last.levels[:], b[1:]):]
		b = b[copy(st.levels[:], b):]
		st.since = int64(binary.BigEndian.Uint64(b))
		st.newest = int64(binary.BigEndian.Uint64(b[8:]))
		b = b[16:]
		if withPrev {
			b = b[copy(st.prev.levels[:], b):]
			st.prev.since = int64(binary.BigEndian.Uint64(b))
			st.prev.newest = int64(binary.BigEndian.Uint64(b[8:]))
			b = b[16:]
		}
		if len(b) > 0 {
			h, err := readLevelHistory(b)
			if err != nil {
				return nil, err
			}
			st.hist = h
			if st.prev != nil {
				st.prev.hist = h
			}
		}
	}
	return st, nil
}

// appendBinary writes h: its slots (seq, checksum, level), then the count of
// seqs with older messages, and for each its seq, their count and theirs.
func (h *levelHistory) appendBinary(b []byte) []byte {
	for i, seq := range h.seqs {
		b = binary.BigEndian.AppendUint64(b, uint64(seq))
		b = binary.BigEndian.AppendUint32(b, h.sums[i])
		b = append(b, h.levels[i])
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.older)))
	for _, seq := range slices.Sorted(maps.Keys(h.older)) { // the same state, the same bytes
		os := h.older[seq]
		b = binary.BigEndian.AppendUint64(b, uint64(seq))
		b = append(b, uint8(len(os)))
		for _, o := range os {
			b = binary.BigEndian.AppendUint32(b, o.sum)
			b = append(b, o.level)
		}
	}
	return b
}

// readLevelHistory reads what appendBinary wrote, all of b.
func readLevelHistory(b []byte) (*levelHistory, error) {
	bad := fmt.Errorf("level history: %d bytes", len(b))
	if len(b) < seqHistLen+4 {
		return nil, bad
	}
	h := &levelHistory{older: map[int64][]levelSum{}}
	for i := range h.seqs {
		h.seqs[i] = int64(binary.BigEndian.Uint64(b))
		h.sums[i] = binary.BigEndian.Uint32(b[8:])
		h.levels[i] = b[12]
		b = b[13:]
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	for range n {
		if len(b) < 9 {
			return nil, bad
		}
		seq, k := int64(binary.BigEndian.Uint64(b)), int(b[8])
		b = b[9:]
		if k > model.MoveLevels || len(b) < 5*k {
			return nil, bad
		}
		os := make([]levelSum, k)
		for j := range os {
			os[j] = levelSum{binary.BigEndian.Uint32(b), b[4]}
			b = b[5:]
		}
		h.older[seq] = os
	}
	if len(b) != 0 {
		return nil, bad
	}
	return h, nil
}

func appendWords(b []byte, ws []uint64) []byte {
	for _, w := range ws {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	return b
}

func readWords(b []byte, ws []uint64) []byte {
	for i := range ws {
		ws[i] = binary.BigEndian.Uint64(b)
		b = b[8:]
	}
	return b
}

func (s *seqState) readBinary(b []byte) []byte {
	s.max = int64(binary.BigEndian.Uint64(b))
	b = b[8:]
	for i := range s.seen {
		s.seen[i] = binary.BigEndian.Uint64(b)
		b = b[8:]
	}
	var moved [seqWindow / 64]uint64
	b = readWords(b, moved[:])
	for i := range s.levels {
		if moved[i/64]&(1<<(i%64)) != 0 {
			s.levels[i] = oldMoveLevel
		}
	}
	for i := range s.sums {
		s.sums[i] = binary.BigEndian.Uint32(b)
		b = b[4:]
	}
	return b
}

// RestoreSeqs restores the seq counters SeqSnapshot saved (data is its
// JSON), of the devices known still holds: call it before Run.
func (p *Pipeline) RestoreSeqs(data []byte, known func(device string) bool) error {
	return p.seqs.restore(data, known)
}

// SeqsFromUncleanStop says the restored counters were saved before an
// unclean stop (a crash, a kill): the messages a device sent after the save
// may have been received, stored and acknowledged before the stop, and the
// broker does not send those again. So each device's first jump forward
// counts in fenceline_ingest_sequence_unknown_messages_total, not as lost
// messages: fenceline cannot tell which they were.
func (p *Pipeline) SeqsFromUncleanStop() {
	for _, st := range p.seqs.devices {
		st.unsure = true
	}
}

// forget drops the counters of the devices known says are gone, as a
// restart does (restore).
func (t *seqTracker) forget(known func(device string) bool) {
	for id := range t.devices {
		if !known(id) {
			delete(t.devices, id)
		}
	}
}

func (t *seqTracker) restore(data []byte, known func(device string) bool) error {
	var saved map[string][]byte
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("seq counters: %w", err)
	}
	devices := make(map[string]*seqState, len(saved))
	for id, b := range saved {
		if !known(id) {
			continue
		}
		st, err := readSeqState(b)
		if err != nil {
			return fmt.Errorf("seq counters of device %s: %w", id, err)
		}
		devices[id] = st
	}
	t.devices = devices
	return nil
}
