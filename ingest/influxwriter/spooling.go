package influxwriter

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// Spooling: what the writer does with a batch InfluxDB does not take, when
// Config.Spool is set.
//
//   - A batch whose write fails with a retryable error (no answer, timeout,
//     5xx, 429, 401/403, 404) goes to the spool after that first failed
//     attempt, and while writes are failing (Healthy is false after a failed
//     request) every new batch goes to the spool at once, without trying
//     InfluxDB: the broker is relieved within one fsync instead of waiting
//     for the outage to end. The batch's callbacks are called with nil only
//     after the spool's fsync, so its messages are acked then and not before.
//   - When the spool does not take the batch (full, or its disk fails) the
//     writer keeps it in memory and retries InfluxDB as it always did; the
//     pending lines then reach MaxPending, Write blocks, the MQTT handler
//     waits and the broker holds the backlog. Nothing is dropped.
//   - The spool's replayer sends the spooled batches oldest first through
//     replay below. Its requests are also what notices that InfluxDB is back
//     while all live traffic goes to the spool: its first success makes the
//     writer healthy, and new batches go to InfluxDB directly again while
//     the replayer drains the backlog beside them. Live and replayed points
//     may land in either order; a point's time comes from its reading, so
//     the result in InfluxDB is the same.
//   - Lines InfluxDB refuses for good on replay (400/422 bisected down to
//     single lines, or 413 on a single line) go to Config.Rejected.

// spoolFirst reports whether a new batch should skip InfluxDB and go to the
// spool at once: there is a spool, and writes are failing.
func (w *Writer) spoolFirst() bool {
	if w.cfg.Spool == nil {
		return false
	}
	w.hmu.Lock()
	defer w.hmu.Unlock()
	return w.failing
}

// trySpool appends body to the spool and waits for its fsync. It reports
// whether the body is durable there; false without a spool, when it is full
// or when the write failed (the caller then retries InfluxDB).
func (w *Writer) trySpool(body []byte, lines int) bool {
	sp := w.cfg.Spool
	if sp == nil || sp.Usable() != nil {
		return false
	}
	res := make(chan error, 1)
	sp.Append(body, func(err error) { res <- err })
	// No select on ctx: the spool's committer runs until the senders have
	// stopped (see Run), and a batch whose fsync is under way must learn
	// whether its messages may be acked.
	if err := <-res; err != nil {
		return false // the spool logged and counted it
	}
	w.m.batches[outcomeSpooled].Inc()
	w.m.spooledLines.Add(float64(lines))
	w.hmu.Lock()
	now := time.Now()
	// A batch spooled while InfluxDB came back (its fsync took longer than
	// the replayer's first success) warns of nothing.
	if w.failing && now.Sub(w.spoolLoggedAt) >= 30*time.Second {
		w.log.Warn("influxdb is not taking writes; batches go to the spool and are replayed when it does",
			"lines", lines, "batches_spooled_since_last_log", w.spooledUnlogged, "err", w.lastErr)
		w.spoolLoggedAt, w.spooledUnlogged = now, 0
	} else {
		w.spooledUnlogged++
	}
	w.hmu.Unlock()
	return true
}

// replay writes one chunk of spooled lines for the spool's replayer. It
// returns nil when InfluxDB acknowledged every line, or refused some for
// good and Rejected kept them; an error makes the replayer send the same
// chunk again later. Lines are split as InfluxDB's answers require: halves
// for 413, bisection down to single lines for 400/422 (InfluxDB 1.8 writes
// the good points of a "partial write"; writing them again is harmless).
func (w *Writer) replay(ctx context.Context, body []byte) error {
	stack := [][]byte{body}
	if left, ok := w.resume.of(body); ok {
		stack = left
	}
	w.resume = replayProgress{}
	for len(stack) > 0 {
		b := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if ctx.Err() != nil {
			w.resume.keep(body, append(stack, b))
			return ctx.Err()
		}
		payload, enc := w.payload(b)
		start := time.Now()
		a := w.post(ctx, payload, enc)
		w.m.duration.Observe(time.Since(start).Seconds())
		w.m.replayedRequests.Inc()
		if a.class == "" {
			w.recovered()
			w.countReplayed(b)
			continue
		}
		if ctx.Err() != nil {
			w.resume.keep(body, append(stack, b))
			return ctx.Err()
		}
		w.m.errors[a.class].Inc()
		switch a.class {
		case classTooLarge, classBadRequest:
			w.recovered() // it answered: it is up
			if lo, hi, ok := halveLines(b); ok {
				stack = append(stack, hi, lo)
				continue
			}
			if err := w.rejectReplayed(b, a); err != nil {
				w.resume.keep(body, append(stack, b))
				return err
			}
		default:
			w.failed(a, -1, 0)
			w.resume.keep(body, append(stack, b))
			return fmt.Errorf("influxdb write of spooled lines: %w", a.err)
		}
	}
	return nil
}

