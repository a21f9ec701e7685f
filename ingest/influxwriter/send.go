package influxwriter

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// request is a part of a batch being written: a run of spans, whose lines
// are contiguous in the batch buffer.
type request struct {
	spans []span
}

func (r request) body(buf []byte) []byte {
	return buf[r.spans[0].off:r.spans[len(r.spans)-1].end]
}

func (r request) lines() int {
	n := 0
	for _, s := range r.spans {
		n += s.lines
	}
	return n
}

// oneGroup reports whether all spans belong to one Write.
func (r request) oneGroup() bool {
	for _, s := range r.spans[1:] {
		if s.g != r.spans[0].g {
			return false
		}
	}
	return true
}

// process writes one batch, splitting it as InfluxDB's answers require, and
// calls back every group.
func (w *Writer) process(ctx context.Context, b *batch) {
	w.m.batchLines.Observe(float64(b.lines))
	stack := []request{{spans: b.spans}}
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		res := w.send(ctx, r.body(b.buf), r.lines())
		switch {
		case res.spooled:
			w.settleSpooled(r.spans)
		case res.stopped:
			w.settle(r.spans, ErrStopped)
			for _, r := range stack {
				w.settle(r.spans, ErrStopped)
			}
			return
		case res.status == 0:
			w.settle(r.spans, nil)
		case res.status == http.StatusRequestEntityTooLarge:
			// Too big for the server's max-body-size: halves, down to
			// single lines if need be (a message's lines may be split:
			// its callback then waits for every part).
			if lo, hi, ok := splitRequest(b.buf, r); ok {
				stack = append(stack, hi, lo)
				continue
			}
			w.reject(r, b.buf, res)
		default: // 400, 422: bad points somewhere in there
			// InfluxDB 1.8 writes the good points of a "partial write" and
			// tells only how many it dropped. When that is all of them
			// (a field type conflict usually hits every line of a
			// measurement), each message is rejected at once. Otherwise
			// bisection finds the messages that fail, then, within a
			// message, the lines: its dead letter names the readings
			// refused, and only those count as rejected. Rewriting the
			// good points is harmless, their times make them the same
			// points.
			dropped, known := droppedLines(res.message)
			switch {
			case known && dropped >= r.lines():
				for _, s := range r.spans {
					w.reject(request{spans: []span{s}}, b.buf, res)
				}
			case !r.oneGroup():
				mid := len(r.spans) / 2
				stack = append(stack, request{spans: r.spans[mid:]}, request{spans: r.spans[:mid]})
			case known:
				if lo, hi, ok := splitRequest(b.buf, r); ok {
					stack = append(stack, hi, lo)
					continue
				}
				w.reject(r, b.buf, res)
			default:
				w.reject(r, b.buf, res)
			}
		}
	}
}

// reject settles r's lines with a PermanentError. The log is rate-limited:
// the callers dead-letter each message with the error, so the log only needs
// to tell an operator that it is happening.
func (w *Writer) reject(r request, buf []byte, res result) {
	err := &PermanentError{Status: res.status, Message: res.message, Times: lineTimes(r.body(buf))}
	w.hmu.Lock()
	now := time.Now()
	if now.Sub(w.rejectLoggedAt) >= 10*time.Second {
		w.log.Warn("influxdb rejected a message's points for good", "lines", r.lines(),
			"measurement", r.spans[0].g.measurement, "status", res.status, "err", logSafe(res.message),
			"also_rejected_since_last_log", w.rejectsUnlogged)
		w.rejectLoggedAt, w.rejectsUnlogged = now, 0
	} else {
		w.rejectsUnlogged++
	}
	w.hmu.Unlock()
	w.settle(r.spans, err)
}

// droppedLines reads how many lines InfluxDB 1.x dropped from the end of a
// "partial write" message ("… dropped=3"). Lines it could not parse are not
// in that count (1.8 says dropped=0 when they are all there is): the count
// is a lower bound, and a partial write of any count is known to have
// written the rest.
func droppedLines(msg string) (int, bool) {
	if !strings.HasPrefix(msg, "partial write") {
		return 0, false
	}
	i := strings.LastIndex(msg, " dropped=")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(msg[i+len(" dropped="):]))
	return n, err == nil && n >= 0
}

// lineTimes returns the times (the last field) of the lines in body.
func lineTimes(body []byte) []int64 {
	var times []int64
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if t, err := strconv.ParseInt(string(line[bytes.LastIndexByte(line, ' ')+1:]), 10, 64); err == nil {
			times = append(times, t)
		}
	}
	return times
}

