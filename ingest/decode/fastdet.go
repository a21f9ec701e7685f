package decode

import (
	"encoding/binary"
	"math/bits"

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
// range, appendTech, the identifier rule), and its ts is read later by the
// same stampOf, once the message's ts, seq and limit are known. A
// differential test and a fuzz target hold the two paths to identical
// results on every payload.

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
	i = skipWS(b, i+1)
	var seen uint32
	for {
		if at(b, i) != '"' {
			return i, false
		}
		e, ok := plainString(b, i+1)
		if !ok {
			return i, false
		}
		k := detKey(b[i+1 : e])
		if k < 0 || seen&(1<<k) != 0 {
			return i, false
		}
		seen |= 1 << k
		if i = skipWS(b, e+1); at(b, i) != ':' {
			return i, false
		}
		if i, ok = d.scanDetectionValue(b, skipWS(b, i+1), k, det, sp, ts); !ok {
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

// scanDetectionValue reads the value at b[i] of key k (a d* index). null
// is absent, as in the generic path.
func (d *Decoder) scanDetectionValue(b []byte, i, k int, det *model.Detection, sp *detStrs, ts *token) (int, bool) {
	if hasLiteral(b, i, "null") {
		return i + 4, true
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
		// Plain strings hold no control character but DEL, which
		// appendTech refuses, as its 32-byte bound is within maxString.
		off := len(d.strs)
		if d.strs, msg = appendTech(d.strs, v); msg == "" {
			sp.tech = d.spanFrom(off)
		}
	}
	return e + 1, msg == ""
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
