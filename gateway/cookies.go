package gateway

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/tagway/tagway/routing/model"
)

// Meta's first-party cookies.
const (
	cookieFbp = "_fbp"
	cookieFbc = "_fbc"
	// maxCookieDays is the default and the longest lifetime of the
	// visitor's cookies: 400 days, the longest browsers keep (Meta's
	// builder uses 90). A site shortens it with cookies.max_age_days
	// (cookieLifetime).
	maxCookieDays = 400
	// maxFbclidLen bounds an fbclid taken from a URL.
	maxFbclidLen = 500
	// maxCookieLen bounds an existing _fbp/_fbc value we accept.
	maxCookieLen = 1024
)

// cookieScope is where the gateway's cookies live.
type cookieScope struct {
	// Domain is the registrable domain ("shop.co.uk"); empty for a host-only
	// cookie (an IP address, localhost, a bare name, a public suffix).
	Domain string
	// Index is Meta's subdomainIndex: labels of the cookie domain − 1
	// ("com" 0, "shop.example" 1, "shop.co.uk" 2); 0 for IPs and localhost.
	Index int
	// domainAttr is the Domain attribute as (*http.Cookie).String writes
	// it for Domain ("; Domain=shop.example"), rendered once per scope.
	domainAttr string
}

// withAttr returns sc with its rendered Domain attribute.
func (sc cookieScope) withAttr() cookieScope {
	sc.domainAttr = ""
	if sc.Domain != "" {
		sc.domainAttr = strings.TrimPrefix((&http.Cookie{Name: "n", Value: "v", Domain: sc.Domain}).String(), "n=v")
	}
	return sc
}

// scopeFor returns the cookie scope of a request host (lowercase, no port).
// The registrable domain comes from the public suffix list, so
// "t.shop.co.uk" gives "shop.co.uk" (index 2), never "co.uk".
func scopeFor(host string) cookieScope {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") || !strings.Contains(host, ".") {
		return cookieScope{}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return cookieScope{}
	}
	domain, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		// The host is itself a public suffix: only a host-only cookie works.
		return cookieScope{Index: strings.Count(host, ".")}
	}
	return cookieScope{Domain: domain, Index: strings.Count(domain, ".")}.withAttr()
}

// cookieScope returns scopeFor(host), remembered per host.
func (g *Gateway) cookieScope(host string) cookieScope {
	if sc, ok := g.cookieScopes.get(nil, host); ok {
		return sc
	}
	sc := scopeFor(host)
	g.cookieScopes.put(nil, host, sc)
	return sc
}

// cookieLifetime is the Max-Age of the visitor's cookies (_fbp, _fbc,
// _tw_vid) for site: its cookies.max_age_days, else maxCookieDays, and
// never more (browsers would cut it there anyway). Click-id cookies live
// the shorter of this and clickIDLifetime.
func cookieLifetime(site *model.Site) time.Duration {
	days := maxCookieDays
	if site != nil && site.Cookies != nil && site.Cookies.MaxAgeDays > 0 {
		days = min(site.Cookies.MaxAgeDays, maxCookieDays)
	}
	return time.Duration(days) * 24 * time.Hour
}

// cookieTarget is where and how a response sets its cookies: the cookie
// scope of the request's host, Secure when the browser used https, and the
// lifetime of the events' site. /collect works it out once for all of its
// cookies. A request whose host is not one of its site's domains (or below
// one) sets none (off): a request naming a site's page through a host of
// no site, or of another site, must not plant that site's visitor ids in
// that host's cookies.
type cookieTarget struct {
	scope  cookieScope
	secure bool
	maxAge time.Duration
	off    bool
}

func (g *Gateway) cookieTarget(r *http.Request, host string, site *model.Site) cookieTarget {
	return cookieTarget{scope: g.cookieScope(host), secure: g.isHTTPS(r), maxAge: cookieLifetime(site),
		off: site == nil || !site.HasHost(host)}
}

