package decode

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The payload is parsed into a tape: one pass over the bytes that checks
// them strictly (RFC 8259 in valid UTF-8) and records every value as a token
// in a flat slice, in document order. An object's token is followed by its
// key and value tokens, an array's by its elements; a container token knows
// where it ends, so a value is skipped in O(1). Tokens point into the payload
// and hold no Go pointers: reusing the slice costs no allocation and gives
// the garbage collector nothing to scan.

// maxDepth bounds the nesting of arrays and objects in a payload. The
// contract's payloads nest 3 deep; the bound keeps hostile input cheap.
const maxDepth = 64

// jsonKind is the kind of a token.
type jsonKind uint8

const (
	kNull jsonKind = iota
	kFalse
	kTrue
	kNumber
	kString
	kObject
	kArray
)

var kindNames = [...]string{kNull: "null", kFalse: "bool", kTrue: "bool", kNumber: "number",
	kString: "string", kObject: "object", kArray: "array"}

func (k jsonKind) String() string { return kindNames[k] }

// token is one value (or object key) of the tape.
type token struct {
	kind jsonKind
	esc  bool // a string with escape sequences
	// lone marks a string that escapes an unpaired UTF-16 surrogate: valid
	// JSON (RFC 8259 allows it) but no text, since it has no UTF-8 form. It
	// unescapes to U+FFFD; a field that must be text refuses it (loneMsg).
	lone bool
	// Strings: the bytes between the quotes. Numbers and literals: their
	// bytes. Containers: start is the offset of the bracket, end the index
	// of the first token after the container.
	start, end uint32
}

// tape is a parsed payload. Index 0 is the top-level value, so 0 also
// serves as "absent" for the index of a field.
type tape struct {
	src   []byte
	toks  []token
	unesc []byte // unescaped strings of the current payload
	// fastArr is the index of the array token that parseWith's skip
	// function read in its place (0: none); the token has no children.
	fastArr int
}

// arraySkipper reads the array at b[i] in place of the tape: it returns the
// index after the array, or false when it declines (the payload is then
// parsed again without it). See Decoder.scanDetections.
type arraySkipper func(b []byte, i int) (int, bool)

// strPlain marks the bytes that may appear unescaped in a JSON string and
// need no further look: printable ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// parse fills the tape from b and reports whether b is exactly one JSON
// value (RFC 8259) encoded in valid UTF-8, nested at most maxDepth deep.
// NaN, Infinity, leading zeros, control characters in strings and unknown
// escapes are all refused. A string escaping an unpaired UTF-16 surrogate
// is valid JSON, and marked (token.lone) for the field that reads it.
func (t *tape) parse(b []byte) bool { return t.parseWith(b, nil) }

// parseWith is parse, with the array value of the top-level key
// "detections" (written without escapes) read by skip when skip is not nil.
func (t *tape) parseWith(b []byte, skip arraySkipper) bool {
	if uint64(len(b)) >= 1<<32 {
		return false
	}
	t.src = b
	t.toks = t.toks[:0]
	t.unesc = t.unesc[:0]
	t.fastArr = 0
	var stack [maxDepth]uint32 // tape indexes of the open containers
	depth := 0
	i := skipWS(b, 0)
	skipNext := false // the value about to be read is the one skip takes

value:
	if i >= len(b) {
		return false
	}
	switch c := b[i]; c {
	case '{', '[':
		if skipNext && c == '[' {
			j, ok := skip(b, i)
			if !ok {
				return false
			}
			t.fastArr = len(t.toks)
			t.toks = append(t.toks, token{kind: kArray, start: uint32(i), end: uint32(len(t.toks) + 1)})
			i = j
			goto after
		}
		skipNext = false
		if depth == maxDepth {
			return false
		}
		k, closing := kObject, byte('}')
		if c == '[' {
			k, closing = kArray, ']'
		}
		stack[depth] = uint32(len(t.toks))
		depth++
		t.toks = append(t.toks, token{kind: k, start: uint32(i)})
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closing {
			depth--
			t.toks[stack[depth]].end = uint32(len(t.toks))
			i++
			goto after
		}
		if k == kObject {
			goto key
		}
		goto value
	case '"':
		j, esc, lone, ok := scanString(b, i+1)
		if !ok {
			return false
		}
		t.toks = append(t.toks, token{kind: kString, esc: esc, lone: lone, start: uint32(i + 1), end: uint32(j - 1)})
		i = j
	case 't':
		if !hasLiteral(b, i, "true") {
			return false
		}
		t.toks = append(t.toks, token{kind: kTrue, start: uint32(i), end: uint32(i + 4)})
		i += 4
	case 'f':
		if !hasLiteral(b, i, "false") {
			return false
		}
		t.toks = append(t.toks, token{kind: kFalse, start: uint32(i), end: uint32(i + 5)})
		i += 5
	case 'n':
		if !hasLiteral(b, i, "null") {
			return false
		}
		t.toks = append(t.toks, token{kind: kNull, start: uint32(i), end: uint32(i + 4)})
		i += 4
	default:
		j, ok := scanNumber(b, i)
		if !ok {
			return false
		}
		t.toks = append(t.toks, token{kind: kNumber, start: uint32(i), end: uint32(j)})
		i = j
	}

after:
	skipNext = false
	i = skipWS(b, i)
	if depth == 0 {
		return i == len(b)
	}
	if i >= len(b) {
		return false
	}
	switch top := t.toks[stack[depth-1]].kind; b[i] {
	case ',':
		i = skipWS(b, i+1)
		if top == kObject {
			goto key
		}
		goto value
	case '}', ']':
		if (b[i] == '}') != (top == kObject) {
			return false
		}
		depth--
		t.toks[stack[depth]].end = uint32(len(t.toks))
		i++
		goto after
	}
	return false

key:
	if i >= len(b) || b[i] != '"' {
		return false
	}
	{
		j, esc, lone, ok := scanString(b, i+1)
		if !ok {
			return false
		}
		t.toks = append(t.toks, token{kind: kString, esc: esc, lone: lone, start: uint32(i + 1), end: uint32(j - 1)})
		skipNext = skip != nil && depth == 1 && !esc && string(b[i+1:j-1]) == "detections"
		i = skipWS(b, j)
	}
	if i >= len(b) || b[i] != ':' {
		return false
	}
	i = skipWS(b, i+1)
	goto value
}

