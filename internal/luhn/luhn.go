// Package luhn is the Luhn check of IMEIs: the decoder and the watchlists
// validate with it, the simulator and the load tool make check digits with
// it, so that all four agree on what a valid IMEI is.
package luhn

// Valid reports whether digits is all ASCII digits and passes the Luhn
// check (its last digit is the check digit). Lengths are the caller's.
func Valid[T ~string | ~[]byte](digits T) bool {
	sum, ok := weightedSum(digits, false)
	return ok && sum%10 == 0
}

// CheckDigit is the digit that, appended to body (ASCII digits), makes it
// pass the check.
func CheckDigit[T ~string | ~[]byte](body T) byte {
	// The check digit will be rightmost: body's last digit is doubled.
	sum, _ := weightedSum(body, true)
	return byte('0' + (10-sum%10)%10)
}

// weightedSum is the Luhn sum of digits from the right, every other digit
// doubled (digit sum) starting with the last when double; ok is false at a
// byte that is not an ASCII digit.
func weightedSum[T ~string | ~[]byte](digits T, double bool) (sum int, ok bool) {
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i]) - '0'
		if uint(d) > 9 {
			return 0, false
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
	return sum, true
}
