// Package spool is a durable write-ahead log for line-protocol batches that
// InfluxDB could not take (down, answering 5xx, timing out): the writer
// appends a batch here, and acks its messages to the broker once the batch
// is fsynced; a replayer sends the spooled batches to InfluxDB, oldest
// first, once it takes writes again, while live traffic goes on.
//
// On disk it is a folder of segments (see format.go) and a cursor file:
//
//   - Append is group-committed: one goroutine (Run) writes every record
//     queued since its last round with one write and one fsync, then calls
//     their callbacks. A callback with nil means the record survives a
//     crash; nothing is called back before that fsync.
//   - Replay reads the records in append order from the oldest segment,
//     hands consecutive records to its send function, and moves the read
//     position past them only when send returned nil (InfluxDB acknowledged
//     every line). A segment is deleted once all its records are past the
//     read position; the position itself is saved (cursor) at most once a
//     second and at the end. After a crash, replay starts at the last saved
//     position: a record may be sent twice, never skipped, which is safe
//     because a reading's point time is derived from its content and
//     InfluxDB overwrites a point with itself.
//   - A crash can leave the last segment ending in part of a record (a torn
//     tail); Open cuts it off. The torn record was never called back, so its
//     messages were not acked and the broker redelivers them.
//   - A bad record with intact records after it, or at the end of a segment
//     that is not the last, is damage (the disk's, or someone's): its
//     messages were acked. It is skipped and replay resynchronises on the
//     next intact record, so one bad byte costs one record, not the rest of
//     the segment. The loss is loud: logged at error level (segment, offset,
//     bytes), counted in damaged_bytes_total and damaged_records_total, and
//     the damaged segment is kept beside it as <segment>.damaged (a hard
//     link, else a copy) for whoever wants to salvage its lines.
//   - The folder is bounded by Options.MaxBytes: an Append that would pass
//     it is refused with ErrFull (and the full gauge goes to 1) until replay
//     frees a segment. The caller then keeps the batch in memory and
//     retries InfluxDB itself: backpressure reaches the broker, which holds
//     the backlog. The spool never drops a record.
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/internal/groupcommit"
)

