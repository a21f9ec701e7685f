package decode

import (
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects in a payload. The
// contract's payloads nest 3 deep; the bound keeps hostile input cheap.
const maxDepth = 64

// strPlain marks the bytes that may appear unescaped in a JSON string and
// need no further look: printable ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// validJSON reports whether b is exactly one JSON value (RFC 8259) encoded in
// valid UTF-8, nested at most maxDepth deep, whose strings do not escape
// unpaired UTF-16 surrogates (they cannot be represented in UTF-8). It is one
// pass without recursion, and stricter than fastjson's parser, which accepts
// NaN, Inf, malformed numbers, control characters and bad escapes.
func validJSON(b []byte) bool {
	var stack [maxDepth]byte // '{' or '['
	depth := 0
	i := skipWS(b, 0)

value:
	if i >= len(b) {
		return false
	}
	switch c := b[i]; c {
	case '{':
		if depth == maxDepth {
			return false
		}
		stack[depth] = '{'
		depth++
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			depth--
			i++
			goto after
		}
		goto key
	case '[':
		if depth == maxDepth {
			return false
		}
		stack[depth] = '['
		depth++
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			depth--
			i++
			goto after
		}
		goto value
	case '"':
		var ok bool
		if i, ok = scanString(b, i+1); !ok {
			return false
		}
	case 't':
		if !hasLiteral(b, i, "true") {
			return false
		}
		i += 4
	case 'f':
		if !hasLiteral(b, i, "false") {
			return false
		}
		i += 5
	case 'n':
		if !hasLiteral(b, i, "null") {
			return false
		}
		i += 4
	default:
		var ok bool
		if i, ok = scanNumber(b, i); !ok {
			return false
		}
	}

after:
	i = skipWS(b, i)
	if depth == 0 {
		return i == len(b)
	}
	if i >= len(b) {
		return false
	}
	switch b[i] {
	case ',':
		i = skipWS(b, i+1)
		if stack[depth-1] == '{' {
			goto key
		}
		goto value
	case '}':
		if stack[depth-1] != '{' {
			return false
		}
		depth--
		i++
		goto after
	case ']':
		if stack[depth-1] != '[' {
			return false
		}
		depth--
		i++
		goto after
	}
	return false

key:
	if i >= len(b) || b[i] != '"' {
		return false
	}
	{
		var ok bool
		if i, ok = scanString(b, i+1); !ok {
			return false
		}
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return false
	}
	i = skipWS(b, i+1)
	goto value
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanString checks a string whose opening quote is before b[i] and returns
// the index after its closing quote.
func scanString(b []byte, i int) (int, bool) {
	for i < len(b) {
		c := b[i]
		if strPlain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return i, false
				}
				i += 6
				switch {
				case 0xDC00 <= r && r <= 0xDFFF:
					return i, false // a low surrogate without a high one
				case 0xD800 <= r && r <= 0xDBFF:
					if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return i, false
					}
					r2, ok := hex4(b, i+2)
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return i, false
					}
					i += 6
				}
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default: // non-ASCII
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, false
			}
			i += n
		}
	}
	return i, false
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		v, ok := hexVal(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// scanNumber checks a number -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// starting at b[i] and returns the index after it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return i, false
		}
	}
	return i, true
}
