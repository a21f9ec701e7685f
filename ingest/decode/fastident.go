package decode

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time (SWAR) forms of the common detection values, for the
// detections fast path: a 15-digit IMSI or IMEI and a 17-byte MAC are read
// 8 bytes at a time, without a branch per byte. Each accepts exactly what
// the byte-wise check (imsiMNCLen, imeiMsg, appendMAC) accepts for such a
// value and yields the same result; anything else is left to that check
// (ok false), which also explains a refusal.

// More SWAR constants (see specialBytes).
const (
	swarZero = swarOnes * '0' // the digit '0' in each byte
	// oddBytes are the bytes 1, 3, 5 and 7 of a word (little-endian).
	oddBytes = 0xff00ff00ff00ff00
)

// nonDigits returns a mask with the high bit set in the lowest byte of x
// (little-endian) that is not an ASCII digit, and possibly in higher
// bytes; zero when all 8 are digits. Exact for the lowest byte it flags,
// like specialBytes: every byte below it is a digit, so no carry or borrow
// reaches it.
func nonDigits(x uint64) uint64 {
	below := (x - swarZero) &^ x          // below '0'
	above := x + swarOnes*(0x7f-'9')      // above '9' (high bit), for ASCII bytes
	return (below | above | x) & swarHigh // x: not ASCII
}

// digitRun returns the number of ASCII digits from b[i] on.
func digitRun(b []byte, i int) int {
	j := i
	for len(b)-j >= 8 {
		if m := nonDigits(binary.LittleEndian.Uint64(b[j:])); m != 0 {
			return j - i + bits.TrailingZeros64(m)>>3
		}
		j += 8
	}
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	return j - i
}

// luhnSum is the Luhn sum of the digit values in the bytes of w (0-9 each)
// with the odd bytes doubled (digit sum: 2d-9 from 5 on). Bytes stay below
// 10, so neither the doubling nor the adding carries between bytes, and
// the final multiply sums the 8 bytes (at most 72) into the top byte.
func luhnSum(w uint64) uint64 {
	odd := w & oddBytes
	ge5 := (odd + swarOnes*(0x80-5)) & swarHigh & oddBytes >> 7 // 1 in the odd bytes from 5 on
	w = w&^oddBytes + odd<<1 - ge5*9
	return w * swarOnes >> 56
}

// luhn15 reports whether the 15 digits of b pass the Luhn check. From the
// right, the check digit (index 14) is not doubled, index 13 is, and so
// on: the odd indexes, which are the odd bytes of b[0:8] and, once the
// overlapping b[7] is shifted out, of b[7:15].
func luhn15(b []byte) bool {
	if len(b) != 15 {
		return false
	}
	w0 := binary.LittleEndian.Uint64(b) - swarZero
	w1 := (binary.LittleEndian.Uint64(b[7:]) - swarZero) >> 8
	return (luhnSum(w0)+luhnSum(w1))%10 == 0
}

// hexBytes returns the high bit of each byte of x that is an ASCII hex
// digit (either case). Bytes are compared without their high bit, so no
// addition carries between bytes; the non-ASCII ones are then dropped.
func hexBytes(x uint64) uint64 {
	ascii := ^x & swarHigh
	x &^= swarHigh
	digit := (x + swarOnes*(0x80-'0')) &^ (x + swarOnes*(0x7f-'9'))
	l := x | swarSpace // 'A'-'F' to 'a'-'f'; nothing else lands there
	letter := (l + swarOnes*(0x80-'a')) &^ (l + swarOnes*(0x7f-'f'))
	return (digit | letter) & ascii & swarHigh
}

// The separators of a 17-byte MAC (offsets 2, 5, 8, 11, 14) in its first
// word (b[0:8]) and second word (b[8:16]).
const (
	macSeps0 = 0x0000ff0000ff0000
	macSeps1 = 0x00ff0000ff0000ff
)

// appendMAC17 is appendMAC for a MAC m of 17 bytes: 6 hex octets
// separated by ':' or '-', all the same. It appends the lower-case colon
// form to dst; ok false when m is not such a MAC.
func appendMAC17(dst, m []byte) ([]byte, bool) {
	if len(m) != 17 {
		return dst, false
	}
	sep := m[2]
	if sep != ':' && sep != '-' {
		return dst, false
	}
	w0 := binary.LittleEndian.Uint64(m)
	w1 := binary.LittleEndian.Uint64(m[8:])
	last := m[16]
	seps := swarOnes * uint64(sep)
	if (w0^seps)&macSeps0 != 0 || (w1^seps)&macSeps1 != 0 ||
		hexBytes(w0)|macSeps0&swarHigh != swarHigh || hexBytes(w1)|macSeps1&swarHigh != swarHigh ||
		hexVals[last] == 0 {
		return dst, false
	}
	// Hex digits, ':' and '-' all have the 0x20 bit: setting it
	// lower-cases the letters and changes nothing else. '-' ^ ':' turns
	// dashes into colons.
	fix := swarOnes * uint64(sep^':')
	w0 = (w0 | swarSpace) ^ fix&macSeps0
	w1 = (w1 | swarSpace) ^ fix&macSeps1
	dst = binary.LittleEndian.AppendUint64(dst, w0)
	dst = binary.LittleEndian.AppendUint64(dst, w1)
	return append(dst, last|0x20), true
}