// Options configure a Spool. Zero values take the defaults.
type Options struct {
	// MaxBytes bounds the segments' total size on disk (default 1 GiB).
	MaxBytes int64
	// SegmentBytes is the size past which a new segment is started
	// (default 64 MiB, at most MaxBytes/16: space comes back a segment at
	// a time, in steps small against the bound).
	SegmentBytes int64
	// ReplayBytes is the most bytes of consecutive records handed to one
	// send (default 4 MiB); a larger record goes alone.
	ReplayBytes int
	// MaxReplayBackoff caps the pause between failed sends of the same
	// records (default 5s). The replayer is what notices that InfluxDB is
	// back while everything is spooled, so it must not wait long.
	MaxReplayBackoff time.Duration
	// Sync makes a segment's writes durable; nil means (*os.File).Sync.
	// Tests replace it to check that nothing is called back before it.
	Sync func(*os.File) error
	// SyncDir makes the folder's new and removed names durable; nil means
	// an fsync of the folder. Tests replace it to hold a segment's opening.
	SyncDir func(dir string) error
	// Now is the clock of append times (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxBytes/16), 4096)
	if o.ReplayBytes <= 0 {
		o.ReplayBytes = 4 << 20
	}
	if o.MaxReplayBackoff <= 0 {
		o.MaxReplayBackoff = 5 * time.Second
	}
	if o.Sync == nil {
		o.Sync = (*os.File).Sync
	}
	if o.SyncDir == nil {
		o.SyncDir = syncDir
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

var (
	// ErrFull is given to Append's callback when the record would take the
	// spool past MaxBytes.
	ErrFull = errors.New("spool: full")
	// ErrClosed is given to Append's callback after Close.
	ErrClosed = errors.New("spool: closed")
)

// errRetryAfter is how long a failed commit (a disk error) makes Usable
// report it: after that, another Append is worth a try.
const errRetryAfter = 5 * time.Second

// Spool is an open spool folder.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	m    *metrics

	mu        sync.Mutex
	queue     []pending
	queued    int64 // bytes of encoded records in queue
	replaying bool
	full      bool
	lastErr   error
	lastErrAt time.Time
	segs      []segment // oldest first; committed sizes
	total     int64     // committed bytes on disk
	records   int       // committed records not yet replayed
	oldest    time.Time // append time of the oldest record not yet replayed
	head      position  // where replay continues
	active    uint64    // seq of the segment the committer appends to; 0: none
	opening   uint64    // seq of the segment being created, not yet in segs; 0: none
	nextSeq   uint64
	// avail is closed (and replaced) when records are committed or the
	// spool closes: the replayer waits on it.
	avail chan struct{}
	c     *groupcommit.Committer

	// fmu is the committer's: held across a write and its fsync. The
	// replayer takes it (before mu) to retire a drained active segment.
	fmu   sync.Mutex
	f     *os.File
	fsize int64
	buf   []byte
}

type pending struct {
	rec  []byte // encoded record
	at   time.Time
	done func(error)
}

type segment struct {
	seq  uint64
	size int64 // committed (fsynced) bytes
	// damaged are the stretches replay skips, in order; replaced, never
	// changed in place (the reader works on a copy of the slice header).
	damaged []damage
}

// position is a record boundary: a segment and an offset in it.
type position struct {
	seq uint64
	off int64
}

// Open opens (creating it if need be) the spool folder dir: it checks every
// segment, cuts torn tails off, and finds where replay continues. Records
// are written once Run runs and replayed by Replay.
func Open(dir string, opts Options, log *slog.Logger, reg prometheus.Registerer) (*Spool, error) {
	opts.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir:     dir,
		opts:    opts,
		log:     log.With("component", "spool"),
		nextSeq: 1,
		avail:   make(chan struct{}),
	}
	s.c = groupcommit.New(&s.mu)
	var lost lostAtOpen
	if err := s.recover(&lost); err != nil {
		return nil, err
	}
	s.m = newMetrics(reg, s)
	s.m.bytes.Set(float64(s.total))
	s.m.damagedBytes.Add(float64(lost.bytes))
	s.m.damagedRecords.Add(float64(lost.records))
	if s.records > 0 {
		s.log.Info("spool holds batches from before the restart; replaying them once InfluxDB takes writes",
			"records", s.records, "bytes", s.total, "oldest", s.oldest.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// lostAtOpen sums the damage recover found, for the counters that do not
// exist yet.
type lostAtOpen struct{ bytes, records int64 }

// recover scans the folder: segments are validated record by record, torn
// tails cut off, damage reported, empty and already replayed segments
// deleted.
func (s *Spool) recover(lost *lostAtOpen) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	cur, curOK := loadCursor(s.dir)
	if curOK {
		// Segment numbers must never go back to or below the cursor's:
		// segments before it are taken as replayed at the next start.
		s.nextSeq = cur.seq + 1
	}
	changed := false
	for _, seq := range seqs {
		s.nextSeq = max(s.nextSeq, seq+1)
		path := filepath.Join(s.dir, segmentName(seq))
		if curOK && seq < cur.seq {
			// Replayed entirely before the crash; its deletion did not
			// happen or did not reach the disk.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove replayed segment: %w", err)
			}
			changed = true
			continue
		}
		from := int64(0)
		if curOK && seq == cur.seq {
			from = cur.off
		}
		// Only the last segment was being written when a crash came.
		sc, err := s.scan(path, from, seq == seqs[len(seqs)-1])
		if err != nil {
			return err
		}
		if from > 0 && !sc.boundary {
			// The cursor does not fall on a record of this segment (it
			// was cut shorter than the cursor, or the cursor is damaged):
			// replay the whole segment again rather than guess.
			s.log.Warn("spool cursor is not at a record; replaying its segment from the start", "segment", segmentName(seq), "offset", from)
			again, err := s.scan(path, 0, false) // the torn tail is cut already
			if err != nil {
				return err
			}
			sc.records, sc.first = again.records, again.first
			from = 0
		}
		// Damage before the cursor hit records InfluxDB has already.
		sc.damaged = slices.DeleteFunc(sc.damaged, func(d damage) bool { return d.to <= from })
		if len(sc.damaged) > 0 {
			s.reportDamage(seq, sc.damaged)
			for _, d := range sc.damaged {
				lost.bytes += d.to - d.from
				lost.records += int64(d.records)
			}
		}
		if sc.intact == 0 {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove empty segment: %w", err)
			}
			changed = true
			continue
		}
		if len(s.segs) == 0 {
			s.head = position{seq: seq, off: from}
		}
		s.segs = append(s.segs, segment{seq: seq, size: sc.size, damaged: sc.damaged})
		s.total += sc.size
		s.records += sc.records
		if s.oldest.IsZero() && sc.records > 0 {
			s.oldest = sc.first
		}
	}
	if len(s.segs) == 0 {
		s.head = position{seq: s.nextSeq}
	}
	if changed {
		if err := s.opts.SyncDir(s.dir); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// scanned is what scan found in a segment.
type scanned struct {
	size     int64     // bytes kept: the file's, less a torn tail cut off
	intact   int       // intact records in the segment
	records  int       // intact records at or after from
	first    time.Time // append time of the first of those
	boundary bool      // from is where a record, a damaged stretch or the end starts
	damaged  []damage
}

// scan validates the segment at path record by record, resynchronising
// after damage. A bad tail (no intact record after it) of the last segment
// is torn by a crash and cut off; of another segment it is damage too.
func (s *Spool) scan(path string, from int64, last bool) (scanned, error) {
	var sc scanned
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return sc, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return sc, fmt.Errorf("spool: %w", err)
	}
	size := st.Size()
	var buf []byte
	r := newWindow(f)
	off := int64(0)
	for off < size {
		if off == from {
			sc.boundary = true
		}
		body, h, next, err := readRecord(r, off, size, buf)
		if errors.Is(err, errTorn) {
			at, gaveUp, err := resync(r, off+1, size)
			if err != nil {
				return sc, err
			}
			if gaveUp {
				last = false // not known to be a tail: damage
			}
			if at < 0 {
				break // a bad tail
			}
			d := damage{from: off, to: at}
			d.records = recordsIn(r, d)
			sc.damaged = append(sc.damaged, d)
			off = at
			continue
		}
		if err != nil {
			return sc, err
		}
		buf = body[:0]
		sc.intact++
		if off >= from {
			if sc.records == 0 {
				sc.first = h.appended
			}
			sc.records++
		}
		off = next
	}
	if off == from {
		sc.boundary = true
	}
	sc.size = size
	switch {
	case off == size:
	case last && !wholeRecordAt(r, off, size):
		s.log.Warn("spool segment ends in a torn record (a crash while writing it); cutting it off: its messages were not acked",
			"segment", filepath.Base(path), "valid_bytes", off, "cut_bytes", size-off)
		if err := f.Truncate(off); err != nil {
			return sc, fmt.Errorf("spool: cut torn tail: %w", err)
		}
		if err := s.opts.Sync(f); err != nil {
			return sc, fmt.Errorf("spool: cut torn tail: %w", err)
		}
		sc.size = off
	default:
		// A later segment was started after this one was complete: no
		// crash tore this tail.
		d := damage{from: off, to: size}
		d.records = recordsIn(r, d)
		sc.damaged = append(sc.damaged, d)
	}
	return sc, nil
}

// wholeRecordAt reports whether the bad record at off, the last of a
// segment of size bytes, was written whole, and so is damage, not a torn
// tail. A crash leaves a record cut short: the file ends inside it, or its
// last bytes are zeros (the size was written before the data). A record
// whose length leaves bytes after it, or runs exactly to the end of the
// file with a last byte that is not a zero, was written (and acked) whole,
// and a byte of it changed since: damage, reported as such, not cut off in
// silence. (A length changed to run past the end of the file cannot be told
// from a torn record.)
func wholeRecordAt(r io.ReaderAt, off, size int64) bool {
	var raw [headerSize]byte
	if size-off <= headerSize {
		return false
	}
	if _, err := r.ReadAt(raw[:], off); err != nil {
		return false
	}
	if raw == [headerSize]byte{} {
		return false // zeros: a file extended and never written
	}
	end := off + headerSize + int64(parseHeader(raw[:]).length)
	switch {
	case end < size:
		return true
	case end > size:
		return false
	}
	var last [1]byte
	_, err := r.ReadAt(last[:], size-1)
	return err == nil && last[0] != 0
}

// maxDamageLogs bounds the error lines of one report: a disk that damaged
// thousands of stretches gets a summary for the rest.
const maxDamageLogs = 10

// reportDamage keeps a copy of segment seq and logs its damaged stretches
// ds; the caller counts them.
func (s *Spool) reportDamage(seq uint64, ds []damage) {
	kept, err := s.keepDamaged(seq)
	if err != nil {
		s.log.Error("spool segment is damaged and no copy of it could be kept: its damaged bytes go when it is replayed",
			"segment", segmentName(seq), "err", err)
	}
	var more, moreBytes int64
	for i, d := range ds {
		if i >= maxDamageLogs {
			more++
			moreBytes += d.to - d.from
			continue
		}
		s.log.Error("spool segment is damaged; skipping the damaged bytes and replaying the intact records after them: the readings in the damaged records are lost (their messages were acked when they were spooled)",
			"segment", segmentName(seq), "offset", d.from, "bytes", d.to-d.from, "records", d.records, "copy", kept)
	}
	if more > 0 {
		s.log.Error("spool segment has more damaged stretches, skipped too", "segment", segmentName(seq),
			"stretches_not_logged", more, "bytes", moreBytes, "copy", kept)
	}
}

// damagedSuffix names the copy kept of a damaged segment.
const damagedSuffix = ".damaged"

// keepDamaged keeps segment seq as <segment>.damaged: a hard link (no space
// until replay deletes the segment), else a copy. A copy kept before (the
// same damage found again after a restart) is left as it is. It returns the
// copy's path.
func (s *Spool) keepDamaged(seq uint64) (string, error) {
	seg := filepath.Join(s.dir, segmentName(seq))
	kept := seg + damagedSuffix
	if _, err := os.Lstat(kept); err == nil {
		return kept, nil
	}
	if err := os.Link(seg, kept); err != nil {
		if err := copyFile(seg, kept, s.opts.Sync); err != nil {
			return "", fmt.Errorf("spool: keep damaged segment: %w", err)
		}
	}
	if err := s.opts.SyncDir(s.dir); err != nil {
		return kept, fmt.Errorf("spool: keep damaged segment: %w", err)
	}
	return kept, nil
}

// copyFile copies src to dst through a fsynced temporary file.
func copyFile(src, dst string, sync func(*os.File) error) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = sync(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// Dir is the spool's folder.
func (s *Spool) Dir() string { return s.dir }

// Append queues body (newline-terminated line protocol) as one record; done
// is called once, from the committer, with nil after the record is written
// and fsynced, or with an error: ErrFull at once when the record would take
// the spool past MaxBytes, ErrClosed after Close, or the write's error. The
// spool keeps its own copy of body.
func (s *Spool) Append(body []byte, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	if len(body) == 0 {
		done(nil)
		return
	}
	if len(body) > MaxRecordBytes {
		done(fmt.Errorf("spool: record of %d bytes is larger than %d", len(body), MaxRecordBytes))
		return
	}
	at := s.opts.Now()
	rec := appendRecord(make([]byte, 0, headerSize+len(body)), body, at)
	s.mu.Lock()
	if s.c.Closed() {
		s.mu.Unlock()
		done(ErrClosed)
		return
	}
	if s.total+s.queued+int64(len(rec)) > s.opts.MaxBytes {
		if !s.full {
			s.full = true
			s.m.full.Set(1)
			s.log.Error("spool full: not spooling any more until replay frees space; InfluxDB writes are retried from memory and intake stops (the broker holds the backlog)",
				"bytes", s.total, "max_bytes", s.opts.MaxBytes, "records", s.records)
		}
		s.m.refused.Inc()
		total := s.total
		s.mu.Unlock()
		done(fmt.Errorf("%w: %d of %d bytes used", ErrFull, total, s.opts.MaxBytes))
		return
	}
	s.queue = append(s.queue, pending{rec: rec, at: at, done: done})
	s.queued += int64(len(rec))
	s.mu.Unlock()
	s.c.Wake()
}

// Usable reports whether an Append would be taken now: nil, or why not
// (closed, full, or a write that failed less than 5s ago).
func (s *Spool) Usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.closedOrFull(); err != nil {
		return err
	}
	if s.lastErr != nil && s.opts.Now().Sub(s.lastErrAt) < errRetryAfter {
		return s.lastErr
	}
	return nil
}

// closedOrFull is why nothing can be appended at all, or nil. Called with
// mu held.
func (s *Spool) closedOrFull() error {
	switch {
	case s.c.Closed():
		return ErrClosed
	case s.full:
		return fmt.Errorf("%w: %d of %d bytes used", ErrFull, s.total, s.opts.MaxBytes)
	}
	return nil
}

// Ready reports whether the spool can be counted on to store: nil, or why
// not (closed, full, or its last write failed and none has succeeded
// since). Unlike Usable, a failure does not wear off after a few seconds
// without a write that proves the disk takes them again.
func (s *Spool) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.closedOrFull(); err != nil {
		return err
	}
	return s.lastErr
}

