package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tagway/tagway/destinations"
)

// Meta's rules for a server event that the gateway checks at ingest, so
// that one event Meta would refuse never sinks a batch of 1,000 (Meta
// rejects a request whole). Each failure is a 400 naming the field.

// actionSourceWebsite is the action_source of browser events.
const actionSourceWebsite = "website"

// checkMetaRules applies, to an event fully built (user data hashed, the
// browser's IP and user agent added), the rules of Meta's "Server event
// parameters" and "Best practices" pages:
//   - website events need event_source_url and client_user_agent;
//   - a Purchase needs custom_data.value and custom_data.currency;
//   - the customer information must not be only one of Meta's too-weak
//     combinations, or a subset of one (weakCustomerInfo), which Meta
//     refuses with code 100, subcode 2804050 (no parameter at all, or
//     client_user_agent alone, included).
//
// The server paths refuse an event that breaks one with a 400 naming the
// field; the browser path keeps it, marked (metaShortfall), and routing
// withholds it from Meta.
func checkMetaRules(prefix string, ev *destinations.Event) *apiError {
	switch metaShortfall(ev) {
	case "":
		return nil
	case destinations.IncompleteSourceURL:
		return badField(prefix+"event_source_url", "required for website events (the page URL)")
	case destinations.IncompleteUserAgent:
		return badField(prefix+"user_data.client_user_agent", "required for website events (the browser's User-Agent)")
	case destinations.IncompleteValue:
		return badField(prefix+"custom_data.value", "required for Purchase events")
	case destinations.IncompleteCurrency:
		return badField(prefix+"custom_data.currency", "required for Purchase events")
	}
	var keys [18]string
	return withSubcode(subcodeTooLittleInfo, badField(prefix+"user_data", "too little customer information for Meta to match (has [%s]); "+
		"send at least one of em, ph, external_id, fbp, fbc, or client_ip_address with client_user_agent",
		strings.Join(customerInfoKeys(keys[:0], ev.UserData), " ")))
}

// metaShortfall is the first of Meta's rules (see checkMetaRules) that ev
// breaks, as the field it lacks (a destinations.Incomplete constant), or
// "" when it breaks none.
func metaShortfall(ev *destinations.Event) string {
	if ev.ActionSource == actionSourceWebsite {
		if ev.EventSourceURL == "" {
			return destinations.IncompleteSourceURL
		}
		if ev.UserData.ClientUserAgent == "" {
			return destinations.IncompleteUserAgent
		}
	}
	if ev.EventName == "Purchase" {
		if ev.CustomData == nil || ev.CustomData.Value == nil {
			return destinations.IncompleteValue
		}
		if ev.CustomData.Currency == "" {
			return destinations.IncompleteCurrency
		}
	}
	var keys [18]string // one per key customerInfoKeys knows
	if weakCustomerInfo(customerInfoKeys(keys[:0], ev.UserData)) {
		return destinations.IncompleteCustomerInfo
	}
	return ""
}

// Meta's error subcodes for problems the gateway also detects.
const (
	subcodeTooOld        = 2804003
	subcodeTooLittleInfo = 2804050
)

func withSubcode(code int, e *apiError) *apiError {
	e.metaSubcode = code
	return e
}

// weakSets are Meta's baseline requirement for matching (since v13.0): an
// event whose customer-information keys are one of these sets, or a subset
// of one, is refused.
var weakSets = [][]string{
	{"ct", "country", "st", "zp", "ge", "client_user_agent"},
	{"db", "client_user_agent"},
	{"fn", "ge"},
	{"ln", "ge"},
}

// weakCustomerInfo reports whether the keys present are a subset of one of
// Meta's too-weak combinations (the empty set is a subset of all).
func weakCustomerInfo(present []string) bool {
	for _, weak := range weakSets {
		subset := true
		for _, k := range present {
			if !slices.Contains(weak, k) {
				subset = false
				break
			}
		}
		if subset {
			return true
		}
	}
	return false
}