// cookie returns the gateway's cookie name=value living maxAge.
func (t cookieTarget) cookie(name, value string, maxAge time.Duration) http.Cookie {
	return http.Cookie{
		Name:     name,
		Value:    value,
		Domain:   t.scope.Domain,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		Secure:   t.secure,
		HttpOnly: false, // the browser Meta Pixel reads these cookies
		SameSite: http.SameSiteLaxMode,
	}
}

// setCookies adds a Set-Cookie header per cookie of each set (made by
// t.cookie), none when t is off; like http.SetCookie, none for a cookie
// String renders empty (an invalid name).
func (t cookieTarget) setCookies(h http.Header, sets ...[]http.Cookie) {
	if t.off {
		return
	}
	var stack [512]byte
	var endsStack [8]int
	b, ends := stack[:0], endsStack[:0] // ends[i]: where line i ends in b
	for _, cookies := range sets {
		for i := range cookies {
			start := len(b)
			if b = t.appendLine(b, &cookies[i]); len(b) > start {
				ends = append(ends, len(b))
			}
		}
	}
	if len(ends) == 0 {
		return
	}
	all := string(b)
	lines := slices.Grow(h["Set-Cookie"], len(ends))
	start := 0
	for _, end := range ends {
		lines = append(lines, all[start:end])
		start = end
	}
	h["Set-Cookie"] = lines
}

// line renders c as (*http.Cookie).String does.
func (t cookieTarget) line(c *http.Cookie) string { return string(t.appendLine(nil, c)) }

// appendLine appends c as (*http.Cookie).String renders it, directly when
// c has the shape t.cookie gives and a value String writes unchanged
// (cookieSafe: nothing to quote or drop); any other cookie goes through
// String.
func (t cookieTarget) appendLine(b []byte, c *http.Cookie) []byte {
	if c.Path != "/" || c.Domain != t.scope.Domain || c.MaxAge <= 0 || c.HttpOnly || c.Secure != t.secure ||
		c.SameSite != http.SameSiteLaxMode || !c.Expires.IsZero() || c.Partitioned || c.Quoted ||
		!cookieToken(c.Name) || !cookieSafe(c.Value) {
		return append(b, c.String()...)
	}
	b = append(b, c.Name...)
	b = append(b, '=')
	b = append(b, c.Value...)
	b = append(b, "; Path=/"...)
	b = append(b, t.scope.domainAttr...)
	b = append(b, "; Max-Age="...)
	b = strconv.AppendInt(b, int64(c.MaxAge), 10)
	if c.Secure {
		b = append(b, "; Secure"...)
	}
	return append(b, "; SameSite=Lax"...)
}

// cookieToken reports whether a cookie name is an RFC 7230 token, which
// String writes as it is.
func cookieToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// metaCookie is a parsed _fbp or _fbc value: fb.<index>.<ms>.<payload>[.<appendix>].
type metaCookie struct {
	Index   int
	Time    int64
	Payload string
}

// parseMetaCookie reads a cookie by the parameter builder's rules: 4 or 5
// dot-separated parts, "fb" first, a digit index and creation time, a
// non-empty payload (the 4th part), and in a 5th part only an appendix the
// parameter builder recognises (isCookieAppendix). Anything else is ignored
// and replaced, as the parameter builder does.
func parseMetaCookie(v string) (metaCookie, bool) {
	if len(v) > maxCookieLen || !cookieSafe(v) {
		return metaCookie{}, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 4 && len(parts) != 5 {
		return metaCookie{}, false
	}
	if parts[0] != "fb" || !digits(parts[1]) || !digits(parts[2]) || parts[3] == "" {
		return metaCookie{}, false
	}
	if len(parts) == 5 && !isCookieAppendix(parts[4]) {
		return metaCookie{}, false
	}
	idx, err1 := strconv.Atoi(parts[1])
	ms, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return metaCookie{}, false
	}
	return metaCookie{Index: idx, Time: ms, Payload: parts[3]}, true
}