// Stats is the spool's state for callers and tests.
type Stats struct {
	Bytes   int64 // on disk
	Records int   // not yet replayed
	Full    bool
}

// Stats returns the spool's current state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Bytes: s.total, Records: s.records, Full: s.full}
}

// Run writes queued records until ctx ends or Close is called, then writes
// what is still queued, closes the open segment and returns.
func (s *Spool) Run(ctx context.Context) error {
	return s.c.Run(ctx, errors.New("spool: Run called twice or after Close"), s.commit, s.finish)
}

// Close stops accepting records, waits until the queued ones are written
// (by Run if it runs, else here) and closes the open segment. Replay may go
// on reading what is on disk until its own context ends.
func (s *Spool) Close() error {
	return s.c.Close(nil, s.commit, s.finish)
}

// finish closes the active segment and wakes the replayer, which may be
// waiting for records that will not come.
func (s *Spool) finish() error {
	s.fmu.Lock()
	err := s.closeActive()
	s.fmu.Unlock()
	s.mu.Lock()
	s.signalAvail()
	s.mu.Unlock()
	return err
}

// signalAvail wakes the replayer. Called with mu held.
func (s *Spool) signalAvail() {
	close(s.avail)
	s.avail = make(chan struct{})
}

// commit writes everything queued, fsyncs, and calls the callbacks.
func (s *Spool) commit() {
	s.mu.Lock()
	batch := s.queue
	s.queue = nil
	s.queued = 0
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	for i := 0; i < len(batch); {
		n, err := s.writeSome(batch[i:])
		if err != nil {
			s.m.errors.Inc()
			s.mu.Lock()
			s.lastErr, s.lastErrAt = err, s.opts.Now()
			s.mu.Unlock()
			s.log.Error("spooling failed; the batches stay in memory and InfluxDB is retried", "records", len(batch)-i, "err", err)
			for _, p := range batch[i:] {
				p.done(err)
			}
			return
		}
		for _, p := range batch[i : i+n] {
			p.done(nil)
		}
		i += n
	}
}

