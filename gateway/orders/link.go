package orders

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Attribute names tw.js writes into a Shopify cart (and a WooCommerce
// snippet into an order's meta): they arrive in the order's note_attributes
// (meta_data). The leading underscore hides them from the shopper on
// Shopify's checkout and order pages.
const (
	// AttrVisitor holds the visitor id, the _tw_vid cookie's value
	// ("<Unix ms>.<digits>").
	AttrVisitor = "_tw_vid"
	// AttrClickIDs holds the visitor's click ids with their capture times
	// in the _tw_cid cookie's format: a URL query,
	// "gclid=<Unix ms>.<gclid>&ttclid=<Unix ms>.<ttclid>", each value
	// query-escaped; fbclid may appear too.
	AttrClickIDs = "_tw_cid"
	// AttrFbp and AttrFbc hold Meta's _fbp and _fbc cookies as they are
	// ("fb.1.<Unix ms>.<payload>"); the fbclid in _fbc counts as a click
	// captured at its time.
	AttrFbp = "_tw_fbp"
	AttrFbc = "_tw_fbc"
	// AttrWooSessionEntry and AttrWooSessionStart are WooCommerce's own
	// order attribution meta (since 8.5): the landing URL of the session
	// that placed the order, and when that session started.
	AttrWooSessionEntry = "_wc_order_attribution_session_entry"
	AttrWooSessionStart = "_wc_order_attribution_session_start_time"
)

// ClickParams are the URL parameters of ad click ids an order's link
// material may hold, as the platforms spell them.
func ClickParams() []string {
	return []string{"fbclid", "gclid", "gbraid", "wbraid", "msclkid", "ttclid", "ScCid", "epik", "rdt_cid", "li_fat_id"}
}

const (
	// maxClickIDLen bounds one click id, as the gateway does.
	maxClickIDLen = 256
	// minCaptureMs is the earliest capture or visitor time accepted
	// (2015-01-01), as the gateway's.
	minCaptureMs = 1420070400000
	// clockSkew is how far in the future of the receive time a capture
	// time may be.
	clockSkew = 24 * time.Hour
)

// validClickID reports whether v may be kept: 1 to maxClickIDLen printable
// ASCII characters without spaces.
func validClickID(v string) bool {
	if v == "" || len(v) > maxClickIDLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validCapture reports whether ms is a plausible capture time.
func validCapture(ms int64, now time.Time) bool {
	return ms >= minCaptureMs && ms <= now.Add(clockSkew).UnixMilli()
}

// validVisitorID reports whether v has the visitor id's form:
// "<Unix ms>.<10 to 18 digits>", created after 2015 and not in the future.
func validVisitorID(v string, now time.Time) bool {
	ms, rnd, ok := strings.Cut(v, ".")
	if !ok || len(ms) == 0 || len(ms) > 15 || !allDigits(ms) || len(rnd) < 10 || len(rnd) > 18 || !allDigits(rnd) {
		return false
	}
	at, err := strconv.ParseInt(ms, 10, 64)
	return err == nil && validCapture(at, now)
}

// parseClickIDs reads an AttrClickIDs value. ok is false when any entry is
// malformed; the valid entries are returned all the same.
func parseClickIDs(v string, now time.Time) (map[string]destinations.ClickID, bool) {
	q, err := url.ParseQuery(v)
	ok := err == nil
	var out map[string]destinations.ClickID
	for name, values := range q {
		if !isClickParam(name) || len(values) != 1 {
			ok = false
			continue
		}
		ms, id, found := strings.Cut(values[0], ".")
		at, err := strconv.ParseInt(ms, 10, 64)
		if !found || err != nil || !validCapture(at, now) || !validClickID(id) {
			ok = false
			continue
		}
		if out == nil {
			out = map[string]destinations.ClickID{}
		}
		out[name] = destinations.ClickID{Value: id, At: at}
	}
	return out, ok
}

// parseMetaCookie reads "fb.<subdomain index>.<Unix ms>.<payload>" (a
// payload may carry further dot-separated parts); it returns the time and
// the payload's first part.
func parseMetaCookie(v string, now time.Time) (at int64, payload string, ok bool) {
	parts := strings.SplitN(v, ".", 4)
	if len(parts) != 4 || parts[0] != "fb" || len(parts[1]) != 1 || !allDigits(parts[1]) {
		return 0, "", false
	}
	at, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || !validCapture(at, now) {
		return 0, "", false
	}
	payload, _, _ = strings.Cut(parts[3], ".")
	if !validClickID(payload) {
		return 0, "", false
	}
	return at, payload, true
}

func isClickParam(name string) bool {
	for _, p := range ClickParams() {
		if p == name {
			return true
		}
	}
	return false
}

// landing reads a landing URL: the click ids of its query, and the URL
// reduced to its path with only the click-id and utm_* parameters (the
// others may hold personal data). ok is false when the URL does not parse.
func landing(raw string) (reduced string, clicks map[string]string, ok bool) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Keep what parses: ParseQuery returns the valid pairs too.
		ok = false
	} else {
		ok = true
	}
	kept := url.Values{}
	for name, values := range q {
		v := values[len(values)-1]
		switch {
		case isClickParam(name):
			if validClickID(v) {
				if clicks == nil {
					clicks = map[string]string{}
				}
				clicks[name] = v
				kept.Set(name, v)
			}
		case strings.HasPrefix(name, "utm_") && len(v) <= 256:
			kept.Set(name, v)
		}
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: kept.Encode()}
	if u.User != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") {
		r.Scheme, r.Host = "", "" // no credentials, no odd schemes
	}
	return r.String(), clicks, ok
}

