package decode

import (
	"math"
	"math/bits"
	"strconv"

	"github.com/valyala/fastjson"
)

// Known keys of each object, by index. An object is read in one pass
// (Object.Visit) into a fields value; checks then run in a fixed order, so
// the reason reported does not depend on the order of the keys.

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

func topKey(k []byte) int {
	switch string(k) {
	case "v":
		return tV
	case "seq":
		return tSeq
	case "ts":
		return tTS
	case "loc":
		return tLoc
	case "detections":
		return tDetections
	case "passes":
		return tPasses
	case "lat":
		return tLat
	case "lon":
		return tLon
	case "datum":
		return tDatum
	case "speed_kmh":
		return tSpeed
	case "heading":
		return tHeading
	case "accuracy_m":
		return tAccuracy
	case "battery_pct":
		return tBattery
	case "temp_c":
		return tTemp
	case "uptime_s":
		return tUptime
	case "tamper":
		return tTamper
	case "power":
		return tPower
	case "signal_dbm":
		return tSignal
	case "queue":
		return tQueue
	case "fw":
		return tFW
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
	switch string(k) {
	case "imsi":
		return dIMSI
	case "imei":
		return dIMEI
	case "mac":
		return dMAC
	case "rssi":
		return dRSSI
	case "tech":
		return dTech
	case "ts":
		return dTS
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
	switch string(k) {
	case "plate":
		return pPlate
	case "plate_color":
		return pPlateColor
	case "vehicle_type":
		return pVehicleType
	case "vehicle_color":
		return pVehicleColor
	case "speed_kmh":
		return pSpeed
	case "lane":
		return pLane
	case "direction":
		return pDirection
	case "heading":
		return pHeading
	case "confidence":
		return pConfidence
	case "image":
		return pImage
	case "ts":
		return pTS
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

// fields holds the values of an object's known keys (nil when absent).
type fields struct {
	vals [tCount]*fastjson.Value // tCount is the largest key set
	seen uint32
	dup  uint32 // keys seen more than once
}

func (f *fields) add(i int, v *fastjson.Value) {
	if i < 0 {
		return // unknown keys are ignored
	}
	bit := uint32(1) << i
	if f.seen&bit != 0 {
		f.dup |= bit
		return
	}
	f.seen |= bit
	f.vals[i] = v
}

// firstDup returns the index of the first duplicated key among mask, or -1.
func (f *fields) firstDup(mask uint32) int {
	if d := f.dup & mask; d != 0 {
		return bits.TrailingZeros32(d)
	}
	return -1
}

// present reports whether a value is there: absent keys and null are not.
func present(v *fastjson.Value) bool {
	return v != nil && v.Type() != fastjson.TypeNull
}

func typeName(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool"
	}
	return v.Type().String()
}

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
func textBytes(v *fastjson.Value, max int) ([]byte, string) {
	if v.Type() != fastjson.TypeString {
		return nil, "want string, got " + typeName(v)
	}
	b, _ := v.StringBytes()
	if len(b) > max {
		return nil, strconv.Itoa(len(b)) + " bytes, longer than " + strconv.Itoa(max)
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return nil, "contains a control character"
		}
	}
	return b, ""
}

// rawNumber copies a number's JSON text into d.num.
func (d *Decoder) rawNumber(v *fastjson.Value) []byte {
	d.num = v.MarshalTo(d.num[:0])
	return d.num
}

// float returns a finite number, or why the value is not one.
func (d *Decoder) float(v *fastjson.Value) (float64, string) {
	if v.Type() != fastjson.TypeNumber {
		return 0, "want number, got " + typeName(v)
	}
	raw := d.rawNumber(v)
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
func (d *Decoder) floatIn(v *fastjson.Value, lo, hi float64) (float64, string) {
	f, msg := d.float(v)
	if msg == "" && (f < lo || f > hi) {
		msg = d.echoNumber() + " out of range [" + ftoa(lo) + ", " + ftoa(hi) + "]"
	}
	return f, msg
}

// integer returns an integral number in [lo, 2^53].
func (d *Decoder) integer(v *fastjson.Value, lo int64) (int64, string) {
	if v.Type() != fastjson.TypeNumber {
		return 0, "want number, got " + typeName(v)
	}
	n, ok := jsonInt(d.rawNumber(v))
	if !ok {
		return 0, d.echoNumber() + " is not an integer in [" + strconv.FormatInt(lo, 10) + ", 2^53]"
	}
	if n < lo {
		return 0, d.echoNumber() + " out of range [" + strconv.FormatInt(lo, 10) + ", 2^53]"
	}
	return n, ""
}

// echoNumber returns the number in d.num for a detail line if it is short:
// at most 8 bytes and 5 digits, so that a digit string that might be an
// identifier in the wrong place (IMSIs have 6 digits at least) is never
// logged.
func (d *Decoder) echoNumber() string {
	if len(d.num) <= 8 && countDigits(d.num) <= 5 {
		return string(d.num)
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
// (at most 40 bytes, '-' after a 4-character year), else its length.
func echoTS(b []byte) string {
	if len(b) <= 40 && len(b) > 4 && b[4] == '-' {
		return strconv.Quote(string(b))
	}
	return "a " + strconv.Itoa(len(b)) + "-byte string"
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
