package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// cursorEvery is how often the replay position is saved while replaying.
// More often costs an fsync each time; less often means more records sent
// again after a crash (harmless, see the package doc).
const cursorEvery = time.Second

// Replay sends the spooled records to send, oldest first, until ctx ends,
// and then returns nil. It waits for records while there are none.
//
// send gets the bodies of one or more consecutive records (at most
// ReplayBytes, or one larger record), concatenated; the slice is reused
// after send returns. send returns nil once InfluxDB acknowledged every line
// (or the caller dealt with the lines it refused for good). On an error the
// same bodies are sent again after a pause, so records are never skipped or
// reordered; only after nil does the read position move past them, and a
// segment is deleted once the position is past all its records.
func (s *Spool) Replay(ctx context.Context, send func(ctx context.Context, body []byte) error) error {
	s.mu.Lock()
	if s.replaying {
		s.mu.Unlock()
		return errors.New("spool: Replay already running")
	}
	s.replaying = true
	s.mu.Unlock()
	r := &reader{s: s}
	r.saved, r.savedOK = loadCursor(s.dir)
	defer func() {
		r.close()
		s.mu.Lock()
		s.replaying = false
		s.mu.Unlock()
	}()
	for {
		c, err := r.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for attempt := 0; ; attempt++ {
			if err := send(ctx, c.body); err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			t := time.NewTimer(backoff(attempt, s.opts.MaxReplayBackoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		r.advance(c)
	}
}

// backoff is the pause before attempt+1: exponential from 100ms, capped,
// with the upper half jittered.
func backoff(attempt int, limit time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// reader is the replayer's state: its own handle on the head segment.
type reader struct {
	s       *Spool
	f       *os.File
	fseq    uint64
	buf     []byte // bodies handed to send
	rec     []byte // one record read
	saved   position
	savedOK bool
	savedAt time.Time
	// drainedFrom counts records replayed since the spool was last empty,
	// for the log line that says it is empty again.
	drained int
}

// chunk is consecutive records of one segment, from..to.
type chunk struct {
	from, to   position
	records    int
	body       []byte
	first      time.Time // append time of the first record
	nextOldest time.Time // of the record after to, when known
}

// next returns the next records to send, waiting for some while there are
// none; an error only when ctx ended.
func (r *reader) next(ctx context.Context) (chunk, error) {
	s := r.s
	for {
		s.mu.Lock()
		if len(s.segs) == 0 {
			ch := s.avail
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return chunk{}, ctx.Err()
			case <-ch:
			}
			continue
		}
		seg := s.segs[0]
		if s.head.seq != seg.seq {
			s.head = position{seq: seg.seq} // the head's segment is gone: start the next one
		}
		if s.head.off >= seg.size {
			if seg.seq != s.active {
				s.removeHead()
				s.mu.Unlock()
				// Closed too, or the deleted file keeps its disk space
				// until the reader opens another segment, which may be
				// never (a full disk stays full).
				r.closeSegment(seg.seq)
				continue
			}
			// Drained up to the segment still being appended to. Retire it
			// so that the spool's bytes go back to zero; the committer
			// starts a new one for its next write.
			s.mu.Unlock()
			if r.retireActive(seg.seq) {
				continue
			}
			s.mu.Lock()
			ch := s.avail
			// Nothing new since we looked: wait for the committer.
			stale := len(s.segs) > 0 && s.segs[0].seq == seg.seq && s.head.off >= s.segs[0].size
			s.mu.Unlock()
			if stale {
				select {
				case <-ctx.Done():
					return chunk{}, ctx.Err()
				case <-ch:
				}
			}
			continue
		}
		from, limit, damaged := s.head, seg.size, seg.damaged
		s.mu.Unlock()

		c, err := r.read(from, limit, damaged)
		if err != nil {
			return chunk{}, err
		}
		if c.records == 0 {
			// Nothing but damage, or an unreadable segment (skip moved
			// the head): nothing to send.
			s.mu.Lock()
			if s.head == from {
				s.head = c.to
			}
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		if s.head == from {
			s.oldest = c.first
		}
		s.mu.Unlock()
		return c, nil
	}
}

// read reads records of segment from.seq from from.off up to limit, jumping
// over its damaged stretches (and finding those Open did not see).
func (r *reader) read(from position, limit int64, damaged []damage) (chunk, error) {
	s := r.s
	if r.f == nil || r.fseq != from.seq {
		if r.f != nil {
			_ = r.f.Close()
			r.f = nil
		}
		f, err := os.Open(filepath.Join(s.dir, segmentName(from.seq)))
		if err != nil {
			s.m.errors.Inc()
			s.log.Error("spool segment cannot be opened; skipping it", "segment", segmentName(from.seq), "err", err)
			r.skip(from)
			return chunk{from: from, to: from}, nil
		}
		r.f, r.fseq = f, from.seq
	}
	c := chunk{from: from}
	r.buf = r.buf[:0]
	off := from.off
	for off < limit {
		if d, ok := damageAt(damaged, off); ok {
			off = min(d.to, limit)
			continue
		}
		body, h, next, err := readRecord(r.f, off, limit, r.rec)
		if errors.Is(err, errTorn) {
			// Written, fsynced and checked at start, yet bad now: the
			// disk damaged it.
			var d damage
			if d, err = r.damaged(from.seq, off, limit); err == nil {
				damaged = append(slices.Clip(damaged), d)
				off = d.to
				continue
			}
		}
		if err != nil {
			if c.records > 0 {
				break // send what is good; the bad part is met again next
			}
			// The disk fails reads: nothing can be sent from it; say so.
			s.m.errors.Inc()
			s.log.Error("spool segment cannot be read after the record position; skipping the rest of it",
				"segment", segmentName(from.seq), "offset", off, "bytes_skipped", limit-off, "err", err)
			r.skip(from)
			return chunk{from: from, to: from}, nil
		}
		r.rec = body[:0]
		if c.records > 0 && len(r.buf)+len(body) > s.opts.ReplayBytes {
			c.nextOldest = h.appended
			break
		}
		if c.records == 0 {
			c.first = h.appended
		}
		r.buf = append(r.buf, body...)
		c.records++
		off = next
	}
	c.to = position{seq: from.seq, off: off}
	c.body = r.buf
	if cap(r.rec) > 8<<20 {
		r.rec = nil
	}
	return c, nil
}

// damageAt returns the damaged stretch of ds that starts at off.
func damageAt(ds []damage, off int64) (damage, bool) {
	for _, d := range ds {
		if d.from == off {
			return d, true
		}
	}
	return damage{}, false
}

// damaged handles damage found at off of segment seq while replaying: the
// stretch up to the next intact record (or limit) is reported, counted and
// remembered with the segment, so that a read of it again skips it
// quietly.
func (r *reader) damaged(seq uint64, off, limit int64) (damage, error) {
	s := r.s
	st, err := r.f.Stat()
	if err != nil {
		return damage{}, fmt.Errorf("spool: %w", err)
	}
	w := newWindow(r.f)
	// A file cut shorter than its committed size has no record to find
	// past its end.
	at, _, err := resync(w, off+1, min(limit, st.Size()))
	if err != nil {
		return damage{}, err
	}
	if at < 0 {
		at = limit
	}
	d := damage{from: off, to: at}
	d.records = recordsIn(w, d)
	s.mu.Lock()
	if len(s.segs) > 0 && s.segs[0].seq == seq {
		s.segs[0].damaged = append(slices.Clip(s.segs[0].damaged), d)
		s.records = max(s.records-d.records, 0)
	}
	s.mu.Unlock()
	s.reportDamage(seq, []damage{d})
	s.m.damagedBytes.Add(float64(d.to - d.from))
	s.m.damagedRecords.Add(float64(d.records))
	return d, nil
}

// skip moves the head past the rest of segment at.seq.
func (r *reader) skip(at position) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == at && len(s.segs) > 0 && s.segs[0].seq == at.seq {
		s.head.off = s.segs[0].size
	}
}

// advance moves the head past c, which InfluxDB acknowledged, and saves the
// position now and then.
func (r *reader) advance(c chunk) {
	s := r.s
	s.mu.Lock()
	if s.head == c.from {
		s.head = c.to
		s.records = max(s.records-c.records, 0)
		s.m.replayed.Add(float64(c.records))
		r.drained += c.records
		switch {
		case s.records == 0:
			s.oldest = time.Time{}
			s.log.Info("spool drained: every spooled line is in InfluxDB, or in the dead letters if InfluxDB refused it for good", "replayed_records", r.drained)
			r.drained = 0
		case !c.nextOldest.IsZero():
			s.oldest = c.nextOldest
		}
	}
	head := s.head
	s.mu.Unlock()
	if time.Since(r.savedAt) >= cursorEvery {
		r.save(head)
	}
}

// save writes the cursor if the position moved since it was last saved.
func (r *reader) save(p position) {
	if r.savedOK && r.saved == p {
		return
	}
	s := r.s
	if err := saveCursor(s.dir, p, s.opts.Sync); err != nil {
		s.m.errors.Inc()
		s.log.Warn("saving the spool cursor failed; a restart replays more again", "err", err)
		return
	}
	r.saved, r.savedOK, r.savedAt = p, true, time.Now()
}

func (r *reader) close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	s := r.s
	s.mu.Lock()
	head := s.head
	s.mu.Unlock()
	r.save(head)
}

// retireActive closes and deletes the segment seq if it is still the one
// being appended to and every record in it is replayed. It reports whether
// it did.
func (r *reader) retireActive(seq uint64) bool {
	s := r.s
	// fmu first: no write is in progress while we hold it.
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 || s.segs[0].seq != seq || s.active != seq || s.head.off < s.segs[0].size {
		return false
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			s.log.Warn("closing a drained spool segment", "err", err)
		}
		s.f = nil
	}
	s.active = 0
	r.closeSegment(seq)
	s.removeHead()
	return true
}

// closeSegment closes the reader's file if it is segment seq's.
func (r *reader) closeSegment(seq uint64) {
	if r.f != nil && r.fseq == seq {
		_ = r.f.Close()
		r.f = nil
	}
}

// removeHead deletes the oldest segment, whose records are all replayed.
// Called with mu held.
func (s *Spool) removeHead() {
	seg := s.segs[0]
	if err := os.Remove(filepath.Join(s.dir, segmentName(seg.seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
		// It stays on disk, and is deleted at the next start (it lies
		// before the cursor) or replayed again: either is harmless.
		s.m.errors.Inc()
		s.log.Error("deleting a replayed spool segment failed", "segment", segmentName(seg.seq), "err", fmt.Errorf("spool: %w", err))
	}
	s.segs = s.segs[1:]
	s.total -= seg.size
	if len(s.segs) > 0 {
		s.head = position{seq: s.segs[0].seq}
	} else {
		s.head = position{seq: s.nextSeq}
		if s.opening != 0 {
			// The committer is creating the next segment, whose records,
			// once written, are acked: a head past it, saved by a replayer
			// that stops now, would have the next start delete them unread.
			s.head = position{seq: s.opening}
		}
		// Whatever the counts say, an empty folder holds nothing.
		s.total, s.records, s.oldest = 0, 0, time.Time{}
	}
	if s.full {
		s.full = false
		s.m.full.Set(0)
		s.log.Info("spool has room again", "bytes", s.total, "max_bytes", s.opts.MaxBytes)
	}
	s.m.bytes.Set(float64(s.total))
}
