package sim

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/luhn"
)

// Many draws of every generator, checked against the formats the contract
// gives and the daemon enforces.
func TestGeneratedIdentifiersAreValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	imsi := regexp.MustCompile(`^46001[0-9]{10}$`)
	mac := regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	for _, tc := range []struct {
		name  string
		gen   func() string
		valid func(string) bool
	}{
		{"IMSI: MCC 460, MNC 01, 10-digit MSIN", func() string { return genIMSI(r, "460", "01") }, imsi.MatchString},
		{"IMEI: 15 digits with a Luhn check digit", func() string { return genIMEI(r) },
			func(s string) bool { return len(s) == 15 && luhn.Valid(s) }},
		{"MAC: locally administered unicast", func() string { return genMAC(r) }, func(s string) bool {
			b, _ := hexByte(s[:2])
			return mac.MatchString(s) && b&0x02 != 0 && b&0x01 == 0
		}},
		{"regular plate: 蒙B and 5 of [A-HJ-NP-Z0-9]", func() string { return genPlate(r, "蒙B") },
			regexp.MustCompile(`^蒙B[A-HJ-NP-Z0-9]{5}$`).MatchString},
		{"new-energy plate: D/F and 5 more", func() string { return genNewEnergyPlate(r, "蒙B") },
			regexp.MustCompile(`^蒙B[DF][A-HJ-NP-Z0-9][0-9]{4}$`).MatchString},
		{"Mongolian plate: 4 digits and ДГ plus a letter", func() string { return genMongolianPlate(r) },
			regexp.MustCompile(`^[0-9]{4} ДГ[А-Я]$`).MatchString},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2000 {
				v := tc.gen()
				require.True(t, tc.valid(v), v)
			}
		})
	}
}

func hexByte(s string) (byte, bool) {
	var b byte
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

func TestPlateValidation(t *testing.T) {
	for _, tc := range []struct {
		plate              string
		chinese, mongolian bool
	}{
		{"蒙B7K3Q2", true, false},
		{"蒙BD73K15", true, false},
		{"晋B12345", true, false},
		{"蒙B1234", false, false},   // too short
		{"蒙BI2345", false, false},  // I is not used
		{"蒙BO2345", false, false},  // nor O
		{"蒙BX73K15", false, false}, // 6 after the letter only for D/F
		{"XB12345", false, false},  // no province
		{"1598 УБА", false, true},
		{"1598 UBA", false, false}, // Latin, not Cyrillic
		{"159 УБА", false, false},
	} {
		t.Run(tc.plate, func(t *testing.T) {
			require.Equal(t, tc.chinese, validPlate(tc.plate), "validPlate")
			require.Equal(t, tc.mongolian, validMongolianPlate(tc.plate), "validMongolianPlate")
		})
	}
}