// splitRequest halves a request: by spans if it has several, else by lines
// at the newline nearest the middle of its one span.
func splitRequest(buf []byte, r request) (lo, hi request, ok bool) {
	if len(r.spans) > 1 {
		mid := len(r.spans) / 2
		return request{spans: r.spans[:mid]}, request{spans: r.spans[mid:]}, true
	}
	s := r.spans[0]
	if s.lines < 2 {
		return lo, hi, false
	}
	body := buf[s.off:s.end]
	// Cut after the newline that ends the first half of the lines.
	want, cut := s.lines/2, 0
	for n := 0; n < want; n++ {
		i := bytes.IndexByte(body[cut:], '\n')
		if i < 0 {
			return lo, hi, false
		}
		cut += i + 1
	}
	s.g.parts++
	a := span{g: s.g, off: s.off, end: s.off + cut, lines: want}
	b := span{g: s.g, off: s.off + cut, end: s.end, lines: s.lines - want}
	return request{spans: []span{a}}, request{spans: []span{b}}, true
}

// result is the final answer to one request body: status 0 for success,
// otherwise a non-retryable status; stopped if ctx ended first; spooled if
// the body is durable in the spool instead.
type result struct {
	status  int
	message string
	stopped bool
	spooled bool
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// send writes body until InfluxDB accepts it or answers with a status that
// retrying cannot change, retrying everything else (network errors, 5xx,
// 429, 401/403, 404) with capped, jittered exponential backoff. With a
// spool, a body that InfluxDB did not take (or, while writes are failing,
// any body at once) goes to the spool instead when it has room.
func (w *Writer) send(ctx context.Context, body []byte, lines int) result {
	if w.spoolFirst() && w.trySpool(body, lines) {
		return result{spooled: true}
	}
	payload, contentEncoding := w.payload(body)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		a := w.post(ctx, payload, contentEncoding)
		w.m.duration.Observe(time.Since(start).Seconds())
		if a.class == "" {
			w.m.batches[outcomeSuccess].Inc()
			w.recovered()
			return result{}
		}
		if ctx.Err() != nil {
			return result{stopped: true}
		}
		w.m.errors[a.class].Inc()
		switch a.class {
		case classTooLarge, classBadRequest:
			w.m.batches[outcomeRejected].Inc()
			// The server answered: it is up, whatever it thinks of these points.
			w.recovered()
			return result{status: a.status, message: a.message}
		}
		w.m.batches[outcomeRetry].Inc()
		wait := backoff(attempt, w.cfg.MaxBackoff)
		if a.retryAfter > 0 {
			// The server knows when it will take writes again; a bogus
			// value must not stall us for hours.
			wait = min(a.retryAfter, maxRetryAfter)
		}
		w.failed(a, attempt, wait)
		if w.trySpool(body, lines) {
			return result{spooled: true}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return result{stopped: true}
		case <-t.C:
		}
	}
}

const maxRetryAfter = 5 * time.Minute

// tlsText reports a TLS failure by its text, for errors whose types are
// gone: the client library's Ping flattens them, and net/http turns the
// RecordHeaderError of a plain http server into an error of its own. The
// crypto packages' messages start with their package's name.
func tlsText(msg string) bool {
	return strings.Contains(msg, "x509: ") || strings.Contains(msg, "tls: ") ||
		strings.Contains(msg, "server gave HTTP response to HTTPS client")
}

// noAnswerClass is the class of a request that got no HTTP answer: tls when
// the TLS handshake failed on what the configuration says — a certificate
// that influx.tls.ca_file does not vouch for or that names another host, a
// client certificate InfluxDB refused, plain http on the other end of an
// https:// URL. Waiting for InfluxDB does not help then: the operator must
// change influx.tls or influx.url (the runbook says so per class).
func noAnswerClass(err error) string {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		alert     tls.AlertError
	)
	if errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) ||
		errors.As(err, &invalid) || errors.As(err, &header) || errors.As(err, &alert) ||
		tlsText(err.Error()) {
		return classTLS
	}
	return classNetwork
}

// payload is what goes over the wire for body: itself, or gzipped.
func (w *Writer) payload(body []byte) ([]byte, string) {
	if !w.cfg.Gzip {
		return body, ""
	}
	var zb bytes.Buffer
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(&zb)
	_, _ = zw.Write(body) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	gzipPool.Put(zw)
	return zb.Bytes(), "gzip"
}

