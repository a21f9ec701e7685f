// Package influxwriter is the hot write path from decoded readings to
// InfluxDB: it encodes batches into line protocol following the contract's
// schema and writes them through InfluxDB's /api/v2/write (1.8 compatibility
// API or 2.x) with batching, backpressure, retries and per-message
// acknowledgement.
package influxwriter

import (
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/fenceline/fenceline/internal/model"
)

// Measurement names of the contract's InfluxDB schema.
const (
	MeasurementDetection = "phone_detection"
	MeasurementPass      = "vehicle_pass"
	MeasurementPosition  = "patrol_position"
	MeasurementStatus    = "device_status"
	MeasurementAlert     = "alert"
)

// The times a point can have: nanoseconds since 1970 in an int64.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Measurements lists the measurements, for pre-creating metric labels.
var Measurements = []string{MeasurementDetection, MeasurementPass, MeasurementPosition, MeasurementStatus, MeasurementAlert}

// Encoder appends the line protocol of batches and alerts to byte slices. It
// keeps scratch space between calls so that encoding does not allocate once
// warm; it is not safe for concurrent use (use one per goroutine).
//
// Readings, the hot path, are appended by hand-written code (lines.go): the
// lineprotocol.Encoder escapes every key and value through several
// strings.Count calls and costs about 2.3 µs per detection line on the target
// machine, a quarter of fenceline's CPU budget per reading at 100k readings/s
// on 2 cores shared with InfluxDB. The tests hold that code to byte-for-byte
// equality with lineprotocol.Encoder. Alerts are rare and go through
// lineprotocol.Encoder itself.
type Encoder struct {
	lp      lineprotocol.Encoder
	scratch []byte

	// The position of the previous line and its encoded ",lat=…,lon=…": the
	// readings of one message nearly always share the message's position,
	// and formatting two floats is the dearest part of a line.
	locValid bool
	loc      model.Point
	locBytes []byte

	seq []byte // " seq=<n>i" of the batch being encoded

	// The point time's digits above the lowest twelve (see appendTime).
	timeValid  bool
	timeHi     int64
	timeDigits []byte // " " and its digits

	// Where the previous detection line of the batch being encoded has its
	// tail, from ",lat=" (none for the zero Point) to its point time's
	// digits above the lowest six, in the batch's output, and the position
	// and millisecond it is for (see appendLocTime).
	tailValid          bool
	tailLoc            model.Point
	tailMS             int64
	tailStart, tailEnd int

	// bound, when not nil, bounds the tags whose values are device text
	// (see TagBound).
	bound TagBound

	// tagSets is allocated on first use; uncached encoders (the one-shot
	// package-level AppendBatch) build every tag set instead.
	tagSets  *tagSetCache
	uncached bool
	key      tagSetKey // the site and device of the batch, packed
	keyLong  bool      // one of them is longer than a word
	keyHash  uint64    // their hash
}

// TagBound bounds the distinct values of the tags whose values are device
// text: mcc, operator and tech (detections), plate_color and vehicle_type
// (passes). *tagcap.Cap is one.
//
// A value Admit refuses is written as the tag model.OverflowTag, with its
// text in the field <tag>_text (an empty value is never asked about: it is
// no tag). A bound refuses a value that cannot be a tag as sent
// (model.TagFits) too: its text is kept whole in the field, where the tag
// would have lost its backslashes. Admit's answer for a value must never
// change: the encoder caches it with the encoded tag set, so that the bound
// costs nothing per reading once a tag set has been seen, and asks again
// only when that tag set leaves its cache. Overflowed is called for every
// reading written with OverflowTag in place of v, cached or not, for the
// bound's counts.
type TagBound interface {
	Admit(tag, v string) bool
	Overflowed(tag, v string)
}

// SetTagBound makes e bound tags with tb (nil: not at all). Encoders are
// used by one goroutine each, but encoders that share a bound must be used
// by one goroutine in all unless the bound is safe for concurrent use (the
// Writer's are: see Config.Tags).
func (e *Encoder) SetTagBound(tb TagBound) {
	e.bound = tb
	// The tag sets cached so far were bounded by the previous bound.
	e.tagSets = nil
}

// AppendBatch appends one line per reading of b to dst and returns the
// extended slice. Readings always encode: times are int64 nanoseconds,
// text is sanitised, and non-finite numbers (which JSON cannot carry) are
// left out as absent.
func AppendBatch(dst []byte, b *model.Batch) []byte {
	e := Encoder{uncached: true}
	out, _ := e.AppendBatch(dst, b)
	return out
}

// AppendAlert appends the alert's line to dst. It fails, appending nothing,
// for an alert without any time or with a time InfluxDB cannot store.
func AppendAlert(dst []byte, a *model.Alert) ([]byte, error) {
	var e Encoder
	return e.AppendAlert(dst, a)
}

// AppendBatch is the package-level AppendBatch, also returning the number of
// lines appended.
func (e *Encoder) AppendBatch(dst []byte, b *model.Batch) ([]byte, int) {
	m := &b.Meta
	e.locValid, e.tailValid = false, false
	e.seq = appendInt(e.seq[:0], " seq=", m.Seq)
	if len(b.Detections)+len(b.Passes) > 0 && !e.uncached {
		e.startTagSets(m)
	}
	for i := range b.Detections {
		dst = e.detection(dst, m, &b.Detections[i])
	}
	for i := range b.Passes {
		dst = e.pass(dst, m, &b.Passes[i])
	}
	for i := range b.Positions {
		dst = e.position(dst, m, &b.Positions[i])
	}
	for i := range b.Statuses {
		dst = e.status(dst, m, &b.Statuses[i])
	}
	return dst, b.Len()
}

