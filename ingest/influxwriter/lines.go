package influxwriter

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/fenceline/fenceline/internal/model"
)

// The hand-written line appenders of the hot path. Each line is
//
//	measurement,tag=v,… seq=<n>i,field=v,… <ns>\n
//
// with tags in lexical order and empty tags left out (InfluxDB has no empty
// tag values), and seq first among the fields: it is always present, so the
// field list never needs to know which field comes first. InfluxDB does not
// care about field order.

// tagSpecial marks the bytes of a tag value that need a second look: the
// escaped ones (comma, space, equals sign), control characters (which have no
// escape in tags) and the bytes of non-ASCII characters (which need a UTF-8
// check). strSpecial does the same for string field values, where only the
// double quote and the backslash are escaped.
var tagSpecial, strSpecial = func() (t, s [256]bool) {
	for c := range 256 {
		other := c < 0x20 || c == 0x7f || c >= utf8.RuneSelf
		t[c] = other || c == ',' || c == ' ' || c == '='
		s[c] = other || c == '"' || c == '\\'
	}
	return
}()

// Scanning eight bytes at a time (SWAR): the values of a line are mostly
// plain ASCII, and a word-wide test that finds nothing to escape lets them be
// copied whole. The classic bit tricks: a byte of x is below n (n ≤ 0x80)
// if ((x - n·0x01…01) & ^x & 0x80…80) != 0.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func word(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func hasLess(x uint64, n byte) bool { return (x-ones*uint64(n))&^x&highs != 0 }

func hasByte(x uint64, b byte) bool { return hasLess(x^(ones*uint64(b)), 1) }

// plainPrefix returns how many leading bytes of s hold nothing that the
// word test looks for: no byte below `below` (control characters, and the
// space for tags), DEL, non-ASCII byte, nor a or b. It may stop early (at a
// word with such a byte); the caller's byte loop takes it from there.
func plainPrefix(s string, below, a, b byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := word(s, i)
		if x&highs != 0 || hasLess(x, below) || hasByte(x, 0x7f) || hasByte(x, a) || hasByte(x, b) {
			break
		}
	}
	return i
}

func (e *Encoder) detection(dst []byte, m *model.Meta, d *model.Detection) []byte {
	dst = e.tags3(dst, m, d.MCC, d.Operator, d.Tech, detectionTags)
	dst = append(dst, e.seq...)
	dst = appendStr(dst, ",imsi=", d.IMSI)
	dst = appendStr(dst, ",imei=", d.IMEI)
	dst = appendStr(dst, ",mac=", d.MAC)
	if d.RSSI.OK {
		// Always a float, whatever the payload's number looked like: a field
		// that is an integer in one shard and a float in the next breaks
		// queries, and within a shard InfluxDB rejects the write.
		dst = appendFloat(dst, ",rssi=", float64(d.RSSI.V))
	}
	dst = e.appendLoc(dst, d.Loc)
	return appendTime(dst, d.PointNS)
}

func detectionTags(dst []byte, m *model.Meta, mcc, operator, tech string) []byte {
	dst = append(dst, MeasurementDetection...)
	dst = appendTag(dst, ",device=", m.Device)
	dst = appendTag(dst, ",mcc=", mcc)
	dst = appendTag(dst, ",operator=", operator)
	dst = appendTag(dst, ",site=", m.Site)
	return appendTag(dst, ",tech=", tech)
}

func passTags(dst []byte, m *model.Meta, direction, plateColor, vehicleType string) []byte {
	dst = append(dst, MeasurementPass...)
	dst = appendTag(dst, ",device=", m.Device)
	dst = appendTag(dst, ",direction=", direction)
	dst = appendTag(dst, ",plate_color=", plateColor)
	dst = appendTag(dst, ",site=", m.Site)
	return appendTag(dst, ",vehicle_type=", vehicleType)
}

// tagSetCache holds the encoded "measurement,tags" of the last few tag sets
// of the batch being encoded, keyed by the three tag values that vary
// between readings (site and device are the message's). The readings of one
// message share a handful of tag sets (a few operators and technologies, a
// few plate colours and vehicle types), and copying 70 bytes beats escaping
// five tags.
type tagSetCache struct {
	n       int
	entries [8]tagSetEntry
	buf     []byte
	next    int // entry replaced when full (round robin)
}

