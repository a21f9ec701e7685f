package decode

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestJSONInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"18231", 18231, true},
		{"18231.0", 18231, true},
		{"18231.000", 18231, true},
		{"1.8231e4", 18231, true},
		{"1.8231E+4", 18231, true},
		{"182310e-1", 18231, true},
		{"0.0e5", 0, true},
		{"100", 100, true},
		{"-42", -42, true},
		{"9007199254740992", 1 << 53, true},
		{"9.007199254740992e15", 1 << 53, true},
		{"9007199254740993", 0, false},
		{"9007199254740992.5", 0, false},
		{"1.5", 0, false},
		{"1e-1", 0, false},
		{"1e17", 0, false},
		{"1e400", 0, false},
		{"1e-400", 0, false},
		{"0.1e1", 1, true},
		{"12345678901234567890e-10", 0, false},
		{"1000000000000000000000e-10", 100000000000, true},
	} {
		got, ok := jsonInt([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestFastFloat(t *testing.T) {
	for _, s := range []string{"0", "-0", "41.9612", "110.4875", "-71", "-90.5", "0.97", "355", "123456789012345",
		"0.000000000000001", "1.5", "-150", "99.99999999999", "41.96123456789012"} {
		want, err := strconv.ParseFloat(s, 64)
		assert.NoError(t, err)
		got, ok := fastFloat([]byte(s))
		if ok {
			assert.Equal(t, math.Float64bits(want), math.Float64bits(got), s)
		}
	}
	for _, s := range []string{"1e5", "1234567890123456789", "1.2E-3", "9007199254740993", "1234567890123456"} {
		_, ok := fastFloat([]byte(s))
		assert.False(t, ok, s)
	}
}

// FuzzFastFloat checks the fast path against strconv bit for bit.
func FuzzFastFloat(f *testing.F) {
	f.Add(uint64(419612), uint8(4), true)
	f.Fuzz(func(t *testing.T, m uint64, frac uint8, neg bool) {
		s := strconv.FormatUint(m%1e17, 10) // beyond 15 digits: must refuse or be exact
		if k := int(frac % 16); k > 0 {
			for len(s) <= k {
				s = "0" + s
			}
			s = s[:len(s)-k] + "." + s[len(s)-k:]
		}
		if neg {
			s = "-" + s
		}
		got, ok := fastFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		if ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v, strconv %v", s, got, want)
		}
	})
}

func TestKeyTables(t *testing.T) {
	for i, name := range topNames {
		assert.Equal(t, i, topKey([]byte(name)), name)
	}
	for i, name := range detNames {
		assert.Equal(t, i, detKey([]byte(name)), name)
	}
	for i, name := range passNames {
		assert.Equal(t, i, passKey([]byte(name)), name)
	}
	for i, name := range locNames {
		assert.Equal(t, i, locKey([]byte(name)), name)
	}
	for _, k := range []string{"", "V", "tss", "imsi ", "Plate", "detection", "x"} {
		assert.Equal(t, -1, topKey([]byte(k)), k)
		assert.Equal(t, -1, detKey([]byte(k)), k)
		assert.Equal(t, -1, passKey([]byte(k)), k)
		assert.Equal(t, -1, locKey([]byte(k)), k)
	}
}

// collect tries the key after the previous one by name before keyIndex:
// the two must agree on every name.
func TestKeyNamesMatchKeyIndex(t *testing.T) {
	for set, names := range keyNames {
		for i, name := range names {
			assert.Equal(t, i, keyIndex(keySet(set), []byte(name)), name)
		}
	}
}
