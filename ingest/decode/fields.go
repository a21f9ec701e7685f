package decode

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
)

// Known keys of each object, by index. An object is read in one pass into a
// fields value; checks then run in a fixed order, so the reason reported
// does not depend on the order of the keys.

// Top-level keys.
const (
	tV = iota
	tSeq
	tTS
	tLoc
	tDetections
	tPasses
	tLat
	tLon
	tDatum
	tSpeed
	tHeading
	tAccuracy
	tBattery
	tTemp
	tUptime
	tTamper
	tPower
	tSignal
	tQueue
	tFW
	tCount
)

var topNames = [tCount]string{
	"v", "seq", "ts", "loc", "detections", "passes", "lat", "lon", "datum",
	"speed_kmh", "heading", "accuracy_m", "battery_pct", "temp_c", "uptime_s",
	"tamper", "power", "signal_dbm", "queue", "fw",
}

// topKey maps a top-level key to its index, or -1. Keys are told apart by
// length first: comparisons with short constants compile to a few integer
// compares, faster than a switch over all the names.
func topKey(k []byte) int {
	switch len(k) {
	case 1:
		if k[0] == 'v' {
			return tV
		}
	case 2:
		switch string(k) {
		case "ts":
			return tTS
		case "fw":
			return tFW
		}
	case 3:
		switch string(k) {
		case "seq":
			return tSeq
		case "loc":
			return tLoc
		case "lat":
			return tLat
		case "lon":
			return tLon
		}
	case 5:
		switch string(k) {
		case "datum":
			return tDatum
		case "power":
			return tPower
		case "queue":
			return tQueue
		}
	case 6:
		switch string(k) {
		case "passes":
			return tPasses
		case "temp_c":
			return tTemp
		case "tamper":
			return tTamper
		}
	case 7:
		if string(k) == "heading" {
			return tHeading
		}
	case 8:
		if string(k) == "uptime_s" {
			return tUptime
		}
	case 9:
		if string(k) == "speed_kmh" {
			return tSpeed
		}
	case 10:
		switch string(k) {
		case "detections":
			return tDetections
		case "accuracy_m":
			return tAccuracy
		case "signal_dbm":
			return tSignal
		}
	case 11:
		if string(k) == "battery_pct" {
			return tBattery
		}
	}
	return -1
}

// Keys of a detection.
const (
	dIMSI = iota
	dIMEI
	dMAC
	dRSSI
	dTech
	dTS
	dCount
)

var detNames = [dCount]string{"imsi", "imei", "mac", "rssi", "tech", "ts"}

func detKey(k []byte) int {
	switch len(k) {
	case 2:
		if string(k) == "ts" {
			return dTS
		}
	case 3:
		if string(k) == "mac" {
			return dMAC
		}
	case 4:
		switch string(k) {
		case "imsi":
			return dIMSI
		case "imei":
			return dIMEI
		case "rssi":
			return dRSSI
		case "tech":
			return dTech
		}
	}
	return -1
}

// Keys of a pass.
const (
	pPlate = iota
	pPlateColor
	pVehicleType
	pVehicleColor
	pSpeed
	pLane
	pDirection
	pHeading
	pConfidence
	pImage
	pTS
	pCount
)

var passNames = [pCount]string{
	"plate", "plate_color", "vehicle_type", "vehicle_color", "speed_kmh", "lane",
	"direction", "heading", "confidence", "image", "ts",
}

func passKey(k []byte) int {
	switch len(k) {
	case 2:
		if string(k) == "ts" {
			return pTS
		}
	case 4:
		if string(k) == "lane" {
			return pLane
		}
	case 5:
		switch string(k) {
		case "plate":
			return pPlate
		case "image":
			return pImage
		}
	case 7:
		if string(k) == "heading" {
			return pHeading
		}
	case 9:
		switch string(k) {
		case "speed_kmh":
			return pSpeed
		case "direction":
			return pDirection
		}
	case 10:
		if string(k) == "confidence" {
			return pConfidence
		}
	case 11:
		if string(k) == "plate_color" {
			return pPlateColor
		}
	case 12:
		if string(k) == "vehicle_type" {
			return pVehicleType
		}
	case 13:
		if string(k) == "vehicle_color" {
			return pVehicleColor
		}
	}
	return -1
}

// Keys of a loc object.
const (
	lLat = iota
	lLon
	lDatum
	lCount
)

var locNames = [lCount]string{"lat", "lon", "datum"}

func locKey(k []byte) int {
	switch string(k) {
	case "lat":
		return lLat
	case "lon":
		return lLon
	case "datum":
		return lDatum
	}
	return -1
}

// fields holds the tape indexes of the values of an object's known keys (0
// when absent: index 0 is the top-level value, never a field).
type fields struct {
	vals [tCount]uint32 // tCount is the largest key set
	seen uint32
	dup  uint32 // keys seen more than once
}

