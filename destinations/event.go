// Package destinations is tagway's delivery contract: the canonical Event that
// every ingest path produces, the Destination interface every ad-platform
// adapter implements, and the typed delivery outcome (delivered, retryable
// with a delay, permanent) the queue acts on.
//
// The canonical event uses the field names of Meta's Conversions API server
// events as its lingua franca; every adapter maps from it. PII in UserData is
// already normalized and SHA-256 hashed when an Event exists: ingest hashes it
// before anything reaches Redis.
//
// This package imports no other tagway package.
package destinations

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Event is one canonical server event. JSON field names follow Meta's
// Conversions API; Context carries tagway's own metadata, which adapters use
// for routing decisions but never send as is.
type Event struct {
	EventName      string `json:"event_name"`
	EventTime      int64  `json:"event_time"` // Unix seconds
	EventID        string `json:"event_id"`
	EventSourceURL string `json:"event_source_url,omitempty"`
	ReferrerURL    string `json:"referrer_url,omitempty"`
	ActionSource   string `json:"action_source"`
	OptOut         bool   `json:"opt_out,omitempty"`

	UserData   UserData    `json:"user_data"`
	CustomData *CustomData `json:"custom_data,omitempty"`

	DataProcessingOptions        []string `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int     `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int     `json:"data_processing_options_state,omitempty"`

	Context Context `json:"tw"`
}

// UserData holds customer information. Hashed keys (em, ph, fn, ln, ge, db,
// ct, st, zp, country, external_id) hold lowercase hex SHA-256 digests of
// normalized values; the others are sent as they are.
type UserData struct {
	Em         []string `json:"em,omitempty"`
	Ph         []string `json:"ph,omitempty"`
	Fn         []string `json:"fn,omitempty"`
	Ln         []string `json:"ln,omitempty"`
	Ge         []string `json:"ge,omitempty"`
	Db         []string `json:"db,omitempty"`
	Ct         []string `json:"ct,omitempty"`
	St         []string `json:"st,omitempty"`
	Zp         []string `json:"zp,omitempty"`
	Country    []string `json:"country,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`

	ClientIPAddress string `json:"client_ip_address,omitempty"`
	ClientUserAgent string `json:"client_user_agent,omitempty"`
	Fbc             string `json:"fbc,omitempty"`
	Fbp             string `json:"fbp,omitempty"`

	SubscriptionID string `json:"subscription_id,omitempty"`
	FbLoginID      string `json:"fb_login_id,omitempty"`
	LeadID         string `json:"lead_id,omitempty"`
}

// Empty reports whether no customer-information parameter is set.
func (u UserData) Empty() bool {
	return len(u.Em)+len(u.Ph)+len(u.Fn)+len(u.Ln)+len(u.Ge)+len(u.Db)+len(u.Ct)+
		len(u.St)+len(u.Zp)+len(u.Country)+len(u.ExternalID) == 0 &&
		u.ClientIPAddress == "" && u.ClientUserAgent == "" && u.Fbc == "" && u.Fbp == "" &&
		u.SubscriptionID == "" && u.FbLoginID == "" && u.LeadID == ""
}

// Content is one item of custom_data.contents.
type Content struct {
	ID               string   `json:"id"`
	Quantity         *int     `json:"quantity,omitempty"`
	ItemPrice        *float64 `json:"item_price,omitempty"`
	DeliveryCategory string   `json:"delivery_category,omitempty"`
	Title            string   `json:"title,omitempty"`
}

// CustomData holds the business data of an event. Known Meta fields are typed;
// any other property is kept in Custom and written back at the top level of
// custom_data when marshalled.
type CustomData struct {
	Value            *float64  `json:"value,omitempty"`
	Currency         string    `json:"currency,omitempty"`
	ContentIDs       []string  `json:"content_ids,omitempty"`
	Contents         []Content `json:"contents,omitempty"`
	ContentType      string    `json:"content_type,omitempty"`
	ContentName      string    `json:"content_name,omitempty"`
	ContentCategory  string    `json:"content_category,omitempty"`
	NumItems         *int      `json:"num_items,omitempty"`
	OrderID          string    `json:"order_id,omitempty"`
	PredictedLTV     *float64  `json:"predicted_ltv,omitempty"`
	SearchString     string    `json:"search_string,omitempty"`
	Status           string    `json:"status,omitempty"`
	DeliveryCategory string    `json:"delivery_category,omitempty"`

	// Custom holds every other property, as raw JSON values.
	Custom map[string]json.RawMessage `json:"-"`
}

// customDataFields is the wire form of the typed part of CustomData; it has
// no methods, so encoding/json handles it without recursion.
type customDataFields CustomData

// knownCustomKeys are the custom_data keys with a typed field.
var knownCustomKeys = map[string]bool{
	"value": true, "currency": true, "content_ids": true, "contents": true,
	"content_type": true, "content_name": true, "content_category": true,
	"num_items": true, "order_id": true, "predicted_ltv": true,
	"search_string": true, "status": true, "delivery_category": true,
}

