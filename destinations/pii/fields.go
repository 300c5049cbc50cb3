package pii

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the e-mail check (RFC 5321 sizes).
const (
	maxEmailLocal  = 64
	maxEmailDomain = 253
	maxEmailLen    = 254
)

// Phone-number lengths in digits, country code included: E.164 allows at
// most 15 digits; fewer than 7 cannot be a full international number.
const (
	minPhoneDigits = 7
	maxPhoneDigits = 15
)

// minBirthYear is the earliest year of birth Meta documents.
const minBirthYear = 1900

// NormalizeEmail trims and lowercases an e-mail address and checks that it
// looks like one: a local part and a dotted domain around a single '@',
// without spaces or control characters. Meta's documentation asks for trim
// and lowercase only; the Business SDK also throws on addresses it deems
// invalid, and so do we, since hashing garbage only lowers match quality.
// Internationalized (non-ASCII) addresses are kept as they are.
func NormalizeEmail(v string) (string, error) {
	v = lower(trim(v))
	if v == "" {
		return "", ErrEmpty
	}
	if len(v) > maxEmailLen {
		return "", invalid("e-mail address longer than %d bytes", maxEmailLen)
	}
	local, domain, ok := strings.Cut(v, "@")
	if !ok || strings.Contains(domain, "@") {
		return "", invalid("e-mail address must hold exactly one '@'")
	}
	if local == "" || len(local) > maxEmailLocal {
		return "", invalid("e-mail local part must hold 1 to %d bytes", maxEmailLocal)
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", invalid("e-mail local part has a misplaced dot")
	}
	for _, r := range local {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>()[]\,;:"`, r) {
			return "", invalid("e-mail local part holds a character not allowed there")
		}
	}
	if len(domain) > maxEmailDomain {
		return "", invalid("e-mail domain longer than %d bytes", maxEmailDomain)
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", invalid("e-mail domain must hold a dot")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", invalid("e-mail domain has an empty or malformed label")
		}
		for _, r := range l {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
				return "", invalid("e-mail domain holds a character not allowed in a host name")
			}
		}
	}
	if tld := labels[len(labels)-1]; utf8.RuneCountInString(tld) < 2 || strings.IndexFunc(tld, unicode.IsDigit) >= 0 && !strings.HasPrefix(tld, "xn--") {
		return "", invalid("e-mail domain must end in a top-level domain of letters")
	}
	return v, nil
}

// NormalizePhone keeps the ASCII digits of a phone number, drops leading
// zeros (an international "00" prefix, a trunk "0") and checks that 7 to 15
// digits remain.
//
// The number must already include its country code: Meta documents
// "(650)555-1212" in the US as "16505551212", and neither Meta's libraries
// nor this function can add a missing code ("020 7946 0958" normalizes to
// "2079460958", which matches nobody). Here the documentation and the
// parameter builder agree (every non-digit removed, every leading zero
// removed); the Business SDK keeps dots and other characters, which the
// documentation does not.
func NormalizePhone(v string) (string, error) {
	var b strings.Builder
	for _, r := range v {
		switch {
		case '0' <= r && r <= '9':
			if b.Len() == 0 && r == '0' {
				continue
			}
			b.WriteRune(r)
		case unicode.IsDigit(r):
			return "", invalid("phone number holds non-ASCII digits; send 0-9")
		}
	}
	n := b.Len()
	if n == 0 {
		return "", ErrEmpty
	}
	if n < minPhoneDigits || n > maxPhoneDigits {
		return "", invalid("phone number must hold %d to %d digits including the country code", minPhoneDigits, maxPhoneDigits)
	}
	return b.String(), nil
}

// NormalizeName lowercases a first or last name and keeps only its letters
// (of any script, with their combining marks): punctuation, spaces, digits
// and symbols go. Meta documents "lowercase, no punctuation" and UTF-8 for
// non-Latin letters ("Valéry" → "valéry"); the parameter builder agrees
// ("Anne-Marie" → "annemarie") while the Business SDK only trims and
// lowercases ("anne-marie"): we follow the documentation. No Unicode
// normalization (NFC) is applied, as in both libraries.
func NormalizeName(v string) (string, error) {
	return lettersOnly(v, false), nil
}

// NormalizeGender maps f, m, female and male (any case) to "f" or "m".
func NormalizeGender(v string) (string, error) {
	switch strings.ToLower(trim(v)) {
	case "":
		return "", ErrEmpty
	case "f", "female":
		return "f", nil
	case "m", "male":
		return "m", nil
	}
	return "", invalid("gender must be f or m (female or male)")
}