// backoff is the pause before retry attempt+1: exponential from 100ms,
// capped, with the upper half jittered so that writers that failed together
// do not come back together.
func backoff(attempt int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

// answer is the outcome of one HTTP request.
type answer struct {
	class      string // "" for success
	status     int
	message    string
	retryAfter time.Duration
	err        error
}

// post sends one body. It goes through the client's HTTPService, which adds
// the Authorization and User-Agent headers, and reads the answer itself: the
// service's own error parsing expects InfluxDB 2.x's JSON errors and loses
// the message of 1.8's {"error": "…"}.
func (w *Writer) post(ctx context.Context, payload []byte, contentEncoding string) answer {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.writeURL, bytes.NewReader(payload))
	if err != nil {
		return answer{class: classNetwork, err: err}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	resp, err := w.svc.DoHTTPRequestWithResponse(req, nil)
	if err != nil {
		return answer{class: noAnswerClass(err), err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain so that the connection goes back to the pool.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return answer{status: resp.StatusCode}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a := answer{
		class:      classify(resp.StatusCode),
		status:     resp.StatusCode,
		message:    w.redact(errorMessage(resp, raw)),
		retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if a.class == classServer && strings.Contains(a.message, "retention policy not found") {
		// InfluxDB 1.8 answers a bucket's missing retention policy with a
		// 500: the operator's to create, as a missing database (404) is,
		// not an overloaded server to wait for.
		a.class = classNotFound
	}
	a.err = fmt.Errorf("HTTP %d: %s", a.status, a.message)
	return a
}

func classify(status int) string {
	switch {
	case status/100 == 2:
		return ""
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		// 422 is InfluxDB 2.x's answer to a partial write.
		return classBadRequest
	case status == http.StatusRequestEntityTooLarge:
		return classTooLarge
	case status == http.StatusTooManyRequests:
		return classThrottled
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		// Credentials get fixed by an operator; the data must wait, not go.
		return classAuth
	case status == http.StatusNotFound:
		// "database not found": created by an operator, or by a restore.
		return classNotFound
	default:
		// 5xx, and anything unexpected (a proxy's 405, 408, 502…): retry
		// rather than dead-letter good data because of the path to it.
		return classServer
	}
}

// errorMessage extracts InfluxDB's message: 1.8 answers {"error":"…"}
// (and repeats it, cut at 1 KiB, in X-Influxdb-Error), 2.x answers
// {"code":"…","message":"…"}.
func errorMessage(resp *http.Response, raw []byte) string {
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil {
		if body.Error != "" {
			return body.Error
		}
		if body.Message != "" {
			return body.Message
		}
	}
	if h := resp.Header.Get("X-Influxdb-Error"); h != "" {
		return h
	}
	if s := strings.TrimSpace(string(raw)); s != "" {
		return s
	}
	return http.StatusText(resp.StatusCode)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// failed records a failed request for Healthy/LastError and logs it: the
// first failure of a streak at once, then at most every 30s. attempt < 0 is
// a replay of spooled batches.
func (w *Writer) failed(a answer, attempt int, wait time.Duration) {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	now := time.Now()
	if !w.failing {
		w.failing, w.failedAt, w.failures = true, now, 0
		w.loggedAt = time.Time{}
	}
	w.failures++
	w.lastErr = fmt.Errorf("influxdb write: %w", a.err)
	if a.class == classNetwork || a.class == classTLS {
		w.reached = false
	}
	if now.Sub(w.loggedAt) >= 30*time.Second {
		w.loggedAt = now
		if attempt < 0 {
			w.log.Warn("influxdb write of spooled batches failed; replay retries", "class", a.class, "status", a.status,
				"err", a.err, "failing_for", now.Sub(w.failedAt).Round(time.Millisecond))
			return
		}
		w.log.Warn("influxdb write failed; retrying", "class", a.class, "status", a.status,
			"err", a.err, "attempt", attempt+1, "retry_in", wait, "failing_for", now.Sub(w.failedAt).Round(time.Millisecond))
	}
}

// recovered records that InfluxDB answered a write.
func (w *Writer) recovered() {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	if w.failing {
		w.log.Info("influxdb writes recovered", "failed_requests", w.failures,
			"after", time.Since(w.failedAt).Round(time.Millisecond), "spooled_batches_not_logged", w.spooledUnlogged)
	}
	// The next outage's first spooled batch is logged at once, with its own
	// count.
	w.spoolLoggedAt, w.spooledUnlogged = time.Time{}, 0
	w.failing, w.reached, w.lastErr = false, true, nil
	w.lastOK = time.Now()
}
