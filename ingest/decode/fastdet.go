package decode

import (
	"encoding/binary"
	"math/bits"
	"strings"

	"github.com/fenceline/fenceline/internal/model"
)

// The detections fast path. Nearly every reading is a detection, and nearly
// every detection is plain: a flat object of the known keys, each once,
// with ASCII strings, short numbers and valid values. scanDetections reads
// such an array straight from the payload while the tape is parsed —
// checking the JSON and the values in one pass, with no tape tokens for
// its elements — and declines at the first thing that is not plain: an
// escape, a non-ASCII byte, an unknown or repeated key, a value of another
// type, a value the checks refuse, an empty object, more readings than a
// message may hold. The payload is then parsed again by the generic path,
// which decides, rejects and explains as it always does.
//
// So the fast path never rejects anything, and what it accepts the generic
// path would have accepted the same way: a reading's checks are the same
// functions in the same order (imsiMNCLen, imeiMsg, appendMAC, the rssi
// range, appendTech, the identifier rule), or word-at-a-time forms of them
// for the usual values (fastident.go, held to them by their own tests and
// fuzz target), and its ts is read later by the same stampOf, once the
// message's ts, seq and limit are known. A differential test and a fuzz
// target hold the two paths to identical results on every payload.
//
// A detection is read in one of two ways. Most are in the units' canonical
// form, read by scanCanonicalDetection in straight-line code; any other
// plain one is read key by key, each key matched first in its compact
// form (compactDetKey) and each value first in its usual form.

// fastDets are the readings scanDetections read from the current payload.
type fastDets struct {
	dets []model.Detection // Stamp and Loc are set by fastDetections
	ts   []token           // each reading's ts (kNull: absent)
	ran  bool              // scanDetections ran for this payload
}

// parse parses payload into the tape, through the detections fast path
// for a detections message.
func (d *Decoder) parse(payload []byte, stream model.Stream) bool {
	if stream != model.StreamDetections || d.noFastPath {
		return d.t.parse(payload)
	}
	d.fast.ran = false
	if d.t.parseWith(payload, d.scanDets) {
		return true
	}
	// Declined, or not JSON: the generic path decides, from scratch.
	d.strs = d.strs[:0]
	return d.t.parse(payload)
}

// at is b[i], or 0 (which no JSON structure starts with) past the end.
func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// plainString returns the end of the string that starts at b[i] (after its
// opening quote) if it is made only of printable ASCII without escapes,
// and the index of its closing quote; false otherwise.
func plainString(b []byte, i int) (int, bool) {
	for len(b)-i >= 8 {
		if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			return i, b[i] == '"'
		}
		i += 8
	}
	for i < len(b) && strPlain[b[i]] {
		i++
	}
	return i, at(b, i) == '"'
}

