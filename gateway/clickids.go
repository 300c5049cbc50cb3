package gateway

// Ad click ids, tagway's visitor id and the platforms' own first-party
// cookies, kept by the gateway in first-party cookies it sets itself (a
// cookie set by a server lives its full lifetime, where Safari caps one
// written by script at 7 days), and the consent rule that strips every
// identifier from an event without marketing consent.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// Cookies the gateway sets besides Meta's _fbp and _fbc.
const (
	// cookieClickIDs holds every click id of the visitor with its capture
	// time: "gclid=<ms>.<gclid>&ttclid=<ms>.<ttclid>", each value
	// query-escaped.
	cookieClickIDs = "_tw_cid"
	// cookieVisitor is tagway's visitor id, "<Unix ms>.<digits>", the
	// script's visitor seed when it sent one.
	cookieVisitor = "_tw_vid"
	// cookieGclAW is Google's click cookie, "GCL.<Unix seconds>.<gclid>",
	// set when a landing URL carries a gclid, so that Google's own tags
	// read the click the gateway saw.
	cookieGclAW = "_gcl_aw"
	// clickIDLifetime is how long a click id is kept: 90 days, the longest
	// attribution window of the platforms (Google Ads) and Google's own
	// lifetime for _gcl_aw; less when the site's cookies.max_age_days is
	// shorter.
	clickIDLifetime = 90 * 24 * time.Hour
	// maxClickIDLen bounds one click id taken from a URL or a cookie.
	maxClickIDLen = 256
	// maxVendorCookieLen bounds a platform cookie passed on with events.
	maxVendorCookieLen = 512
)

// clickParams are the URL parameters of ad click ids the gateway keeps
// (fbclid has its own cookie, _fbc). Names are case sensitive, as the
// platforms write them.
func clickParams() []string {
	return []string{"gclid", "gbraid", "wbraid", "ttclid", "ScCid", "epik", "rdt_cid", "li_fat_id", "msclkid"}
}

// vendorCookies are the platforms' first-party cookies passed on with
// events when the request carries them (same-site deployments: the
// gateway on a subdomain of the store, or below a path of it).
func vendorCookies() []string {
	return []string{"_ttp", "_scid", "_epik", "_rdt_uuid", "_ga", cookieGclAW}
}

// browserIDs are the identifiers the gateway keeps for one request, and the
// cookies to set for them.
type browserIDs struct {
	VisitorID string
	ClickIDs  map[string]destinations.ClickID
	Cookies   map[string]string
	set       []http.Cookie
	// dropped are the click ids of the landing URL that could not be kept
	// (fixes of "click_ids.<name>").
	dropped []fix
}

// browserIDs reads and refreshes the visitor's identifiers. With
// ad_storage not granted it reads nothing and sets nothing.
//
// Click ids come from the page URL (else the referrer, document.referrer)
// and are added to the ones in _tw_cid; a click id seen again keeps its
// first capture time, a new value of the same parameter replaces the old
// one with the time now, and ids older than clickIDLifetime (or the site's
// shorter cookie lifetime) are forgotten. The visitor id cookie lives the
// site's cookie lifetime (cookieLifetime), the click-id cookies the shorter
// of that and clickIDLifetime.
func (g *Gateway) browserIDs(r *http.Request, t cookieTarget, consent destinations.Consent, vid, pageURL, referrer string, now time.Time) browserIDs {
	var ids browserIDs
	if consent.AdStorage != destinations.Granted {
		return ids
	}
	maxAge := t.maxAge
	clickAge := min(clickIDLifetime, maxAge)
	cookie := func(name, value string, maxAge time.Duration) {
		ids.set = append(ids.set, t.cookie(name, value, maxAge))
	}

	// The visitor id: the cookie, else the script's seed, else a new one.
	if v, ok := cookieValue(r.Header, cookieVisitor); ok && validVID(v, now) {
		ids.VisitorID = v
	} else if validVID(vid, now) {
		ids.VisitorID = vid
	} else if digits, err := g.randomDigits(); err == nil {
		ids.VisitorID = strconv.FormatInt(now.UnixMilli(), 10) + "." + digits
	}
	if ids.VisitorID != "" {
		cookie(cookieVisitor, ids.VisitorID, maxAge)
	}

	ids.ClickIDs = readClickIDs(r, now, clickAge)
	landed, dropped := clickIDsFrom(pageURL)
	if len(landed) == 0 && len(dropped) == 0 {
		landed, dropped = clickIDsFrom(referrer)
	}
	ids.dropped = dropped
	for name, v := range landed {
		if old, ok := ids.ClickIDs[name]; ok && old.Value == v {
			continue
		}
		if ids.ClickIDs == nil {
			ids.ClickIDs = map[string]destinations.ClickID{}
		}
		ids.ClickIDs[name] = destinations.ClickID{Value: v, At: now.UnixMilli()}
		if name == "gclid" {
			cookie(cookieGclAW, "GCL."+strconv.FormatInt(now.Unix(), 10)+"."+v, clickAge)
		}
	}
	if len(ids.ClickIDs) > 0 {
		cookie(cookieClickIDs, encodeClickIDs(ids.ClickIDs), clickAge)
	}

	for _, name := range vendorCookies() {
		if v, ok := cookieValue(r.Header, name); ok && v != "" && len(v) <= maxVendorCookieLen && cookieSafe(v) {
			if ids.Cookies == nil {
				ids.Cookies = map[string]string{}
			}
			ids.Cookies[name] = v
		}
	}
	for _, c := range ids.set {
		if c.Name == cookieGclAW {
			if ids.Cookies == nil {
				ids.Cookies = map[string]string{}
			}
			ids.Cookies[cookieGclAW] = c.Value
		}
	}
	return ids
}

