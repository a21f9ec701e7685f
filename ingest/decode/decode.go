package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fenceline/fenceline/internal/model"
)

// Defaults of Options.
const (
	DefaultMaxPayload = 256 << 10
	DefaultMaxFuture  = 5 * time.Minute
)

// Options configure a Decoder. Zero values take the defaults.
type Options struct {
	// MaxPayload is the largest payload accepted, in bytes (default 256 KiB).
	MaxPayload int
	// MaxFuture is how far after Now a ts may be (default 5m).
	MaxFuture time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Decoder decodes and validates device messages. It reuses its parse tape
// and buffers between calls, so it is NOT safe for concurrent use: give each
// goroutine its own Decoder.
type Decoder struct {
	maxPayload int
	maxFuture  time.Duration
	now        func() time.Time

	t       tape
	rejects []Reject
	zones   zoneCache

	// strs collects the copied string values of one message; they become one
	// string (one allocation) whose substrings the readings then share.
	strs     []byte
	detStrs  []detStrs
	passStrs []passStrs

	// The detections fast path (fastdet.go): the readings scanDetections
	// read, their ts values, and whether it has run for this payload.
	fast       fastDets
	scanDets   arraySkipper // d.scanDetections, made once
	noFastPath bool         // tests: always the generic path

	// Per message.
	arr     string      // name of the readings array, for details ("" for position/status)
	seq     int64       // the message's seq
	seqRead bool        // seq was read (the message may still be rejected whole after it)
	msgTime time.Time   // the message's ts
	loc     model.Point // the position of a detections or passes message
	// registeredLoc: the last position location read is the device's
	// registered one (the message gave none, or 0, 0).
	registeredLoc bool
	limit         time.Time // the latest acceptable ts (now + MaxFuture)
}

// New returns a Decoder.
func New(opts Options) *Decoder {
	d := &Decoder{maxPayload: opts.MaxPayload, maxFuture: opts.MaxFuture, now: opts.Now}
	if d.maxPayload <= 0 {
		d.maxPayload = DefaultMaxPayload
	}
	if d.maxFuture <= 0 {
		d.maxFuture = DefaultMaxFuture
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.scanDets = d.scanDetections
	return d
}

// span is a string value's place in Decoder.strs.
type span struct{ off, end uint32 }

func (d *Decoder) put(b []byte) span {
	off := len(d.strs)
	d.strs = append(d.strs, b...)
	return span{uint32(off), uint32(len(d.strs))}
}

func (d *Decoder) spanFrom(off int) span { return span{uint32(off), uint32(len(d.strs))} }

func sub(s string, sp span) string { return s[sp.off:sp.end] }

// Decode decodes one message: topic, payload and the time it was received.
// It resets out and fills it with the message's accepted readings, and
// returns the rejections, each with its reason and the index of the reading
// (or -1 for the whole message). The returned slice is reused by the next
// call. When the whole message is rejected, out has no readings and the
// slice has exactly one entry, with Index -1; out.Meta then holds what was
// read before the failure (at least Topic and Received).
//
// Every reading of a message that was not rejected whole is either in out or
// rejected, once: len(readings array) == out.Len() + len(rejects).
//
// The strings in out share one allocation per message; a consumer that keeps
// a few of them for long may want to strings.Clone them.
func (d *Decoder) Decode(topic string, payload []byte, received time.Time, reg *model.Registry, out *model.Batch) []Reject {
	rej := d.decode(topic, payload, received, reg, out)
	d.t.src = nil // do not keep the caller's payload alive
	return rej
}

func (d *Decoder) decode(topic string, payload []byte, received time.Time, reg *model.Registry, out *model.Batch) []Reject {
	out.Reset()
	out.Topic, out.Received = topic, received
	d.rejects = d.rejects[:0]
	d.strs = d.strs[:0]
	d.arr = ""
	d.seqRead = false

	site, kind, id, stream, ok := ParseTopic(topic)
	if !ok {
		return d.whole(BadTopic, "topic "+echoTopic(topic)+" is not border/{site}/{fence|checkpoint|patrol}/{device}/{detections|passes|position|status}: "+topicProblem(topic))
	}
	out.Site, out.Kind, out.Meta.Device, out.Stream = site, kind, id, stream
	dev := reg.Lookup(id)
	if dev == nil {
		return d.whole(UnknownDevice, "device "+id+" is not registered")
	}
	if dev.Site != site || dev.Kind != kind {
		return d.whole(DeviceMismatch, "topic has site "+site+", kind "+string(kind)+
			"; device "+id+" is registered at site "+dev.Site+", kind "+string(dev.Kind))
	}
	out.Device = dev
	if !stream.AllowedFor(kind) {
		return d.whole(StreamNotAllowed, "a "+string(kind)+" device may not publish "+stream.String())
	}
	if len(payload) > d.maxPayload {
		return d.whole(TooLarge, strconv.Itoa(len(payload))+" bytes, limit "+strconv.Itoa(d.maxPayload))
	}
	if !d.parse(payload, stream) {
		return d.whole(MalformedJSON, malformed(payload))
	}
	if k := d.t.kind(0); k != kObject {
		return d.whole(MalformedJSON, "payload is a JSON "+k.String()+", want an object")
	}

	var f fields
	f.collect(&d.t, 0, topKeys)
	if i := f.firstDup(streamKeys[stream]); i >= 0 {
		return d.whole(BadField, "duplicate key "+topNames[i])
	}
	if r, msg := d.envelope(&f); r != "" {
		return d.whole(r, msg)
	}
	out.Seq, out.Time = d.seq, d.msgTime
	if msg := foreignReadings(d, &f, kind, stream); msg != "" {
		return d.whole(StreamNotAllowed, msg)
	}

	switch stream {
	case model.StreamDetections:
		d.arr = "detections"
		d.detections(&f, f.vals[tDetections], dev, out)
	case model.StreamPasses:
		d.arr = "passes"
		d.passes(&f, f.vals[tPasses], dev, out)
	case model.StreamPosition:
		d.position(&f, dev, out)
	case model.StreamStatus:
		d.status(&f, out)
	}
	return d.rejects
}

const envelopeKeys = 1<<tV | 1<<tSeq | 1<<tTS

// streamKeys are the top-level keys of each stream (duplicates of other keys
// are ignored, like the keys themselves).
var streamKeys = [...]uint32{
	model.StreamDetections: envelopeKeys | 1<<tLoc | 1<<tLat | 1<<tLon | 1<<tDatum | 1<<tDetections,
	model.StreamPasses:     envelopeKeys | 1<<tLoc | 1<<tLat | 1<<tLon | 1<<tDatum | 1<<tPasses,
	model.StreamPosition:   envelopeKeys | 1<<tLoc | 1<<tLat | 1<<tLon | 1<<tDatum | 1<<tSpeed | 1<<tHeading | 1<<tAccuracy,
	model.StreamStatus: envelopeKeys | 1<<tBattery | 1<<tTemp | 1<<tUptime | 1<<tTamper |
		1<<tPower | 1<<tSignal | 1<<tQueue | 1<<tFW,
}

// foreignReadings names what makes a message one of another stream, "" if
// nothing does: a readings array of another stream, or a patrol's status
// message holding a fix (lat, lon, loc, speed_kmh, heading, accuracy_m)
// and no status field. It is a unit publishing on the wrong topic; read as
// the topic says, the array would be an unknown key and the message an
// empty status (or a position at the registered place), its readings gone
// without a word. Rejected whole, it is dead-lettered with its payload. A
// fence's or checkpoint's status with its position is no misrouted fix
// (they send none): an empty status.
func foreignReadings(d *Decoder, f *fields, kind model.Kind, stream model.Stream) string {
	for _, k := range [...]int{tDetections, tPasses} {
		if streamKeys[stream]&(1<<k) == 0 && d.present(f.vals[k]) {
			return "a " + stream.String() + " message holds a " + topNames[k] + " array: it belongs on the " + topNames[k] + " topic"
		}
	}
	if stream != model.StreamStatus || kind != model.KindPatrol {
		return ""
	}
	fix := false
	for _, k := range [...]int{tLat, tLon, tLoc, tSpeed, tHeading, tAccuracy} {
		fix = fix || d.present(f.vals[k])
	}
	if !fix {
		return ""
	}
	for k := range topNames {
		if streamKeys[stream]&^envelopeKeys&(1<<k) != 0 && d.present(f.vals[k]) {
			return "" // a status that also says where the unit is
		}
	}
	return "a status message holds a position fix and no status field: it belongs on the position topic"
}

// whole rejects the whole message.
func (d *Decoder) whole(r Reason, detail string) []Reject {
	d.rejects = append(d.rejects[:0], Reject{Reason: r, Index: -1, Detail: detail})
	return d.rejects
}

// reject rejects reading i; field may be "".
func (d *Decoder) reject(r Reason, i int, field, msg string) {
	path := field
	if d.arr != "" {
		path = d.arr + "[" + strconv.Itoa(i) + "]"
		if field != "" {
			path += "." + field
		}
	}
	detail := msg
	if path != "" {
		detail = path + ": " + msg
	}
	d.rejects = append(d.rejects, Reject{Reason: r, Index: i, Detail: detail})
}

// Seq returns the seq of the last message decoded, and whether it was read:
// a message rejected whole after its seq (a bad or future ts) was still
// received, and its seq counts for gaps.
func (d *Decoder) Seq() (int64, bool) { return d.seq, d.seqRead }

// envelope reads v, seq and ts.
func (d *Decoder) envelope(f *fields) (Reason, string) {
	v := f.vals[tV]
	if !d.present(v) {
		return BadVersion, "v is missing"
	}
	if n, msg := d.integer(v, 0); msg != "" || n != 1 {
		return BadVersion, "v: want 1"
	}
	v = f.vals[tSeq]
	if !d.present(v) {
		return BadSeq, "seq is missing"
	}
	seq, msg := d.integer(v, 0)
	if msg != "" {
		return BadSeq, "seq: " + msg
	}
	d.seq, d.seqRead = seq, true
	v = f.vals[tTS]
	if !d.present(v) {
		return BadTS, "ts is missing"
	}
	d.limit = d.now().Add(d.maxFuture)
	t, r, msg := d.ts(v)
	if r != "" {
		return r, "ts: " + msg
	}
	d.msgTime = t
	return "", ""
}

// ts reads a ts value: RFC 3339 with offset, or integer Unix milliseconds,
// from 2000 on and at most MaxFuture ahead.
func (d *Decoder) ts(v uint32) (time.Time, Reason, string) { return d.tsOf(d.t.toks[v]) }

// tsOf is ts of a token (of the tape, or one the fast path read).
func (d *Decoder) tsOf(tk token) (time.Time, Reason, string) {
	var t time.Time
	switch tk.kind {
	case kString:
		b := d.t.strOf(&tk)
		var ok bool
		if t, ok = d.zones.parseRFC3339(b); !ok {
			// In the form, but not a time (2026-02-30, 24:30): say which
			// part, as Go's parser does (only that: its other messages
			// quote the text, which may hold an identifier).
			var pe *time.ParseError
			if _, err := time.Parse(time.RFC3339Nano, string(b)); errors.As(err, &pe) && strings.HasSuffix(pe.Message, " out of range") {
				return t, BadTS, echoTS(b) + ": " + strings.TrimPrefix(pe.Message, ": ")
			}
			return t, BadTS, echoTS(b) + " is not RFC 3339 with an offset (2006-01-02T15:04:05.999Z07:00)"
		}
	case kNumber:
		ms, ok := jsonInt(d.t.src[tk.start:tk.end])
		if !ok || ms > maxUnixMilli {
			return t, BadTS, "want integer Unix milliseconds up to year 9999"
		}
		if ms < minUnixMilli {
			return t, BadTS, "Unix milliseconds before 2000-01-01"
		}
		t = time.UnixMilli(ms).UTC()
	default:
		return t, BadTS, "want RFC 3339 string or integer Unix milliseconds, got " + tk.kind.String()
	}
	if t.Before(minTime) {
		return t, BadTS, "before 2000-01-01"
	}
	if t.After(d.limit) {
		now := d.limit.Add(-d.maxFuture)
		if t.Sub(now) > 1000*24*time.Hour {
			// A Duration tops out at 292 years and would print as such:
			// the date says more.
			return t, FutureTS, t.UTC().Format(time.DateOnly) + " is more than " + d.maxFuture.String() + " in the future"
		}
		// To the millisecond: just past the limit, whole seconds would
		// read "5m0s after now, more than 5m0s".
		ahead := t.Sub(now).Round(time.Millisecond)
		return t, FutureTS, ahead.String() + " after now, more than " + d.maxFuture.String() + " in the future"
	}
	return t, "", ""
}

// stamp returns the stamp of reading i with its own ts v (if present).
func (d *Decoder) stamp(v uint32, i int) (model.Stamp, Reason, string) {
	if !d.present(v) {
		return d.stampOf(token{kind: kNull}, i)
	}
	return d.stampOf(d.t.toks[v], i)
}

// stampOf is stamp of a ts token; kNull is absent.
func (d *Decoder) stampOf(tk token, i int) (model.Stamp, Reason, string) {
	t := d.msgTime
	if tk.kind != kNull {
		var r Reason
		var msg string
		if t, r, msg = d.tsOf(tk); r != "" {
			return model.Stamp{}, r, msg
		}
	}
	return model.Stamp{Time: t, PointNS: model.PointTime(t, d.seq, i), Index: i}, "", ""
}

// readingsArray checks that v is the readings array and returns its tape
// index, or rejects the message.
func (d *Decoder) readingsArray(v uint32) (int, bool) {
	if !d.present(v) {
		d.whole(NoReadings, d.arr+" is missing")
		return 0, false
	}
	if k := d.t.kind(int(v)); k != kArray {
		d.whole(BadField, d.arr+": want array, got "+k.String())
		return 0, false
	}
	return int(v), true
}

// tooManyDetail is the detail of the readings past
// model.MaxReadingsPerMessage (one shared string).
var tooManyDetail = [...]string{
	"detections: more than " + strconv.Itoa(model.MaxReadingsPerMessage) + " readings; the readings from index " +
		strconv.Itoa(model.MaxReadingsPerMessage) + " on are rejected",
	"passes: more than " + strconv.Itoa(model.MaxReadingsPerMessage) + " readings; the readings from index " +
		strconv.Itoa(model.MaxReadingsPerMessage) + " on are rejected",
}

// tooMany rejects reading i, past model.MaxReadingsPerMessage, unread.
func (d *Decoder) tooMany(i int) {
	detail := tooManyDetail[0]
	if d.arr == "passes" {
		detail = tooManyDetail[1]
	}
	d.rejects = append(d.rejects, Reject{Reason: TooManyReadings, Index: i, Detail: detail})
}

// strings returns the message's collected string values as one string.
func (d *Decoder) strings() string {
	if len(d.strs) == 0 {
		return ""
	}
	return string(d.strs)
}

// echoTopic renders a bad topic for a detail line, bounded.
func echoTopic(t string) string {
	const max = 96
	if len(t) > max {
		return strconv.Quote(t[:max]) + "…"
	}
	return strconv.Quote(t)
}

// malformed says why payload, refused by the parser, is not a JSON value
// fenceline reads, and where: the operator looks for the unit's fault in
// the dead letter's payload. The parser says only no, fast; this path runs
// for refused payloads only.
func malformed(payload []byte) string {
	n := strconv.Itoa(len(payload)) + " bytes"
	if bytes.HasPrefix(payload, []byte{0xff, 0xfe}) || bytes.HasPrefix(payload, []byte{0xfe, 0xff}) {
		return "payload (" + n + ") starts with a UTF-16 byte-order mark: JSON is sent as UTF-8 (RFC 8259, section 8.1)"
	}
	if !utf8.Valid(payload) {
		i := 0 // the first byte of no character
		for i < len(payload) {
			r, size := utf8.DecodeRune(payload[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return "payload (" + n + ") is not valid UTF-8: from byte offset " + strconv.Itoa(i) + " (a byte of no UTF-8 character, or a character cut short)"
	}
	if bytes.HasPrefix(payload, []byte("\xef\xbb\xbf")) {
		return "payload (" + n + ") starts with a UTF-8 byte-order mark (EF BB BF), which JSON does not allow (RFC 8259, section 8.1)"
	}
	if json.Valid(payload) && nesting(payload) > maxDepth {
		return "payload (" + n + ") nests arrays and objects more than " + strconv.Itoa(maxDepth) + " deep"
	}
	var raw json.RawMessage
	var se *json.SyntaxError
	if err := json.Unmarshal(payload, &raw); errors.As(err, &se) {
		if se.Offset >= int64(len(payload)) && strings.Contains(se.Error(), "end of JSON input") {
			return "payload (" + n + ") is not valid JSON: it ends before its value does (cut short?)"
		}
		return "payload (" + n + ") is not valid JSON: " + se.Error() + ", at byte offset " + strconv.FormatInt(se.Offset-1, 10)
	}
	return "payload (" + n + ") is not valid JSON"
}

// nesting is the deepest nesting of arrays and objects in the valid JSON b.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++ // the escaped byte
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
