package influxwriter

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
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
// escaped ones (comma, space, equals sign), control characters and the
// backslash (which cannot be in a tag: see model.TagFits) and the bytes of
// non-ASCII characters (which need a UTF-8 check). strSpecial does the same
// for string field values, where only the double quote and the backslash
// are escaped.
var tagSpecial, strSpecial = func() (t, s [256]bool) {
	for c := range 256 {
		other := c < 0x20 || c == 0x7f || c >= utf8.RuneSelf
		t[c] = other || c == ',' || c == ' ' || c == '=' || c == '\\'
		s[c] = other || c == '"' || c == '\\'
	}
	return
}()

// The tags a TagBound bounds, by their place among the varying tags of
// tags3 (a, b, c); "" is a tag it does not bound. A pass's direction comes
// from a fixed list the decoder checks (inbound, outbound, unknown).
var (
	detectionBounded = [3]string{"mcc", "operator", "tech"}
	passBounded      = [3]string{"", "plate_color", "vehicle_type"}
)

// The bits of an overflow mask: which of a tag set's a, b and c were
// written as model.OverflowTag.
const (
	overA uint8 = 1 << iota
	overB
	overC
)

func (e *Encoder) detection(dst []byte, m *model.Meta, d *model.Detection) []byte {
	dst, over := e.tags3(dst, tagSetDetection, m, d.MCC, d.Operator, d.Tech, &detectionBounded, detectionTags)
	dst = append(dst, e.seq...)
	dst = appendIdent(dst, ",imsi=", d.IMSI)
	dst = appendIdent(dst, ",imei=", d.IMEI)
	dst = appendIdent(dst, ",mac=", d.MAC)
	if over != 0 {
		// The text of a tag written as "other", from the reading's own
		// value: the cached tag set holds only which tags overflowed.
		if over&overC != 0 {
			dst = appendStr(dst, ",tech_text=", d.Tech)
		}
		if over&overA != 0 {
			dst = appendStr(dst, ",mcc_text=", d.MCC)
		}
		if over&overB != 0 {
			dst = appendStr(dst, ",operator_text=", d.Operator)
		}
	}
	if d.RSSI.OK {
		// Always a float, whatever the payload's number looked like: a field
		// that is an integer in one shard and a float in the next breaks
		// queries, and within a shard InfluxDB rejects the write.
		dst = appendFloat(dst, ",rssi=", float64(d.RSSI.V))
	}
	return e.appendLocTime(dst, d.Loc, d.PointNS)
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

// tagSetCache holds the encoded "measurement,tag=…" prefixes of recent tag
// sets. A tag set is bounded by the contract (device × a few code lists), so
// a busy writer sees the same few hundred over and over (50 fences × 3
// operators × 4 techs is 600), and copying 70 bytes beats escaping five
// tags. Eight-way set-associative, 256 sets: 2,048 tag sets, and eight ways
// so that a deployment's tag sets do not push each other out even where the
// hash bunches them (a set's ways are replaced in turn). A way's tag (a
// part of its key's hash) is compared before its key, so a lookup reads half
// a line of tags and the one slot that matches.
//
// The encoder's TagBound is applied here, on a miss only: the slot keeps
// the prefix with "other" in place of the values refused, and which those
// were, under the key of the values as sent. A hit reuses that answer, which
// cannot have gone stale (see TagBound); an evicted tag set is asked about
// again. So in the steady state the bound costs a reading nothing but the
// count of an overflow.
type tagSetCache struct {
	tags  [tagSetSets][tagSetWays]uint32 // hash of each way's key, 0 if empty
	next  [tagSetSets]uint8              // the way a miss replaces
	slots [tagSetSets][tagSetWays]tagSetSlot
}

const (
	tagSetBits = 8
	tagSetSets = 1 << tagSetBits
	tagSetWays = 8
)

// tagSetKey identifies a tag set: its measurement and its five strings, each
// packed into a word with its length. A string of up to eight bytes packs
// exactly, so for the tag sets of a deployment (device ids, site codes and
// code values are short) comparing keys is comparing six words, where
// comparing five strings took five calls into the runtime. A longer string
// packs only its last eight bytes, and its slot compares the strings too.
type tagSetKey struct {
	site, device, a, b, c uint64
	lens                  uint64 // the five lengths (at most 9: longer) and the measurement
}

// is compares field by field: == on the struct calls into the runtime.
func (k *tagSetKey) is(o *tagSetKey) bool {
	return k.a == o.a && k.b == o.b && k.c == o.c && k.lens == o.lens && k.device == o.device && k.site == o.site
}

// Measurement ids in a tagSetKey.
const (
	tagSetDetection = 1 + iota
	tagSetPass
)

// tagSetSlot is one cached tag set; enc is reused from one occupant of the
// slot to the next.
type tagSetSlot struct {
	key tagSetKey
	// Copies of the strings, only for a key with a string longer than eight
	// bytes: a caller may reuse the memory of its strings (zero-copy
	// decoding), and a cached key must not pin the caller's memory either.
	site, device, a, b, c string
	enc                   []byte
	over                  uint8 // which of a, b, c enc has as "other"
}

func (sl *tagSetSlot) set(key tagSetKey, long bool, m *model.Meta, a, b, c string, enc []byte, over uint8) {
	sl.key, sl.over = key, over
	sl.site, sl.device, sl.a, sl.b, sl.c = "", "", "", "", ""
	if long {
		all := m.Site + m.Device + a + b + c // one allocation
		i := 0
		cut := func(n int) string { s := all[i : i+n]; i += n; return s }
		sl.site, sl.device, sl.a, sl.b, sl.c = cut(len(m.Site)), cut(len(m.Device)), cut(len(a)), cut(len(b)), cut(len(c))
	}
	sl.enc = append(sl.enc[:0], enc...)
}

// pack returns s packed into a word, exactly if it has at most eight bytes,
// and its length, 9 if longer.
func pack(s string) (uint64, uint64) {
	switch n := len(s); {
	case n > 8:
		t := s[n-8:]
		return uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56, 9
	case n >= 4: // two words of four bytes, overlapping below eight
		h, t := s[:4], s[n-4:]
		return uint64(h[0]) | uint64(h[1])<<8 | uint64(h[2])<<16 | uint64(h[3])<<24 |
			uint64(t[0])<<32 | uint64(t[1])<<40 | uint64(t[2])<<48 | uint64(t[3])<<56, uint64(n)
	case n >= 2:
		return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[n-2])<<16 | uint64(s[n-1])<<24, uint64(n)
	case n == 1:
		return uint64(s[0]), 1
	}
	return 0, 0
}