// writeSome writes as many of recs as fit in the open segment (at least one,
// in a fresh segment), fsyncs, publishes them to the replayer, and returns
// how many it wrote. Called with fmu held.
func (s *Spool) writeSome(recs []pending) (int, error) {
	if s.f != nil && s.fsize >= s.opts.SegmentBytes {
		if err := s.closeActive(); err != nil {
			s.log.Warn("closing a full spool segment", "err", err)
		}
	}
	if s.f == nil {
		if err := s.openSegment(); err != nil {
			return 0, err
		}
	}
	s.buf = s.buf[:0]
	n := 0
	for _, p := range recs {
		// The rest goes to the next segment; a record larger than a whole
		// segment gets a fresh one to itself.
		if n > 0 && s.fsize+int64(len(s.buf)+len(p.rec)) > s.opts.SegmentBytes {
			break
		}
		s.buf = append(s.buf, p.rec...)
		n++
	}
	if _, err := s.f.Write(s.buf); err != nil {
		s.abandonActive()
		return 0, fmt.Errorf("spool: write: %w", err)
	}
	start := time.Now()
	err := s.opts.Sync(s.f)
	s.m.fsync.Observe(time.Since(start).Seconds())
	if err != nil {
		// After a failed fsync the page cache's state is unknown: never
		// append to this file again.
		s.abandonActive()
		return 0, fmt.Errorf("spool: fsync: %w", err)
	}
	size := int64(len(s.buf))
	s.fsize += size
	s.mu.Lock()
	s.segs[len(s.segs)-1].size = s.fsize
	s.total += size
	if s.records == 0 {
		s.oldest = recs[0].at
	}
	s.records += n
	s.lastErr = nil
	s.m.bytes.Set(float64(s.total))
	s.m.appended.Add(float64(n))
	s.signalAvail()
	s.mu.Unlock()
	if cap(s.buf) > 8<<20 {
		s.buf = nil // one huge group shouldn't pin its buffer
	}
	return n, nil
}

