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

// PlateKeyEmpty reports whether plate (UTF-8) holds nothing but
// separators: its PlateKey is empty.
func PlateKeyEmpty(plate []byte) bool {
	for _, r := range string(plate) {
		if !isPlateSeparator(r) {
			return false
		}
	}
	return true
}

func isPlateSeparator(r rune) bool {
	switch r {
	case ' ', '-', '.', '·', '•', '・', '‧':
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