func mix(h, x uint64) uint64 {
	h = (h ^ x) * 0x9E3779B97F4A7C15
	return h ^ h>>32
}

// startTagSets packs the site and device of a batch's tag sets once for all
// its readings.
func (e *Encoder) startTagSets(m *model.Meta) {
	var sn, dn uint64
	e.key.site, sn = pack(m.Site)
	e.key.device, dn = pack(m.Device)
	e.key.lens = sn | dn<<4
	e.keyLong = sn > 8 || dn > 8
	e.keyHash = mix(mix(e.key.lens, e.key.site), e.key.device)
}

// tags3 appends the measurement and tags of a reading of m whose varying
// tags are a, b, c, encoded by build on a miss, and returns which of them it
// wrote as "other" (those of bounded refused by the encoder's TagBound).
func (e *Encoder) tags3(dst []byte, meas uint64, m *model.Meta, a, b, c string, bounded *[3]string,
	build func([]byte, *model.Meta, string, string, string) []byte) ([]byte, uint8) {
	if e.uncached {
		var over uint8
		if e.bound != nil {
			a, b, c, over = e.admit3(bounded, a, b, c)
		}
		return build(dst, m, a, b, c), over
	}
	ts := e.tagSets
	if ts == nil {
		ts = new(tagSetCache)
		e.tagSets = ts
	}
	key := e.key
	var an, bn, cn uint64
	key.a, an = pack(a)
	key.b, bn = pack(b)
	key.c, cn = pack(c)
	key.lens |= an<<8 | bn<<12 | cn<<16 | meas<<20
	long := e.keyLong || an > 8 || bn > 8 || cn > 8
	h := mix(mix(mix(mix(e.keyHash, key.a), key.b), key.c), key.lens)
	set := h >> (64 - tagSetBits)
	tag := uint32(h) | 1
	for w, t := range &ts.tags[set] {
		if t != tag {
			continue
		}
		sl := &ts.slots[set][w]
		if sl.key.is(&key) && (!long || sl.a == a && sl.b == b && sl.c == c && sl.device == m.Device && sl.site == m.Site) {
			if sl.over != 0 {
				e.overflowed(bounded, sl.over, a, b, c)
			}
			return append(dst, sl.enc...), sl.over
		}
	}
	ba, bb, bc, over := a, b, c, uint8(0)
	if e.bound != nil {
		ba, bb, bc, over = e.admit3(bounded, a, b, c)
	}
	start := len(dst)
	dst = build(dst, m, ba, bb, bc)
	w := ts.next[set]
	ts.next[set] = (w + 1) % tagSetWays
	ts.tags[set][w] = tag
	ts.slots[set][w].set(key, long, m, a, b, c, dst[start:], over) // keyed by the values as sent
	return dst, over
}

