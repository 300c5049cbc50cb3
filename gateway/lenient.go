package gateway

// Readers for the values shops write where a typed field goes: prices as
// text in the shop's locale, currency symbols, over-long URLs. They serve
// the browser path's repair (repair.go); each says why it changed a value,
// as one of the fix reasons below.

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Reasons for fixing a field of a browser event, the reason label of
// tagway_events_fixed_total and the reason of a fix in /collect's answer.
const (
	reasonNumericString     = "numeric_string"      // "19.90" read as 19.9
	reasonDecimalComma      = "decimal_comma"       // "19,90" read as 19.9
	reasonThousandsSep      = "thousands_separator" // "1,234.50" read as 1234.5
	reasonAmbiguousNumber   = "ambiguous_number"    // "1,234" without a currency to tell: dropped
	reasonNumberToString    = "number_to_string"    // an id sent as a number
	reasonFloatToInteger    = "float_to_integer"    // 2.0 where an integer goes
	reasonNotInteger        = "not_integer"         // 2.5 where an integer goes: dropped
	reasonCurrencySymbol    = "currency_symbol"     // "€" read as EUR
	reasonAmbiguousCurrency = "ambiguous_currency"  // "$", "¥": dropped
	reasonLowercase         = "lowercase"           // "eur" read as EUR
	reasonTrimmed           = "trimmed"             // spaces around a value removed
	reasonStringifiedArray  = "stringified_array"   // "[\"a\"]" read as ["a"]
	reasonStringifiedObject = "stringified_object"  // "{\"value\":1}" read as an object
	reasonWrapped           = "wrapped_in_array"    // "a" where a list goes: ["a"]
	reasonTruncated         = "truncated"           // a URL cut to 2,048 bytes, a list cut to its bound
	reasonTooLong           = "too_long"            // a value over its bound: dropped
	reasonTooLarge          = "too_large"           // custom_data over 16 KB: custom properties dropped
	reasonUnknownField      = "unknown_field"       // a key the event has no use for: dropped
	reasonUnusable          = "unusable"            // customer information that cannot be normalized: dropped
	reasonInvalid           = "invalid"             // a value of no usable form: dropped
	reasonMilliseconds      = "milliseconds"        // event_time in ms read as seconds
	reasonClockSkew         = "clock_skew"          // event_time shifted by the device clock's error
	reasonClockAhead        = "clock_ahead"         // event_time ahead of the gateway: set to now
	reasonGeolocate         = "geolocate"           // LDU country or state unusable: 0, Meta geolocates
	reasonNotCookieSafe     = "not_cookie_safe"     // a click id no cookie may hold: dropped
)

// maxAmountLen bounds a number written as text.
const maxAmountLen = 64

