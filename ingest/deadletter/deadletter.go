// Package deadletter keeps what fenceline rejected — the raw payload with its
// topic, reason and receive time — in a bounded folder of JSON-lines
// segments, so that an operator can read back exactly what a device sent
// and why it was refused.
//
// Appends are group-committed: one goroutine writes the records queued since
// its last round and fsyncs once for all of them, then calls their
// callbacks; the MQTT consumer acks a rejected message only then. The folder
// is bounded by Options.MaxBytes: past it, the oldest segment is deleted, and
// the loss is counted and logged.
package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/internal/groupcommit"
)

// Options bounds the store. Zero values take the defaults.
type Options struct {
	// MaxBytes bounds the segments' total size (default 1 GiB). When a
	// write takes the total past it, the oldest segments are deleted.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started (default
	// 64 MiB, at most MaxBytes/4 so that eviction frees space in steps
	// small against the bound).
	SegmentBytes int64
}

// Record is one rejected message, or one rejected reading of it.
type Record struct {
	Received time.Time // when fenceline took the message from the broker
	Topic    string
	Reason   string // a fixed code: the metric label of the rejection
	Detail   string // free text: what exactly was wrong
	Index    int    // the rejected reading's index in its message; -1: the whole message
	Payload  []byte // the raw message as received
}

// ErrClosed is given to Append's callback after Close.
var ErrClosed = errors.New("deadletter: store closed")

// maxQueuedBytes bounds the payloads waiting for the committer; Append
// blocks beyond it (the disk is then slower than the rejections).
const maxQueuedBytes = 64 << 20

// Store is an open dead-letter folder.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	m    *metrics

	// syncFile makes a segment's writes durable (f.Sync); a test swaps it to
	// observe that callbacks wait for it.
	syncFile func(*os.File) error
	now      func() time.Time

	// The eviction log's rate limit (committer goroutine only).
	evictLogged time.Time
	evictQuiet  int

	mu      sync.Mutex
	failing groupcommit.Failing // the failure of the records being retried
	recent  *recentKeys         // the keys of the latest records written (see Kept)
	queue   []pending
	queued  int64         // payload bytes in queue
	space   chan struct{} // closed when queued drops below the bound
	c       *groupcommit.Committer

	// Owned by the committer (Run, or Close when Run never started).
	segs    []segment // oldest first; the last is the open one when f != nil
	f       *os.File
	fsize   int64
	total   int64
	nextSeq uint64
	buf     bytes.Buffer
	spare   []pending
}

type pending struct {
	rec  Record
	done func(error)
}

// size is what the record counts against maxQueuedBytes.
func (p *pending) size() int64 {
	return int64(len(p.rec.Payload) + len(p.rec.Detail) + len(p.rec.Topic))
}

type segment struct {
	name string
	seq  uint64
	size int64
}

