package engine

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fenceline/fenceline/internal/model"
)

// stateEncoder writes the JSON of rules' saved states: what
// json.Marshal(rs) gives for each, byte for byte. encoding/json spent most
// of a save calling time.Time's MarshalJSON for every time of the state
// and then checking and compacting what each call returned, and the rest
// reflecting over the types: a second for a state of 18 MB, during which
// the alerts of incidents, which wait for the save, wait too. The fields
// below are those of ruleSnapshot and of the types it holds, in their
// order and with their tags' names and omitempty; TestStateEncoder and
// FuzzStateEncoder hold the output to encoding/json's for values of every
// field, so that a field added to one of these types and not here fails
// them.
//
// The methods append to a buffer, which is written to w whenever it holds
// chunk bytes at the end of one of a rule's entries: a rule's state is
// megabytes, and a buffer grown to hold it all cost a tenth of the
// encoding, and its size in memory.
type stateEncoder struct {
	w     io.Writer
	chunk int
	buf   []byte
	err   error // of w
	// bad is set by a value encoding/json refuses (a time outside years
	// 0–9999 or with an offset of 24 hours or more, a NaN or infinite
	// float): the rule's output is wrong.
	bad bool
}

// saveChunk is how much of the JSON a save holds before writing it.
const saveChunk = 64 << 10

// writeRule writes sep and the JSON of a rule's saved state, and returns
// w's error. The JSON is wrong if bad is set then (see refused).
func (e *stateEncoder) writeRule(sep byte, rs *ruleSnapshot) error {
	e.bad = false
	b := e.rule(append(e.buf[:0], sep), rs)
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
	e.buf = b[:0]
	return e.err
}

// refused is the error of a rule's state in which the encoder met a value
// encoding/json refuses: encoding/json's, which says which value.
func refused(rs *ruleSnapshot) error {
	if _, err := json.Marshal(rs); err != nil {
		return err
	}
	return errors.New("a time or number JSON cannot hold")
}

// flush writes b out once it holds a chunk, at the end of an entry.
func (e *stateEncoder) flush(b []byte) []byte {
	if len(b) < e.chunk {
		return b
	}
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
	return b[:0]
}

func (e *stateEncoder) rule(b []byte, rs *ruleSnapshot) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, rs.ID)
	b = append(b, `,"fingerprint":`...)
	b = appendJSONString(b, rs.Fingerprint)
	if len(rs.Cooldowns) > 0 {
		b = appendList(append(b, `,"cooldowns":`...), rs.Cooldowns, e.cooldown)
	}
	if len(rs.Counts) > 0 {
		b = appendList(append(b, `,"counts":`...), rs.Counts, e.count)
	}
	if len(rs.Dwell) > 0 {
		b = appendList(append(b, `,"dwell":`...), rs.Dwell, e.dwell)
	}
	if len(rs.Velocity) > 0 {
		b = appendList(append(b, `,"velocity":`...), rs.Velocity, e.velocity)
	}
	if len(rs.Fence) > 0 {
		b = appendList(append(b, `,"fence":`...), rs.Fence, e.fence)
	}
	if len(rs.Status) > 0 {
		b = appendList(append(b, `,"status":`...), rs.Status, e.status)
	}
	if len(rs.Silence) > 0 {
		b = appendList(append(b, `,"silence":`...), rs.Silence, e.silence)
	}
	return append(b, '}')
}

func (e *stateEncoder) cooldown(b []byte, c *cooldownSnap) []byte {
	b = append(b, `{"key":{"subject":`...)
	b = appendSubject(b, c.Key.Subject)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, c.Key.Zone)
	if c.Key.Device != "" {
		b = append(b, `,"device":`...)
		b = appendJSONString(b, c.Key.Device)
	}
	b = append(b, `},"fired":[`...)
	for i, t := range c.Fired {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.time(b, t)
	}
	b = append(b, ']')
	if c.Until != ([cooldownSlots]time.Time{}) {
		// Only when a slot holds a span: a state without is what the
		// versions before spans wrote, and read.
		b = append(b, `,"until":[`...)
		for i, t := range c.Until {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.time(b, t)
		}
		b = append(b, ']')
	}
	b = append(b, `,"next":`...)
	b = strconv.AppendInt(b, int64(c.Next), 10)
	b = append(b, `,"touched":`...)
	b = e.time(b, c.Touched)
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) count(b []byte, c *countSnap) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, c.Key)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, c.Zone)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, c.Site)
	b = append(b, `,"clock":`...)
	b = e.time(b, c.Clock)
	b = append(b, `,"processed":`...)
	b = e.time(b, c.Processed)
	b = appendList(append(b, `,"evidence":`...), c.Evidence, e.evidence)
	if c.Open != nil {
		b = e.incident(append(b, `,"open":`...), c.Open)
	}
	b = appendList(append(b, `,"subjects":`...), c.Subjects, e.seen)
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) seen(b []byte, s *seenSnap) []byte {
	b = append(b, `{"subject":`...)
	b = appendSubject(b, s.Subject)
	b = append(b, `,"t":`...)
	b = e.time(b, s.T)
	return append(b, '}')
}

