package orders

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Amount is a sum of money in millionths of the currency unit (12.50 USD is
// 12_500_000), so that sums and differences are exact.
type Amount int64

// maxAmountUnits bounds the magnitude of an amount: a trillion currency
// units, far above any order and far below overflow of the sums kept.
const maxAmountUnits = 1_000_000_000_000

var errAmount = errors.New("must be a decimal amount (a number or a numeric string)")

// ParseAmount reads a decimal amount as the platforms write it: "12.50",
// "-10.00", "35", "2.9166666666666665" or "1.0e-5". Digits past the sixth
// decimal are rounded half away from zero.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return 0, errAmount
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	if strings.ContainsAny(s, "eE") {
		return parseExponent(s, neg)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if (intPart == "" && frac == "") || !allDigits(intPart) || !allDigits(frac) || len(intPart) > 13 {
		return 0, errAmount
	}
	var units int64
	for i := 0; i < len(intPart); i++ {
		units = units*10 + int64(intPart[i]-'0')
	}
	if units > maxAmountUnits {
		return 0, errAmount
	}
	var micros int64
	for i := 0; i < 6; i++ {
		micros *= 10
		if i < len(frac) {
			micros += int64(frac[i] - '0')
		}
	}
	if len(frac) > 6 && frac[6] >= '5' {
		micros++
	}
	v := units*1_000_000 + micros
	if neg {
		v = -v
	}
	return Amount(v), nil
}

// parseExponent reads a number in exponent form (PHP writes small floats
// so), rounded to the micro.
func parseExponent(s string, neg bool) (Amount, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errAmount
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f > maxAmountUnits {
		return 0, errAmount
	}
	v := int64(math.Round(f * 1e6))
	if neg {
		v = -v
	}
	return Amount(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String writes the amount as a plain decimal with the fewest digits that
// keep it exact ("12.5", "-3", "0.000001").
func (a Amount) String() string {
	v := int64(a)
	var b []byte
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/1_000_000, 10)
	if frac := v % 1_000_000; frac != 0 {
		digits := strconv.AppendInt(nil, 1_000_000+frac, 10)[1:]
		b = append(b, '.')
		b = append(b, bytes.TrimRight(digits, "0")...)
	}
	return string(b)
}

// Float returns the amount in currency units, for platforms that take a
// floating-point value.
func (a Amount) Float() float64 { return float64(a) / 1e6 }

// jsonAmount is an amount in a payload: a JSON number or a numeric string
// (Shopify writes "12.50", WooCommerce both); null or "" mean none. A value
// of another form is recorded as bad, for validation to name its field.
type jsonAmount struct {
	v        Amount
	set, bad bool
}

// UnmarshalJSON reads a number, a numeric string or null; it never fails.
func (a *jsonAmount) UnmarshalJSON(data []byte) error {
	*a = jsonAmount{}
	s, ok := scalar(data)
	if !ok {
		a.bad = true
		return nil
	}
	if s == "" {
		return nil
	}
	v, err := ParseAmount(s)
	a.v, a.set, a.bad = v, err == nil, err != nil
	return nil
}
