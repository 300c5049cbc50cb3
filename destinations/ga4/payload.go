package ga4

import (
	"encoding/json"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// MaxAge is how far back GA4 takes an event's timestamp_micros.
const MaxAge = 72 * time.Hour

// mpRequest is the JSON body of POST /mp/collect.
type mpRequest struct {
	ClientID        string      `json:"client_id"`
	UserID          string      `json:"user_id,omitempty"`
	TimestampMicros int64       `json:"timestamp_micros,omitempty"`
	UserData        *mpUserData `json:"user_data,omitempty"`
	Consent         *mpConsent  `json:"consent,omitempty"`
	IPOverride      string      `json:"ip_override,omitempty"`
	UserLocation    *mpLocation `json:"user_location,omitempty"`
	Events          []mpEvent   `json:"events"`
}

// mpUserData is user_data: Google-normalized SHA-256 digests.
type mpUserData struct {
	Emails    []string    `json:"sha256_email_address,omitempty"`
	Phones    []string    `json:"sha256_phone_number,omitempty"`
	Addresses []mpAddress `json:"address,omitempty"`
}

// mpAddress is one user_data.address entry. tagway holds only digests of
// the city, region, postal code and country, which GA4 wants in clear, so
// only the names go out.
type mpAddress struct {
	FirstName string `json:"sha256_first_name,omitempty"`
	LastName  string `json:"sha256_last_name,omitempty"`
}

// mpConsent is the request's consent, GRANTED or DENIED.
type mpConsent struct {
	AdUserData        string `json:"ad_user_data,omitempty"`
	AdPersonalization string `json:"ad_personalization,omitempty"`
}

// mpLocation is user_location.
type mpLocation struct {
	CountryID string `json:"country_id,omitempty"`
	RegionID  string `json:"region_id,omitempty"`
}

// mpEvent is one event of the request.
type mpEvent struct {
	Name            string         `json:"name"`
	TimestampMicros int64          `json:"timestamp_micros,omitempty"`
	Params          map[string]any `json:"params,omitempty"`
}

// mpItem is one element of the items parameter.
type mpItem struct {
	ItemID       string   `json:"item_id,omitempty"`
	ItemName     string   `json:"item_name,omitempty"`
	ItemCategory string   `json:"item_category,omitempty"`
	Price        *float64 `json:"price,omitempty"`
	Quantity     *int     `json:"quantity,omitempty"`
}

// toGA4 maps one canonical event to its request-level fields (without
// events) and its GA4 event. The event's time is clamped to now.
func toGA4(e *destinations.Event, name string, now time.Time) (mpRequest, mpEvent) {
	top := mpRequest{ClientID: clientID(e)}
	if len(e.UserData.ExternalID) > 0 {
		top.UserID = e.UserData.ExternalID[0]
	}
	c := e.Context.Consent
	if s := consentWord(c.AdUserData); s != "" || consentWord(c.AdPersonalization) != "" {
		top.Consent = &mpConsent{AdUserData: s, AdPersonalization: consentWord(c.AdPersonalization)}
	}
	if c.AdUserData != destinations.Denied {
		top.UserData = userData(&e.UserData)
	}
	if ip, err := netip.ParseAddr(e.UserData.ClientIPAddress); err == nil {
		top.IPOverride = ip.String()
	}
	if country := strings.ToUpper(e.Context.Country); len(country) == 2 && alnum(country, false) {
		top.UserLocation = &mpLocation{CountryID: country}
		if region := strings.ToUpper(e.Context.Region); len(region) >= 1 && len(region) <= 3 && alnum(region, true) {
			top.UserLocation.RegionID = country + "-" + region
		}
	}

	ts := time.Unix(e.EventTime, 0)
	if ts.After(now) {
		ts = now
	}
	ev := mpEvent{Name: name, TimestampMicros: ts.UnixMicro(), Params: params(e, name)}
	return top, ev
}

// alnum reports whether s holds only upper-case ASCII letters, and digits
// when digitsToo.
func alnum(s string, digitsToo bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || digitsToo && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// consentWord is GA4's word for a consent state; "" when not stated.
func consentWord(s destinations.ConsentState) string {
	switch s {
	case destinations.Granted:
		return "GRANTED"
	case destinations.Denied:
		return "DENIED"
	}
	return ""
}

// userData gathers the Google digests of u: the Google variants, else
// the digests ingest made (the sender gave digests).
func userData(u *destinations.UserData) *mpUserData {
	var d mpUserData
	d.Emails = platform.Digests(u.EmGoogle, u.Em, maxUserDataValues)
	d.Phones = platform.Digests(u.PhE164, u.Ph, maxUserDataValues)
	fn, ln := platform.Digests(nil, u.Fn, maxUserDataValues), platform.Digests(nil, u.Ln, maxUserDataValues)
	if len(fn) > 0 || len(ln) > 0 {
		var a mpAddress
		if len(fn) > 0 {
			a.FirstName = fn[0]
		}
		if len(ln) > 0 {
			a.LastName = ln[0]
		}
		d.Addresses = []mpAddress{a}
	}
	if len(d.Emails)+len(d.Phones)+len(d.Addresses) == 0 {
		return nil
	}
	return &d
}

// params builds an event's parameters: the page, the e-commerce fields,
// then custom properties GA4 can take, in sorted order, up to MaxParams.
func params(e *destinations.Event, name string) map[string]any {
	p := map[string]any{}
	if e.EventSourceURL != "" {
		p["page_location"] = clip(e.EventSourceURL, maxValueLen("page_location"))
	}
	if e.ReferrerURL != "" {
		p["page_referrer"] = clip(e.ReferrerURL, maxValueLen("page_referrer"))
	}
	if e.Context.Source == "browser" {
		// A browser event is an engaged moment of a visit; without it GA4
		// does not count the visitor as active.
		p["engagement_time_msec"] = 1
	}
	if name == "purchase" {
		id := e.EventID
		if e.CustomData != nil && e.CustomData.OrderID != "" {
			id = e.CustomData.OrderID
		}
		p["transaction_id"] = clip(id, MaxValueLen)
	}
	cd := e.CustomData
	if cd == nil {
		return p
	}
	if cd.Currency != "" {
		p["currency"] = strings.ToUpper(cd.Currency)
	}
	if cd.Value != nil && !math.IsNaN(*cd.Value) && !math.IsInf(*cd.Value, 0) {
		p["value"] = *cd.Value
	}
	if name == "search" && cd.SearchString != "" {
		p["search_term"] = clip(cd.SearchString, MaxValueLen)
	}
	if items := items(cd); len(items) > 0 {
		p["items"] = items
	}
	keys := make([]string, 0, len(cd.Custom))
	for k := range cd.Custom {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(p) >= MaxParams {
			break
		}
		if _, taken := p[k]; taken || destinations.IsKnownCustomKey(k) || !paramNameOK(k) {
			continue
		}
		if v, ok := scalar(cd.Custom[k]); ok {
			p[k] = v
		}
	}
	return p
}

// scalar reads a custom property GA4 can take as a parameter: a string
// (clipped to MaxValueLen) or a finite number.
func scalar(raw json.RawMessage) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return clip(s, MaxValueLen), true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return json.Number(raw), true
	}
	return nil, false
}

// items maps contents (else content_ids) to GA4 items, each with an
// item_id, at most MaxItems.
func items(cd *destinations.CustomData) []mpItem {
	var out []mpItem
	category := clip(cd.ContentCategory, MaxValueLen)
	for _, c := range cd.Contents {
		if len(out) == MaxItems {
			break
		}
		it := mpItem{ItemID: clip(c.ID, MaxValueLen), ItemName: clip(c.Title, MaxValueLen), ItemCategory: category,
			Price: c.ItemPrice, Quantity: c.Quantity}
		if it.Price != nil && (math.IsNaN(*it.Price) || math.IsInf(*it.Price, 0)) {
			it.Price = nil
		}
		if it.ItemID == "" && it.ItemName == "" {
			continue // GA4 needs one of them
		}
		out = append(out, it)
	}
	if len(cd.Contents) == 0 {
		for _, id := range cd.ContentIDs {
			if len(out) == MaxItems {
				break
			}
			if id != "" {
				out = append(out, mpItem{ItemID: clip(id, MaxValueLen), ItemCategory: category})
			}
		}
	}
	return out
}
