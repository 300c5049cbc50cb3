package pii

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Which Meta rule each field follows is recorded in README.md (the policy
// table) and checked against every vector in normalize.jsonl by
// TestMetaVectors. Each function below names its column: "SDK" is
// facebook-nodejs-business-sdk 24.0.1, "PB" capi-param-builder-nodejs 1.3.2,
// "docs" Meta's customer-information parameter table.

// Limits of the e-mail check, those of the validator the Business SDK uses.
const (
	maxEmailLen   = 254
	maxEmailLocal = 64
	maxEmailLabel = 63
)

// Phone-number lengths in digits, country code included: the Business SDK
// refuses fewer than 7 and more than 16.
const (
	minPhoneDigits = 7
	maxPhoneDigits = 16
)

// minBirthYear is the earliest year of birth Meta documents.
const minBirthYear = 1900

// validEmail reports whether v matches the address grammar of the e-mail
// validator the Business SDK calls (ASCII only: internationalized addresses
// are refused by both of Meta's libraries). As a regular expression
// (TestValidEmailMatchesGrammar holds the two equal):
//
//	^[-!#$%&'*+/0-9=?A-Z^_a-z{|}~](\.?[-!#$%&'*+/0-9=?A-Z^_a-z`{|}~])*
//	@[a-zA-Z0-9](-*\.?[a-zA-Z0-9])*\.[a-zA-Z](-?[a-zA-Z0-9])+$
//
// that is: a local part of atom characters (a backquote not first) with
// single dots between them; a domain of alphanumerics where a dot follows
// an alphanumeric or a run of hyphens and precedes an alphanumeric; and a
// last label (after the last dot) of a letter and at least one more
// alphanumeric, with single hyphens between them.
func validEmail(v string) bool {
	at := strings.IndexByte(v, '@')
	if at <= 0 {
		return false
	}
	local, domain := v[:at], v[at+1:]
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '.':
			// Not first, not last, not doubled.
			if i == 0 || i == len(local)-1 || local[i+1] == '.' {
				return false
			}
		case c == '`':
			if i == 0 {
				return false
			}
		case !emailAtom(c):
			return false
		}
	}
	dot := strings.LastIndexByte(domain, '.')
	if dot <= 0 {
		return false
	}
	head, tld := domain[:dot], domain[dot+1:]
	if !alnum(head[0]) || !alnum(head[len(head)-1]) {
		return false
	}
	for i := 0; i < len(head); i++ {
		switch c := head[i]; {
		case c == '.':
			if !alnum(head[i+1]) {
				return false
			}
		case c != '-' && !alnum(c):
			return false
		}
	}
	if len(tld) < 2 || !('a' <= tld[0] && tld[0] <= 'z' || 'A' <= tld[0] && tld[0] <= 'Z') || !alnum(tld[len(tld)-1]) {
		return false
	}
	for i := 1; i < len(tld); i++ {
		switch c := tld[i]; {
		case c == '-':
			if tld[i-1] == '-' {
				return false
			}
		case !alnum(c):
			return false
		}
	}
	return true
}

// emailAtom reports whether c may appear in an address's local part (the
// backquote aside).
func emailAtom(c byte) bool {
	return alnum(c) || strings.IndexByte("-!#$%&'*+/=?^_{|}~", c) >= 0
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// NormalizeEmail trims and lowercases an e-mail address (as JavaScript does)
// and refuses what the Business SDK refuses. Column: SDK, byte for byte.
// Meta documents trim and lowercase; the SDK additionally throws on
// addresses its validator rejects (no dotted domain, a TLD shorter than two
// characters, non-ASCII characters, a local part over 64 characters), and
// hashing such garbage would only lower match quality.
func NormalizeEmail(v string) (string, error) {
	v = jsLower(jsTrim(v))
	if v == "" {
		return "", ErrEmpty
	}
	if len(v) > maxEmailLen || !validEmail(v) {
		return "", invalid("not an e-mail address Meta's Business SDK accepts")
	}
	local, domain, _ := strings.Cut(v, "@")
	if len(local) > maxEmailLocal {
		return "", invalid("e-mail local part longer than %d characters", maxEmailLocal)
	}
	for rest := domain; rest != ""; {
		var label string
		label, rest, _ = strings.Cut(rest, ".")
		if len(label) > maxEmailLabel {
			return "", invalid("e-mail domain label longer than %d characters", maxEmailLabel)
		}
	}
	return v, nil
}

// NormalizePhone keeps the ASCII digits of a phone number and drops every
// leading zero (an international "00" prefix, a trunk "0"). Column: docs
// ("remove symbols, letters and leading zeros"), with the SDK's length bound
// of 7 to 16 digits.
//
// The Business SDK keeps dots, slashes, ':' and non-ASCII separators
// ("+1.650.555.1212" → "1.650.555.1212"), which matches nobody; the
// parameter builder agrees with the documentation. The number must already
// include its country code: Meta documents "(650)555-1212" in the US as
// "16505551212", and nothing can add a missing code ("020 7946 0958"
// normalizes to "2079460958"). Non-ASCII digits are refused rather than
// silently dropped.
func NormalizePhone(v string) (string, error) {
	var kept [maxPhoneDigits]byte
	n := 0 // digits kept, also past len(kept)
	for _, r := range v {
		switch {
		case '0' <= r && r <= '9':
			if n == 0 && r == '0' {
				continue
			}
			if n < len(kept) {
				kept[n] = byte(r)
			}
			n++
		case unicode.IsDigit(r):
			return "", invalid("phone number holds non-ASCII digits; send 0-9")
		}
	}
	if n == 0 {
		return "", ErrEmpty
	}
	if n < minPhoneDigits || n > maxPhoneDigits {
		return "", invalid("phone number must hold %d to %d digits including the country code", minPhoneDigits, maxPhoneDigits)
	}
	return string(kept[:n]), nil
}

// NormalizeName lowercases a first or last name (as JavaScript does) and
// removes Unicode punctuation and symbols; letters of every script, digits
// and inner spaces stay ("Valéry" → "valéry", "St. John" → "st john").
// Column: docs ("lowercase, no punctuation", UTF-8 letters kept). The SDK
// only trims and lowercases ("anne-marie"); the parameter builder also
// removes spaces but only ASCII punctuation ("o’brien" keeps its
// apostrophe). No Unicode normalization (NFC) is applied, as in both
// libraries.
func NormalizeName(v string) (string, error) {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, jsLower(jsTrim(v)))
	return jsTrim(s), nil
}

