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
		if r >= utf8.RuneSelf && unicode.Is(unicode.Cf, r) {
			continue // invisible (a zero-width space, a byte-order mark, a direction mark): no part of a plate
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
// state): a normal plate without its separators — spaces, hyphens, dots
// and middle dots — which are how a plate is written ("蒙B·12345",
// "1598 УБА"), not what it is: a camera reads "蒙B12345".
func PlateKey(plate string) string {
	if strings.IndexFunc(plate, isPlateSeparator) < 0 {
		return plate
	}
	return strings.Map(func(r rune) rune {
		if isPlateSeparator(r) {
			return -1
		}
		return r
	}, plate)
}

// IsNoPlate reports whether plate, in the normal form, says that no plate
// was read: 无牌 (or 無牌, in traditional characters) however written with
// separators ("无-牌", "无牌·"), or nothing that is a letter or a digit (an
// empty plate, "-", "?", "·"). Such passes are one vehicle to no rule:
// taken as plates, they would be one vehicle seen everywhere.
func IsNoPlate(plate string) bool {
	var key [3]rune
	n := 0
	letters := false
	for _, r := range plate {
		if isPlateSeparator(r) {
			continue
		}
		if n < len(key) {
			key[n] = r
		}
		n++
		letters = letters || unicode.IsLetter(r) || unicode.IsDigit(r)
		if letters && n > 2 {
			return false // a plate's usual case, decided early
		}
	}
	if n == 2 && (key[0] == '无' || key[0] == '無') && key[1] == '牌' {
		return true
	}
	return !letters
}

// isPlateSeparator reports whether r is how a plate is written rather than
// part of it: spaces, dots, middle dots and the hyphens and dashes of
// Unicode that cameras and operators type for one.
func isPlateSeparator(r rune) bool {
	switch r {
	case ' ', '-', '.', '·', '•', '・', '‧', '‐', '‑', '‒', '–', '—', '−', '․', 'ー':
		return true
	}
	return false
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
		case unicode.IsSpace(r), toHalfWidth(r) != r, unicode.ToUpper(r) != r:
			return false
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}
