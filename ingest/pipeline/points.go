package pipeline

import (
	"cmp"
	"slices"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// pointWatch notices a reading that takes the point time of an earlier
// reading of its device from another message: InfluxDB keeps one point per
// series and time, so of two such readings that share their tags too the
// later overwrites the earlier, and nothing else would say so.
// model.PointTime keeps the readings of messages close in seq apart within
// their millisecond; a unit whose clock stands still for hundreds of
// messages (or that replays old readings) outruns it (README). Such
// readings are counted (fenceline_ingest_point_time_shared_readings_total)
// and the device named in the log.
//
// The watch is bounded and cheap on the common path: a device's readings
// whose millisecond is later than any before need one comparison each. A
// millisecond seen again is looked up among the device's last few; when a
// second message meets it, a bitmap of the millisecond's offsets tells
// which are taken (a few of them at a time: a unit whose clock stands
// still needs one). Readings that meet a millisecond older than the
// device's last few are not checked.
type pointWatch struct {
	devices map[string]*devicePoints
	bitmaps int    // held, at most maxPointBitmaps
	batch   uint64 // the message being observed, numbered
	// free holds the bitmaps let go of, cleared, for the next millisecond
	// met again: a bitmap is 122 KiB, and a new one for each unit that sends
	// two messages in one millisecond (a buffer sent after a reconnection;
	// 3.6 % of the load tool's messages) cost zeroing it and the garbage
	// collector a cycle sooner every 600 of them.
	free []*pointBitmap
}

// devicePoints is one device's recent milliseconds.
type devicePoints struct {
	latest int64 // its latest millisecond so far
	recent [pointRecent]pointSpan
	next   int       // the slot of recent to fill next (oldest)
	warned time.Time // the last log line about it
	// cur is the span of the reading last seen (of message curBatch), at
	// offset curOff: its point time is curNext-1.
	cur      *pointSpan
	curBatch uint64
	curNext  int64
	curOff   int64
	// unlogged readings shared since, the first of them in the message of
	// unloggedSeq, at unloggedAt.
	unlogged    int
	unloggedSeq int64
	unloggedAt  time.Time
}

// pointSpan is a millisecond of a device's readings: the offsets one
// message took in it (lo, n consecutive: model.PointTime), or, once another
// message met it, every offset taken and the seqs of the messages that
// took them. A message seen again (a redelivery the seq window no longer
// holds: a unit whose clock stands still, redelivered after a broker
// restart) takes its own points again: it is not counted.
type pointSpan struct {
	ms    int64
	seq   int64
	lo, n int64
	taken *pointBitmap
	seqs  seqSet
	batch uint64 // the message last seen in it
	again bool   // that message had been seen in it before
}

// seqSet is a set of seqs as sorted, disjoint runs: a unit's messages in
// one millisecond are mostly consecutive seqs, one run however many.
type seqSet []seqRun

type seqRun struct{ lo, hi int64 } // lo..hi, both in

func (s seqSet) has(seq int64) bool {
	i, _ := slices.BinarySearchFunc(s, seq, func(r seqRun, seq int64) int { return cmp.Compare(r.hi, seq) })
	return i < len(s) && s[i].lo <= seq
}

// add puts seq in s (not in it yet), unless s has maxSeqRuns runs and seq
// would start another.
func (s seqSet) add(seq int64) seqSet {
	i, _ := slices.BinarySearchFunc(s, seq, func(r seqRun, seq int64) int { return cmp.Compare(r.hi, seq) })
	joinsPrev := i > 0 && s[i-1].hi == seq-1
	joinsNext := i < len(s) && s[i].lo == seq+1
	switch {
	case joinsPrev && joinsNext:
		s[i-1].hi = s[i].hi
		return slices.Delete(s, i, i+1)
	case joinsPrev:
		s[i-1].hi = seq
	case joinsNext:
		s[i].lo = seq
	case len(s) < maxSeqRuns:
		return slices.Insert(s, i, seqRun{seq, seq})
	}
	return s
}

const (
	pointRecent     = 8
	maxPointBitmaps = 64 // 8 MiB
	pointSpace      = int64(time.Millisecond)
	// maxSeqRuns bounds the runs of seqs a span remembers (a unit whose
	// clock stands still while its messages' seqs are that scattered has
	// the later ones' redeliveries counted).
	maxSeqRuns = 4096
)

// pointBitmap holds the offsets taken in a millisecond, and which of its
// words are not zero: a message's readings take a few consecutive offsets,
// so a bitmap is cleared for reuse by zeroing a few words, not 122 KiB.
type pointBitmap struct {
	words [pointSpace / 64]uint64
	dirty []int32
}

func (m *pointBitmap) take(off int64) (wasTaken bool) {
	w, bit := &m.words[off/64], uint64(1)<<(off%64)
	if *w == 0 {
		m.dirty = append(m.dirty, int32(off/64))
	}
	wasTaken = *w&bit != 0
	*w |= bit
	return wasTaken
}

// reset clears every offset taken.
func (m *pointBitmap) reset() {
	for _, i := range m.dirty {
		m.words[i] = 0
	}
	m.dirty = m.dirty[:0]
}

// newBitmap is a clear bitmap, reused if one was let go of.
func (w *pointWatch) newBitmap() *pointBitmap {
	w.bitmaps++
	if n := len(w.free); n > 0 {
		m := w.free[n-1]
		w.free = w.free[:n-1]
		return m
	}
	return new(pointBitmap)
}

// release lets go of m, keeping it for reuse: held and kept, there are
// never more than maxPointBitmaps.
func (w *pointWatch) release(m *pointBitmap) {
	w.bitmaps--
	m.reset()
	w.free = append(w.free, m)
}

func newPointWatch() *pointWatch { return &pointWatch{devices: map[string]*devicePoints{}} }

// forget drops the devices known says are gone, and their bitmaps.
func (w *pointWatch) forget(known func(device string) bool) {
	for id, dp := range w.devices {
		if known(id) {
			continue
		}
		for i := range dp.recent {
			if m := dp.recent[i].taken; m != nil {
				w.release(m)
			}
		}
		delete(w.devices, id)
	}
}

// observe notes the point times of the readings of b and returns how many
// of them an earlier message of the device held. The caller leaves out the
// redeliveries its seq window knows; a span knows those of its own
// messages (a redelivery takes its own points again).
func (w *pointWatch) observe(b *model.Batch) (shared int, first time.Time) {
	dp := w.devices[b.Device.ID]
	if dp == nil {
		dp = &devicePoints{latest: -1 << 63}
		w.devices[b.Device.ID] = dp
	}
	w.batch++
	b.EachStamp(func(st *model.Stamp) {
		if w.observeOne(dp, b.Seq, st.PointNS) {
			if shared == 0 {
				first = st.Time
			}
			shared++
		}
	})
	return shared, first
}

func (w *pointWatch) observeOne(dp *devicePoints, seq, ns int64) (shared bool) {
	if dp.curBatch == w.batch && ns == dp.curNext && dp.curOff+1 < pointSpace {
		// The message's next reading, at the next offset of the same
		// millisecond (model.PointTime): the span of the one before.
		dp.curOff++
		dp.curNext++
		return w.inSpan(dp.cur, seq, dp.curOff)
	}
	ms, off := ns/pointSpace, ns%pointSpace
	if off < 0 {
		ms, off = ms-1, off+pointSpace
	}
	dp.curBatch, dp.curNext, dp.curOff = w.batch, ns+1, off
	var sp *pointSpan
	if ms <= dp.latest {
		sp = dp.find(ms)
	}
	if sp == nil {
		dp.latest = max(dp.latest, ms)
		dp.cur = w.record(dp, ms, seq, off)
		return false
	}
	dp.cur = sp
	return w.inSpan(sp, seq, off)
}

// inSpan notes the reading of message seq at offset off of the span sp (a
// millisecond of its device's already met), and reports whether an earlier
// message took that point time.
func (w *pointWatch) inSpan(sp *pointSpan, seq, off int64) (shared bool) {
	switch {
	case sp.taken != nil:
		if sp.batch != w.batch { // the message's first reading here
			sp.batch, sp.again = w.batch, sp.seqs.has(seq)
			if !sp.again {
				sp.seqs = sp.seqs.add(seq)
			}
		}
		return !sp.again && sp.taken.take(off)
	case sp.seq == seq:
		if off == (sp.lo+sp.n)%pointSpace {
			sp.n++ // the message's next reading
		}
		return false // or the message again
	}
	// A second message in this millisecond: from now on its offsets are
	// kept one by one.
	if w.bitmaps < maxPointBitmaps {
		sp.taken = w.newBitmap()
		for i := range sp.n {
			sp.taken.take((sp.lo + i) % pointSpace)
		}
		sp.seqs = seqSet{{sp.seq, sp.seq}}.add(seq)
		sp.batch, sp.again = w.batch, false
		return sp.taken.take(off)
	}
	// No bitmap to spare: the earlier message's offsets only.
	return (off-sp.lo+pointSpace)%pointSpace < sp.n
}

// find is the span of ms among the device's recent ones, newest first.
func (dp *devicePoints) find(ms int64) *pointSpan {
	for i := range pointRecent {
		sp := &dp.recent[(dp.next-1-i+2*pointRecent)%pointRecent]
		if sp.n > 0 && sp.ms == ms {
			return sp
		}
	}
	return nil
}

// record starts a span of ms at off in place of the device's oldest, and
// returns it.
func (w *pointWatch) record(dp *devicePoints, ms, seq, off int64) *pointSpan {
	sp := &dp.recent[dp.next]
	if sp.taken != nil {
		w.release(sp.taken)
	}
	*sp = pointSpan{ms: ms, seq: seq, lo: off, n: 1}
	dp.next = (dp.next + 1) % pointRecent
	return sp
}

// warnSharedPoints logs, at most once a minute a device, that n readings
// of b took the point times of earlier ones, the first of them at first
// (the reading's own time, where to look in InfluxDB); a line counts those
// since the device's last line. Those not logged yet are told by
// logSharedPoints.
func (p *Pipeline) warnSharedPoints(b *model.Batch, n int, first time.Time) {
	dp := p.points.devices[b.Device.ID]
	if dp.unlogged == 0 {
		dp.unloggedSeq, dp.unloggedAt = b.Seq, first
	}
	dp.unlogged += n
	if now := p.opts.Now(); now.Sub(dp.warned) >= time.Minute {
		p.logSharedPoints(b.Device.ID, dp, now)
	}
}

// logSharedPoints tells the readings of devices whose minute has passed at
// now that were not logged yet (on each tick, and at a stop with now a
// minute on).
func (p *Pipeline) logSharedPoints(device string, dp *devicePoints, now time.Time) {
	if dp.unlogged == 0 || now.Sub(dp.warned) < time.Minute {
		return
	}
	p.log.Warn("readings took the point times of earlier readings of their device: in InfluxDB each overwrites the earlier one if their tags are the same too "+
		"(a unit whose clock stands still, or that sends old readings again in new messages: check its clock)",
		"device", device, "seq", dp.unloggedSeq, "ts", dp.unloggedAt.UTC().Format(time.RFC3339Nano), "readings", dp.unlogged)
	dp.warned, dp.unlogged = now, 0
}

// logAllSharedPoints tells, for every device, the readings not logged yet
// whose minute has passed at now.
func (p *Pipeline) logAllSharedPoints(now time.Time) {
	for id, dp := range p.points.devices {
		p.logSharedPoints(id, dp, now)
	}
}