// attrs is the link material found in an order's attributes, by name.
type attrs struct {
	vid, cid, fbp, fbc, entry, start string
}

// set records attribute name=value when name is one of ours; it reports
// whether it was.
func (a *attrs) set(name, value string) bool {
	var dst *string
	switch name {
	case AttrVisitor:
		dst = &a.vid
	case AttrClickIDs:
		dst = &a.cid
	case AttrFbp:
		dst = &a.fbp
	case AttrFbc:
		dst = &a.fbc
	case AttrWooSessionEntry:
		dst = &a.entry
	case AttrWooSessionStart:
		dst = &a.start
	default:
		return false
	}
	*dst = value
	return true
}

// attrEntry is one note attribute (Shopify: name, value) or meta entry
// (WooCommerce: key, value).
type attrEntry struct {
	Name  jsonText `json:"name"`
	Value jsonText `json:"value"`
}

// read records e when it is one of ours; an unusable value of ours is
// named in skipped (prefix + name).
func (a *attrs) read(prefix string, e attrEntry, skipped *[]string) {
	if e.Name.bad || e.Value.bad || len(e.Value.v) > maxAttrValueLen {
		if a.set(e.Name.v, "") {
			*skipped = append(*skipped, prefix+e.Name.v)
		}
		return
	}
	a.set(e.Name.v, e.Value.v)
}

// link builds an order's Link from its attributes and landing URL,
// recording in skipped what could not be used.
func (a attrs) link(landingURL string, now time.Time, skipped *[]string) Link {
	var l Link
	skip := func(name string) { *skipped = append(*skipped, name) }
	if a.vid != "" {
		if validVisitorID(a.vid, now) {
			l.VisitorID = a.vid
		} else {
			skip(AttrVisitor)
		}
	}
	if a.cid != "" {
		ids, ok := parseClickIDs(a.cid, now)
		l.ClickIDs = ids
		if !ok {
			skip(AttrClickIDs)
		}
	}
	if a.fbp != "" {
		if _, _, ok := parseMetaCookie(a.fbp, now); ok {
			l.Fbp = a.fbp
		} else {
			skip(AttrFbp)
		}
	}
	if a.fbc != "" {
		if at, fbclid, ok := parseMetaCookie(a.fbc, now); ok {
			l.Fbc = a.fbc
			if old, has := l.ClickIDs["fbclid"]; !has || old.Value != fbclid {
				if l.ClickIDs == nil {
					l.ClickIDs = map[string]destinations.ClickID{}
				}
				l.ClickIDs["fbclid"] = destinations.ClickID{Value: fbclid, At: at}
			}
		} else {
			skip(AttrFbc)
		}
	}
	if landingURL == "" {
		landingURL = a.entry
	}
	if landingURL != "" {
		if len(landingURL) > MaxURLLen {
			skip("landing_url")
		} else {
			reduced, clicks, ok := landing(landingURL)
			l.LandingURL, l.LandingClickIDs = reduced, clicks
			if !ok {
				skip("landing_url")
			}
		}
	}
	if a.start != "" {
		if t, ok := parseWooTime(a.start); ok && validCapture(t.UnixMilli(), now) {
			l.LandingAt = t
		} else {
			skip(AttrWooSessionStart)
		}
	}
	return l
}

// parseWooTime reads a WooCommerce time: "2024-01-15 10:30:00" or
// "2024-01-15T10:30:00" (UTC, as the _gmt fields and the attribution meta
// are written), or RFC 3339 with an offset.
func parseWooTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