// openSegment starts a new segment. Appending to a segment from before a
// restart is never done: it may end in a torn record. Called with fmu held.
func (s *Spool) openSegment() error {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.opening = seq
	s.mu.Unlock()
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err == nil {
		// The new name must survive a crash as well as the data written to it.
		if err = s.opts.SyncDir(s.dir); err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}
	if err != nil {
		s.mu.Lock()
		s.opening = 0
		s.mu.Unlock()
		return fmt.Errorf("spool: %w", err)
	}
	s.f, s.fsize = f, 0
	s.mu.Lock()
	s.opening = 0
	if len(s.segs) == 0 {
		s.head = position{seq: seq}
	}
	s.segs = append(s.segs, segment{seq: seq})
	s.active = seq
	s.mu.Unlock()
	return nil
}

// closeActive closes the open segment; it stays for the replayer. Called
// with fmu held (or before Run started).
func (s *Spool) closeActive() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	s.mu.Lock()
	s.active = 0
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	return nil
}

// abandonActive cuts a failed write off the open segment, so that no torn
// record sits in front of later ones, and closes it; the next write starts a
// new segment. Called with fmu held.
func (s *Spool) abandonActive() {
	if err := s.f.Truncate(s.fsize); err != nil {
		s.log.Warn("cutting a failed write off a spool segment", "err", err)
	}
	if err := s.closeActive(); err != nil {
		s.log.Warn("closing a failed spool segment", "err", err)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