// AppendAlert is the package-level AppendAlert.
func (e *Encoder) AppendAlert(dst []byte, a *model.Alert) ([]byte, error) {
	return e.appendAlert(dst, a)
}

// appendAlert appends a's line.
func (e *Encoder) appendAlert(dst []byte, a *model.Alert) ([]byte, error) {
	at := a.At
	if at.IsZero() {
		at = a.RaisedAt
	}
	if at.IsZero() {
		// Without a time the point would be stamped by InfluxDB on arrival,
		// and a redelivered alert would become a second point.
		return dst, fmt.Errorf("alert %q has no time", a.ID)
	}
	if at.Before(minTime) || at.After(maxTime) {
		return dst, fmt.Errorf("alert %q time %s: %w", a.ID, at.Format(time.RFC3339), lineprotocol.ErrValueOutOfRange)
	}
	e.lp.SetBuffer(dst)
	e.lp.SetLax(false)
	e.lp.StartLine(MeasurementAlert)
	// Tags in lexical order: InfluxDB sorts them anyway, sorted input spares it.
	e.lpTag("rule", a.Rule)
	e.lpTag("severity", a.Severity)
	e.lpTag("site", a.Site)
	e.lpTag("state", a.State)
	e.lpTag("zone", a.Zone)
	e.lpStr("id", a.ID)
	if a.Subject.Kind != "" || a.Subject.Value != "" {
		// "kind:value" keeps the subject one field that reads well in a table
		// and splits on the first colon (kinds never contain one).
		e.lpStr("subject", a.Subject.Kind+":"+a.Subject.Value)
	}
	e.lpStr("summary", a.Summary)
	if a.Location != nil {
		e.lpFloat("lat", a.Location.Lat)
		e.lpFloat("lon", a.Location.Lon)
	}
	e.lp.AddField("count", lineprotocol.IntValue(int64(a.Count)))
	e.lp.AddField("late", lineprotocol.BoolValue(a.Late))
	e.lp.EndLine(AlertPointTime(a, at))
	out, err := e.lp.Bytes(), e.lp.Err()
	e.lp.SetBuffer(nil) // don't keep the caller's buffer alive
	if err != nil {
		return out, fmt.Errorf("alert %q: %w", a.ID, err)
	}
	return out, nil
}

// AlertPointTime is the time of a's point, whose event time (or, without
// one, its raised_at) is at: at to the millisecond, plus a sub-millisecond
// offset. Alerts of one rule, site, zone and state often share an event time
// to the nanosecond (the phones of one message, units gone silent at one
// check, incidents resolved by one reload), and on one time they would be
// one point, the last overwriting the others.
//
// The offset is the alert's ordinal (model.Alert.Ordinal) modulo the half
// millisecond: every alert fenceline fires has one of its own, kept with it
// across restarts, so any 500,000 alerts fired one after another have
// distinct offsets, and an alert written again — a retry, a re-send after a
// restart — rewrites its own point. A repeat_interval re-send has its
// firing's ordinal, and rewrites the firing's point. An alert no outbox took (no
// ordinal) draws its offset from its id and state instead, which keeps
// alerts apart with high odds only (k alerts of a series in one millisecond
// meet with odds of about k²/1,000,000).
//
// A firing's offset is in the first half of the millisecond and a
// resolved's in the second: an incident that ends at the instant it fired
// (a dwell whose last sighting completed the stay) must still read resolved
// as its latest point, which "ORDER BY time DESC LIMIT 1" finds.
func AlertPointTime(a *model.Alert, at time.Time) time.Time {
	lo, size := alertOffsets(a.State)
	off := a.Ordinal
	if off == 0 {
		h := fnv.New64a()
		h.Write([]byte(a.ID))
		h.Write([]byte{0})
		h.Write([]byte(a.State))
		off = h.Sum64()
	}
	return at.Truncate(time.Millisecond).Add(time.Duration(lo + int64(off%uint64(size))))
}

// alertOffsets is the range of sub-millisecond offsets of an alert point in
// state: [lo, lo+size) nanoseconds.
func alertOffsets(state string) (lo, size int64) {
	const half = int64(time.Millisecond) / 2
	if state == model.StateResolved {
		return half, half
	}
	return 0, half
}

func (e *Encoder) lpTag(key, value string) {
	if value != "" && !model.TagFits(value) {
		value = sanitizeTag(value)
	}
	if value != "" {
		e.lp.AddTag(key, value)
	}
}

func (e *Encoder) lpStr(key, value string) {
	if value == "" {
		return
	}
	e.scratch = sanitizeField(e.scratch[:0], value)
	if v, err := lineprotocol.NewValueFromBytes(lineprotocol.String, e.scratch); err == nil {
		e.lp.AddField(key, v)
	}
}

func (e *Encoder) lpFloat(key string, v float64) {
	if fv, ok := lineprotocol.FloatValue(v); ok {
		e.lp.AddField(key, fv)
	}
}

// sanitizeTag replaces control characters by spaces and invalid UTF-8 by
// U+FFFD, and drops backslashes (see model.TagFits). The tags of device
// text are refused by the TagBound when they do not fit (and kept whole as
// text); the rest come from validated lists, so this only runs on garbage
// where no bound is set, and garbage is better stored mangled than not at
// all.
func sanitizeTag(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '\\':
			return -1
		}
		return r
	}, s)
}

// sanitizeField appends s to dst with control characters replaced by spaces
// and invalid UTF-8 by U+FFFD. The line-protocol encoder would escape a
// newline as `\n`, but InfluxDB (1.8 and 2.x) unescapes only `\"` and `\\`
// in string fields, so the stored value would hold a literal backslash-n;
// a space is the honest rendering of a line break in a one-line value.
func sanitizeField(dst []byte, s string) []byte {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			dst = append(dst, ' ')
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