// customerInfoKeys appends to keys the user_data keys that hold a value.
func customerInfoKeys(keys []string, u destinations.UserData) []string {
	for _, f := range []struct {
		key string
		set bool
	}{
		{"em", len(u.Em) > 0}, {"ph", len(u.Ph) > 0}, {"fn", len(u.Fn) > 0}, {"ln", len(u.Ln) > 0},
		{"ge", len(u.Ge) > 0}, {"db", len(u.Db) > 0}, {"ct", len(u.Ct) > 0}, {"st", len(u.St) > 0},
		{"zp", len(u.Zp) > 0}, {"country", len(u.Country) > 0}, {"external_id", len(u.ExternalID) > 0},
		{"client_ip_address", u.ClientIPAddress != ""}, {"client_user_agent", u.ClientUserAgent != ""},
		{"fbc", u.Fbc != ""}, {"fbp", u.Fbp != ""}, {"subscription_id", u.SubscriptionID != ""},
		{"fb_login_id", u.FbLoginID != ""}, {"lead_id", u.LeadID != ""},
	} {
		if f.set {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// checkDataProcessing validates Meta's Limited Data Use fields:
// data_processing_options holds only "LDU" (or nothing: explicitly no
// LDU); the country is 1 (USA) or 0 (geolocate); the state 1000
// (California) or 0 (geolocate), and it must be set when a country is.
func checkDataProcessing(prefix string, opts []string, country, state *int) *apiError {
	for _, o := range opts {
		if o != "LDU" {
			return badField(prefix+"data_processing_options", `may hold only "LDU"`)
		}
	}
	if country != nil && *country != 0 && *country != 1 {
		return badField(prefix+"data_processing_options_country", "must be 1 (USA) or 0 (geolocate)")
	}
	if state != nil && *state != 0 && *state != 1000 {
		return badField(prefix+"data_processing_options_state", "must be 1000 (California) or 0 (geolocate)")
	}
	if country != nil && state == nil {
		return badField(prefix+"data_processing_options_state", "required when data_processing_options_country is set")
	}
	return nil
}

// checkActionSource validates action_source against Meta's values.
func checkActionSource(field, v string) *apiError {
	if !slices.Contains(actionSources, v) {
		return badField(field, "required, one of %s", strings.Join(actionSources, ", "))
	}
	return nil
}

// isCurrency reports whether s is an ISO 4217 currency code (any case):
// the codes of ISO 4217 List One, including funds and precious metals, plus
// the codes Meta's Business SDK still accepts after their withdrawal.
func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	u := strings.ToUpper(s)
	for i := 0; i < 3; i++ {
		if u[i] < 'A' || u[i] > 'Z' {
			return false
		}
	}
	i := strings.Index(iso4217, u)
	return i >= 0 && i%4 == 0
}

// iso4217 lists the currency codes, each followed by a space.
const iso4217 = "" +
	"AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV " +
	"BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE " +
	"CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD " +
	"HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD " +
	"KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN " +
	"MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD " +
	"RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS " +
	"TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VEF VES VND VUV " +
	"WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER " +
	"ZAR ZMW ZWG ZWL "

// pageURL is the event_source_url of browser events when they name none:
// the page the script sent (url), else the page the request came from (an
// http(s) Referer, then Origin), else the root of the host the browser
// addressed, which is the store's own first-party host.
func (g *Gateway) pageURL(r *http.Request, bodyURL string) string {
	if bodyURL != "" {
		return bodyURL
	}
	for _, h := range []string{"Referer", "Origin"} {
		if v := r.Header.Get(h); v != "" && checkURL(h, v) == nil {
			return v
		}
	}
	host := g.requestHost(r)
	if host == "" {
		return ""
	}
	scheme := "http"
	if g.isHTTPS(r) {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: "/"}).String()
}