func skipWS(b []byte, i int) int {
	// Most calls find no white space: one compare says so.
	for i < len(b) && b[i] <= ' ' && isWS(b[i]) {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// SWAR constants: the bytes 0x01, 0x80, 0x20, '"' and '\\' repeated in a
// word.
const (
	swarOnes   = 0x0101010101010101
	swarHigh   = 0x8080808080808080
	swarSpace  = swarOnes * 0x20
	swarQuote  = swarOnes * '"'
	swarBSlash = swarOnes * '\\'
)

// specialBytes returns a mask with the high bit set in the lowest byte of x
// (little-endian) that is not a plain string byte (below 0x20, '"', '\\' or
// non-ASCII), and possibly in higher bytes; zero when all 8 are plain. The
// tests are the classic "has a byte less than n" and "has a zero byte"
// tricks, exact for the lowest byte they flag.
func specialBytes(x uint64) uint64 {
	below := (x - swarSpace) &^ x
	q := x ^ swarQuote
	bs := x ^ swarBSlash
	return (below | (q-swarOnes)&^q | (bs-swarOnes)&^bs | x) & swarHigh
}

// scanString checks a string whose opening quote is before b[i] and returns
// the index after its closing quote, whether it has escapes, and whether
// one of them is an unpaired UTF-16 surrogate. Plain bytes are skipped 8 at
// a time.
func scanString(b []byte, i int) (next int, esc, lone, ok bool) {
	for i < len(b) {
		if len(b)-i >= 8 {
			m := specialBytes(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
			if b[i] == '"' { // the usual special byte: the end
				return i + 1, esc, lone, true
			}
		}
		c := b[i]
		if strPlain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1, esc, lone, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return i, esc, lone, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return i, esc, lone, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if pairsWith(b, i, r) {
						i += 6
					} else {
						lone = true
					}
				}
			default:
				return i, esc, lone, false
			}
		case c < 0x20:
			return i, esc, lone, false
		default: // non-ASCII
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, esc, lone, false
			}
			i += n
		}
	}
	return i, esc, lone, false
}

// pairsWith reports whether the escape at b[i] is the low surrogate that
// pairs with r, a surrogate just read.
func pairsWith(b []byte, i int, r rune) bool {
	if r > 0xDBFF || len(b)-i < 6 || b[i] != '\\' || b[i+1] != 'u' {
		return false
	}
	r2, ok := hex4(b, i+2)
	return ok && 0xDC00 <= r2 && r2 <= 0xDFFF
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

// kind returns the kind of token i.
func (t *tape) kind(i int) jsonKind { return t.toks[i].kind }

// next returns the index of the token after the value at i.
func (t *tape) next(i int) int {
	if tk := &t.toks[i]; tk.kind >= kObject {
		return int(tk.end)
	}
	return i + 1
}

// end returns the index after the last child of container i.
func (t *tape) end(i int) int { return int(t.toks[i].end) }

// raw returns the bytes of a number or literal token.
func (t *tape) raw(i int) []byte {
	tk := &t.toks[i]
	return t.src[tk.start:tk.end]
}

// str returns the content of string token i, unescaped. The bytes are valid
// until the next parse.
func (t *tape) str(i int) []byte { return t.strOf(&t.toks[i]) }

// strOf is str of a token.
func (t *tape) strOf(tk *token) []byte {
	s := t.src[tk.start:tk.end]
	if !tk.esc {
		return s
	}
	off := len(t.unesc)
	t.unesc = appendUnescaped(t.unesc, s)
	return t.unesc[off:]
}

// appendUnescaped appends the unescaped form of s, a string body that parse
// has checked, to dst.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				if pairsWith(s, i, r) {
					r2, _ := hex4(s, i+2)
					r = utf16.DecodeRune(r, r2)
					i += 6
				} else {
					r = utf8.RuneError // unpaired: the token is marked lone
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}
