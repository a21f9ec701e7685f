package luhn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"contract example IMEI", "490154203237518", true},
		{"GSMA example IMEI", "356938035643809", true},
		{"textbook number", "79927398713", true},
		{"wrong check digit", "490154203237519", false},
		{"textbook number, wrong digit", "79927398710", false},
		{"not digits", "49015420323751x", false},
		{"a letter that sums like a digit", "4901542032375:8", false},
		{"one digit", "0", true},
		{"one digit, failing", "4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, Valid(tc.in))
			require.Equal(t, tc.ok, Valid([]byte(tc.in)))
		})
	}
}

// A body with its check digit is valid, and no other last digit is.
func TestCheckDigit(t *testing.T) {
	require.Equal(t, byte('8'), CheckDigit("49015420323751"))
	for _, body := range []string{"0", "12345", "35693803564380", "99999999999999", "00000000000000"} {
		d := CheckDigit(body)
		require.Equal(t, d, CheckDigit([]byte(body)))
		for c := byte('0'); c <= '9'; c++ {
			require.Equal(t, c == d, Valid(body+string(c)), "%s+%c", body, c)
		}
	}
}
