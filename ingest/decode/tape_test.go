package decode

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

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
		{`["\ud800"]`, false},
		{`["\ud800\u0041"]`, false},
		{`["\udc00"]`, false},
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

var escapedSurrogate = regexp.MustCompile(`\\u[dD][89a-fA-F][0-9a-fA-F]{2}`)

// FuzzValidJSON compares validJSON with encoding/json.Valid and utf8.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e9"]}`, `[NaN]`, `["\ud83d\ude00"]`, `{"a":-0}`, "[\"\xff\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := validJSON(b)
		want := json.Valid(b) && utf8.Valid(b)
		if got == want {
			return
		}
		if got {
			t.Fatalf("%q: accepted, encoding/json refuses", b)
		}
		// Documented extra strictness: depth and unpaired surrogates.
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth || escapedSurrogate.Match(b) {
			return
		}
		t.Fatalf("%q: refused, encoding/json accepts", b)
	})
}
