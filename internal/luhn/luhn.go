// Package luhn is the Luhn check of IMEIs: the decoder and the watchlists
// validate with it, the simulator and the load tool make check digits with
// it, so that all four agree on what a valid IMEI is.
package luhn

// Valid reports whether digits is all ASCII digits and passes the Luhn
// check (its last digit is the check digit). Lengths are the caller's.
func Valid[T ~string | ~[]byte](digits T) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i]) - '0'
		if uint(d) > 9 {
			return false
		}
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// CheckDigit is the digit that, appended to body (ASCII digits), makes it
// pass the check.
func CheckDigit[T ~string | ~[]byte](body T) byte {
	sum := 0
	double := true // the check digit will be rightmost: body's last digit is doubled
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}