// replayProgress is the parts of a chunk replay has not written (nor kept
// as rejected) yet, when it failed on them: the replayer sends the same
// chunk again, and the parts done are not done twice — lines InfluxDB
// refused for good were dead-lettered, counted and logged (as a dropped
// alert, for an alert's line) again after a 5xx on a later part.
type replayProgress struct {
	body []byte   // a copy of the chunk
	left [][2]int // offsets in body of the parts left, the next one last
}

// keep remembers the parts of body in stack (slices of it) as left.
func (p *replayProgress) keep(body []byte, stack [][]byte) {
	p.body = bytes.Clone(body)
	p.left = p.left[:0]
	for _, b := range stack {
		off := cap(body) - cap(b) // b is body[off:end]
		p.left = append(p.left, [2]int{off, off + len(b)})
	}
}

// of returns the parts left of body, if it is the chunk kept.
func (p *replayProgress) of(body []byte) ([][]byte, bool) {
	if p.body == nil || !bytes.Equal(p.body, body) {
		return nil, false
	}
	stack := make([][]byte, len(p.left))
	for i, r := range p.left {
		stack[i] = body[r[0]:r[1]]
	}
	return stack, true
}

// halveLines cuts b (newline-terminated lines) at the newline nearest its
// middle; false for a single line.
func halveLines(b []byte) (lo, hi []byte, ok bool) {
	body := b[:len(b)-1] // without the last newline
	mid := len(body) / 2
	if i := bytes.IndexByte(body[mid:], '\n'); i >= 0 {
		return b[:mid+i+1], b[mid+i+1:], true
	}
	if i := bytes.LastIndexByte(body[:mid], '\n'); i >= 0 {
		return b[:i+1], b[i+1:], true
	}
	return nil, nil, false
}

// rejectReplayed hands a spooled line that InfluxDB refused for good to
// Rejected, and logs it (rate-limited: without the line, which may hold
// identifiers).
func (w *Writer) rejectReplayed(line []byte, a answer) error {
	pe := &PermanentError{Status: a.status, Message: a.message}
	if w.cfg.Rejected != nil {
		if err := w.cfg.Rejected(bytes.Clone(line), pe); err != nil {
			return fmt.Errorf("keeping a spooled line InfluxDB refused: %w", err)
		}
	}
	w.m.replayRejected.Inc()
	w.hmu.Lock()
	defer w.hmu.Unlock()
	now := time.Now()
	if now.Sub(w.rejectLoggedAt) >= 10*time.Second {
		w.log.Error("influxdb refused a spooled line for good", "status", a.status,
			"kept_as_dead_letter", w.cfg.Rejected != nil, "also_rejected_since_last_log", w.rejectsUnlogged)
		w.rejectLoggedAt, w.rejectsUnlogged = now, 0
	} else {
		w.rejectsUnlogged++
	}
	return nil
}

// ReadyToStore reports whether a message written now would be made durable:
// nil while InfluxDB takes writes (Healthy), or while it does not but the
// spool takes batches (within its bound, its disk writable); otherwise why
// not. The daemon's /readyz check is this: ready while InfluxDB is
// reachable or spooling within bounds. Healthy stays the narrower "InfluxDB
// itself takes writes".
func (w *Writer) ReadyToStore() error {
	if w.Healthy() {
		return nil
	}
	influxErr := w.LastError()
	if w.cfg.Spool == nil {
		return fmt.Errorf("cannot store: %w", influxErr)
	}
	if err := w.cfg.Spool.Ready(); err != nil {
		return fmt.Errorf("cannot store: %v; cannot spool: %w", influxErr, err)
	}
	return nil
}

// countReplayed counts the lines of a replayed chunk InfluxDB acknowledged:
// in replayed_lines_total, and in points_written_total by measurement (the
// name before a line's first comma or space: the encoder writes only its
// own names, which need no escaping), so that points_written_total counts
// every point stored, whichever way it went.
func (w *Writer) countReplayed(b []byte) {
	n := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		n++
		if end := bytes.IndexAny(line, ", "); end > 0 {
			if c, ok := w.m.points[string(line[:end])]; ok {
				c.Inc()
			}
		}
	}
	w.m.replayedLines.Add(float64(n))
}