// admit3 asks the encoder's TagBound about those of a, b and c that bounded
// names and that are not empty (an empty tag is not written), and returns
// them with "other" in place of the values refused, and which those were.
// This reading is written with them: each counts.
func (e *Encoder) admit3(bounded *[3]string, a, b, c string) (string, string, string, uint8) {
	var over uint8
	for i, v := range [3]*string{&a, &b, &c} {
		if tag := bounded[i]; tag != "" && *v != "" && !e.bound.Admit(tag, *v) {
			e.bound.Overflowed(tag, *v)
			*v = model.OverflowTag
			over |= 1 << i
		}
	}
	return a, b, c, over
}

// overflowed counts a reading written with the cached tag set whose
// overflow mask is over, its values being a, b and c.
func (e *Encoder) overflowed(bounded *[3]string, over uint8, a, b, c string) {
	for i, v := range [3]string{a, b, c} {
		if over&(1<<i) != 0 {
			e.bound.Overflowed(bounded[i], v)
		}
	}
}

func (e *Encoder) pass(dst []byte, m *model.Meta, p *model.Pass) []byte {
	dst, over := e.tags3(dst, tagSetPass, m, p.Direction, p.PlateColor, p.VehicleType, &passBounded, passTags)
	dst = append(dst, e.seq...)
	dst = appendStr(dst, ",plate=", p.Plate)
	dst = appendStr(dst, ",vehicle_color=", p.VehicleColor)
	if over != 0 { // as in detection
		if over&overB != 0 {
			dst = appendStr(dst, ",plate_color_text=", p.PlateColor)
		}
		if over&overC != 0 {
			dst = appendStr(dst, ",vehicle_type_text=", p.VehicleType)
		}
	}
	dst = appendOptFloat(dst, ",speed_kmh=", p.SpeedKmh)
	if p.Lane.OK {
		dst = appendInt(dst, ",lane=", p.Lane.V)
	}
	dst = appendOptFloat(dst, ",heading=", p.Heading)
	dst = appendOptFloat(dst, ",confidence=", p.Confidence)
	dst = appendStr(dst, ",image=", p.Image)
	dst = e.appendLoc(dst, p.Loc)
	return e.appendTime(dst, p.PointNS)
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
	return e.appendTime(dst, p.PointNS)
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
	return e.appendTime(dst, s.PointNS)
}

// appendLoc writes lat/lon. The zero Point means "no position": the decoder
// takes lat 0, lon 0 as a receiver without a fix (the registered position
// replaces it, or the reading is rejected), so no accepted reading has it,
// and a point in the Gulf of Guinea would only draw a false dot on maps.
func (e *Encoder) appendLoc(dst []byte, p model.Point) []byte {
	if p == (model.Point{}) {
		return dst
	}
	// Compared bit for bit: -0 == 0 but prints differently.
	if !e.locValid || math.Float64bits(p.Lat) != math.Float64bits(e.loc.Lat) || math.Float64bits(p.Lon) != math.Float64bits(e.loc.Lon) {
		e.locBytes = appendCoord(e.locBytes[:0], ",lat=", p.Lat)
		e.locBytes = appendCoord(e.locBytes, ",lon=", p.Lon)
		e.loc, e.locValid = p, true
	}
	return append(dst, e.locBytes...)
}

// appendLocTime is appendLoc then appendTime, which end a detection line.
// The readings of a message share their position and their point time's
// millisecond, so the bytes from ",lat=" to the lowest six digits of the
// time are copied whole from the line before when both are the same; on a
// miss (a unit that times each reading) only where they are is remembered.
// (Passes come one to three a message: the tail costs more than it saves.)
func (e *Encoder) appendLocTime(dst []byte, p model.Point, ns int64) []byte {
	ms := ns / 1e6
	if !e.tailValid || ms != e.tailMS ||
		math.Float64bits(p.Lat) != math.Float64bits(e.tailLoc.Lat) || math.Float64bits(p.Lon) != math.Float64bits(e.tailLoc.Lon) {
		start := len(dst)
		dst = e.appendTime(e.appendLoc(dst, p), ns)
		// Below 1e12 ns appendTime writes fewer digits: no tail. Such a
		// time's ms is below 1e6, as a kept tail's never is.
		if ns >= 1e12 {
			e.tailStart, e.tailEnd = start, len(dst)-len("000000\n")
			e.tailLoc, e.tailMS, e.tailValid = p, ms, true
		}
		return dst
	}
	dst = append(dst, dst[e.tailStart:e.tailEnd]...)
	n := len(dst)
	dst = append(dst, "000000\n"...)
	put6(dst[n:n+6], uint32(ns%1e6))
	return dst
}

