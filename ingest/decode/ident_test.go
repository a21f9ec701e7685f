package decode

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

func TestIMSIMNC(t *testing.T) {
	for _, tc := range []struct {
		name, imsi, mcc, mnc string
		bad                  bool
	}{
		{"China Mobile", "460001234567890", "460", "00", false},
		{"China Unicom", "460011234567890", "460", "01", false},
		{"Mongolia Mobicom", "428991234567890", "428", "99", false},
		{"USA 3-digit", "310260123456789", "310", "260", false},
		{"USA 316", "316010123456789", "316", "010", false},
		{"Canada 3-digit", "302720123456789", "302", "720", false},
		{"Mexico 3-digit", "334020123456789", "334", "020", false},
		{"India 405 3-digit", "405854123456789", "405", "854", false},
		{"Argentina 3-digit", "722310123456789", "722", "310", false},
		{"Colombia 3-digit", "732101123456789", "732", "101", false},
		{"Germany 2-digit", "262011234567890", "262", "01", false},
		{"6 digits 3-digit MNC", "310260", "310", "260", false},
		{"6 digits 2-digit MNC", "460001", "460", "00", false},
		{"5 digits", "46000", "", "", true},
		{"16 digits", "4600012345678901", "", "", true},
		{"letter", "46000123456789a", "", "", true},
		{"empty", "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, msg := imsiMNCLen([]byte(tc.imsi))
			if tc.bad {
				assert.NotEmpty(t, msg)
				assert.NotContains(t, msg, tc.imsi+"x") // never echoes (trivially: no value)
				return
			}
			require.Empty(t, msg)
			assert.Equal(t, tc.mcc, tc.imsi[:3])
			assert.Equal(t, tc.mnc, tc.imsi[3:3+n])
		})
	}
}

func TestLuhnAndIMEI(t *testing.T) {
	for _, tc := range []struct {
		name, imei string
		ok         bool
	}{
		{"valid 15", "490154203237518", true},
		{"valid 15 (2)", "356938035643809", true},
		{"bad check digit", "490154203237517", false},
		{"14 digits, no check digit", "49015420323751", true},
		{"16 digits IMEISV", "4901542032375180", true},
		{"13 digits", "4901542032375", false},
		{"17 digits", "49015420323751800", false},
		{"non-digit", "49015420323751X", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := imeiMsg([]byte(tc.imei))
			assert.Equal(t, tc.ok, msg == "", msg)
			assert.NotContains(t, msg, tc.imei)
		})
	}
}

func TestMAC(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a4:5e:60:12:34:56", "a4:5e:60:12:34:56"},
		{"A4:5E:60:12:34:56", "a4:5e:60:12:34:56"},
		{"a4-5E-60-12-34-56", "a4:5e:60:12:34:56"},
		{"a45e60123456", "a4:5e:60:12:34:56"},
		{"A45E60123456", "a4:5e:60:12:34:56"},
		{"a45e.6012.3456", "a4:5e:60:12:34:56"},
		{"A45E.6012.3456", "a4:5e:60:12:34:56"},
		{"a45e.6012:3456", ""},
		{"a45e.6012.345g", ""},
		{"a45e6012345g", ""},
		{"a45e601234567", ""},
		{"a4:5e:60:12:34:5", ""},
		{"a4:5e:60:12:34", ""},
		{"a4:5e:60:12:34:5g", ""},
		{"a4:5e-60:12:34:56", ""},
		{"a4.5e.60.12.34.56", ""},
		{"a4:5e:60:12:34:56:", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			out, msg := appendMAC(nil, []byte(tc.in))
			if tc.want == "" {
				assert.NotEmpty(t, msg)
				assert.Empty(t, out)
				return
			}
			require.Empty(t, msg)
			assert.Equal(t, tc.want, string(out))
		})
	}
}

func TestTech(t *testing.T) {
	out, msg := appendTech(nil, []byte("LTE-A"))
	require.Empty(t, msg)
	assert.Equal(t, "lte-a", string(out))
	out, msg = appendTech(nil, []byte(" LTE "))
	require.Empty(t, msg)
	assert.Equal(t, "lte", string(out), "one tag value with \"lte\"")
	_, msg = appendTech(nil, []byte("lte\u00e9"))
	assert.NotEmpty(t, msg)
	_, msg = appendTech(nil, make([]byte, 33))
	assert.NotEmpty(t, msg)
}

func TestPlateNormalisation(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "蒙B12345", "蒙B12345"},
		{"full-width", "蒙Ｂ１２３４５", "蒙B12345"},
		{"full-width lower", "蒙ｂ１２３４５", "蒙B12345"},
		{"lower case", "蒙b7k3q2", "蒙B7K3Q2"},
		{"trim", "  蒙B12345\u3000", "蒙B12345"},
		{"Mongolian lower", "1598 уба", "1598 УБА"},
		{"Mongolian spaces", "1598 \u3000  уба", "1598 УБА"},
		{"Mongolian Dornogovi", "2024 дгА", "2024 ДГА"},
		{"ideographic space inside", "蒙B\u300012345", "蒙B 12345"},
		{"nbsp", "\u00a0AB\u00a0\u00a0C ", "AB C"},
		{"empty", "", model.NoPlate},
		{"only spaces", "  \u3000 ", model.NoPlate},
		{"no plate", "无牌", model.NoPlate},
		{"no plate padded", " 无牌\u3000", model.NoPlate},
		{"full-width punctuation", "ＡＢ－１", "AB-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("xyz")
			out, none := appendPlate(prefix, []byte(tc.in))
			require.Equal(t, "xyz", string(out[:3]), "prefix kept")
			got := string(out[3:])
			if none {
				assert.Empty(t, got)
				got = model.NoPlate
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestThreeDigitMNCList(t *testing.T) {
	for _, mcc := range []int{302, 310, 311, 312, 313, 314, 315, 316, 334, 338, 342, 344, 346, 348,
		352, 354, 356, 358, 360, 365, 366, 376, 405, 708, 722, 732, 750} {
		assert.True(t, threeDigitMNC(mcc), "%d", mcc)
	}
	for _, mcc := range []int{460, 428, 262, 234, 250, 404, 724, 999} {
		assert.False(t, threeDigitMNC(mcc), "%d", mcc)
	}
}