// NormalizeGender keeps the ASCII letters of a trimmed, lowercased value
// and maps "f"/"female" to "f" and "m"/"male" to "m" (so "F." and "fe male"
// count). Column: SDK, byte for byte; it agrees with the documentation. The
// parameter builder's longer word list ("woman", "mr") is not documented.
func NormalizeGender(v string) (string, error) {
	s := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r
		}
		return -1
	}, jsLower(jsTrim(v)))
	switch s {
	case "f", "female":
		return "f", nil
	case "m", "male":
		return "m", nil
	}
	if jsTrim(v) == "" {
		return "", ErrEmpty
	}
	return "", invalid("gender must be f or m (female or male)")
}

// Date-of-birth layouts: year first (YYYYMMDD, YYYY-MM-DD, YYYY/M/D...) and
// year last (MM/DD/YYYY, Meta's "2/16/1997" example, or day first when the
// first number cannot be a month).
var (
	dobYearFirst = regexp.MustCompile(`^([0-9]{4})[-/.]?([0-9]{1,2})[-/.]?([0-9]{1,2})$`)
	dobYearLast  = regexp.MustCompile(`^([0-9]{1,2})([-/.])([0-9]{1,2})[-/.]([0-9]{4})$`)
)

// NormalizeDateOfBirth turns a date of birth into YYYYMMDD. Column: docs
// ("YYYYMMDD", year 1900 to now, "2/16/1997" → "19970216"). It reads
// year-first dates with '-', '/', '.' or no separator, and year-last dates
// month first (US), or day first when the first number is above 12 or the
// separator is a dot (16.02.1997, as written in Europe). The date must
// exist and lie between 1900 and today. The Business SDK hashes dates as
// given ("1997-02-16" unchanged), which matches nobody; the parameter
// builder also accepts impossible dates ("1997-02-30").
func NormalizeDateOfBirth(v string, now time.Time) (string, error) {
	v = jsTrim(v)
	if v == "" {
		return "", ErrEmpty
	}
	var y, m, d string
	if g := dobYearFirst.FindStringSubmatch(v); g != nil {
		y, m, d = g[1], g[2], g[3]
	} else if g := dobYearLast.FindStringSubmatch(v); g != nil {
		m, d, y = g[1], g[3], g[4]
		if n, _ := strconv.Atoi(m); n > 12 || g[2] == "." {
			m, d = d, m
		}
	} else {
		return "", invalid("date of birth must look like YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY")
	}
	year, _ := strconv.Atoi(y)
	month, _ := strconv.Atoi(m)
	day, _ := strconv.Atoi(d)
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

// NormalizeCity lowercases a city and keeps its letters (any script, with
// combining marks) and digits. Column: docs ("lowercase, no punctuation, no
// special characters, no spaces": "New York" → "newyork"). The Business SDK
// keeps commas, apostrophes and slashes and drops digits; the parameter
// builder drops every non-ASCII letter ("São Paulo" → "sopaulo").
func NormalizeCity(v string) (string, error) {
	return alphanumeric(v), nil
}

// NormalizeState is NormalizeCity, then a US state (or DC) given by name
// becomes its two-letter code ("California" → "ca", "New York" → "ny").
// Column: docs ("US: 2-letter ANSI code"). Other regions stay as written,
// compacted; the parameter builder's "first two letters" fallback
// ("Bavaria" → "ba") is not documented and collides, and the Business SDK
// never maps names.
func NormalizeState(v string) (string, error) {
	s := alphanumeric(v)
	if code, ok := usStates[s]; ok {
		return code, nil
	}
	return s, nil
}

// usZip is a US ZIP or ZIP+4, however the +4 is attached.
var usZip = regexp.MustCompile(`^[0-9]{5}(-?[0-9]{4}|[\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}][0-9]{4})?$`)

// NormalizeZip keeps the first five digits of a US ZIP or ZIP+4 ("94025",
// "94025-1234", "94025 1234", "940251234" → "94025"); any other postal code
// is lowercased without spaces and dashes ("SW1A 1AA" → "sw1a1aa").
// Column: docs ("lowercase, no spaces, no dash; US: first 5 digits"). Both
// of Meta's libraries keep everything before the first dash, which turns a
// Brazilian CEP "01310-100" into "01310"; the parameter builder also keeps
// inner spaces ("sw1a 1aa").
func NormalizeZip(v string) (string, error) {
	t := jsTrim(v)
	if usZip.MatchString(t) {
		return t[:5], nil
	}
	z := strings.Map(func(r rune) rune {
		if r == '-' || jsSpace(r) {
			return -1
		}
		return r
	}, jsLower(t))
	if usZip.MatchString(z) {
		// Nine digits however separated ("9410 31234"): a ZIP+4. This also
		// keeps normalization idempotent.
		return z[:5], nil
	}
	return z, nil
}

// NormalizeCountry returns the lowercase ISO 3166-1 alpha-2 code of a
// country given by code ("US", "gb") or by a common name ("United States",
// "UK", "Deutschland": a compact table). Column: docs ("lowercase ISO
// 3166-1 alpha-2; United States → us"). Anything else is refused: the
// Business SDK throws on every name, and the parameter builder's "first two
// letters" fallback ("Great Britain" → "gr", Greece) sends a wrong country.
func NormalizeCountry(v string) (string, error) {
	key := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsMark(r) {
			return r
		}
		return -1
	}, jsLower(v))
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