// annotate puts the identifiers on an event's context.
func (ids browserIDs) annotate(c *destinations.Context) {
	c.VisitorID, c.ClickIDs, c.Cookies = ids.VisitorID, ids.ClickIDs, ids.Cookies
}

// validVID reports whether v is a visitor id the gateway keeps: the
// script's seed format, created after 2015 and not in the future.
func validVID(v string, now time.Time) bool {
	_, _, ok := parseVID(v, now)
	return ok
}

// clickIDsFrom returns the click ids in a URL's query, by parameter, and a
// fix for each one it found but cannot keep: one that a cookie cannot hold
// unchanged (a quote, comma, semicolon or backslash: net/http would drop
// bytes of the cookie and log about it) or that is not 1 to maxClickIDLen
// printable ASCII characters.
func clickIDsFrom(raw string) (ids map[string]string, dropped []fix) {
	if !mayHoldParam(raw, clickParams()...) {
		return nil, nil // most pages: no parse needed
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil
	}
	q := u.Query()
	for _, name := range clickParams() {
		v := q.Get(name)
		switch {
		case v == "":
		case validClickID(v):
			if ids == nil {
				ids = map[string]string{}
			}
			ids[name] = v
		case printableASCII(v) && len(v) <= maxClickIDLen:
			dropped = append(dropped, fix{"click_ids." + name, reasonNotCookieSafe})
		default:
			dropped = append(dropped, fix{"click_ids." + name, reasonInvalid})
		}
	}
	return ids, dropped
}

// mayHoldParam reports whether a URL's query may hold one of the named
// parameters with a value: a name followed by '=', or any percent-escape
// (which could spell a name). When it reports false, url.Parse and Query
// would find none of them, so the caller can skip parsing.
func mayHoldParam(raw string, names ...string) bool {
	if strings.IndexByte(raw, '%') >= 0 {
		return true
	}
	// One pass over the '=' signs, each checked against every name.
	for j := strings.IndexByte(raw, '='); j >= 0; {
		for _, name := range names {
			if strings.HasSuffix(raw[:j], name) {
				return true
			}
		}
		k := strings.IndexByte(raw[j+1:], '=')
		if k < 0 {
			break
		}
		j += 1 + k
	}
	return false
}

// validClickID reports whether v may be kept: 1 to maxClickIDLen printable
// ASCII characters that a cookie holds unchanged (cookieSafe).
func validClickID(v string) bool {
	return v != "" && len(v) <= maxClickIDLen && printableASCII(v) && cookieSafe(v)
}

// printableASCII reports whether s holds only printable ASCII characters
// other than the space.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// readClickIDs reads _tw_cid, keeping the valid entries younger than
// lifetime.
func readClickIDs(r *http.Request, now time.Time, lifetime time.Duration) map[string]destinations.ClickID {
	v, ok := cookieValue(r.Header, cookieClickIDs)
	if !ok || len(v) > 4096 {
		return nil
	}
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil
	}
	oldest := now.Add(-lifetime).UnixMilli()
	var out map[string]destinations.ClickID
	for _, name := range clickParams() {
		ms, v, ok := strings.Cut(q.Get(name), ".")
		at, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil || at < oldest || at > now.Add(vidSkew).UnixMilli() || !validClickID(v) {
			continue
		}
		if out == nil {
			out = map[string]destinations.ClickID{}
		}
		out[name] = destinations.ClickID{Value: v, At: at}
	}
	return out
}

// encodeClickIDs is the _tw_cid value for ids.
func encodeClickIDs(ids map[string]destinations.ClickID) string {
	q := url.Values{}
	for name, id := range ids {
		q.Set(name, strconv.FormatInt(id.At, 10)+"."+id.Value)
	}
	return q.Encode()
}

// applyConsentMode enforces tagway's consent rule on events about to be
// queued: an event without marketing consent (ad_storage and ad_user_data
// granted) keeps no identifier — no hashed customer data, IP address,
// _fbp/_fbc, visitor id, click id or platform cookie; only the user agent,
// which says nothing of the person. The site's consent_denied_mode then
// decides where it goes: "drop" (the default) leaves it to routing, which
// withholds it from advertising platforms; "anonymous" marks it so that
// routing sends it to them all the same.
func applyConsentMode(site *model.Site, events []destinations.Event) {
	for i := range events {
		ev := &events[i]
		if ev.Context.Consent.Marketing() {
			continue
		}
		ev.UserData = destinations.UserData{ClientUserAgent: ev.UserData.ClientUserAgent}
		ev.Context.VisitorID, ev.Context.ClickIDs, ev.Context.Cookies = "", nil, nil
		ev.Context.Anonymous = site.ConsentDeniedMode == model.ConsentDeniedAnonymous
	}
}