// scanDetections reads the detections array at b[i] (its '[') into
// d.fast, and d.strs and d.detStrs as the generic path would; see above.
func (d *Decoder) scanDetections(b []byte, i int) (int, bool) {
	if d.fast.ran {
		return i, false // a second detections key: the generic path reports it
	}
	d.fast.ran = true
	d.fast.dets, d.fast.ts, d.detStrs = d.fast.dets[:0], d.fast.ts[:0], d.detStrs[:0]
	i = skipWS(b, i+1)
	if at(b, i) == ']' {
		return i + 1, true
	}
	for n := 0; ; n++ {
		if n == model.MaxReadingsPerMessage {
			return i, false
		}
		d.fast.dets = append(d.fast.dets, model.Detection{})
		d.fast.ts = append(d.fast.ts, token{kind: kNull})
		d.detStrs = append(d.detStrs, detStrs{})
		var ok bool
		if i, ok = d.scanDetection(b, i, &d.fast.dets[n], &d.detStrs[n], &d.fast.ts[n]); !ok {
			return i, false
		}
		switch i = skipWS(b, i); at(b, i) {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanDetection reads one plain detection object at b[i].
func (d *Decoder) scanDetection(b []byte, i int, det *model.Detection, sp *detStrs, ts *token) (int, bool) {
	if at(b, i) != '{' {
		return i, false
	}
	if e, ok := d.scanCanonicalDetection(b, i+1, det, sp, ts); ok {
		return e, true
	}
	i = skipWS(b, i+1)
	var seen uint32
	k := -1 // the previous key
	for {
		var v int
		k, v = compactDetKey(b, i, k+1)
		if k < 0 {
			if at(b, i) != '"' {
				return i, false
			}
			e, ok := plainString(b, i+1)
			if !ok {
				return i, false
			}
			if k = detKey(b[i+1 : e]); k < 0 {
				return i, false
			}
			if v = skipWS(b, e+1); at(b, v) != ':' {
				return v, false
			}
			v = skipWS(b, v+1)
		}
		if seen&(1<<k) != 0 {
			return i, false
		}
		seen |= 1 << k
		var ok bool
		if i, ok = d.scanDetectionValue(b, v, k, det, sp, ts); !ok {
			return i, false
		}
		switch i = skipWS(b, i); at(b, i) {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			if sp.imsi == (span{}) && sp.imei == (span{}) && sp.mac == (span{}) {
				return i, false // no identifier: rejected by the generic path
			}
			return i + 1, true
		default:
			return i, false
		}
	}
}

// The keys of a canonical detection with their separators.
const (
	canonIMSI = `"imsi":"`
	canonIMEI = `","imei":"`
	canonMAC  = `","mac":"`
	canonRSSI = `","rssi":`
	canonTech = `,"tech":"`
	canonTS   = `,"ts":`
)

// scanCanonicalDetection reads a detection in the form the units send:
// compact JSON with imsi, imei, mac, rssi and tech in that order, in their
// usual forms (a 6-15 digit IMSI, a 14-16 digit IMEI, a 17-byte MAC, a
// whole rssi), then optionally ts. b[i] is the start of the object's first
// key. It returns the index after the object, or false with nothing read
// (d.strs, det, sp and ts as they were) when the object is in any other
// form: scanDetection's loop then reads it key by key. In straight-line
// code, with the keys' literals matched along with their separators, it
// costs a fraction of the loop.
func (d *Decoder) scanCanonicalDetection(b []byte, i int, det *model.Detection, sp *detStrs, ts *token) (int, bool) {
	// The literals are compared as constants (string(b[i:j]) == canonX),
	// which compiles to two word loads; hasLiteral's parameter would cost
	// a call to memequal.
	if len(b)-i < len(canonIMSI) || string(b[i:i+len(canonIMSI)]) != canonIMSI {
		return i, false
	}
	i += len(canonIMSI)
	n := digitRun(b, i)
	if n < 6 || n > 15 {
		return i, false
	}
	imsiAt, imsi := i, b[i:i+n]
	if i += n; len(b)-i < len(canonIMEI) || string(b[i:i+len(canonIMEI)]) != canonIMEI {
		return i, false
	}
	i += len(canonIMEI)
	n = digitRun(b, i)
	imeiAt, imei := i, b[i:i+n]
	if i += n; len(b)-i < len(canonMAC) || string(b[i:i+len(canonMAC)]) != canonMAC {
		return i, false
	}
	if !(n == 14 || n == 16 || n == 15 && luhn15(imei)) {
		return i, false
	}
	i += len(canonMAC)
	if len(b)-i < 17 {
		return i, false
	}
	mac := b[i : i+17]
	if i += 17; len(b)-i < len(canonRSSI) || string(b[i:i+len(canonRSSI)]) != canonRSSI {
		return i, false
	}
	rssi, i, ok := plainRSSI(b, i+len(canonRSSI))
	if !ok || len(b)-i < len(canonTech) || string(b[i:i+len(canonTech)]) != canonTech {
		return i, false
	}
	i += len(canonTech)
	techID, e := knownTechAt(b, i)
	if techID == 0 {
		if e, ok = plainString(b, i); !ok {
			return i, false
		}
		techID = knownTech(b[i:e])
	}
	tech := b[i:e]
	i = e + 1

	// The digits of imsi and imei are copied as two words each: b holds
	// 16 bytes from either, the literal after it included.
	mark := len(d.strs)
	s := appendWords16(d.strs, b[imsiAt:imsiAt+16], len(imsi))
	s = appendWords16(s, b[imeiAt:imeiAt+16], len(imei))
	var strs detStrs
	strs.imsi, strs.mncLen = span{uint32(mark), uint32(mark + len(imsi))}, uint32(mncLen(imsi))
	strs.imei = span{strs.imsi.end, uint32(len(s))}
	if d.strs, ok = appendMAC17(s, mac); !ok {
		d.strs = d.strs[:mark]
		return i, false
	}
	strs.mac = d.spanFrom(int(strs.imei.end))
	if strs.techID = techID; techID == 0 {
		var msg string
		if d.strs, msg = appendTech(d.strs, tech); msg != "" {
			d.strs = d.strs[:mark]
			return i, false
		}
		strs.tech = d.spanFrom(int(strs.mac.end))
	}
	if len(b)-i >= len(canonTS) && string(b[i:i+len(canonTS)]) == canonTS {
		if i, ok = d.scanDetectionValue(b, i+len(canonTS), dTS, det, sp, ts); !ok {
			d.strs = d.strs[:mark]
			return i, false
		}
	}
	if at(b, i) != '}' {
		d.strs = d.strs[:mark]
		*ts = token{kind: kNull}
		return i, false
	}
	*sp, det.RSSI = strs, model.Some(rssi)
	return i + 1, true
}

// techNames are the techs units send (the contract's examples and the load
// tool's), as appendTech writes them. The detections fast path refers to
// them by their index (detStrs.techID), a static string, rather than
// copying each reading's tech into the message's strings and lower-casing
// it; any other tech takes that way.
var techNames = [...]string{1: "gsm", 2: "umts", 3: "lte", 4: "nr"}

// knownTech returns the index in techNames of tech as sent, 0 unless it is
// one of them exactly (appendTech would leave it as it is: no upper case,
// no spaces around it).
func knownTech(tech []byte) uint8 {
	switch string(tech) {
	case "gsm":
		return 1
	case "umts":
		return 2
	case "lte":
		return 3
	case "nr":
		return 4
	}
	return 0
}

// techWords are techNames with their closing quote, as knownTechAt
// matches them: each as a little-endian word, masked to its length.
var techWords = func() (t [len(techNames)]struct{ word, mask uint64 }) {
	for id, name := range techNames {
		if id == 0 {
			continue
		}
		var w [8]byte
		lit := name + `"`
		copy(w[:], lit)
		t[id].word = binary.LittleEndian.Uint64(w[:])
		t[id].mask = ^uint64(0) >> (64 - 8*len(lit))
	}
	return t
}()

// knownTechAt is knownTech for the string that starts at b[i] (after its
// opening quote), matched with its closing quote in one 8-byte load: it
// returns the tech's index in techNames and the index of the closing
// quote, or 0 and i when the string is none of them (or b holds fewer than
// 8 bytes from i: the caller then reads the string as any other).
func knownTechAt(b []byte, i int) (uint8, int) {
	if len(b)-i < 8 {
		return 0, i
	}
	w := binary.LittleEndian.Uint64(b[i:])
	for id := 1; id < len(techWords); id++ {
		if t := &techWords[id]; w&t.mask == t.word {
			return uint8(id), i + len(techNames[id])
		}
	}
	return 0, i
}

// appendWords16 appends w[:n] to dst, n at most 16, by copying all 16
// bytes of w as two words (a call to memmove costs more) and keeping n.
func appendWords16(dst, w []byte, n int) []byte {
	k := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, binary.LittleEndian.Uint64(w))
	dst = binary.LittleEndian.AppendUint64(dst, binary.LittleEndian.Uint64(w[8:16]))
	return dst[:k+n]
}

// compactKeys are the keys of a detection as devices write them (compact
// JSON), with their quotes and colon and, for the keys whose values are
// always strings, the value's opening quote: each as a little-endian word
// (masked to the literal's length) and the length of the part before the
// value.
var compactKeys = func() (t [dCount]struct {
	word, mask uint64
	n          int
}) {
	for k, lit := range [dCount]string{
		dIMSI: `"imsi":"`, dIMEI: `"imei":"`, dMAC: `"mac":"`,
		dRSSI: `"rssi":`, dTech: `"tech":"`, dTS: `"ts":`,
	} {
		var b [8]byte
		copy(b[:], lit)
		t[k].word = binary.LittleEndian.Uint64(b[:])
		t[k].mask = ^uint64(0) >> (64 - 8*len(lit))
		t[k].n = strings.IndexByte(lit, ':') + 1
	}
	return t
}()

// compactDetKey matches the key at b[i] and what follows it against
// compactKeys, with one 8-byte load, and returns the key (a d* index) and
// the index of its value; k is -1 when none matches (white space, another
// key or the end of b is in the way).
// Keys come in one order, nearly always: the one after the previous key
// (next) is tried first.
func compactDetKey(b []byte, i, next int) (k, v int) {
	if len(b)-i < 8 {
		return -1, i
	}
	w := binary.LittleEndian.Uint64(b[i:])
	if next < dCount {
		if c := &compactKeys[next]; w&c.mask == c.word {
			return next, i + c.n
		}
	}
	for k := range compactKeys {
		if c := &compactKeys[k]; w&c.mask == c.word {
			return k, i + c.n
		}
	}
	return -1, i
}

// scanDetectionValue reads the value at b[i] of key k (a d* index). null
// is absent, as in the generic path.
func (d *Decoder) scanDetectionValue(b []byte, i, k int, det *model.Detection, sp *detStrs, ts *token) (int, bool) {
	if hasLiteral(b, i, "null") {
		return i + 4, true
	}
	if k == dRSSI {
		if rssi, e, ok := plainRSSI(b, i); ok {
			det.RSSI = model.Some(rssi)
			return e, true
		}
	}
	if k == dRSSI || (k == dTS && at(b, i) != '"') {
		e, ok := scanNumber(b, i)
		if !ok {
			return i, false
		}
		if k == dTS {
			*ts = token{kind: kNumber, start: uint32(i), end: uint32(e)}
			return e, true
		}
		f, ok := fastFloat(b[i:e])
		if !ok || f < -150 || f > 0 {
			return i, false
		}
		det.RSSI = model.Some(f)
		return e, true
	}
	if at(b, i) != '"' {
		return i, false
	}
	// The usual identifiers, a word at a time (fastident.go); any other
	// form is read below.
	switch s := i + 1; k {
	case dIMSI:
		if n := digitRun(b, s); 6 <= n && n <= 15 && at(b, s+n) == '"' {
			v := b[s : s+n]
			sp.imsi, sp.mncLen = d.put(v), uint32(mncLen(v))
			return s + n + 1, true
		}
	case dIMEI:
		if n := digitRun(b, s); at(b, s+n) == '"' && (n == 14 || n == 16 || n == 15 && luhn15(b[s:s+15])) {
			sp.imei = d.put(b[s : s+n])
			return s + n + 1, true
		}
	case dMAC:
		if at(b, s+17) == '"' {
			off := len(d.strs)
			var ok bool
			if d.strs, ok = appendMAC17(d.strs, b[s:s+17]); ok {
				sp.mac = d.spanFrom(off)
				return s + 18, true
			}
		}
	}
	e, ok := plainString(b, i+1)
	if !ok {
		return i, false
	}
	v := b[i+1 : e]
	var msg string
	switch k {
	case dTS:
		*ts = token{kind: kString, start: uint32(i + 1), end: uint32(e)}
	case dIMSI:
		if len(v) > 0 {
			var mncLen int
			if mncLen, msg = imsiMNCLen(v); msg == "" {
				sp.imsi, sp.mncLen = d.put(v), uint32(mncLen)
			}
		}
	case dIMEI:
		if len(v) > 0 {
			if msg = imeiMsg(v); msg == "" {
				sp.imei = d.put(v)
			}
		}
	case dMAC:
		if len(v) > 0 {
			off := len(d.strs)
			if d.strs, msg = appendMAC(d.strs, v); msg == "" {
				sp.mac = d.spanFrom(off)
			}
		}
	case dTech:
		if sp.techID = knownTech(v); sp.techID != 0 {
			break
		}
		// Plain strings hold no control character but DEL, which
		// appendTech refuses, as it refuses what is past maxString.
		off := len(d.strs)
		if d.strs, msg = appendTech(d.strs, v); msg == "" {
			sp.tech = d.spanFrom(off)
		}
	}
	return e + 1, msg == ""
}

// plainRSSI reads the usual rssi at b[i], a whole number of dBm in
// [-150, 0] written as '-' and 1-3 digits, and returns it and the index
// after it; ok false for any other form (0, a fraction, an exponent, a
// leading zero), which the general path reads.
func plainRSSI(b []byte, i int) (rssi float64, e int, ok bool) {
	if at(b, i) != '-' {
		return 0, i, false
	}
	// The digits, each read once: a byte that is not one is above 9 here.
	var v int
	switch d1, d2, d3 := at(b, i+1)-'0', at(b, i+2)-'0', at(b, i+3)-'0'; {
	case d1 > 9:
		return 0, i, false
	case d2 > 9:
		v, e = int(d1), i+2
	case d1 == 0: // a leading zero
		return 0, i, false
	case d3 > 9:
		v, e = int(d1)*10+int(d2), i+3
	case at(b, i+4)-'0' <= 9: // four digits
		return 0, i, false
	default:
		v, e = int(d1)*100+int(d2)*10+int(d3), i+4
	}
	if c := at(b, e); c == '.' || c == 'e' || c == 'E' {
		return 0, i, false
	}
	return -float64(v), e, v <= 150
}

// fastDetections moves the readings scanDetections read into out, with
// their stamps (a bad ts rejects its reading, as in the generic path) and
// the message's position. The slices change hands: out's become the next
// payload's.
func (d *Decoder) fastDetections(out *model.Batch) {
	dets, n := d.fast.dets, 0
	for i := range dets {
		st, r, msg := d.stampOf(d.fast.ts[i], i)
		if r != "" {
			d.reject(r, i, "ts", msg)
			continue
		}
		if n != i {
			dets[n], d.detStrs[n] = dets[i], d.detStrs[i]
		}
		dets[n].Stamp, dets[n].Loc = st, d.loc
		n++
	}
	out.Detections, d.fast.dets = dets[:n], out.Detections[:0]
	d.detStrs = d.detStrs[:n]
}