type tagSetEntry struct {
	a, b, c  string
	off, end int
}

func (tc *tagSetCache) reset() {
	clear(tc.entries[:tc.n])
	tc.n, tc.next, tc.buf = 0, 0, tc.buf[:0]
}

// tags3 appends the measurement and tags of a reading whose varying tags
// are a, b, c, encoded by build on a cache miss.
func (e *Encoder) tags3(dst []byte, m *model.Meta, a, b, c string, build func([]byte, *model.Meta, string, string, string) []byte) []byte {
	tc := &e.tagSets
	for i := 0; i < tc.n; i++ {
		en := &tc.entries[i]
		if en.a == a && en.b == b && en.c == c {
			return append(dst, tc.buf[en.off:en.end]...)
		}
	}
	start := len(dst)
	dst = build(dst, m, a, b, c)
	i := tc.n
	if i == len(tc.entries) {
		// Full: overwrite round robin. The buffer only grows until the batch
		// ends; eight entries of a few hundred bytes at most.
		i = tc.next
		tc.next = (tc.next + 1) % len(tc.entries)
	} else {
		tc.n++
	}
	off := len(tc.buf)
	tc.buf = append(tc.buf, dst[start:]...)
	tc.entries[i] = tagSetEntry{a: a, b: b, c: c, off: off, end: len(tc.buf)}
	return dst
}

func (e *Encoder) pass(dst []byte, m *model.Meta, p *model.Pass) []byte {
	dst = e.tags3(dst, m, p.Direction, p.PlateColor, p.VehicleType, passTags)
	dst = append(dst, e.seq...)
	dst = appendStr(dst, ",plate=", p.Plate)
	dst = appendStr(dst, ",vehicle_color=", p.VehicleColor)
	dst = appendOptFloat(dst, ",speed_kmh=", p.SpeedKmh)
	if p.Lane.OK {
		dst = appendInt(dst, ",lane=", p.Lane.V)
	}
	dst = appendOptFloat(dst, ",heading=", p.Heading)
	dst = appendOptFloat(dst, ",confidence=", p.Confidence)
	dst = appendStr(dst, ",image=", p.Image)
	dst = e.appendLoc(dst, p.Loc)
	return appendTime(dst, p.PointNS)
}

func (e *Encoder) position(dst []byte, m *model.Meta, p *model.Position) []byte {
	dst = append(dst, MeasurementPosition...)
	dst = appendTag(dst, ",device=", m.Device)
	dst = appendTag(dst, ",site=", m.Site)
	dst = append(dst, e.seq...)
	dst = e.appendLoc(dst, p.Loc)
	dst = appendOptFloat(dst, ",speed_kmh=", p.SpeedKmh)
	dst = appendOptFloat(dst, ",heading=", p.Heading)
	dst = appendOptFloat(dst, ",accuracy_m=", p.AccuracyM)
	return appendTime(dst, p.PointNS)
}

func (e *Encoder) status(dst []byte, m *model.Meta, s *model.Status) []byte {
	dst = append(dst, MeasurementStatus...)
	dst = appendTag(dst, ",device=", m.Device)
	dst = appendTag(dst, ",kind=", string(m.Kind))
	dst = appendTag(dst, ",site=", m.Site)
	dst = append(dst, e.seq...)
	dst = appendOptFloat(dst, ",battery_pct=", s.BatteryPct)
	dst = appendOptFloat(dst, ",temp_c=", s.TempC)
	if s.UptimeS.OK {
		dst = appendInt(dst, ",uptime_s=", s.UptimeS.V)
	}
	if s.Tamper.OK {
		dst = append(dst, ",tamper="...)
		dst = strconv.AppendBool(dst, s.Tamper.V)
	}
	dst = appendStr(dst, ",power=", s.Power)
	dst = appendOptFloat(dst, ",signal_dbm=", s.SignalDbm)
	if s.Queue.OK {
		dst = appendInt(dst, ",queue=", s.Queue.V)
	}
	dst = appendStr(dst, ",fw=", s.FW)
	return appendTime(dst, s.PointNS)
}

