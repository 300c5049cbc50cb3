package gateway

import (
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in, currency string
		want         float64
		reason       string
		ok           bool
	}{
		{"19.90", "", 19.9, reasonNumericString, true},
		{" 19.90 ", "EUR", 19.9, reasonNumericString, true},
		{"42", "", 42, reasonNumericString, true},
		{"-5.5", "", -5.5, reasonNumericString, true},
		{"19,90", "EUR", 19.9, reasonDecimalComma, true},
		{"19,9", "", 19.9, reasonDecimalComma, true},
		{"0,125", "", 0.125, reasonDecimalComma, true},
		{"1234,567", "", 1234.567, reasonDecimalComma, true},
		{"1.234,50", "EUR", 1234.5, reasonDecimalComma, true},
		{"1,234.50", "USD", 1234.5, reasonThousandsSep, true},
		{"1.234.567,89", "", 1234567.89, reasonDecimalComma, true},
		{"1,234,567", "", 1234567, reasonThousandsSep, true},
		{"1.234.567", "", 1234567, reasonThousandsSep, true},
		{"1 234,50", "EUR", 1234.5, reasonDecimalComma, true},
		{"1\u00a0234,50", "EUR", 1234.5, reasonDecimalComma, true},
		{"1\u202f234,50", "EUR", 1234.5, reasonDecimalComma, true},
		{"1'234.50", "CHF", 1234.5, reasonThousandsSep, true},
		{"12,34,567.00", "INR", 1234567, reasonThousandsSep, true},
		{"€19,90", "", 19.9, reasonDecimalComma, true},
		{"19,90 €", "", 19.9, reasonDecimalComma, true},
		{"EUR 19.90", "", 19.9, reasonNumericString, true},
		{"19.90USD", "", 19.9, reasonNumericString, true},
		{"US$ 5", "", 5, reasonNumericString, true},
		{"$1,299.00", "", 1299, reasonThousandsSep, true},
		// One '.' is a decimal point, as JavaScript reads it.
		{"1.234", "EUR", 1.234, reasonNumericString, true},
		// One ',' before three digits: the currency tells.
		{"1,234", "EUR", 1234, reasonThousandsSep, true},
		{"1,234", "JPY", 1234, reasonThousandsSep, true},
		{"1,234", "KWD", 1.234, reasonDecimalComma, true},
		{"1,234", "", 0, reasonAmbiguousNumber, false},
		{"1,234", "XYZ", 0, reasonAmbiguousNumber, false},
		{"123,456", "", 0, reasonAmbiguousNumber, false},
		// Not numbers.
		{"", "", 0, reasonInvalid, false},
		{"abc", "", 0, reasonInvalid, false},
		{"1e3", "", 0, reasonInvalid, false},
		{"0x10", "", 0, reasonInvalid, false},
		{"Infinity", "", 0, reasonInvalid, false},
		{"NaN", "", 0, reasonInvalid, false},
		{"1,,2", "", 0, reasonInvalid, false},
		{",5", "", 0, reasonInvalid, false},
		{"5,", "", 0, reasonInvalid, false},
		{"1.2.3,4.5", "", 0, reasonInvalid, false},
		{"12,3456,789", "", 0, reasonInvalid, false},
		{"1.234 567", "", 0, reasonInvalid, false},
		{"1,234 567.5", "", 0, reasonInvalid, false},
		{"01,234,567", "", 0, reasonInvalid, false},
		{"19.90 EUR EUR", "", 0, reasonInvalid, false},
		{"--1", "", 0, reasonInvalid, false},
		{strings.Repeat("9", 400), "", 0, reasonInvalid, false},
		{"1" + strings.Repeat("0", 330), "", 0, reasonInvalid, false},
	} {
		got, reason, ok := parseAmount(tc.in, tc.currency)
		if ok != tc.ok || reason != tc.reason || (ok && got != tc.want) {
			t.Errorf("parseAmount(%q, %q) = %v, %q, %v; want %v, %q, %v", tc.in, tc.currency, got, reason, ok, tc.want, tc.reason, tc.ok)
		}
	}
}

func TestNormalizeCurrency(t *testing.T) {
	for _, tc := range []struct{ in, code, reason string }{
		{"EUR", "EUR", ""},
		{"eur", "EUR", reasonLowercase},
		{"Usd", "USD", reasonLowercase},
		{" GBP ", "GBP", reasonTrimmed},
		{"€", "EUR", reasonCurrencySymbol},
		{" € ", "EUR", reasonCurrencySymbol},
		{"£", "GBP", reasonCurrencySymbol},
		{"zł", "PLN", reasonCurrencySymbol},
		{"R$", "BRL", reasonCurrencySymbol},
		{"US$", "USD", reasonCurrencySymbol},
		{"$", "", reasonAmbiguousCurrency},
		{"¥", "", reasonAmbiguousCurrency},
		{"kr", "", reasonAmbiguousCurrency},
		{"C$", "", reasonAmbiguousCurrency},
		{"euro", "", reasonInvalid},
		{"EU", "", reasonInvalid},
		{"ABC", "", reasonInvalid},
		{"", "", reasonInvalid},
	} {
		code, reason, ok := normalizeCurrency(tc.in)
		if code != tc.code || reason != tc.reason || ok != (tc.code != "") {
			t.Errorf("normalizeCurrency(%q) = %q, %q, %v; want %q, %q", tc.in, code, reason, ok, tc.code, tc.reason)
		}
	}
}

func TestTruncateURL(t *testing.T) {
	long := "https://shop.example/c?filter=" + strings.Repeat("a", 3000)
	for _, tc := range []struct {
		name, in string
		want     string
		ok       bool
	}{
		{"short", "https://shop.example/a", "https://shop.example/a", true},
		{"cut at the bound", long, long[:2048], true},
		{"fragment dropped first", "https://shop.example/p?x=1#" + strings.Repeat("f", 3000), "https://shop.example/p?x=1", true},
		{"whole characters", "https://shop.example/?q=" + strings.Repeat("a", 2047-24) + "é" + strings.Repeat("b", 10),
			"https://shop.example/?q=" + strings.Repeat("a", 2047-24), true},
		{"whole escapes", "https://shop.example/?q=" + strings.Repeat("a", 2046-24) + "%C3%A9" + strings.Repeat("b", 10),
			"https://shop.example/?q=" + strings.Repeat("a", 2046-24), true},
		{"not a URL", "javascript:" + strings.Repeat("a", 3000), "", false},
	} {
		got, ok := truncateURL(tc.in, maxURLLen)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: = %q (%d bytes), %v; want %d bytes, %v", tc.name, got[:min(len(got), 60)], len(got), ok, len(tc.want), tc.ok)
		}
		if ok && len(got) > maxURLLen {
			t.Errorf("%s: %d bytes", tc.name, len(got))
		}
	}
}