// IsKnownCustomKey reports whether key is a typed custom_data field.
func IsKnownCustomKey(key string) bool { return knownCustomKeys[key] }

// MarshalJSON writes the typed fields and the custom properties as one object,
// with custom properties in sorted key order.
func (c CustomData) MarshalJSON() ([]byte, error) {
	typed, err := json.Marshal(customDataFields(c))
	if err != nil {
		return nil, err
	}
	if len(c.Custom) == 0 {
		return typed, nil
	}
	keys := make([]string, 0, len(c.Custom))
	for k := range c.Custom {
		if !knownCustomKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.Write(typed[:len(typed)-1])
	first := len(typed) == 2
	for _, k := range keys {
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(c.Custom[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads typed fields strictly by type and keeps every other
// property in Custom.
func (c *CustomData) UnmarshalJSON(data []byte) error {
	if onlyTypedKeys(data) {
		// The common case, decoded in one pass: every key is a typed
		// field, once, and no number comes as a string.
		var typed customDataFields
		if err := json.Unmarshal(data, &typed); err != nil {
			return err
		}
		*c = CustomData(typed)
		c.Currency = strings.ToUpper(c.Currency)
		return nil
	}
	return c.unmarshalGeneral(data)
}

// unmarshalGeneral reads any custom_data: a first pass keeps every
// property, numeric strings become numbers, a second pass reads the typed
// fields.
func (c *CustomData) unmarshalGeneral(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	// Meta accepts monetary and count fields as numeric strings ("142.52",
	// its own documentation's example); read them as numbers.
	lenient := false
	for _, k := range []string{"value", "predicted_ltv", "num_items"} {
		if v, ok := all[k]; ok {
			if n, ok := numericString(v); ok {
				all[k] = n
				lenient = true
			}
		}
	}
	if lenient {
		var err error
		if data, err = json.Marshal(all); err != nil {
			return err
		}
	}
	var typed customDataFields
	if err := json.Unmarshal(data, &typed); err != nil {
		return err
	}
	*c = CustomData(typed)
	c.Currency = strings.ToUpper(c.Currency)
	c.Custom = nil
	for k, v := range all {
		if knownCustomKeys[k] {
			continue
		}
		if c.Custom == nil {
			c.Custom = make(map[string]json.RawMessage)
		}
		c.Custom[k] = v
	}
	return nil
}

// Context is tagway's metadata about an event. It travels with the event
// through the queue and is never sent to a platform as is.
type Context struct {
	// SiteID names the site the event belongs to.
	SiteID string `json:"site"`
	// ReceivedAt is when the gateway accepted the event, Unix milliseconds.
	ReceivedAt int64 `json:"received_at,omitempty"`
	// Source is the ingest path: "browser" or "server".
	Source string `json:"source,omitempty"`
	// Consent is the visitor's consent state when the event was accepted.
	Consent Consent `json:"consent"`
	// TestEventCode, when set by the sender, asks destinations to use their
	// test channel for this event.
	TestEventCode string `json:"test_event_code,omitempty"`
	// Country is the visitor's country (ISO 3166-1 alpha-2, "DE") and
	// Region the subdivision within it ("CA" for California), as a trusted
	// header of the deployment said (CF-IPCountry...); empty when unknown.
	// Routing's privacy rules read them.
	Country string `json:"country,omitempty"`
	Region  string `json:"region,omitempty"`
	// Route is the id of the route whose policy was applied to the event
	// on its way to one destination (set by routing, never by ingest).
	Route string `json:"route,omitempty"`

	// Browser identifiers the gateway read or kept for the event, only with
	// marketing consent (never on an Anonymous event). VisitorID is
	// tagway's own visitor id (the _tw_vid cookie); ClickIDs are the ad
	// click ids of the visitor's landings, by URL parameter name ("gclid",
	// "ttclid", "ScCid", "epik", "rdt_cid", "li_fat_id", "msclkid",
	// "gbraid", "wbraid"), each with its capture time, so a destination can
	// apply its platform's attribution window; Cookies are the platforms'
	// own first-party cookies the request carried ("_ttp", "_scid",
	// "_epik", "_rdt_uuid", "_ga", "_gcl_aw"), by cookie name.
	VisitorID string             `json:"vid,omitempty"`
	ClickIDs  map[string]ClickID `json:"click_ids,omitempty"`
	Cookies   map[string]string  `json:"cookies,omitempty"`
	// Anonymous marks an event accepted without marketing consent on a
	// site whose consent_denied_mode is "anonymous": the gateway removed
	// every identifier (user_data but the user agent, click ids, cookies),
	// so routing may send it to advertising platforms all the same.
	Anonymous bool `json:"anonymous,omitempty"`
	// Incomplete names what Meta's rules for server events find missing
	// in a browser event the gateway kept all the same (a server event
	// lacking it is refused instead): one of the Incomplete constants.
	// Routing spares the platforms that refuse such events
	// (IncompleteAcceptor) from it. Empty for a complete event.
	Incomplete string `json:"incomplete,omitempty"`
}

// The values of Context.Incomplete: the field for which a platform
// following Meta's rules for server events would refuse the event.
const (
	// IncompleteSourceURL: a website event without event_source_url.
	IncompleteSourceURL = "event_source_url"
	// IncompleteUserAgent: a website event without client_user_agent.
	IncompleteUserAgent = "user_data.client_user_agent"
	// IncompleteValue: a Purchase without custom_data.value.
	IncompleteValue = "custom_data.value"
	// IncompleteCurrency: a Purchase without custom_data.currency.
	IncompleteCurrency = "custom_data.currency"
	// IncompleteCustomerInfo: customer information too weak for Meta to
	// match (its error 2804050).
	IncompleteCustomerInfo = "user_data"
)

// ClickID is one ad click id and when the gateway first saw it.
type ClickID struct {
	Value string `json:"v"`
	// At is the capture time, Unix milliseconds.
	At int64 `json:"at"`
}

// ConsentState is one consent purpose's state.
type ConsentState string

// Consent states, in Google Consent Mode v2 words.
const (
	Granted ConsentState = "granted"
	Denied  ConsentState = "denied"
)

// Consent records the visitor's choices, in Google Consent Mode v2 terms.
// An empty state means "not stated" and is resolved by the site's default
// before the event is queued.
type Consent struct {
	AdStorage         ConsentState `json:"ad_storage,omitempty"`
	AdUserData        ConsentState `json:"ad_user_data,omitempty"`
	AdPersonalization ConsentState `json:"ad_personalization,omitempty"`
	AnalyticsStorage  ConsentState `json:"analytics_storage,omitempty"`
}

// Marketing reports whether identifiers may be sent to ad platforms: both
// ad_storage and ad_user_data must be granted.
func (c Consent) Marketing() bool {
	return c.AdStorage == Granted && c.AdUserData == Granted
}

// String gives a short form for logs.
func (c Consent) String() string {
	return fmt.Sprintf("ad_storage=%s ad_user_data=%s", c.AdStorage, c.AdUserData)
}

// numericString returns the JSON number held in a JSON string ("142.52"),
// when it holds a finite one.
func numericString(raw json.RawMessage) (json.RawMessage, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64)), true
}

// onlyTypedKeys reports whether data is a JSON object whose keys are all
// typed custom_data fields, spelled exactly, each once, with no string
// value for value, predicted_ltv or num_items: then one typed decode reads
// it as the general path would. It looks at the keys only; false means
// "take the general path", which also reports any syntax error.
func onlyTypedKeys(data []byte) bool {
	i, n := 0, len(data)
	ws := func() {
		for i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
	}
	// skipString moves past the string starting at i.
	skipString := func() bool {
		for i++; i < n; i++ {
			switch data[i] {
			case '\\':
				i++
			case '"':
				i++
				return true
			}
		}
		return false
	}
	ws()
	if i >= n || data[i] != '{' {
		return false
	}
	i++
	var seen uint16
	for {
		ws()
		if i < n && data[i] == '}' && seen == 0 {
			return true
		}
		if i >= n || data[i] != '"' {
			return false
		}
		start := i + 1
		if !skipString() {
			return false
		}
		key := data[start : i-1]
		bit := -1
		for j, k := range typedCustomKeys {
			if string(key) == k {
				bit = j
				break
			}
		}
		if bit < 0 || seen&(1<<bit) != 0 {
			return false // unknown, escaped or repeated key
		}
		seen |= 1 << bit
		ws()
		if i >= n || data[i] != ':' {
			return false
		}
		i++
		ws()
		if i >= n {
			return false
		}
		if data[i] == '"' && (string(key) == "value" || string(key) == "predicted_ltv" || string(key) == "num_items") {
			return false // a numeric string, maybe
		}
		// Skip the value: strings, and brackets outside strings.
		depth := 0
		for i < n {
			c := data[i]
			if c == '"' {
				if !skipString() {
					return false
				}
				continue
			}
			if depth == 0 && (c == ',' || c == '}') {
				break
			}
			switch c {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			i++
		}
		if i >= n {
			return false
		}
		if data[i] == '}' {
			return true
		}
		i++ // ','
	}
}

// typedCustomKeys are the keys of the typed custom_data fields (as in
// knownCustomKeys), in a fixed order.
var typedCustomKeys = [...]string{"value", "currency", "content_ids", "contents", "content_type", "content_name",
	"content_category", "num_items", "order_id", "predicted_ltv", "search_string", "status", "delivery_category"}