func appendTime(dst []byte, ns int64) []byte {
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ns, 10)
	return append(dst, '\n')
}

// appendTime writes the point time. Its leading digits change once in 1000
// seconds, so they are formatted once (with the space before them) and
// reused across lines and batches; the twelve digits below them are written
// two at a time from a table.
func (e *Encoder) appendTime(dst []byte, ns int64) []byte {
	if ns < 1e12 {
		return appendTime(dst, ns) // before 1970-01-01T00:16:40Z: no shortcut
	}
	hi, lo := ns/1e12, ns%1e12
	if !e.timeValid || hi != e.timeHi {
		e.timeDigits = strconv.AppendInt(append(e.timeDigits[:0], ' '), hi, 10)
		e.timeHi, e.timeValid = hi, true
	}
	dst = append(dst, e.timeDigits...)
	n := len(dst)
	dst = append(dst, "000000000000\n"...)
	put6(dst[n:n+6], uint32(lo/1e6))
	put6(dst[n+6:n+12], uint32(lo%1e6))
	return dst
}

// put6 writes v, below 1e6, as six digits.
func put6(b []byte, v uint32) {
	_ = b[5]
	x, y, z := v/10000*2, v/100%100*2, v%100*2
	b[0], b[1], b[2], b[3], b[4], b[5] = pairs[x], pairs[x+1], pairs[y], pairs[y+1], pairs[z], pairs[z+1]
}

// pairs holds "00" to "99".
const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

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
// InfluxDB cannot store and JSON cannot carry. It is small enough to inline:
// the key is then a constant, whose copy needs no call to memmove.
func appendFloat(dst []byte, key string, v float64) []byte {
	return appendFloatValue(append(dst, key...), len(dst), v)
}

// appendFloatValue appends v, or for NaN and ±Inf returns dst[:keyAt],
// without the key that appendFloat wrote before it.
func appendFloatValue(dst []byte, keyAt int, v float64) []byte {
	if out, ok := appendTenths(dst, v); ok {
		return out
	}
	return appendDecimalValue(dst, keyAt, v)
}

// appendCoord is appendFloat for a latitude or longitude, which has the
// decimals of a GPS fix: appendTenths would only cost it time.
func appendCoord(dst []byte, key string, v float64) []byte {
	return appendDecimalValue(append(dst, key...), len(dst), v)
}

