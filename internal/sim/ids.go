package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"

	"github.com/fenceline/fenceline/internal/luhn"
)

// Identifiers the simulated devices report. They follow the formats the
// contract describes, so that the daemon accepts them as real ones.

// genIMSI returns a 15-digit IMSI: MCC, a 2-digit MNC and a 10-digit MSIN.
func genIMSI(r *rand.Rand, mcc, mnc string) string {
	return fmt.Sprintf("%s%s%010d", mcc, mnc, r.Int64N(1e10))
}

// tacs are type allocation codes the simulated phones' IMEIs begin with:
// "86" is China's GSMA reporting body, "35" the BABT's (many imports).
var tacs = []string{"86891204", "86765305", "86012803", "86403706", "86730905", "35391110", "35328211", "35209909"}

// genIMEI returns a 15-digit IMEI: TAC, a 6-digit serial and the Luhn check
// digit the daemon verifies.
func genIMEI(r *rand.Rand) string {
	body := fmt.Sprintf("%s%06d", tacs[r.IntN(len(tacs))], r.IntN(1e6))
	return body + string(luhn.CheckDigit(body))
}

// genMAC returns a randomised MAC as phones send in Wi-Fi probes: locally
// administered (bit 1 of the first octet set), unicast (bit 0 clear).
func genMAC(r *rand.Rand) string {
	var b [6]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[0] = b[0]&0xfc | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// plateChars are the characters of a Chinese plate's serial: digits and
// letters without I and O, which read as 1 and 0.
const plateChars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

// plateLetters are the issuing letters (the one after the province).
const plateLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"

// provinces are the province characters of Chinese plates.
const provinces = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// genPlate returns a regular plate: prefix (province + letter) and 5 serial
// characters, mostly digits as issued.
func genPlate(r *rand.Rand, prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for range 5 {
		if r.Float64() < 0.75 {
			b.WriteByte(byte('0' + r.IntN(10)))
		} else {
			b.WriteByte(plateChars[r.IntN(24)])
		}
	}
	return b.String()
}

// genNewEnergyPlate returns a green plate of a small new-energy car: prefix,
// D (electric) or F (hybrid), then 5 more.
func genNewEnergyPlate(r *rand.Rand, prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte("DF"[r.IntN(2)])
	b.WriteByte(plateChars[r.IntN(len(plateChars))])
	for range 4 {
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	return b.String()
}

// mongolianLetters are the Cyrillic letters of Mongolian plates' series.
var mongolianLetters = []rune("АБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЭЮЯ")

// genMongolianPlate returns a Dornogovi plate (the aimag across from
// Manduhla): 4 digits, a space, ДГ and a series letter.
func genMongolianPlate(r *rand.Rand) string {
	return fmt.Sprintf("%04d ДГ%c", 1+r.IntN(9999), mongolianLetters[r.IntN(len(mongolianLetters))])
}

// validPlatePrefix reports whether p is a province character and an issuing letter.
func validPlatePrefix(p string) bool {
	r, n := utf8.DecodeRuneInString(p)
	return n > 1 && strings.ContainsRune(provinces, r) && len(p) == n+1 && strings.IndexByte(plateLetters, p[n]) >= 0
}

// validPlate reports whether p is a regular Chinese plate (province, letter,
// 5 of [A-HJ-NP-Z0-9]) or a new-energy one (D/F and 5 more after the letter).
func validPlate(p string) bool {
	_, n := utf8.DecodeRuneInString(p)
	if n < 2 || !validPlatePrefix(p[:n+min(1, len(p)-n)]) {
		return false
	}
	serial := p[n+1:]
	switch {
	case len(serial) == 5:
	case len(serial) == 6 && (serial[0] == 'D' || serial[0] == 'F'):
	default:
		return false
	}
	for i := 0; i < len(serial); i++ {
		if strings.IndexByte(plateChars, serial[i]) < 0 {
			return false
		}
	}
	return true
}

// validMongolianPlate reports whether p is 4 digits, a space and 3 Cyrillic
// capitals.
func validMongolianPlate(p string) bool {
	digits, letters, ok := strings.Cut(p, " ")
	if !ok || len(digits) != 4 || !allDigits(digits) || utf8.RuneCountInString(letters) != 3 {
		return false
	}
	for _, c := range letters {
		if c < 'А' || c > 'Я' {
			return false
		}
	}
	return true
}