func (e *stateEncoder) dwell(b []byte, d *dwellSnap) []byte {
	b = append(b, `{"subject":`...)
	b = appendSubject(b, d.Subject)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, d.Zone)
	if d.Backlog {
		b = append(b, `,"backlog":true`...)
	}
	b = append(b, `,"site":`...)
	b = appendJSONString(b, d.Site)
	b = append(b, `,"first":`...)
	b = e.time(b, d.First)
	b = append(b, `,"last":`...)
	b = e.time(b, d.Last)
	b = append(b, `,"processed":`...)
	b = e.time(b, d.Processed)
	b = append(b, `,"loc":`...)
	b = e.point(b, &d.Loc)
	b = append(b, `,"sightings":`...)
	b = strconv.AppendInt(b, int64(d.Sightings), 10)
	b = appendList(append(b, `,"evidence":`...), d.Evidence, e.evidence)
	if d.Open != nil {
		b = e.incident(append(b, `,"open":`...), d.Open)
	}
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) velocity(b []byte, v *velSnap) []byte {
	b = append(b, `{"subject":`...)
	b = appendSubject(b, v.Subject)
	if v.Backlog {
		b = append(b, `,"backlog":true`...)
	}
	b = append(b, `,"t":`...)
	b = e.time(b, v.T)
	b = append(b, `,"loc":`...)
	b = e.point(b, &v.Loc)
	b = append(b, `,"device":`...)
	b = appendJSONString(b, v.Device)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, v.Seq, 10)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, v.Site)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, v.Zone)
	b = append(b, `,"processed":`...)
	b = e.time(b, v.Processed)
	if !v.Sent.IsZero() {
		b = append(b, `,"sent":`...)
		b = e.time(b, v.Sent)
	}
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) fence(b []byte, f *fenceSnap) []byte {
	b = append(b, `{"subject":`...)
	b = appendSubject(b, f.Subject)
	b = appendStrings(append(b, `,"inside":`...), f.Inside)
	b = append(b, `,"last":`...)
	b = e.time(b, f.Last)
	b = append(b, `,"processed":`...)
	b = e.time(b, f.Processed)
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) status(b []byte, s *statusSnap) []byte {
	b = append(b, `{"device":`...)
	b = appendJSONString(b, s.Device)
	b = append(b, `,"last":`...)
	b = e.time(b, s.Last)
	if s.Open != nil {
		b = e.incident(append(b, `,"open":`...), s.Open)
	}
	if s.FiredWith != 0 {
		b = strconv.AppendUint(append(b, `,"fired_with":`...), uint64(s.FiredWith), 10)
	}
	return e.flush(append(b, '}'))
}

// silence is a device and its incident's fields, in one object.
func (e *stateEncoder) silence(b []byte, s *silenceSnap) []byte {
	b = append(b, `{"device":`...)
	b = appendJSONString(b, s.Device)
	b = e.incidentFields(append(b, ','), &s.incident)
	return e.flush(append(b, '}'))
}

func (e *stateEncoder) incident(b []byte, inc *incident) []byte {
	b = e.incidentFields(append(b, '{'), inc)
	return append(b, '}')
}

func (e *stateEncoder) incidentFields(b []byte, inc *incident) []byte {
	b = e.alert(append(b, `"alert":`...), &inc.Alert)
	b = append(b, `,"last_sent":`...)
	b = e.time(b, inc.LastSent)
	if inc.Repeats != 0 {
		b = append(b, `,"repeats":`...)
		b = strconv.AppendInt(b, int64(inc.Repeats), 10)
	}
	if inc.Ordinal != 0 {
		b = append(b, `,"ordinal":`...)
		b = strconv.AppendUint(b, inc.Ordinal, 10)
	}
	return b
}