// keySet names the key sets of the contract's objects.
type keySet uint8

const (
	topKeys keySet = iota
	locKeys
	detKeys
	passKeys
)

// keyIndex maps key k of an object of set to its index in the set, or -1.
func keyIndex(set keySet, k []byte) int {
	switch set {
	case detKeys:
		return detKey(k)
	case passKeys:
		return passKey(k)
	case topKeys:
		return topKey(k)
	}
	return locKey(k)
}

// keyNames are the names of each set's keys, in the order devices write
// them (the contract's).
var keyNames = [...][]string{topKeys: topNames[:], locKeys: locNames[:], detKeys: detNames[:], passKeys: passNames[:]}

// collect records the values of the known keys of object obj, whose keys
// are those of set (others are ignored).
func (f *fields) collect(t *tape, obj int, set keySet) {
	names := keyNames[set]
	next := 0 // the key expected next: the one after the previous key
	for j, end := obj+1, t.end(obj); j < end; {
		v := j + 1
		var k []byte
		if tk := &t.toks[j]; !tk.esc { // nearly every key
			k = t.src[tk.start:tk.end]
		} else {
			k = t.str(j)
		}
		var i int
		switch {
		case next < len(names) && string(k) == names[next]:
			i = next
		case set == detKeys: // inlined: most objects are detections
			i = detKey(k)
		default:
			i = keyIndex(set, k)
		}
		if i >= 0 {
			next = i + 1
			bit := uint32(1) << i
			if f.seen&bit != 0 {
				f.dup |= bit
			} else {
				f.seen |= bit
				f.vals[i] = uint32(v)
			}
		}
		j = t.next(v)
	}
}

// firstDup returns the index of the first duplicated key among mask, or -1.
func (f *fields) firstDup(mask uint32) int {
	if d := f.dup & mask; d != 0 {
		return bits.TrailingZeros32(d)
	}
	return -1
}

// present reports whether field value v is there: absent keys and null are
// not.
func (d *Decoder) present(v uint32) bool {
	return v != 0 && d.t.kind(int(v)) != kNull
}

func (d *Decoder) typeName(v uint32) string { return d.t.kind(int(v)).String() }

// maxSafeInt is the largest integer accepted (2^53, exact in a float64 and in
// JavaScript).
const maxSafeInt = 1 << 53

// Limits of string values, in bytes.
const (
	maxString = 256
	maxImage  = 2048
)

// textBytes returns a string value's bytes (valid until the next parse), or
// why it is not acceptable: not a string, longer than max, or holding a
// control character (U+0000-U+001F, U+007F).
func (d *Decoder) textBytes(v uint32, max int) ([]byte, string) {
	return d.text(v, max, false)
}

// textBytesSpaced is textBytes for a value whose white space is normalised
// (a plate): a tab, carriage return or line feed — an ANPR camera's trailing
// newline — is white space to collapse or trim, not a reason to refuse it.
func (d *Decoder) textBytesSpaced(v uint32, max int) ([]byte, string) {
	return d.text(v, max, true)
}

// loneMsg is why a string escaping an unpaired UTF-16 surrogate is not a
// field's text: JSON allows it, but it has no UTF-8 form.
const loneMsg = "escapes an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is no text"

// tooLong is why a string of n bytes is refused where max is the bound.
func tooLong(n, max int) string {
	return strconv.Itoa(n) + " bytes, longer than " + strconv.Itoa(max)
}

func (d *Decoder) text(v uint32, max int, spaces bool) ([]byte, string) {
	if d.t.kind(int(v)) != kString {
		return nil, "want string, got " + d.typeName(v)
	}
	if d.t.toks[v].lone {
		return nil, loneMsg
	}
	b := d.t.str(int(v))
	if len(b) > max {
		return nil, tooLong(len(b), max)
	}
	for _, c := range b {
		if (c < 0x20 && !(spaces && (c == '\t' || c == '\n' || c == '\r'))) || c == 0x7f {
			return nil, "contains a control character"
		}
	}
	return b, ""
}

