package model

import (
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalisePlate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"蒙B7K3Q2", "蒙B7K3Q2"},
		{"蒙b7k3q2 ", "蒙B7K3Q2"},
		{"  蒙B 7K3Q2\t", "蒙B 7K3Q2"},
		{"蒙Ｂ７Ｋ３Ｑ２", "蒙B7K3Q2"},
		{"蒙ｂ７ｋ３ｑ２", "蒙B7K3Q2"},
		{"\u3000蒙B7K3Q2\u3000", "蒙B7K3Q2"},
		{"1598  уба", "1598 УБА"},
		{"1598\u3000ДГ А", "1598 ДГ А"},
		{"无牌", "无牌"},
		{"", ""},
		{"   ", ""},
		{"\xff蒙b", "\uFFFD蒙B"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, NormalisePlate(tt.in))
			assert.Equal(t, tt.want, string(AppendPlate(nil, []byte(tt.in))), "without the fast path")
			assert.Equal(t, "x"+tt.want, string(AppendPlate([]byte("x"), []byte(tt.in))), "appended")
		})
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { NormalisePlate("蒙B7K3Q2") }), "a normal plate")
}

// plateIsNormal's shortcuts for ASCII and CJK ideographs say what the
// general checks say.
func TestPlateIsNormalShortcuts(t *testing.T) {
	general := func(r rune) bool {
		return !(unicode.IsSpace(r) || toHalfWidth(r) != r || unicode.ToUpper(r) != r)
	}
	for _, rng := range [][2]rune{{0, 0x7f}, {0x4E00, 0x9FFF}} {
		for r := rng[0]; r <= rng[1]; r++ {
			if r == ' ' {
				continue // a space alone is trailing space
			}
			s := "A" + string(r) + "1"
			require.Equal(t, general(r), plateIsNormal(s), "%U", r)
		}
	}
}

// The fast path agrees with the slow one, and the normal form is normal.
func FuzzNormalisePlate(f *testing.F) {
	for _, s := range []string{"蒙b7k3q2 ", "1598  ДГА", "蒙Ｂ７Ｋ３Ｑ２", "\u00a0ab\u2003cd\u00a0", "ǆ", "ß", "İi", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalisePlate(s)
		if slow := string(AppendPlate(nil, []byte(s))); n != slow {
			t.Fatalf("fast path %q, slow path %q", n, slow)
		}
		if NormalisePlate(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, NormalisePlate(n))
		}
	})
}

// The ways of writing one plate are one key, and two plates stay two:
// a dash typed as the katakana long-vowel mark, a Cyrillic letter sent
// decomposed (И and a combining breve is Й, not И).
func TestPlateKeyOfSpellings(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"蒙Bー7K3Q2", "蒙B7K3Q2", true},
		{"蒙Bｰ7K3Q2", "蒙B-7K3Q2", true},
		{"1598 УБИ\u0306", "1598 УБЙ", true},
		{"1234 ӨҮи\u0306", "1234 ӨҮЙ", true},
		{"1598 УБИ\u0306", "1598 УБИ", false},
		{"7777 ДГЕ\u0308", "7777 ДГЁ", true},
		{"7777 ДГЁ", "7777 ДГЕ", false},
	} {
		ka, kb := PlateKey(NormalisePlate(tc.a)), PlateKey(NormalisePlate(tc.b))
		assert.Equal(t, tc.same, ka == kb, "%q (%q) and %q (%q)", tc.a, ka, tc.b, kb)
	}
}
