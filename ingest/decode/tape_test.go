package decode

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validJSON(b []byte) bool {
	var t tape
	return t.parse(b)
}

// toGo converts the value at tape index i to what encoding/json decodes
// (with UseNumber): the later of duplicate keys wins, as there.
func toGo(t *tape, i int) any {
	switch t.kind(i) {
	case kNull:
		return nil
	case kTrue:
		return true
	case kFalse:
		return false
	case kNumber:
		return json.Number(t.raw(i))
	case kString:
		return string(t.str(i))
	case kArray:
		a := []any{}
		for j := i + 1; j < t.end(i); j = t.next(j) {
			a = append(a, toGo(t, j))
		}
		return a
	}
	m := map[string]any{}
	for j := i + 1; j < t.end(i); {
		m[string(t.str(j))] = toGo(t, j+1)
		j = t.next(j + 1)
	}
	return m
}

func TestTapeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"a":[1,{"b":null,"c":[]},"x"],"d":{},"e":-0.5e+3,"f":true,"g":false}`,
		`["\"\\\/\b\f\n\r\t", "\u00e9\u4e2d\ud83d\ude00", "蒙B12345", "a\u0000b"]`,
		`{"k\u0065y":1,"key":2}`,
		`[[[[]]],{},[{}]]`,
		`"top"`,
		`42`,
	} {
		var tp tape
		require.True(t, tp.parse([]byte(s)), s)
		var want any
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&want))
		assert.Equal(t, want, toGo(&tp, 0), s)
		assert.Equal(t, len(tp.toks), tp.next(0), "the top value spans the tape")
	}
}

func TestValidJSON(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{` { "a" : [ 1 , -0.5e+3 , true , false , null , "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00" ] } `, true},
		{`[]`, true},
		{`"s"`, true},
		{`0`, true},
		{`-0`, true},
		{`{"a":{}}`, true},
		{`"蒙B12345"`, true},
		{``, false},
		{` `, false},
		{`{`, false},
		{`{"a"}`, false},
		{`{"a":}`, false},
		{`{"a":1,}`, false},
		{`[1,]`, false},
		{`[1 2]`, false},
		{`{"a":1}}`, false},
		{`{"a":1} x`, false},
		{`{a:1}`, false},
		{`{'a':1}`, false},
		{`[01]`, false},
		{`[+1]`, false},
		{`[1.]`, false},
		{`[.5]`, false},
		{`[1e]`, false},
		{`[1e+]`, false},
		{`[-]`, false},
		{`[NaN]`, false},
		{`[nan]`, false},
		{`[Infinity]`, false},
		{`[-inf]`, false},
		{`[tru]`, false},
		{`[nul]`, false},
		{`["\x"]`, false},
		{`["\u12"]`, false},
		{`["\u12G4"]`, false},
		{"[\"a\tb\"]", false},
		{"[\"a\x00b\"]", false},
		{`["\ud800"]`, true}, // unpaired surrogates: valid JSON, marked lone
		{`["\ud800\u0041"]`, true},
		{`["\udc00"]`, true},
		{`["\ud800\u12"]`, false},
		{`["abc`, false},
		{`["abc\`, false},
		{"[\"\xff\"]", false},
		{"[\"\xe8\x92\"]", false},
		{"\xef\xbb\xbf{}", false}, // BOM
		{`[1]` + "\x00", false},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false},
		{`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, false},
		{`[}`, false},
		{`{]`, false},
	} {
		assert.Equal(t, tc.ok, validJSON([]byte(tc.in)), "%q", tc.in)
	}
}

// An escaped unpaired surrogate is valid JSON: its string is marked lone
// and unescapes to U+FFFD, as encoding/json decodes it; a pair is a rune.
func TestLoneSurrogates(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
		lone bool
	}{
		{"a pair", `"\ud83d\ude00"`, "\U0001F600", false},
		{"a high one alone", `"a\ud800b"`, "a\uFFFDb", true},
		{"a low one alone", `"\udc00"`, "\uFFFD", true},
		{"a high one before another escape", `"\ud83d\u0041"`, "\uFFFDA", true},
		{"two high ones", `"\ud83d\ud83d\ude00"`, "\uFFFD\U0001F600", true},
		{"a low one before a high one", `"\ude00\ud83d"`, "\uFFFD\uFFFD", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tp tape
			require.True(t, tp.parse([]byte(tc.in)))
			assert.Equal(t, tc.lone, tp.toks[0].lone)
			assert.Equal(t, tc.want, string(tp.str(0)))
			var v string
			require.NoError(t, json.Unmarshal([]byte(tc.in), &v))
			assert.Equal(t, v, string(tp.str(0)), "as encoding/json decodes it")
		})
	}
}

// FuzzValidJSON compares the tape with encoding/json: the same documents are
// valid (but for the documented extra strictness) and decode to the same
// values.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e9"]}`, `[NaN]`, `["\ud83d\ude00"]`, `{"a":-0}`, "[\"\xff\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tp tape
		got := tp.parse(b)
		want := json.Valid(b) && utf8.Valid(b)
		if got && want {
			var v any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			if g := toGo(&tp, 0); !reflect.DeepEqual(v, g) {
				t.Fatalf("%q: tape %#v, encoding/json %#v", b, g, v)
			}
			if tp.next(0) != len(tp.toks) {
				t.Fatalf("%q: top value ends at %d of %d tokens", b, tp.next(0), len(tp.toks))
			}
		}
		if got == want {
			return
		}
		if got {
			t.Fatalf("%q: accepted, encoding/json refuses", b)
		}
		// Documented extra strictness: depth.
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth {
			return
		}
		t.Fatalf("%q: refused, encoding/json accepts", b)
	})
}

func TestSpecialBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		plain := strPlain[c]
		for pos := 0; pos < 8; pos++ {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			m := specialBytes(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
				uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56)
			if plain {
				assert.Zero(t, m, "byte %#x at %d", c, pos)
			} else {
				require.NotZero(t, m, "byte %#x at %d", c, pos)
				assert.Equal(t, pos, bits.TrailingZeros64(m)>>3, "byte %#x at %d", c, pos)
			}
		}
	}
}