// float returns a finite number, or why the value is not one.
func (d *Decoder) float(v uint32) (float64, string) {
	if d.t.kind(int(v)) != kNumber {
		return 0, "want number, got " + d.typeName(v)
	}
	raw := d.t.raw(int(v))
	if f, ok := fastFloat(raw); ok {
		return f, ""
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, "number out of float64 range"
	}
	return f, ""
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastFloat converts the common numbers (no exponent, at most 15 digits) of
// a validated JSON number exactly: both the digits and the power of ten are
// exact in a float64, so one division rounds correctly (Clinger's fast path).
// Other numbers are left to strconv.ParseFloat (ok false).
func fastFloat(b []byte) (float64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 16 { // 15 digits and a point
		return 0, false
	}
	var mant uint64
	digits := 0
	frac := -1 // digits after the point; -1 before it
	for _, c := range b {
		switch {
		case isDigit(c):
			if digits++; digits > 15 {
				return 0, false // 10^15 < 2^53: up to 15 digits are exact
			}
			mant = mant*10 + uint64(c-'0')
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default:
			return 0, false // exponent
		}
	}
	f := float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}

// floatIn returns a finite number in [lo, hi].
func (d *Decoder) floatIn(v uint32, lo, hi float64) (float64, string) {
	f, msg := d.float(v)
	if msg == "" && (f < lo || f > hi) {
		msg = echoNumber(d.t.raw(int(v))) + " out of range [" + ftoa(lo) + ", " + ftoa(hi) + "]"
	}
	return f, msg
}

// integer returns an integral number in [lo, 2^53].
func (d *Decoder) integer(v uint32, lo int64) (int64, string) {
	if d.t.kind(int(v)) != kNumber {
		return 0, "want number, got " + d.typeName(v)
	}
	raw := d.t.raw(int(v))
	n, ok := jsonInt(raw)
	if !ok {
		return 0, echoNumber(raw) + " is not an integer in [" + strconv.FormatInt(lo, 10) + ", 2^53]"
	}
	if n < lo {
		return 0, echoNumber(raw) + " out of range [" + strconv.FormatInt(lo, 10) + ", 2^53]"
	}
	return n, ""
}

// echoNumber returns a number for a detail line if it is short: at most 8
// bytes and 5 digits, so that a digit string that might be an identifier in
// the wrong place (IMSIs have 6 digits at least) is never logged.
func echoNumber(raw []byte) string {
	if len(raw) <= 8 && countDigits(raw) <= 5 {
		return string(raw)
	}
	return "number"
}

func countDigits(b []byte) int {
	n := 0
	for _, c := range b {
		if isDigit(c) {
			n++
		}
	}
	return n
}

// echoTS returns a bad ts string for a detail line when it looks like a date
// (at most 40 bytes, '-' after a 4-character year, spaces around it
// allowed), else what it is without its text: quoted Unix milliseconds are
// named as such, other strings by their length (an identifier in the wrong
// place is never logged).
func echoTS(b []byte) string {
	if t := bytes.TrimSpace(b); len(b) <= 40 && len(t) > 4 && t[4] == '-' && maxDigitRun(b) <= 9 {
		// A date's longest run of digits is a nanosecond fraction's: a
		// longer one is no part of a date (an IMSI after it).
		return strconv.Quote(string(b))
	}
	if len(b) > 0 && countDigits(b) == len(b) {
		return "a number in quotes (" + strconv.Itoa(len(b)) + " digits: Unix milliseconds go unquoted)"
	}
	return "a " + strconv.Itoa(len(b)) + "-byte string"
}

// maxDigitRun is the length of the longest run of digits in b.
func maxDigitRun(b []byte) int {
	longest, run := 0, 0
	for _, c := range b {
		if isDigit(c) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// echoText returns a short, harmless rendering of a string value for a detail
// line: quoted if it is at most 16 bytes with at most 4 digits (no IMSI,
// IMEI, MAC or plate fits that), else just its length.
func echoText(b []byte) string {
	if len(b) <= 16 && countDigits(b) <= 4 {
		return strconv.Quote(string(b))
	}
	return "a " + strconv.Itoa(len(b)) + "-byte string"
}

// jsonInt returns the value of a JSON number (its grammar already validated)
// when it is an integer of magnitude at most 2^53, exactly: 18231, 18231.0
// and 1.8231e4 are all 18231, 1.5 and 9007199254740993 are refused.
func jsonInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	var mant uint64 // significant digits, up to the last non-zero one
	sig := 0        // number of digits in mant
	zeros := 0      // zeros after the last non-zero digit
	frac := 0       // digits after the decimal point
	inFrac := false
	i := 0
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' {
			inFrac = true
			continue
		}
		if !isDigit(c) {
			break
		}
		if inFrac {
			frac++
		}
		if c == '0' {
			if mant != 0 {
				zeros++
			}
			continue
		}
		sig += zeros + 1
		if sig > 16 { // 2^53 has 16 digits
			return 0, false
		}
		for ; zeros > 0; zeros-- {
			mant *= 10
		}
		mant = mant*10 + uint64(c-'0')
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		for ; i < len(b); i++ {
			if exp < 100000 {
				exp = exp*10 + int(b[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	if mant == 0 {
		return 0, true
	}
	e := exp - frac + zeros
	if e < 0 || e > 16 {
		return 0, false // a fraction (mant ends in a non-zero digit), or too large
	}
	for ; e > 0; e-- {
		mant *= 10
		if mant > maxSafeInt {
			return 0, false
		}
	}
	if mant > maxSafeInt {
		return 0, false
	}
	if neg {
		return -int64(mant), true
	}
	return int64(mant), true
}