// isCookieAppendix reports whether s is an appendix Meta's parameter builder
// accepts on an existing cookie: one of its 2-character language tokens, or
// 8 base64url characters decoding to 6 bytes whose format byte is 1 and
// whose language byte is 1 to 6.
func isCookieAppendix(s string) bool {
	switch s {
	case "AQ", "Ag", "Aw", "BA", "BQ", "Bg":
		return true
	}
	if len(s) != 8 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 6 && b[0] == 0x01 && b[1] >= 1 && b[1] <= 6
}

// maxRequestCookies is net/http's default bound on the cookies of a request:
// Request.Cookie finds none beyond it. (GODEBUG httpcookiemaxnum changes
// net/http's bound, not this one.)
const maxRequestCookies = 3000

// cookieValue returns the value (*http.Request).Cookie(name).Value gives,
// and whether it finds the cookie, without its allocations: the first
// cookie of that name whose value is valid, its double quotes removed.
// name must be a token (the gateway's cookie names are).
func cookieValue(h http.Header, name string) (string, bool) {
	lines := h["Cookie"]
	if len(lines) == 0 || name == "" {
		return "", false
	}
	// A line holds at most len(line)+1 cookies: only long headers need
	// counting.
	size := len(lines)
	for _, line := range lines {
		size += len(line)
	}
	if size > maxRequestCookies && countCookies(lines) > maxRequestCookies {
		return "", false
	}
	for _, line := range lines {
		line = textproto.TrimString(line)
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// countCookies counts the cookies of Cookie header lines as net/http does.
func countCookies(lines []string) int {
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	return n
}

// validCookieValue reports whether every byte of v may be in a cookie
// value, by net/http's rule.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// requestCookie returns the value of the named cookie as Meta's parameter
// builder reads it: the last occurrence in the Cookie header wins, the value
// is percent-decoded, and a value that does not decode counts as absent.
// (net/http's Request.Cookie returns the first occurrence and strips
// quotes, which the parameter builder does not.)
func requestCookie(r *http.Request, name string) (string, bool) {
	var (
		value string
		found bool
	)
	for _, line := range r.Header["Cookie"] {
		for rest, more := line, true; more; {
			var pair string
			pair, rest, more = strings.Cut(rest, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			d, err := url.PathUnescape(strings.TrimSpace(v))
			if err != nil {
				value, found = "", false
				continue
			}
			value, found = d, true
		}
	}
	return value, found && value != ""
}

// cookieState is what the gateway decided about a visitor's cookies.
type cookieState struct {
	Fbp, Fbc string
	// Set lists the cookies to send back: new, replaced or refreshed values.
	Set []http.Cookie
}

// visitorCookies reads the visitor's _fbp and _fbc, mints what is missing
// or invalid, and returns the values to put on the events and the cookies to
// set. vid is the script's visitor seed; pageURL the page the events come
// from and referrer the page before it (document.referrer).
//
// The values follow Meta's parameter-builder rules (its vectors are in
// cookies_vectors_test.go): fb.<subdomainIndex>.<ms>.<payload>; an
// existing valid cookie is kept; _fbc is (re)set when the page URL, else
// the referrer, carries another fbclid (case sensitive, kept as given).
// Unlike the builder: the registrable domain comes from the public suffix
// list ("t.shop.co.uk": shop.co.uk, index 2); a new _fbp payload derives
// from a valid vid, so racing first requests of a visitor agree, else 18
// random digits; no appendix; an fbclid a cookie cannot hold unchanged and
// an unparsable referrer are ignored; valid cookies are set again on each
// request to live their full Max-Age (cookieLifetime).
func (g *Gateway) visitorCookies(r *http.Request, t cookieTarget, vid, pageURL, referrer string, now time.Time) (cookieState, error) {
	scope := t.scope
	var st cookieState

	if v, ok := requestCookie(r, cookieFbp); ok {
		if _, ok := parseMetaCookie(v); ok {
			st.Fbp = v
		}
	}
	if st.Fbp == "" {
		ms, rnd, ok := parseVID(vid, now)
		if !ok {
			ms = now.UnixMilli()
			var err error
			if rnd, err = g.randomDigits(); err != nil {
				return cookieState{}, err
			}
		}
		st.Fbp = metaCookieValue(scope.Index, ms, rnd)
	}

	var existing metaCookie
	if v, ok := requestCookie(r, cookieFbc); ok {
		if mc, ok := parseMetaCookie(v); ok {
			st.Fbc, existing = v, mc
		}
	}
	// The page first, then the page before it (Meta's libraries read the
	// Referer of a page request, which is document.referrer), then this
	// request's own Referer header (the page, for a client that sent no url).
	fbclid, found := fbclidFrom(pageURL)
	if !found {
		fbclid, found = fbclidFrom(referrer)
	}
	if !found {
		fbclid, _ = fbclidFrom(r.Header.Get("Referer"))
	}
	if fbclid != "" && (st.Fbc == "" || existing.Payload != fbclid) {
		st.Fbc = metaCookieValue(scope.Index, now.UnixMilli(), fbclid)
	}
	// Valid cookies are set again with the same value: a cookie set by the
	// server lives its full Max-Age, where one written by script (the
	// browser Pixel's) is capped at a few days by Safari's ITP.
	st.Set = append(st.Set, t.cookie(cookieFbp, st.Fbp, t.maxAge))
	if st.Fbc != "" {
		st.Set = append(st.Set, t.cookie(cookieFbc, st.Fbc, t.maxAge))
	}
	return st, nil
}

// metaCookieValue is a _fbp or _fbc value, fb.<index>.<ms>.<payload>.
func metaCookieValue(index int, ms int64, payload string) string {
	var buf [48]byte
	b := append(buf[:0], "fb."...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, '.')
	return string(b) + payload
}

// vid bounds: <Unix ms>.<10 to 18 digits>, created after 2015 and not in the
// future beyond a day of clock skew.
const (
	minVIDDigits = 10
	maxVIDDigits = 18
	minVIDms     = 1420070400000 // 2015-01-01
	vidSkew      = 24 * time.Hour
)

// parseVID reads the script's visitor seed.
func parseVID(vid string, now time.Time) (ms int64, rnd string, ok bool) {
	msPart, rnd, found := strings.Cut(vid, ".")
	if !found || !digits(msPart) || len(msPart) > 15 || !digits(rnd) || len(rnd) < minVIDDigits || len(rnd) > maxVIDDigits {
		return 0, "", false
	}
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || ms < minVIDms || ms > now.Add(vidSkew).UnixMilli() {
		return 0, "", false
	}
	return ms, rnd, true
}

// randomDigits returns 18 random decimal digits (no leading zero), the
// longest random part Meta's own client library produces.
func (g *Gateway) randomDigits() (string, error) {
	var b [8]byte
	if err := g.readRand(b[:]); err != nil {
		return "", err
	}
	const lo, span = 100_000_000_000_000_000, 900_000_000_000_000_000
	return strconv.FormatUint(lo+binary.BigEndian.Uint64(b[:])%span, 10), nil
}

// fbclidFrom returns the fbclid query parameter of a URL as Meta's
// parameter builder reads it: the query decoded ('+' is a space), the last
// fbclid winning, a URL without a scheme read as http. found reports that
// the URL carries a non-empty fbclid; fbclid is empty when that value
// cannot be stored in a cookie unchanged (a dot would split the cookie's
// parts; spaces, quotes, commas and semicolons would need quoting), or
// when it is longer than maxFbclidLen.
func fbclidFrom(raw string) (fbclid string, found bool) {
	if !mayHoldParam(raw, "fbclid") {
		return "", false
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	values := u.Query()["fbclid"]
	if len(values) == 0 || values[len(values)-1] == "" {
		return "", false
	}
	v := values[len(values)-1]
	if len(v) > maxFbclidLen || !cookieSafe(v) || strings.Contains(v, ".") {
		return "", true
	}
	return v, true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cookieSafe reports whether s may appear in a cookie value as is (and so
// (*http.Cookie).String writes it unchanged: no space or comma to quote).
func cookieSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
