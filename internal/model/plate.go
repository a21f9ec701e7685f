package model

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Plates are compared in one normal form, whether a checkpoint read them or
// an operator typed them into a watchlist: full-width forms half-width
// (U+FF01–U+FF5E, U+3000 ideographic space, as Chinese input methods type
// them), letters upper-case (any script), inner runs of white space one
// space, none at either end (`蒙ｂ７ｋ３ｑ２ ` → `蒙B7K3Q2`, `1598  уба` →
// `1598 УБА`). Invalid UTF-8 becomes U+FFFD.

// AppendPlate appends the normal form of plate b to dst.
func AppendPlate(dst, b []byte) []byte {
	start := len(dst)
	space := false // a space is pending (only emitted before a non-space)
	for i := 0; i < len(b); {
		var r rune
		if c := b[i]; c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var n int
			r, n = utf8.DecodeRune(b[i:])
			i += n
		}
		r = toHalfWidth(r)
		if Invisible(r) {
			continue // no part of a plate, and a plate apart that looks the same
		}
		if c, ok := composed(dst[start:], r); ok && !space {
			// A letter sent decomposed (И and a combining breve) is the
			// letter (Й): another plate otherwise, and one the breve's
			// loss in the key would merge with И's.
			_, n := utf8.DecodeLastRune(dst[start:])
			dst = utf8.AppendRune(dst[:len(dst)-n], c)
			continue
		}
		if r < utf8.RuneSelf {
			switch {
			case r == ' ' || '\t' <= r && r <= '\r':
				space = true
				continue
			case 'a' <= r && r <= 'z':
				r -= 'a' - 'A'
			}
		} else {
			if unicode.IsSpace(r) {
				space = true
				continue
			}
			r = unicode.ToUpper(r)
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// NormalisePlate returns plate s in the normal form. A plate already in it
// (as the decoder produces them) is returned as is, without allocating.
func NormalisePlate(s string) string {
	if plateIsNormal(s) {
		return s
	}
	return string(AppendPlate(make([]byte, 0, len(s)), []byte(s)))
}

// PlateKey is the form plates are compared in (watchlists, the rules'
// state, hashes): a normal plate's letters and digits alone. Spaces,
// hyphens, dots, middle dots and any other mark are how a plate is written
// ("蒙B·12345", "1598 УБА"), not what it is: a camera reads "蒙B12345".
func PlateKey(plate string) string {
	if strings.IndexFunc(plate, notKeyRune) < 0 {
		return plate
	}
	return strings.Map(func(r rune) rune {
		if notKeyRune(r) {
			return -1
		}
		return r
	}, plate)
}

// IsNoPlate reports whether plate, in the normal form, says that no plate
// was read: its key (PlateKey) is 无牌 or 無牌 (traditional characters),
// however they were written ("无-牌", "(无牌)", "无牌。"), or shorter than
// two letters or digits ("", "-", "?", "·", one character a camera made
// out). Such passes are no vehicle a rule can tell apart from another:
// taken as plates, they would be one vehicle seen everywhere.
func IsNoPlate(plate string) bool {
	var key [2]rune
	n := 0
	for _, r := range plate {
		if notKeyRune(r) {
			continue
		}
		if n == len(key) {
			return false // three or more: a plate
		}
		key[n] = r
		n++
	}
	return n < 2 || (key[0] == '无' || key[0] == '無') && key[1] == '牌'
}

// notKeyRune reports whether r is no part of a plate's key: anything but a
// letter or a digit, and the Hangul fillers (letters to Unicode, blanks to
// the eye).
func notKeyRune(r rune) bool {
	switch {
	case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	case r < utf8.RuneSelf:
		return true
	case hangulFiller(r), r == 'ー', r == 'ｰ':
		// The katakana long-vowel mark is typed for a dash: a letter to
		// Unicode, a hyphen on a plate.
		return true
	}
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

func hangulFiller(r rune) bool {
	return r == '\u115F' || r == '\u1160' || r == '\u3164' || r == '\uFFA0'
}

// Invisible reports whether r shows nothing where it stands: the Unicode
// format characters (a zero-width space, a byte-order mark, the direction
// marks), the combining grapheme joiner, the variation selectors, the
// Hangul fillers and the blank braille pattern. A plate drops them; text
// for alerts refuses them (config.LineProblem).
func Invisible(r rune) bool {
	switch {
	case r < utf8.RuneSelf:
		return false
	case r == '\u034F', r == '\u2800', '\uFE00' <= r && r <= '\uFE0F', '\U000E0100' <= r && r <= '\U000E01EF', hangulFiller(r):
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// composed returns the letter that the last letter of the plate so far and
// the combining mark r make, for the letters of Cyrillic plates that have
// a precomposed form: Й, Ё, Ў, Ї (and their lower case, upper-cased
// after). ok is false for anything else.
func composed(plate []byte, r rune) (rune, bool) {
	if r != '\u0306' && r != '\u0308' {
		return 0, false
	}
	last, _ := utf8.DecodeLastRune(plate)
	for _, c := range [...]struct{ base, mark, letter rune }{
		{'И', '\u0306', 'Й'}, {'и', '\u0306', 'Й'}, {'У', '\u0306', 'Ў'}, {'у', '\u0306', 'Ў'},
		{'Е', '\u0308', 'Ё'}, {'е', '\u0308', 'Ё'}, {'І', '\u0308', 'Ї'}, {'і', '\u0308', 'Ї'},
	} {
		if last == c.base && r == c.mark {
			return c.letter, true
		}
	}
	return 0, false
}

// CodeRune is r as a code stored as a tag (plate_color, vehicle_type) has
// it: white space a space, full-width forms half-width (as typed with a
// Chinese input method), format characters dropped (ok false: a byte-order
// mark or zero-width space would make a series apart that looks the same).
func CodeRune(r rune) (_ rune, ok bool) {
	switch {
	case r == '\u3000' || unicode.IsSpace(r):
		return ' ', true
	case r >= '\uFF01' && r <= '\uFF5E':
		return r - 0xFEE0, true
	case unicode.Is(unicode.Cf, r):
		return 0, false
	}
	return r, true
}

// toHalfWidth maps the full-width ASCII block and the ideographic space to
// their ASCII forms.
func toHalfWidth(r rune) rune {
	switch {
	case r == '\u3000':
		return ' '
	case r >= '\uFF01' && r <= '\uFF5E':
		return r - 0xFEE0
	}
	return r
}

func plateIsNormal(s string) bool {
	prevSpace := true // no leading space
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			_, size := utf8.DecodeRuneInString(s[i:])
			if size == 1 {
				return false // invalid UTF-8: let the slow path replace it
			}
		case r == ' ':
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		case r < utf8.RuneSelf: // ASCII: lower-case letters and white space are not normal
			if 'a' <= r && r <= 'z' || '\t' <= r && r <= '\r' {
				return false
			}
		case 0x4E00 <= r && r <= 0x9FFF:
			// CJK ideographs (province characters): no case, no space,
			// no full-width form; spared the table lookups below.
		case unicode.IsSpace(r), toHalfWidth(r) != r, unicode.ToUpper(r) != r, Invisible(r), r == '\u0306', r == '\u0308':
			return false
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}
