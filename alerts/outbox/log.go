package outbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/fenceline/fenceline/internal/model"
)

// loaded is an alert read back from the log, before it is matched to the
// sinks configured now.
type loaded struct {
	seq   uint64
	key   key
	raw   json.RawMessage
	alert *model.Alert
	sinks map[string]bool // still to deliver, by sink name
}

// load reads the log into o's state. A missing log is an empty outbox.
func (o *Outbox) load() error {
	f, err := os.Open(filepath.Join(o.dir, logName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()

	byseq := make(map[uint64]*loaded)
	var (
		headerSeen bool
		maxSeq     uint64
		next       uint64
		lineNo     int
	)
	r := bufio.NewReaderSize(f, 256<<10)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				o.log.Warn("ignoring the log's last record: written only partly before a crash",
					"line", lineNo+1, "bytes", len(line))
			}
			break
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		lineNo++
		rec, derr := decodeLine(bytes.TrimSuffix(line, []byte{'\n'}))
		if derr == nil && rec.T == recAlert {
			derr = o.loadAlert(rec, byseq)
		}
		if derr != nil {
			if _, perr := r.Peek(1); errors.Is(perr, io.EOF) {
				o.log.Warn("ignoring the log's last record: damaged, most likely torn by a crash",
					"line", lineNo, "err", derr)
				break
			}
			o.m.corrupt.Inc()
			o.log.Error("skipping a damaged record in the middle of the outbox log; an alert or a delivery record may be lost",
				"line", lineNo, "err", derr)
			continue
		}
		switch rec.T {
		case recHeader:
			if rec.V != formatVersion {
				return fmt.Errorf("log format version %d, this fenceline reads %d", rec.V, formatVersion)
			}
			headerSeen = true
			next = rec.Next
			o.noteOrdinal(rec.Ord)
		case recKeys:
			for _, k := range rec.Keys {
				o.dedupe.add(key{k[0], k[1]})
			}
		case recAlert:
			maxSeq = max(maxSeq, rec.Seq)
		case recDone:
			if l := byseq[rec.Seq]; l != nil {
				delete(l.sinks, rec.Sink)
				if len(l.sinks) == 0 {
					delete(byseq, rec.Seq)
				}
			}
		default:
			o.log.Warn("ignoring an outbox log record of unknown type", "line", lineNo, "type", rec.T)
		}
	}
	if lineNo > 0 && !headerSeen {
		o.log.Error("outbox log has no header; reading it as version 1", "lines", lineNo)
	}
	o.nextSeq = max(next, maxSeq+1, 1)
	o.adopt(byseq)
	return nil
}

// loadAlert adds an alert record to byseq and its key to the dedupe window.
func (o *Outbox) loadAlert(rec *record, byseq map[uint64]*loaded) error {
	if rec.Seq == 0 {
		return errors.New("alert record without seq")
	}
	a := new(model.Alert)
	if err := json.Unmarshal(rec.Alert, a); err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	a.Ordinal = rec.Seq
	if rec.Ord != 0 {
		a.Ordinal = rec.Ord
	}
	o.noteOrdinal(a.Ordinal)
	k := keyOf(a)
	if k.id != "" {
		o.dedupe.add(k)
	}
	if len(rec.Sinks) == 0 || byseq[rec.Seq] != nil {
		return nil
	}
	l := &loaded{seq: rec.Seq, key: k, raw: rec.Alert, alert: a, sinks: make(map[string]bool, len(rec.Sinks))}
	for _, s := range rec.Sinks {
		l.sinks[s] = true
	}
	byseq[rec.Seq] = l
	return nil
}

// adopt turns the loaded alerts into entries for the sinks configured now.
// Deliveries owed to a sink that is gone are dropped: its name may come
// back, but as a different receiver (webhooks are named by position).
func (o *Outbox) adopt(byseq map[uint64]*loaded) {
	idx := make(map[string]int, len(o.sinks))
	for _, s := range o.sinks {
		idx[s.name] = s.idx
	}
	seqs := make([]uint64, 0, len(byseq))
	for seq := range byseq {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	type gone struct {
		n   int
		ids []string
	}
	removed := make(map[string]*gone)
	for _, seq := range seqs {
		l := byseq[seq]
		e := &entry{seq: seq, key: l.key, alert: l.alert, raw: l.raw, pending: make([]bool, len(o.sinks))}
		for name := range l.sinks {
			i, ok := idx[name]
			if !ok {
				g := removed[name]
				if g == nil {
					g = &gone{}
					removed[name] = g
				}
				g.n++
				if len(g.ids) < 5 {
					g.ids = append(g.ids, o.opts.ShownID(l.alert))
				}
				continue
			}
			e.pending[i] = true
			e.left++
		}
		if e.left == 0 {
			continue
		}
		o.entries[seq] = e
		if e.key.id != "" {
			o.byKey[e.key] = e
		}
		for _, s := range o.sinks {
			if e.pending[s.idx] {
				s.push(e) // in seq order: seqs is sorted
			}
		}
	}
	names := make([]string, 0, len(removed))
	for name := range removed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g := removed[name]
		o.m.removedSinks.Add(float64(g.n))
		o.log.Error("ALERT DROPPED for sink: no longer configured (removed, or its URL changed)",
			"sink", name, "alerts", g.n, "first_ids", g.ids)
	}
}