// NormalizeExternalID lowercases an advertiser's customer id and removes
// its white space. Column: PB, byte for byte. Meta recommends hashing
// external_id and documents no normalization; the Business SDK sends it raw
// and unhashed, the parameter builder (Meta's newer library, which mirrors
// the Pixel) lowercases, strips white space and hashes, and so do we.
func NormalizeExternalID(v string) (string, error) {
	if asciiNoSpace(v) {
		return jsLower(v), nil
	}
	return externalIDRunes(v), nil
}

// externalIDRunes is NormalizeExternalID rune by rune.
func externalIDRunes(v string) string {
	return jsLower(strings.Map(func(r rune) rune {
		if jsSpace(r) {
			return -1
		}
		return r
	}, v))
}

// alphanumeric lowercases v as JavaScript does and keeps letters, marks and
// numbers of every script.
func alphanumeric(v string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) {
			return r
		}
		return -1
	}, jsLower(v))
}

// jsSpace reports whether r is white space for JavaScript (\s and trim()):
// Unicode White_Space minus U+0085, plus the byte-order mark U+FEFF.
func jsSpace(r rune) bool { return r == '\ufeff' || r != '\u0085' && unicode.IsSpace(r) }

// jsTrim removes leading and trailing white space as JavaScript's trim()
// does (Meta's libraries and the Pixel are JavaScript).
func jsTrim(s string) string {
	if s == "" || asciiNotSpace(s[0]) && asciiNotSpace(s[len(s)-1]) {
		return s // nothing to trim (the common case, without decoding runes)
	}
	return strings.TrimFunc(s, jsSpace)
}

// asciiNotSpace reports whether c is an ASCII byte that is not white space.
func asciiNotSpace(c byte) bool { return c > ' ' && c < utf8.RuneSelf }

// asciiNoSpace reports whether s is ASCII without white space.
func asciiNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if !asciiNotSpace(s[i]) {
			return false
		}
	}
	return true
}

// isASCII reports whether s holds ASCII bytes only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// jsLower lowercases s as JavaScript's toLowerCase() does where Go's
// strings.ToLower differs: 'İ' becomes "i̇" (i and a combining dot above),
// and a capital sigma that ends a word becomes the final form 'ς'.
func jsLower(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	return jsLowerRunes(s)
}

// jsLowerRunes is jsLower for any text.
func jsLowerRunes(s string) string {
	if !strings.ContainsAny(s, "\u0130Σ") {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	for i, r := range runes {
		switch {
		case r == '\u0130':
			b.WriteString("i\u0307")
		case r == 'Σ' && i > 0 && unicode.IsLetter(runes[i-1]) && (i+1 == len(runes) || !unicode.IsLetter(runes[i+1])):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
