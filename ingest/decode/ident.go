package decode

import (
	"strconv"
	"unsafe"

	"github.com/fenceline/fenceline/internal/luhn"
	"github.com/fenceline/fenceline/internal/model"
)

// Identifier checks. Their messages never contain the identifier itself.

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digitsMsg checks that b is min..max ASCII digits and returns "" or why not.
func digitsMsg(b []byte, min, max int) string {
	if len(b) < min || len(b) > max {
		for _, c := range b {
			if !isDigit(c) {
				return strconv.Itoa(len(b)) + " bytes, not all digits; want " + strconv.Itoa(min) + "-" + strconv.Itoa(max) + " digits"
			}
		}
		return strconv.Itoa(len(b)) + " digits, want " + strconv.Itoa(min) + "-" + strconv.Itoa(max)
	}
	for i, c := range b {
		if !isDigit(c) {
			return "non-digit at offset " + strconv.Itoa(i) + "; want " + strconv.Itoa(min) + "-" + strconv.Itoa(max) + " digits"
		}
	}
	return ""
}

// threeDigitMNC reports whether networks of the given MCC use 3-digit MNCs
// (ITU-T E.212 allocations: North America, the Caribbean, and the Latin
// American and other countries that adopted 3-digit codes). India's 405 is
// mixed in reality; it is treated as 3-digit, as most of its codes are.
func threeDigitMNC(mcc int) bool {
	switch mcc {
	case 302, 310, 311, 312, 313, 314, 315, 316, // Canada, USA
		334,                     // Mexico
		338, 342, 344, 346, 348, // Jamaica, Barbados, Antigua, Cayman, BVI
		352, 354, 356, 358, 360, // Grenada, Montserrat, St Kitts, St Lucia, St Vincent
		365, 366, 376, // Anguilla, Dominica, Turks and Caicos
		405,           // India (the 3-digit half)
		708, 722, 732, // Honduras, Argentina, Colombia
		750: // Falkland Islands
		return true
	}
	return false
}

// imsiMNCLen validates an IMSI and returns the length of its MNC (2 or 3).
func imsiMNCLen(b []byte) (int, string) {
	if msg := digitsMsg(b, 6, 15); msg != "" {
		return 0, msg
	}
	return mncLen(b), ""
}

// mncLen is the length of the MNC (2 or 3) of a valid IMSI b (6 digits at
// least, so the MNC always fits).
func mncLen(b []byte) int {
	mcc := int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0')
	if threeDigitMNC(mcc) {
		return 3
	}
	return 2
}

// imeiMsg validates an IMEI (14 digits without check digit, 15 with a Luhn
// check digit, or a 16-digit IMEISV).
func imeiMsg(b []byte) string {
	if len(b) == 15 && luhn.Valid(b) {
		return "" // the usual IMEI, checked in one pass
	}
	if msg := digitsMsg(b, 14, 16); msg != "" {
		return msg
	}
	if len(b) == 15 {
		return "15 digits with a wrong Luhn check digit"
	}
	return ""
}

func hexVal(c byte) (byte, bool) {
	v := hexVals[c]
	return v & 0xf, v != 0
}

// hexVals maps a hex digit to its value + 0x10, anything else to 0.
var hexVals = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c-'0') | 0x10
		case 'a' <= c && c <= 'f':
			t[c] = byte(c-'a'+10) | 0x10
		case 'A' <= c && c <= 'F':
			t[c] = byte(c-'A'+10) | 0x10
		}
	}
	return
}()

const hexDigits = "0123456789abcdef"

// appendMAC validates a MAC address and appends its lower-case colon form
// to dst. Any case, in the forms devices write: 6 hex octets separated by
// all ':' or all '-', 3 groups of 4 hex digits separated by '.' (Cisco), or
// 12 hex digits without separators.
func appendMAC(dst, b []byte) ([]byte, string) {
	const want = "; want 6 hex octets separated by ':' or '-', 3 groups of 4 separated by '.', or 12 hex digits"
	var digits [12]byte
	n := 0
	switch len(b) {
	case 17:
		sep := b[2]
		if sep != ':' && sep != '-' {
			return dst, "bad separator" + want
		}
		for i, c := range b {
			if i%3 == 2 {
				if c != sep {
					return dst, "mixed or bad separators" + want
				}
				continue
			}
			digits[n], n = c, n+1
		}
	case 14:
		for i, c := range b {
			if i%5 == 4 {
				if c != '.' {
					return dst, "bad separator" + want
				}
				continue
			}
			digits[n], n = c, n+1
		}
	case 12:
		copy(digits[:], b)
	default:
		return dst, strconv.Itoa(len(b)) + " bytes" + want
	}
	var out [17]byte
	for i, c := range digits {
		v, ok := hexVal(c)
		if !ok {
			return dst, "non-hex digit" + want
		}
		j := i/2*3 + i%2
		out[j] = hexDigits[v]
		if i%2 == 1 && j+1 < len(out) {
			out[j+1] = ':'
		}
	}
	return append(dst, out[:]...), ""
}

// maxTech bounds the length of tech, which is an InfluxDB tag.
const maxTech = 32

// appendTech validates tech (1-32 of letters, digits, space, '.', '_', '/',
// '+', '-') and appends it in lower case, without leading or trailing
// spaces (a tag value: "lte " would be a series apart from "lte").
func appendTech(dst, b []byte) ([]byte, string) {
	if len(b) > maxString {
		// Any text field's bound, spaces or not: the generic path's scan
		// stops there, and the fast one must refuse what it refuses.
		return dst, tooLong(len(b), maxTech)
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	if len(b) > maxTech {
		return dst, tooLong(len(b), maxTech)
	}
	var lower [maxTech]byte
	for i, c := range b {
		if lower[i] = techBytes[c]; lower[i] == 0 {
			return dst, "character outside [A-Za-z0-9 ._/+-]"
		}
	}
	return append(dst, lower[:len(b)]...), ""
}

// techBytes maps the bytes allowed in tech to their lower case, others to 0.
var techBytes = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case 'A' <= c && c <= 'Z':
			t[c] = byte(c + 'a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == ' ', c == '.', c == '_', c == '/', c == '+', c == '-':
			t[c] = byte(c)
		}
	}
	return t
}()

// appendPlate appends plate b in its normal form (model.AppendPlate) to
// dst. An empty result or 无牌 is model.NoPlate; then dst is returned
// unchanged and none is true.
func appendPlate(dst, b []byte) (out []byte, none bool) {
	start := len(dst)
	dst = model.AppendPlate(dst, b)
	if len(dst) == start || isNoPlate(dst[start:]) {
		return dst[:start], true
	}
	return dst, false
}

// isNoPlate is model.IsNoPlate of a normalised plate's bytes, which it
// does not keep.
func isNoPlate(p []byte) bool {
	return model.IsNoPlate(unsafe.String(unsafe.SliceData(p), len(p)))
}