// parseAmount reads a number a shop wrote as text, for value, predicted_ltv,
// item_price and the counts: surrounding spaces and one currency symbol or
// ISO code before or after it are ignored, then
//
//   - digits with one '.' are a decimal number, as JavaScript reads them
//     ("1.234" is 1.234);
//   - digits with one ',' are a decimal number with a decimal comma
//     ("19,90"), unless exactly three digits follow it and what precedes
//     could be a thousands group ("1,234"): that is 1234 when the currency
//     has two or no minor units (a price of 1.234 EUR does not exist) and
//     1.234 when it has three or more (BHD, KWD...); without a known
//     currency it is ambiguous and refused (reasonAmbiguousNumber);
//   - with both '.' and ',', the last is the decimal separator and the
//     other groups thousands ("1.234,50", "1,234.50");
//   - a separator that appears twice or more, a space (also no-break and
//     thin spaces) or an apostrophe groups thousands ("1.234.567",
//     "1 234,50", "1'234.50"); groups are of three digits, or of two with
//     a last group of three (Indian "1,23,456.00").
//
// currency is the event's currency code ("" when unknown). reason is the
// fix to record: reasonDecimalComma, reasonThousandsSep or
// reasonNumericString; when ok is false it is reasonAmbiguousNumber or
// reasonInvalid.
func parseAmount(s, currency string) (v float64, reason string, ok bool) {
	if len(s) > maxAmountLen {
		return 0, reasonInvalid, false
	}
	t := stripCurrencyMarker(trimSpace(s))
	neg := false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg, t = t[0] == '-', t[1:]
	}
	if t == "" || !isDigit(t[0]) || !isDigit(t[len(t)-1]) {
		return 0, reasonInvalid, false
	}
	// Separators: '.', ',' or a grouping mark ('g'), each between digits.
	type sep struct {
		at, size int
		kind     byte
	}
	var seps []sep
	var dots, commas, groups int
	for i := 0; i < len(t); {
		c := t[i]
		if isDigit(c) {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(t[i:])
		kind := byte(0)
		switch {
		case r == '.':
			kind, dots = '.', dots+1
		case r == ',':
			kind, commas = ',', commas+1
		case groupingMark(r):
			kind, groups = 'g', groups+1
		default:
			return 0, reasonInvalid, false
		}
		if !isDigit(t[i+size]) { // two marks in a row (the last byte is a digit)
			return 0, reasonInvalid, false
		}
		seps = append(seps, sep{i, size, kind})
		i += size
	}
	decimal := byte(0)
	switch {
	case dots > 0 && commas > 0:
		decimal = seps[len(seps)-1].kind
		if decimal == 'g' || (decimal == '.' && dots != 1) || (decimal == ',' && commas != 1) {
			return 0, reasonInvalid, false
		}
	case dots == 1 && commas == 0:
		decimal = '.'
	case commas == 1 && dots == 0:
		decimal = ','
		last := seps[len(seps)-1]
		if groups == 0 && len(t)-last.at-1 == 3 && last.at <= 3 && t[0] != '0' {
			switch minor, known := minorUnits(currency); {
			case !known:
				return 0, reasonAmbiguousNumber, false
			case minor < 3:
				decimal = 0
			}
		}
	}
	intPart, frac := t, ""
	if decimal != 0 {
		last := seps[len(seps)-1]
		if last.kind != decimal {
			return 0, reasonInvalid, false // "1.234 567"
		}
		intPart, frac = t[:last.at], t[last.at+1:]
		seps = seps[:len(seps)-1]
	}
	var b strings.Builder
	b.Grow(len(t) + 1)
	if neg {
		b.WriteByte('-')
	}
	if len(seps) > 0 {
		// Every remaining mark groups thousands: one kind, in valid groups.
		kind := seps[0].kind
		lens := make([]int, 0, len(seps)+1)
		start := 0
		for _, s := range seps {
			if s.kind != kind {
				return 0, reasonInvalid, false
			}
			lens = append(lens, s.at-start)
			start = s.at + s.size
		}
		lens = append(lens, len(intPart)-start)
		if !validGrouping(lens) || intPart[0] == '0' {
			return 0, reasonInvalid, false
		}
		for i := 0; i < len(intPart); i++ {
			if isDigit(intPart[i]) {
				b.WriteByte(intPart[i])
			}
		}
	} else {
		b.WriteString(intPart)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	v, err := strconv.ParseFloat(b.String(), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, reasonInvalid, false
	}
	switch {
	case decimal == ',':
		reason = reasonDecimalComma
	case len(seps) > 0:
		reason = reasonThousandsSep
	default:
		reason = reasonNumericString
	}
	return v, reason, true
}

// validGrouping reports whether digit groups of these lengths are
// thousands groups: a first group of one to three digits, then groups of
// three, or of two ending with one of three (the Indian system).
func validGrouping(lens []int) bool {
	if len(lens) < 2 || lens[0] < 1 || lens[0] > 3 || lens[len(lens)-1] != 3 {
		return false
	}
	mid := lens[1 : len(lens)-1]
	all := func(n int) bool {
		for _, l := range mid {
			if l != n {
				return false
			}
		}
		return true
	}
	return all(3) || (lens[0] <= 2 && len(mid) > 0 && all(2))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// groupingMark reports whether r groups thousands only: spaces (the
// no-break and thin spaces of French, Swiss and Nordic formats) and
// apostrophes.
func groupingMark(r rune) bool {
	switch r {
	case ' ', '\u00a0', '\u202f', '\u2009', '\'', '\u2019':
		return true
	}
	return false
}

// trimSpace removes spaces, including no-break ones, around s.
func trimSpace(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' || r == '\u202f'
	})
}