// appendDecimalValue is appendFloatValue without appendTenths.
func appendDecimalValue(dst []byte, keyAt int, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst[:keyAt]
	}
	if out, ok := appendShortDecimal(dst, v); ok {
		return out
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendTenths is appendShortDecimal for the commonest readings, whole or
// with one decimal and below 1e4 in magnitude (RSSI in dB and half-dB,
// speeds, temperatures, percentages, headings), in a few steps: a tenth of a
// detection line went on the general case. t, ten times |v|, is a whole
// number below 1e5 and t/10 is |v|: an IEEE division of two exact values
// rounds like ParseFloat, so the decimal t/10 parses back to |v|, and it is
// what strconv writes, by appendShortDecimal's argument. NaN and ±Inf fail
// the first test.
func appendTenths(dst []byte, v float64) ([]byte, bool) {
	a := math.Abs(v)
	t := a * 10
	if !(t < 1e5) || t != math.Trunc(t) || t/10 != a || (v == 0 && math.Signbit(v)) {
		return dst, false
	}
	m := uint32(t)
	if v < 0 {
		dst = append(dst, '-')
	}
	i, f := m/10, m%10
	switch {
	case i >= 1000:
		dst = append(dst, pairs[i/100*2], pairs[i/100*2+1], pairs[i%100*2], pairs[i%100*2+1])
	case i >= 100:
		dst = append(dst, byte('0'+i/100), pairs[i%100*2], pairs[i%100*2+1])
	case i >= 10:
		dst = append(dst, pairs[i*2], pairs[i*2+1])
	default:
		dst = append(dst, byte('0'+i))
	}
	if f != 0 {
		dst = append(dst, '.', byte('0'+f))
	}
	return dst, true
}

// appendShortDecimal writes v as strconv 'g' shortest does when |v| < 1e6
// (from 1e6 on 'g' writes an exponent) and v is whole or has at most nine
// decimals and is at least 1e-4 in magnitude (below, 'g' writes an exponent);
// ok is false, and dst unchanged, for any other v. Readings are decimals from
// JSON with a few digits (coordinates, dB, km/h, ratios), and the shortest-
// digit search of strconv costs several times what this does.
//
// Why it agrees with strconv: a whole number below 1e6 is written as its
// integer digits. For any other v below 1e6, the interval of decimals that
// parse back to v is narrower than 0.22e-9, so it holds at most one decimal
// with nine or fewer decimals, and if it does, rounding v*1e9 (off by less
// than 0.07 from the exact product below 2^50) lands exactly on that
// decimal times 1e9. Without trailing zeros it is the shortest decimal that
// parses back to v, which is what strconv writes. The division checks that
// it does parse back: an IEEE division of two exact values rounds like
// ParseFloat.
func appendShortDecimal(dst []byte, v float64) ([]byte, bool) {
	a := math.Abs(v)
	if !(a < 1e6) {
		return dst, false
	}
	var m uint64 // the digits of v
	k := 0       // how many of them are decimals
	switch {
	case a == math.Trunc(a):
		if v == 0 && math.Signbit(v) {
			return dst, false // "-0"
		}
		m = uint64(a)
	case a >= 1e-4:
		m, k = uint64(math.Round(a*1e9)), 9
		// Strip trailing zeros, up to all nine, in four steps.
		if m%1e8 == 0 {
			m, k = m/1e8, k-8
		}
		if k >= 4 && m%1e4 == 0 {
			m, k = m/1e4, k-4
		}
		if k >= 2 && m%100 == 0 {
			m, k = m/100, k-2
		}
		if k >= 1 && m%10 == 0 {
			m, k = m/10, k-1
		}
		if float64(m)/pow10[k] != a {
			return dst, false
		}
	default:
		return dst, false
	}
	// The length of the output, so that the digits go straight into dst.
	digits := bits.Len64(m) * 1233 >> 12 // log10(2) ≈ 1233/4096: digits of m, or one less
	if m >= pow10u[digits] {
		digits++
	}
	size := max(digits-k, 1) // the integer part, "0" below 1
	if k > 0 {
		size += 1 + k
	}
	if v < 0 {
		size++
	}
	n := len(dst)
	dst = slices.Grow(dst, size)[:n+size]
	b := dst[n:]
	i := size
	for ; k >= 2; k -= 2 {
		q := m / 100
		i -= 2
		b[i], b[i+1] = pairs[(m-q*100)*2], pairs[(m-q*100)*2+1]
		m = q
	}
	if k == 1 {
		i--
		b[i] = byte('0' + m%10)
		m /= 10
	}
	if i < size {
		i--
		b[i] = '.'
	}
	for m >= 100 {
		q := m / 100
		i -= 2
		b[i], b[i+1] = pairs[(m-q*100)*2], pairs[(m-q*100)*2+1]
		m = q
	}
	if m >= 10 {
		i -= 2
		b[i], b[i+1] = pairs[m*2], pairs[m*2+1]
	} else {
		i--
		b[i] = byte('0' + m)
	}
	if v < 0 {
		b[0] = '-'
	}
	return dst, true
}

var (
	pow10  = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}
	pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15} // m < 1e15
)

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
	i := 0
	for i < len(v) && !tagSpecial[v[i]] {
		i++
	}
	if i == len(v) {
		return append(dst, v...), true
	}
	ascii := true
	dst = append(dst, v[:i]...)
	for ; i < len(v); i++ {
		c := v[i]
		if tagSpecial[c] {
			switch {
			case c >= utf8.RuneSelf:
				ascii = false
			case c < 0x20 || c == 0x7f || c == '\\':
				return dst, false
			default:
				dst = append(dst, '\\')
			}
		}
		dst = append(dst, c)
	}
	if !ascii && !utf8.ValidString(v) {
		return dst, false
	}
	return dst, true
}

// appendStr appends a string field unless its value is empty (absent). It
// is small enough to inline, like appendFloat.
func appendStr(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendQuoted(append(dst, key...), v)
}