// keysPerRecord bounds a "keys" line, so that reading one back needs no
// unusual buffer and a damaged line costs few keys.
const keysPerRecord = 500

// compact rewrites the log to the pending alerts and the dedupe window via a
// temporary file renamed over it, then continues appending to the new file.
// It runs on the committer goroutine (or in Open before it starts).
func (o *Outbox) compact() error {
	type snap struct {
		seq   uint64
		ord   uint64 // record's Ord: 0 when it is seq
		key   key
		raw   json.RawMessage
		sinks []string
	}
	o.mu.Lock()
	snaps := make([]snap, 0, len(o.entries))
	for _, e := range o.entries {
		s := snap{seq: e.seq, ord: ordField(e), key: e.key, raw: e.raw}
		for _, st := range o.sinks {
			if e.pending[st.idx] {
				s.sinks = append(s.sinks, st.name)
			}
		}
		snaps = append(snaps, s)
	}
	o.mu.Unlock()
	slices.SortFunc(snaps, func(a, b snap) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})

	path := filepath.Join(o.dir, logName)
	tmp := filepath.Join(o.dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}

	var buf bytes.Buffer
	w := bufio.NewWriterSize(f, 256<<10)
	var n int64
	put := func(r *record) error {
		buf.Reset()
		if err := appendRecord(&buf, r); err != nil {
			return err
		}
		m, err := w.Write(buf.Bytes())
		n += int64(m)
		return err
	}
	if err := put(&record{T: recHeader, V: formatVersion, Next: o.nextSeq, Ord: o.MaxOrdinal()}); err != nil {
		return fail(err)
	}
	// Keys and pending alerts go out in the window's order, so that the
	// window reads back with the same oldest keys first. Pending alerts
	// whose key has left the window (or that have no id) come first.
	pendingAt := make(map[key]int, len(snaps))
	written := make([]bool, len(snaps))
	for i, s := range snaps {
		if s.key.id != "" && o.dedupe.has(s.key) {
			pendingAt[s.key] = i
			continue
		}
		if err := put(&record{T: recAlert, Seq: s.seq, Ord: s.ord, Sinks: s.sinks, Alert: s.raw}); err != nil {
			return fail(err)
		}
		written[i] = true
	}
	var (
		chunk [][2]string
		werr  error
	)
	flush := func() {
		if len(chunk) > 0 && werr == nil {
			werr = put(&record{T: recKeys, Keys: chunk})
		}
		chunk = chunk[:0]
	}
	o.dedupe.each(func(k key) {
		if i, ok := pendingAt[k]; ok && !written[i] {
			flush()
			if werr == nil {
				werr = put(&record{T: recAlert, Seq: snaps[i].seq, Ord: snaps[i].ord, Sinks: snaps[i].sinks, Alert: snaps[i].raw})
			}
			written[i] = true
			return
		}
		chunk = append(chunk, [2]string{k.id, k.state})
		if len(chunk) == keysPerRecord {
			flush()
		}
	})
	flush()
	if werr != nil {
		return fail(werr)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := o.syncTimed(f); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	// The rename is durable only once the folder is: until then a crash
	// may bring back the old log, which is still a correct (longer) one,
	// but without what is appended to the new one: write does not call
	// those appends back before the folder's fsync succeeds.
	o.dirUnsynced = false
	if err := o.syncDir(); err != nil {
		o.dirUnsynced = true
		o.log.Warn("cannot fsync the outbox folder after compaction; alerts wait until it can be", "err", err)
	}
	if o.f != nil {
		o.f.Close()
	}
	o.f = f
	o.size, o.baseSize = n, n
	o.needRewrite = false
	o.m.compactions.Inc()
	o.m.logBytes.Set(float64(n))
	o.log.Debug("outbox log compacted", "bytes", n, "pending", len(snaps), "dedupe_keys", o.dedupe.len())
	return nil
}

func (o *Outbox) syncDir() error {
	d, err := os.Open(o.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return o.syncTimed(d)
}