// stripCurrencyMarker removes one currency symbol or ISO code before or
// after an amount ("€19,90", "19,90 €", "EUR 19.90").
func stripCurrencyMarker(s string) string {
	for _, m := range currencyMarkers {
		if rest, ok := strings.CutPrefix(s, m); ok {
			return trimSpace(rest)
		}
		if rest, ok := strings.CutSuffix(s, m); ok {
			return trimSpace(rest)
		}
	}
	if len(s) > 3 {
		if isCurrency(s[:3]) {
			return trimSpace(s[3:])
		}
		if isCurrency(s[len(s)-3:]) {
			return trimSpace(s[:len(s)-3])
		}
	}
	return s
}

// currencySymbols maps the symbols that name one currency in shop data to
// its code.
var currencySymbols = map[string]string{
	"€": "EUR", "£": "GBP", "₹": "INR", "₽": "RUB", "₺": "TRY", "₴": "UAH", "₪": "ILS", "₫": "VND",
	"฿": "THB", "₩": "KRW", "₦": "NGN", "₸": "KZT", "₾": "GEL", "₼": "AZN", "₱": "PHP", "円": "JPY",
	"zł": "PLN", "Kč": "CZK", "Ft": "HUF", "R$": "BRL", "US$": "USD", "A$": "AUD", "AU$": "AUD",
	"CA$": "CAD", "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "MX$": "MXN",
}

// ambiguousSymbols name several currencies: "$" (USD, CAD, AUD, MXN...),
// "¥" (JPY and CNY), "kr" (SEK, NOK, DKK, ISK), "C$" (CAD and NIO), "R"
// (ZAR, and a rupee abbreviation), "Fr" (CHF and the CFA francs), "元"
// (CNY and TWD).
var ambiguousSymbols = map[string]bool{
	"$": true, "¥": true, "￥": true, "kr": true, "kr.": true, "C$": true, "R": true, "Fr": true, "Fr.": true, "元": true,
}

// currencyMarkers are the symbols stripCurrencyMarker removes, longest
// first so that "US$" is not read as "$".
var currencyMarkers = func() []string {
	var out []string
	for s := range currencySymbols {
		out = append(out, s)
	}
	for s := range ambiguousSymbols {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return out
}()

// normalizeCurrency reads a currency a page sent: an ISO 4217 code in any
// case (reasonLowercase when it was not upper case), or a symbol that names
// one currency (reasonCurrencySymbol). ok is false for an ambiguous symbol
// (reasonAmbiguousCurrency) or anything else (reasonInvalid). reason is ""
// when the value was already a code in upper case.
func normalizeCurrency(s string) (code, reason string, ok bool) {
	t := trimSpace(s)
	if isCurrency(t) {
		code = strings.ToUpper(t)
		switch {
		case code != t:
			reason = reasonLowercase
		case t != s:
			reason = reasonTrimmed
		}
		return code, reason, true
	}
	if c, found := currencySymbols[t]; found {
		return c, reasonCurrencySymbol, true
	}
	if ambiguousSymbols[t] {
		return "", reasonAmbiguousCurrency, false
	}
	return "", reasonInvalid, false
}

// minorUnits is the number of decimals of a currency per ISO 4217 (2 for
// most, 0 for JPY and KRW, 3 for BHD, IQD, JOD, KWD, LYD, OMR and TND, 4
// for CLF and UYW); known is false for "" or an unknown code.
func minorUnits(code string) (n int, known bool) {
	if !isCurrency(code) {
		return 0, false
	}
	switch strings.ToUpper(code) {
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3, true
	case "CLF", "UYW":
		return 4, true
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0, true
	}
	return 2, true
}

// truncateURL cuts an absolute URL longer than max bytes to at most max:
// without its fragment when that is enough, else at max, backing off to
// keep whole characters and whole percent-escapes. ok is false when what
// is left is not a valid URL.
func truncateURL(v string, max int) (string, bool) {
	if len(v) <= max {
		return v, checkURL("", v) == nil
	}
	if i := strings.IndexByte(v, '#'); i >= 0 && i <= max {
		v = v[:i]
	}
	if len(v) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		for k := 1; k <= 2 && cut-k >= 0; k++ {
			if v[cut-k] == '%' {
				cut -= k
				break
			}
		}
		v = v[:cut]
	}
	return v, checkURL("", v) == nil
}