// appendIdent is appendStr for the identifiers of a detection line (IMSI,
// IMEI, MAC), which take appendQuotedWords.
func appendIdent(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendQuotedWords(append(dst, key...), v)
}

// appendQuotedWords is appendQuoted for a value of 8 to 24 bytes, none of
// them special, as identifiers are: it reads v as three words, at its start,
// middle and end (overlapping below 24 bytes), tests them a word at a time,
// and writes the same words. appendQuoted called memmove to copy a few
// bytes and strSpecialWords to test them: a tenth of a detection line. Any
// other v is left to appendQuoted.
func appendQuotedWords(dst []byte, v string) []byte {
	n := len(v)
	if n < 8 || n > 24 {
		return appendQuoted(dst, v)
	}
	mid := (n - 8) / 2 // 0 to 8: the words cover v for n up to 24
	w0, w1, w2 := load64(v), load64(v[mid:]), load64(v[n-8:])
	if strSpecialWord(w0)|strSpecialWord(w1)|strSpecialWord(w2) != 0 {
		return appendQuoted(dst, v)
	}
	k := len(dst)
	dst = slices.Grow(dst, n+2)[:k+n+2]
	b := dst[k:]
	b[0] = '"'
	binary.LittleEndian.PutUint64(b[1:], w0)
	binary.LittleEndian.PutUint64(b[1+mid:], w1)
	binary.LittleEndian.PutUint64(b[n-7:], w2)
	b[n+1] = '"'
	return dst
}

// appendQuoted appends v in double quotes, escaped, sanitised if need be.
func appendQuoted(dst []byte, v string) []byte {
	n := len(dst)
	dst = append(dst, '"')
	i := 0
	// A value that starts with a non-ASCII byte (a plate's province,
	// "蒙B…") is special at once: the bytes are read one by one below.
	if len(v) >= 8 && v[0] < utf8.RuneSelf {
		if !strSpecialWords(v) {
			dst = append(dst, v...)
			return append(dst, '"')
		}
	} else {
		for i < len(v) && !strSpecial[v[i]] {
			i++
		}
		if i == len(v) {
			dst = append(dst, v...)
			return append(dst, '"')
		}
	}
	// v[done:] is still to be copied; runs without escapes are copied whole.
	ascii, done := true, 0
	for ; i < len(v); i++ {
		c := v[i]
		if !strSpecial[c] {
			continue
		}
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c < 0x20 || c == 0x7f:
			return appendQuoted(dst[:n], string(sanitizeField(nil, v)))
		default:
			dst = append(dst, v[done:i]...)
			dst = append(dst, '\\')
			done = i
		}
	}
	if !ascii && !utf8.ValidString(v) {
		return appendQuoted(dst[:n], string(sanitizeField(nil, v)))
	}
	dst = append(dst, v[done:]...)
	return append(dst, '"')
}

// The bytes of a word, for testing eight bytes of a string at once.
const (
	lowBytes = 0x0101010101010101
	low7Bits = 0x7f7f7f7f7f7f7f7f
	highBits = 0x8080808080808080
)

// strSpecialWord returns a word with the high bit set in each byte of x
// that strSpecial marks, and in no other. It tests the eight bytes without
// a branch per byte: string fields are IMSIs, IMEIs, MACs, plates and URLs,
// and a byte-by-byte scan spent a sixth of a detection line on them.
//
// On the low seven bits of a byte, y, adding never carries into the next
// byte: y+0x60 has the high bit set when y >= 0x20, y+1 when y == 0x7f,
// and (y^e)+0x7f when y != e. A byte with its own high bit set is
// non-ASCII, marked as it is.
func strSpecialWord(x uint64) uint64 {
	y := x & low7Bits
	printable := y + lowBytes*(0x80-0x20)
	notQuote := (y ^ lowBytes*'"') + low7Bits
	notBackslash := (y ^ lowBytes*'\\') + low7Bits
	return (x | (y + lowBytes) | ^(printable & notQuote & notBackslash)) & highBits
}

// strSpecialWords reports whether v, of at least eight bytes, has a byte
// that strSpecial marks, testing eight bytes at a time (the last eight
// overlapping).
func strSpecialWords(v string) bool {
	n := len(v)
	bad := strSpecialWord(load64(v[n-8:]))
	for i := 0; i < n-8; i += 8 {
		bad |= strSpecialWord(load64(v[i:]))
	}
	return bad != 0
}

// load64 returns the first eight bytes of s, little-endian (one load).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
