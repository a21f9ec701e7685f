package decode

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/luhn"
)

// Every byte value at every position of a word, between digits (and
// between hex digits): the SWAR masks flag exactly the bytes the byte-wise
// tests refuse, and the lowest of them where it is.
func TestSWARMasks(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			w := []byte("01234567")
			w[pos] = byte(c)
			m := nonDigits(binary.LittleEndian.Uint64(w))
			if isDigit(byte(c)) {
				assert.Zero(t, m, "byte %#x at %d", c, pos)
			} else {
				require.NotZero(t, m, "byte %#x at %d", c, pos)
				assert.Equal(t, pos, bits.TrailingZeros64(m)>>3, "byte %#x at %d", c, pos)
			}
			w = []byte("09afAF9a")
			w[pos] = byte(c)
			_, hex := hexVal(byte(c))
			want := uint64(swarHigh)
			if !hex {
				want &^= 0x80 << (8 * pos)
			}
			assert.Equal(t, want, hexBytes(binary.LittleEndian.Uint64(w)), "byte %#x at %d", c, pos)
		}
	}
}

func TestDigitRun(t *testing.T) {
	for _, tc := range []struct {
		in   string
		from int
		want int
	}{
		{"", 0, 0},
		{`"460001234567890"`, 1, 15},
		{`"460001234567890`, 1, 15},
		{`"46000123456789X"`, 1, 14},
		{`"4600012345678901234567"`, 1, 22},
		{`"4600"`, 1, 4},
		{`"/:"`, 1, 0},
	} {
		assert.Equal(t, tc.want, digitRun([]byte(tc.in), tc.from), tc.in)
	}
}

func TestLuhn15(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []string{"490154203237518", "356938035643809", "490154203237519", "000000000000000", "999999999999999"} {
		assert.Equal(t, luhn.Valid(s), luhn15([]byte(s)), s)
	}
	b := make([]byte, 15)
	for range 100000 {
		for i := range b {
			b[i] = '0' + byte(r.IntN(10))
		}
		require.Equal(t, luhn.Valid(b), luhn15(b), "%s", b)
	}
}

func TestAppendMAC17(t *testing.T) {
	for _, in := range []string{
		"a4:5e:60:12:34:56", "A4:5E:60:12:34:56", "a4-5E-60-12-34-56", "0F-9a-Ff-00-99-aA",
		"a4:5e:60:12:34:5g", "a4:5e-60:12:34:56", "a4.5e.60.12.34.56", "a4:5e:60:12:34:5\x80",
		"a4:5e:60:12:34:5:", "a4:5e:60:12:34::6", ":4:5e:60:12:34:56", "a4:5e:60:1\x12:34:56",
		"a4:5e:60:12:34:5@", "a4:5e:60:12:34:5G", "a4:5e:60:12:34:5`", "g4:5e:60:12:34:56",
	} {
		checkMAC17(t, []byte(in))
	}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789abcdefABCDEF:-./@G`g\x00\x7f\xc3"
	b := make([]byte, 17)
	for range 100000 {
		copy(b, "a4:5e:60:12:34:56")
		for range 1 + r.IntN(3) {
			b[r.IntN(17)] = alphabet[r.IntN(len(alphabet))]
		}
		checkMAC17(t, b)
	}
}

// checkMAC17 checks that appendMAC17 accepts m exactly when appendMAC
// does, with the same result.
func checkMAC17(t *testing.T, m []byte) {
	t.Helper()
	want, msg := appendMAC([]byte("x"), m)
	got, ok := appendMAC17([]byte("x"), m)
	require.Equal(t, msg == "", ok, "%q: %s", m, msg)
	require.Equal(t, string(want), string(got), "%q", m)
}

// FuzzSWARIdent holds the word-at-a-time identifier checks to the
// byte-wise ones on any bytes.
func FuzzSWARIdent(f *testing.F) {
	f.Add([]byte(`460001234567890"`))
	f.Add([]byte(`490154203237518"`))
	f.Add([]byte("A4-5E-60-12-34-56"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		for n < len(b) && isDigit(b[n]) {
			n++
		}
		if got := digitRun(b, 0); got != n {
			t.Fatalf("%q: digitRun %d, want %d", b, got, n)
		}
		if n >= 15 && luhn15(b[:15]) != luhn.Valid(b[:15]) {
			t.Fatalf("%q: luhn15 %v", b, luhn15(b[:15]))
		}
		if len(b) >= 17 {
			checkMAC17(t, b[:17])
		}
	})
}