// appendLoc writes lat/lon. The zero Point means "no position" (a device
// without a registered position whose payload carried none): 0°N 0°E is in
// the Gulf of Guinea, and a point there would only draw a false dot on maps.
func (e *Encoder) appendLoc(dst []byte, p model.Point) []byte {
	if p == (model.Point{}) {
		return dst
	}
	// Compared bit for bit: -0 == 0 but prints differently.
	if !e.locValid || math.Float64bits(p.Lat) != math.Float64bits(e.loc.Lat) || math.Float64bits(p.Lon) != math.Float64bits(e.loc.Lon) {
		e.locBytes = appendFloat(e.locBytes[:0], ",lat=", p.Lat)
		e.locBytes = appendFloat(e.locBytes, ",lon=", p.Lon)
		e.loc, e.locValid = p, true
	}
	return append(dst, e.locBytes...)
}

func appendTime(dst []byte, ns int64) []byte {
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ns, 10)
	return append(dst, '\n')
}

func appendInt(dst []byte, key string, v int64) []byte {
	dst = append(dst, key...)
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 'i')
}

func appendOptFloat(dst []byte, key string, v model.OptFloat) []byte {
	if !v.OK {
		return dst
	}
	return appendFloat(dst, key, v.V)
}

// appendFloat writes a float field the way lineprotocol.Encoder does
// (strconv 'g', shortest), except that it leaves out NaN and ±Inf, which
// InfluxDB cannot store and JSON cannot carry.
func appendFloat(dst []byte, key string, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst
	}
	dst = append(dst, key...)
	// Whole numbers below 1e6 print the same through AppendInt ('g' switches
	// to an exponent from 1e6 on, or 1e21 for integers) and cost a fraction
	// of the shortest-float search: most rssi, dBm, heading and percentage
	// values are whole.
	if v > -1e6 && v < 1e6 && v == math.Trunc(v) && !(v == 0 && math.Signbit(v)) {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendTag appends key (",name=") and the escaped value, or nothing if the
// value is empty, before or after sanitising.
func appendTag(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	n := len(dst)
	dst = append(dst, key...)
	if out, ok := appendTagValue(dst, v); ok {
		return out
	}
	if v = sanitizeTag(v); v == "" {
		return dst[:n]
	}
	out, _ := appendTagValue(dst, v)
	return out
}

// appendTagValue escapes v into dst; ok is false (and the output garbage)
// when v needs sanitising first. Most values need nothing: they are scanned
// once and copied whole.
func appendTagValue(dst []byte, v string) ([]byte, bool) {
	i := plainPrefix(v, ' '+1, ',', '=')
	for i < len(v) && !tagSpecial[v[i]] {
		i++
	}
	if i == len(v) {
		return append(dst, v...), v[len(v)-1] != '\\'
	}
	ascii := true
	dst = append(dst, v[:i]...)
	for ; i < len(v); i++ {
		c := v[i]
		if tagSpecial[c] {
			switch {
			case c >= utf8.RuneSelf:
				ascii = false
			case c < 0x20 || c == 0x7f:
				return dst, false
			default:
				dst = append(dst, '\\')
			}
		}
		dst = append(dst, c)
	}
	if v[len(v)-1] == '\\' || (!ascii && !utf8.ValidString(v)) {
		return dst, false
	}
	return dst, true
}

// appendStr appends a string field unless its value is empty (absent).
func appendStr(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, '"')
	i := plainPrefix(v, ' ', '"', '\\')
	for i < len(v) && !strSpecial[v[i]] {
		i++
	}
	if i == len(v) {
		dst = append(dst, v...)
		return append(dst, '"')
	}
	n := len(dst) - len(key) - 1
	ascii := true
	dst = append(dst, v[:i]...)
	for ; i < len(v); i++ {
		c := v[i]
		if strSpecial[c] {
			switch {
			case c >= utf8.RuneSelf:
				ascii = false
			case c < 0x20 || c == 0x7f:
				return appendStrSlow(dst[:n], key, v)
			default:
				dst = append(dst, '\\')
			}
		}
		dst = append(dst, c)
	}
	if !ascii && !utf8.ValidString(v) {
		return appendStrSlow(dst[:n], key, v)
	}
	return append(dst, '"')
}

func appendStrSlow(dst []byte, key, v string) []byte {
	return appendStr(dst, key, string(sanitizeField(nil, v)))
}