// Open opens (creating it if need be) the dead-letter folder dir. Records
// are written once Run is running.
func Open(dir string, opts Options, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	opts.SegmentBytes = max(min(opts.SegmentBytes, opts.MaxBytes/4), 1)
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	s := &Store{
		dir:      dir,
		opts:     opts,
		log:      log.With("component", "deadletter"),
		m:        newMetrics(reg),
		syncFile: (*os.File).Sync,
		now:      time.Now,
		segs:     segs,
		nextSeq:  1,
	}
	s.c = groupcommit.New(&s.mu)
	s.failing = groupcommit.Failing{What: "dead letters cannot be written", Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for _, sg := range segs {
		s.total += sg.size
		s.nextSeq = max(s.nextSeq, sg.seq+1)
	}
	s.m.bytes.Set(float64(s.total))
	s.recent = newRecentKeys()
	if err := s.recent.load(dir, segs); err != nil {
		// Only redeliveries are recorded twice without them.
		s.log.Warn("could not read the latest dead letters back; a message redelivered now may be recorded twice", "err", err)
	}
	return s, nil
}

// Kept reports whether a record of the same message with the same reason
// and index is among the latest written (durably): rec is a redelivery of
// it. The latest 65,536 records are remembered, those of the previous run
// as far as its last 16 MiB of records hold them.
func (s *Store) Kept(rec Record) bool {
	key := s.recent.key(&rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recent.has(key)
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// Append queues rec; done (which may be nil) is called once, from the
// committer, after the record is on disk (nil) or failed to get there. After
// Close, done gets ErrClosed at once. Append blocks while 64 MiB of payloads
// wait to be written.
func (s *Store) Append(rec Record, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	p := pending{rec: rec, done: done}
	size := p.size()
	s.mu.Lock()
	for !s.c.Closed() && s.queued > 0 && s.queued+size > maxQueuedBytes {
		if s.space == nil {
			s.space = make(chan struct{})
		}
		ch := s.space
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	if s.c.Closed() {
		s.mu.Unlock()
		done(ErrClosed)
		return
	}
	s.queue = append(s.queue, p)
	s.queued += size
	s.mu.Unlock()
	s.c.Wake()
}

// Run writes queued records until ctx ends or Close is called, then writes
// what is still queued, closes the open segment and returns.
func (s *Store) Run(ctx context.Context) error {
	return s.c.Run(ctx, errors.New("deadletter: Run called twice or after Close"), s.commit, s.closeSegment)
}

// Close stops accepting records, waits until the queued ones are written
// (by Run if it runs, else here) and closes the open segment.
func (s *Store) Close() error {
	wakeWaiters := func() { // Appends waiting for room get ErrClosed
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
	}
	return s.c.Close(wakeWaiters, s.commit, s.closeSegment)
}

// commit writes everything queued, fsyncs, and calls the callbacks.
func (s *Store) commit() {
	s.mu.Lock()
	batch := s.queue
	s.queue = s.spare[:0]
	s.queued = 0
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		s.spare = batch
		return
	}
	for i := 0; i < len(batch); {
		n, err := s.writeSome(batch[i:])
		if err != nil {
			s.m.writeErrors.Inc()
			s.retryLater(batch[i:], err)
			break
		}
		if n := s.failing.Recovered(); n > 0 {
			s.log.Info("dead letters are written again", "failed_attempts", n)
		}
		s.m.written.Add(float64(n))
		keys := make([]uint64, n)
		for j := range keys {
			keys[j] = s.recent.key(&batch[i+j].rec)
		}
		s.mu.Lock()
		for _, k := range keys {
			s.recent.add(k)
		}
		s.mu.Unlock()
		for _, p := range batch[i : i+n] {
			p.done(nil)
		}
		i += n
		// After each segment of a large group, not once after it: a flood
		// would otherwise overshoot MaxBytes by the whole group.
		s.evict()
	}
	clear(batch) // drop payloads and callbacks
	s.spare = batch[:0]
}

// retryLater puts records whose write failed back at the head of the queue
// and wakes the committer again after a pause (doubling from 100ms to 5s):
// refused, their messages would stay unacked and hold the broker's window
// until a reconnect, while a disk that fills up for a moment comes back.
// Their messages stay unacked meanwhile. Once the store is closing there
// is no later: they are refused, and the broker redelivers their messages
// to the next start.
func (s *Store) retryLater(recs []pending, err error) {
	s.mu.Lock()
	closing := s.c.Closed()
	if !closing {
		var size int64
		for _, p := range recs {
			size += p.size()
		}
		s.queue = append(append(make([]pending, 0, len(recs)+len(s.queue)), recs...), s.queue...)
		s.queued += size
	}
	s.mu.Unlock()
	if closing {
		s.log.Error("dead letters cannot be written at shutdown; their messages are not acked", "records", len(recs), "err", err)
		for _, p := range recs {
			p.done(err)
		}
		return
	}
	first, wait := s.failing.Failed(err)
	if first {
		s.log.Error("writing dead letters failed; keeping them and retrying (their messages stay unacked)", "records", len(recs), "err", err)
	}
	time.AfterFunc(wait, s.c.Wake)
}

// Healthy returns why dead letters cannot be written right now, or nil.
func (s *Store) Healthy() error { return s.failing.Err() }

// writeSome writes as many of recs as fit in the open segment (at least one,
// in a fresh segment), fsyncs, and returns how many it wrote.
func (s *Store) writeSome(recs []pending) (int, error) {
	if s.f != nil && s.fsize >= s.opts.SegmentBytes {
		if err := s.closeSegment(); err != nil {
			s.log.Warn("closing a full segment", "err", err)
		}
	}
	if s.f == nil {
		if err := s.openSegment(); err != nil {
			return 0, err
		}
	}
	s.buf.Reset()
	n := 0
	for _, p := range recs {
		before := s.buf.Len()
		appendRecord(&s.buf, &p.rec)
		// The rest goes to the next segment; a record larger than a whole
		// segment gets a fresh one to itself.
		if s.fsize+int64(s.buf.Len()) > s.opts.SegmentBytes && (n > 0 || s.fsize > 0) {
			s.buf.Truncate(before)
			break
		}
		n++
	}
	if n == 0 {
		if err := s.closeSegment(); err != nil {
			s.log.Warn("closing a full segment", "err", err)
		}
		return s.writeSome(recs)
	}
	name := s.segs[len(s.segs)-1].name
	if _, err := s.f.Write(s.buf.Bytes()); err != nil {
		s.abandonSegment()
		return 0, fmt.Errorf("deadletter: write %s: %w", name, err)
	}
	start := time.Now()
	err := s.syncFile(s.f)
	s.m.fsync.Observe(time.Since(start).Seconds())
	if err != nil {
		// After a failed fsync the page cache state is unknown: don't
		// append to this file again.
		s.abandonSegment()
		return 0, fmt.Errorf("deadletter: fsync %s: %w", name, err)
	}
	size := int64(s.buf.Len())
	s.fsize += size
	s.total += size
	s.segs[len(s.segs)-1].size = s.fsize
	s.m.bytes.Set(float64(s.total))
	if s.buf.Cap() > 4<<20 {
		s.buf = bytes.Buffer{} // one huge group shouldn't pin its buffer
	}
	return n, nil
}

// abandonSegment cuts a failed write off the open segment (so that no torn
// record sits in front of later ones) and closes it; the next write starts a
// new segment.
// A segment left empty is removed, so that a failing disk retried for a
// while does not leave a trail of empty files.
func (s *Store) abandonSegment() {
	if err := s.f.Truncate(s.fsize); err != nil {
		s.log.Warn("truncating a failed segment", "err", err)
	}
	if err := s.f.Close(); err != nil {
		s.log.Warn("closing a failed segment", "err", err)
	}
	s.f = nil
	if last := s.segs[len(s.segs)-1]; s.fsize == 0 && last.size == 0 {
		if err := os.Remove(filepath.Join(s.dir, last.name)); err == nil {
			s.segs = s.segs[:len(s.segs)-1]
		}
	}
}

func segmentName(seq uint64, t time.Time) string {
	return fmt.Sprintf("dl-%010d-%s.jsonl", seq, t.UTC().Format("20060102T150405Z"))
}

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, "dl-")
	if !ok || !strings.HasSuffix(rest, ".jsonl") {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, err == nil
}

func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range entries {
		seq, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		segs = append(segs, segment{name: e.Name(), seq: seq, size: info.Size()})
	}
	// By sequence, not by name: the time in the name follows the clock,
	// which may have been set back.
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	return segs, nil
}

// openSegment starts a new segment. Appending to an old one is never done:
// it may end in a line torn by a crash, which the next record would join.
func (s *Store) openSegment() error {
	name := segmentName(s.nextSeq, s.now())
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	// The new name must survive a crash as well as the data written to it.
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(filepath.Join(s.dir, name))
		return fmt.Errorf("deadletter: %w", err)
	}
	s.f, s.fsize = f, 0
	s.segs = append(s.segs, segment{name: name, seq: s.nextSeq})
	s.nextSeq++
	return nil
}