// NormalizeDateOfBirth turns a date of birth into YYYYMMDD. It reads
// YYYYMMDD, YYYY-MM-DD (or with '/' or '.'), and the US order MM/DD/YYYY
// (or with '-'; one-digit month and day allowed, as in Meta's "2/16/1997"
// example); a first number above 12 is read as the day (16/02/1997), and
// dotted dates are day first (16.02.1997). The date must exist, the year must be 1900 or later, and the
// date must not be after now. The Business SDK hashes dates as given; the
// documentation asks for YYYYMMDD, which we produce.
func NormalizeDateOfBirth(v string, now time.Time) (string, error) {
	v = trim(v)
	if v == "" {
		return "", ErrEmpty
	}
	var y, m, d string
	switch {
	case len(v) == 8 && allDigits(v):
		y, m, d = v[:4], v[4:6], v[6:]
	default:
		sep := strings.IndexAny(v, "-/.")
		if sep < 0 {
			return "", invalid("date of birth must look like YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY")
		}
		parts := strings.Split(v, v[sep:sep+1])
		switch {
		case len(parts) != 3:
			return "", invalid("date of birth must look like YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY")
		case len(parts[0]) == 4:
			y, m, d = parts[0], parts[1], parts[2]
		case len(parts[2]) == 4 && v[sep] == '.':
			// Dotted dates are day first (16.02.1997), as written in Europe.
			d, m, y = parts[0], parts[1], parts[2]
		case len(parts[2]) == 4:
			// US order, unless the first number cannot be a month (16/02/1997).
			m, d, y = parts[0], parts[1], parts[2]
			if n, ok := smallInt(m, 1, 2); ok && n > 12 {
				m, d = d, m
			}
		default:
			return "", invalid("date of birth must look like YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY")
		}
	}
	year, ok1 := smallInt(y, 4, 4)
	month, ok2 := smallInt(m, 1, 2)
	day, ok3 := smallInt(d, 1, 2)
	if !ok1 || !ok2 || !ok3 {
		return "", invalid("date of birth must look like YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY")
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Year() != year || int(t.Month()) != month || t.Day() != day {
		return "", invalid("date of birth is not a calendar date")
	}
	ny, nm, nd := now.Date()
	if year < minBirthYear || t.After(time.Date(ny, nm, nd, 0, 0, 0, 0, time.UTC)) {
		return "", invalid("date of birth must be between %d and today", minBirthYear)
	}
	return t.Format("20060102"), nil
}

// NormalizeCity lowercases a city and keeps only its letters (any script,
// with combining marks): Meta documents "lowercase, no punctuation, no
// special characters, no spaces" ("New York" → "newyork"). The parameter
// builder also drops non-ASCII letters ("São Paulo" → "sopaulo") and the
// Business SDK keeps commas and apostrophes; we follow the documentation and
// keep accented letters, as Meta does for names.
func NormalizeCity(v string) (string, error) {
	return lettersOnly(v, false), nil
}

// NormalizeState lowercases a state or region and keeps its letters and
// digits; a US state (or DC, or a US territory) given by name becomes its
// two-letter code ("California" → "ca", "New York" → "ny"), as Meta
// documents. Other regions are kept as written, lowercased and compacted;
// the parameter builder's "first two letters" fallback ("Bavaria" → "ba")
// is not documented and would collide, so we do not apply it.
func NormalizeState(v string) (string, error) {
	s := lettersOnly(v, true)
	if code, ok := usStates[s]; ok {
		return code, nil
	}
	return s, nil
}

// NormalizeZip lowercases a postal code and removes spaces, dashes and any
// other punctuation; nine digits (a US ZIP+4: "94025-1234", "94025 1234",
// "940251234") keep their first five. Both Meta libraries keep everything
// before the first dash, which turns a Brazilian CEP "01310-100" into
// "01310"; the documentation only says "no dash", so we cut only the US
// 5+4 form.
func NormalizeZip(v string) (string, error) {
	var b strings.Builder
	letters := false
	for _, r := range strings.ToLower(v) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters = letters || !('0' <= r && r <= '9')
			b.WriteRune(r)
		}
	}
	if z := b.String(); !letters && len(z) == 9 {
		return z[:5], nil // ZIP+4, however it was separated
	}
	return b.String(), nil
}

// NormalizeCountry returns the lowercase ISO 3166-1 alpha-2 code of a
// country given by code ("US", "gb") or by a common English name ("United
// States", "UK", "Deutschland"...: a compact table). Anything that is not an
// assigned alpha-2 code after the mapping is refused: the parameter
// builder's "first two letters" fallback ("Great Britain" → "gr", Greece)
// would silently send a wrong country.
func NormalizeCountry(v string) (string, error) {
	key := lettersOnly(v, false)
	if key == "" {
		return "", ErrEmpty
	}
	if code, ok := countryNames[key]; ok {
		return code, nil
	}
	if len(key) == 2 && isoAlpha2(key) {
		return key, nil
	}
	return "", invalid("country must be an ISO 3166-1 alpha-2 code such as \"us\"")
}

// NormalizeExternalID trims and lowercases an advertiser's customer id.
// Meta recommends hashing external_id and requires it to match what the
// Pixel sends; the Business SDK sends it unhashed and unchanged, while the
// parameter builder lowercases and hashes it. We follow the documentation's
// recommendation and hash it, normalized as the Pixel does (trimmed,
// lowercased; inner spaces kept).
func NormalizeExternalID(v string) (string, error) {
	return lower(trim(v)), nil
}

// lettersOnly lowercases v and keeps its letters and combining marks (and
// decimal digits when digits is set). A capital sigma that ends a word
// becomes the final form 'ς', as JavaScript's toLowerCase (the Pixel's and
// Meta's Node libraries') does, so Greek names hash the same everywhere.
func lettersOnly(v string, digits bool) string {
	var b strings.Builder
	runes := []rune(strings.ReplaceAll(v, "\u0130", "i\u0307"))
	for i, r := range runes {
		switch {
		case r == utf8.RuneError:
			continue
		case r == 'Σ' && i > 0 && unicode.IsLetter(runes[i-1]) && (i+1 == len(runes) || !unicode.IsLetter(runes[i+1])):
			b.WriteRune('ς')
		case unicode.IsLetter(r) || unicode.IsMark(r) || digits && unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func smallInt(s string, minLen, maxLen int) (int, bool) {
	if len(s) < minLen || len(s) > maxLen || !allDigits(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