func (e *stateEncoder) alert(b []byte, a *model.Alert) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, a.ID)
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, a.Rule)
	b = append(b, `,"severity":`...)
	b = appendJSONString(b, a.Severity)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, a.State)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, a.Site)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, a.Zone)
	b = append(b, `,"subject":`...)
	b = appendSubject(b, a.Subject)
	b = append(b, `,"summary":`...)
	b = appendJSONString(b, a.Summary)
	b = append(b, `,"at":`...)
	b = e.time(b, a.At)
	b = append(b, `,"raised_at":`...)
	b = e.time(b, a.RaisedAt)
	b = append(b, `,"location":`...)
	if a.Location == nil {
		b = append(b, "null"...)
	} else {
		b = e.point(b, a.Location)
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(a.Count), 10)
	b = appendList(append(b, `,"evidence":`...), a.Evidence, e.evidence)
	b = appendStrings(append(b, `,"notify":`...), a.Notify)
	b = appendList(append(b, `,"nearest_patrols":`...), a.NearestPatrols, e.patrol)
	b = append(b, `,"late":`...)
	b = strconv.AppendBool(b, a.Late)
	if a.Repeat != 0 {
		b = append(b, `,"repeat":`...)
		b = strconv.AppendInt(b, int64(a.Repeat), 10)
	}
	return append(b, '}')
}

func (e *stateEncoder) evidence(b []byte, ev *model.Evidence) []byte {
	b = append(b, `{"device":`...)
	b = appendJSONString(b, ev.Device)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, `,"ts":`...)
	b = e.time(b, ev.TS)
	return append(b, '}')
}

func (e *stateEncoder) patrol(b []byte, p *model.PatrolRef) []byte {
	b = append(b, `{"device":`...)
	b = appendJSONString(b, p.Device)
	b = append(b, `,"distance_km":`...)
	b = e.float(b, p.DistanceKm)
	b = append(b, `,"seen":`...)
	b = e.time(b, p.Seen)
	return append(b, '}')
}

func (e *stateEncoder) point(b []byte, p *model.Point) []byte {
	b = append(b, `{"lat":`...)
	b = e.float(b, p.Lat)
	b = append(b, `,"lon":`...)
	b = e.float(b, p.Lon)
	return append(b, '}')
}

func appendSubject(b []byte, s model.Subject) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, s.Kind)
	b = append(b, `,"value":`...)
	b = appendJSONString(b, s.Value)
	return append(b, '}')
}

// appendList appends s as a JSON array, each element by elem; a nil slice
// is null, as encoding/json has it.
func appendList[T any](b []byte, s []T, elem func([]byte, *T) []byte) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, &s[i])
	}
	return append(b, ']')
}

func appendStrings(b []byte, s []string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// time appends t as time.Time's MarshalJSON does (RFC 3339, the
// fraction of the second without its trailing zeros), and sets bad where
// MarshalJSON fails (time/format_rfc3339.go, appendStrictRFC3339): a year
// outside [0,9999], an offset of 24 hours or more. The time package's
// formatting, general and with padding loops, was half of the encoding.
func (e *stateEncoder) time(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	secs := t.Unix() + int64(offset) // the wall clock's, since 1970-01-01T00:00:00
	days := secs / 86400
	if secs%86400 < 0 {
		days--
	}
	clock := int(secs - days*86400)
	year, month, day := civilDate(days)
	zone := offset / 60 // minutes, as the time package truncates it
	if year < 0 || year > 9999 || zone <= -24*60 || zone >= 24*60 {
		e.bad = true
		return b
	}
	b = append(b, '"')
	b = append2(b, int(year/100))
	b = append2(b, int(year%100))
	b = append(b, '-')
	b = append2(b, month)
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, clock/3600)
	b = append(b, ':')
	b = append2(b, clock/60%60)
	b = append(b, ':')
	b = append2(b, clock%60)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	if offset == 0 {
		return append(b, 'Z', '"')
	}
	sign := byte('+')
	if zone < 0 {
		sign, zone = '-', -zone
	}
	b = append(b, sign)
	b = append2(b, zone/60)
	b = append(b, ':')
	b = append2(b, zone%60)
	return append(b, '"')
}

// civilDate is the proleptic Gregorian date (year 0 being 1 BC, as in the
// time package) of the day days after 1970-01-01: H. Hinnant's
// civil_from_days, on eras of 400 years starting on March 1st.
func civilDate(days int64) (year int64, month, day int) {
	z := days + 719468 // days since 0000-03-01
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365], from March 1st
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// append2 appends n (0 to 99) as two digits.
func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// float appends f as encoding/json does (encode.go, floatEncoder): the
// shortest representation, with an exponent only for very small and very
// large magnitudes, and that without a leading zero. NaN and infinities
// set bad.
func (e *stateEncoder) float(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.bad = true
		return b
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// jsonSafe tells the ASCII bytes that json.Marshal writes as they are in a
// string: not control characters, quotes, backslashes, nor (HTML escaping,
// which it does by default) <, > and &.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := range safe {
		safe[c] = c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string as json.Marshal does
// (encode.go, appendString with HTML escaping): invalid UTF-8 becomes
// U+FFFD, and U+2028 and U+2029 are escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