func (s *Store) closeSegment() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("deadletter: close segment: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// evict deletes the oldest segments while the total exceeds MaxBytes. It
// never deletes the open segment.
func (s *Store) evict() {
	removed := false
	for s.total > s.opts.MaxBytes && len(s.segs) > 1 {
		sg := s.segs[0]
		path := filepath.Join(s.dir, sg.name)
		records := countLines(path)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.m.writeErrors.Inc()
			s.log.Error("evicting a dead-letter segment failed", "segment", sg.name, "err", err)
			return
		}
		removed = true
		s.segs = s.segs[1:]
		s.total -= sg.size
		s.m.evictedRecords.Add(float64(records))
		s.m.evictedBytes.Add(float64(sg.size))
		s.m.bytes.Set(float64(s.total))
		// Once a minute: a flood deletes segments many times a second.
		if now := time.Now(); now.Sub(s.evictLogged) >= time.Minute {
			s.log.Warn("dead-letter store full: deleted the oldest segment", "segment", sg.name,
				"records", records, "bytes", sg.size, "max_bytes", s.opts.MaxBytes,
				"segments_deleted_since_last_log", s.evictQuiet)
			s.evictLogged, s.evictQuiet = now, 0
		} else {
			s.evictQuiet++
		}
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			s.log.Warn("syncing the dead-letter folder", "err", err)
		}
	}
}

func countLines(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte{'\n'})
}

// hasControl reports a control character other than JSON's white space:
// no JSON holds one, and as text each would be written as a six-byte \u
// escape (a 256 KiB payload of them a 1.5 MB record), base64 takes 4/3.
func hasControl(p []byte) bool {
	for _, c := range p {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

// line is a record on disk.
type line struct {
	Received   string  `json:"received"` // RFC 3339, nanoseconds, UTC
	Topic      string  `json:"topic"`
	Reason     string  `json:"reason"`
	Detail     string  `json:"detail,omitempty"`
	Index      int     `json:"index"`
	Payload    *string `json:"payload,omitempty"`     // the payload, when it is valid UTF-8 without control characters
	PayloadB64 []byte  `json:"payload_b64,omitempty"` // else its bytes, base64
}

// appendRecord encodes rec as one JSON line. It cannot fail: every field is
// a string, an int or bytes, and the time is formatted by hand (time's own
// MarshalJSON refuses years past 9999).
func appendRecord(buf *bytes.Buffer, rec *Record) {
	l := line{
		Received: rec.Received.UTC().Format(time.RFC3339Nano),
		Topic:    rec.Topic,
		Reason:   rec.Reason,
		Detail:   rec.Detail,
		Index:    rec.Index,
	}
	if utf8.Valid(rec.Payload) && !hasControl(rec.Payload) {
		p := string(rec.Payload)
		l.Payload = &p
	} else {
		l.PayloadB64 = rec.Payload
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // payloads hold URLs and "<"; keep them readable
	_ = enc.Encode(&l)       // writes to a bytes.Buffer do not fail
}
