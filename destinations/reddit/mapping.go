package reddit

import (
	"cmp"
	"regexp"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// clickWindow is the longest click-through attribution window Reddit
// offers (28 days); an rdt_cid captured longer before the event can no
// longer attribute it.
const clickWindow = 28 * 24 * time.Hour

// trackingTypes maps Meta's standard event names that have a Reddit
// tracking type to it; Reddit takes any other name as a custom event.
var trackingTypes = map[string]string{
	"PageView":             "PAGE_VISIT",
	"ViewContent":          "VIEW_CONTENT",
	"Search":               "SEARCH",
	"AddToCart":            "ADD_TO_CART",
	"AddToWishlist":        "ADD_TO_WISHLIST",
	"Purchase":             "PURCHASE",
	"Lead":                 "LEAD",
	"CompleteRegistration": "SIGN_UP",
}

// standardTypes are Reddit's tracking types but CUSTOM.
var standardTypes = map[string]bool{
	"PAGE_VISIT": true, "VIEW_CONTENT": true, "SEARCH": true, "ADD_TO_CART": true,
	"ADD_TO_WISHLIST": true, "PURCHASE": true, "LEAD": true, "SIGN_UP": true,
}

// EventName gives Reddit's name for an event: its tracking type
// (PageView → PAGE_VISIT, Purchase → PURCHASE, …, or one of Reddit's own
// types), else the name itself, which Reddit takes as a CUSTOM event
// (InitiateCheckout, AddPaymentInfo, any custom name). False only for an
// empty name or "CUSTOM", which names no event.
func EventName(name string) (string, bool) {
	if t, ok := trackingTypes[name]; ok {
		return t, true
	}
	if name == "" || name == "CUSTOM" {
		return "", false
	}
	return name, true
}

// eventType is Reddit's type object for a name EventName gave.
func eventType(name string) wireType {
	if standardTypes[name] {
		return wireType{TrackingType: name}
	}
	return wireType{TrackingType: "CUSTOM", CustomEventName: name}
}

// wireEvent is one event of data.events.
type wireEvent struct {
	EventAt        int64         `json:"event_at"`
	ActionSource   string        `json:"action_source"`
	Type           wireType      `json:"type"`
	ClickID        string        `json:"click_id,omitempty"`
	EventSourceURL string        `json:"event_source_url,omitempty"`
	Metadata       *wireMetadata `json:"metadata,omitempty"`
	User           *wireUser     `json:"user,omitempty"`
}

// wireType is the event's type: a tracking type, or CUSTOM and a name.
type wireType struct {
	TrackingType    string `json:"tracking_type"`
	CustomEventName string `json:"custom_event_name,omitempty"`
}

// wireMetadata is the event's metadata; conversion_id is the key Reddit
// deduplicates on against the pixel's conversionId.
type wireMetadata struct {
	ConversionID string        `json:"conversion_id,omitempty"`
	Currency     string        `json:"currency,omitempty"`
	Value        *float64      `json:"value,omitempty"`
	ItemCount    *int          `json:"item_count,omitempty"`
	Products     []wireProduct `json:"products,omitempty"`
}

// wireProduct is one item of metadata.products.
type wireProduct struct {
	ID        string   `json:"id,omitempty"`
	Name      string   `json:"name,omitempty"`
	Quantity  *int     `json:"quantity,omitempty"`
	ItemPrice *float64 `json:"item_price,omitempty"`
}

// wireUser holds the match keys: one value each, e-mail, phone and external
// id as SHA-256 hex.
type wireUser struct {
	Email                 string   `json:"email,omitempty"`
	PhoneNumber           string   `json:"phone_number,omitempty"`
	ExternalID            string   `json:"external_id,omitempty"`
	IPAddress             string   `json:"ip_address,omitempty"`
	UserAgent             string   `json:"user_agent,omitempty"`
	UUID                  string   `json:"uuid,omitempty"`
	DataProcessingOptions *wireDPO `json:"data_processing_options,omitempty"`
}

// wireDPO flags Limited Data Use, with the visitor's country and region
// when known.
type wireDPO struct {
	Modes   []string `json:"modes"`
	Country string   `json:"country,omitempty"`
	Region  string   `json:"region,omitempty"`
}

// toWire maps a canonical event whose Reddit name is name.
func toWire(e *destinations.Event, name string) wireEvent {
	return wireEvent{
		EventAt:        e.EventTime * 1000,
		ActionSource:   actionSource(e.ActionSource),
		Type:           eventType(name),
		ClickID:        clickID(e),
		EventSourceURL: e.EventSourceURL,
		Metadata:       toMetadata(e),
		User:           toUser(e),
	}
}

// actionSource gives Reddit's action_source for a canonical one.
func actionSource(s string) string {
	switch s {
	case "website":
		return "WEBSITE"
	case "app":
		return "APP"
	case "physical_store":
		return "PHYSICAL_STORE"
	}
	return "OTHER"
}

// clickID is the event's rdt_cid: the one the gateway captured from the
// landing URL while it can still attribute the event, else the Reddit
// pixel's _rdt_cid cookie when the request carried it.
func clickID(e *destinations.Event) string {
	return cmp.Or(platform.ClickID(e, "rdt_cid", clickWindow), e.Context.Cookies["_rdt_cid"])
}

// uuidPattern is the Reddit pixel's _rdt_uuid cookie: an RFC 4122 UUID,
// after the cookie's creation time in milliseconds and a dot.
var uuidPattern = regexp.MustCompile(`^([0-9]{1,16}\.)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$`)

// pixelUUID is the _rdt_uuid cookie as the pixel wrote it, or "" when it
// is malformed: Reddit refuses a whole request for one bad uuid, and the
// cookie comes from the visitor's browser.
func pixelUUID(e *destinations.Event) string {
	if v := e.Context.Cookies["_rdt_uuid"]; uuidPattern.MatchString(v) {
		return v
	}
	return ""
}

func toUser(e *destinations.Event) *wireUser {
	u := e.UserData
	w := wireUser{
		Email:       first(u.Em),
		PhoneNumber: first(u.PhE164),
		ExternalID:  first(u.ExternalID),
		IPAddress:   u.ClientIPAddress,
		UserAgent:   u.ClientUserAgent,
		UUID:        pixelUUID(e),
	}
	if w.PhoneNumber == "" {
		// The sender gave the phone as a digest: Reddit gets what there is.
		w.PhoneNumber = first(u.Ph)
	}
	w.DataProcessingOptions = dataProcessing(e)
	if w == (wireUser{}) {
		return nil
	}
	return &w
}

func first(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// dataProcessing gives Reddit's Limited Data Use flag for an event that
// asks for it (data_processing_options ["LDU"]), with the country (ISO
// 3166-1 alpha-2) and region (ISO 3166-2) from the gateway's geolocation,
// else from Meta's codes (country 1 = US, state 1000 = California);
// neither known, Reddit geolocates.
func dataProcessing(e *destinations.Event) *wireDPO {
	ldu := false
	for _, o := range e.DataProcessingOptions {
		ldu = ldu || o == "LDU"
	}
	if !ldu {
		return nil
	}
	d := &wireDPO{Modes: []string{"LDU"}}
	country, region := strings.ToUpper(e.Context.Country), strings.ToUpper(e.Context.Region)
	if country == "" && e.DataProcessingOptionsCountry != nil && *e.DataProcessingOptionsCountry == 1 {
		country = "US"
		if e.DataProcessingOptionsState != nil && *e.DataProcessingOptionsState == 1000 {
			region = "CA"
		}
	}
	if countryPattern.MatchString(country) {
		d.Country = country
		if regionPattern.MatchString(region) {
			d.Region = country + "-" + region
		}
	}
	return d
}

var (
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	regionPattern   = regexp.MustCompile(`^[A-Z0-9]{1,3}$`)
)

func toMetadata(e *destinations.Event) *wireMetadata {
	m := wireMetadata{ConversionID: e.EventID}
	if c := e.CustomData; c != nil {
		m.Currency = strings.ToUpper(c.Currency)
		m.Value = c.Value
		m.ItemCount = c.NumItems
		count := 0
		for _, it := range c.Contents {
			m.Products = append(m.Products, wireProduct{ID: it.ID, Name: it.Title, Quantity: it.Quantity, ItemPrice: it.ItemPrice})
			if it.Quantity != nil {
				count += *it.Quantity
			} else {
				count++
			}
		}
		if m.ItemCount == nil && len(c.Contents) > 0 {
			m.ItemCount = &count
		}
	}
	if m.ConversionID == "" && m.Currency == "" && m.Value == nil && m.ItemCount == nil && len(m.Products) == 0 {
		return nil
	}
	return &m
}

// Check reports why Reddit would refuse e: no match key at all (Reddit
// requires one for each conversion event: e-mail, phone, external id, the
// IP address with the user agent, an rdt_cid click id or the _rdt_uuid
// cookie), or a currency that is no ISO 4217 code.
func Check(e *destinations.Event) *destinations.Violation {
	u := e.UserData
	if len(u.Em) == 0 && len(u.Ph) == 0 && len(u.PhE164) == 0 && len(u.ExternalID) == 0 &&
		(u.ClientIPAddress == "" || u.ClientUserAgent == "") && clickID(e) == "" && pixelUUID(e) == "" {
		return &destinations.Violation{Field: "user_data",
			Reason: "Reddit needs a match key: em, ph, external_id, client_ip_address with client_user_agent, an rdt_cid click id or the _rdt_uuid cookie"}
	}
	if c := e.CustomData; c != nil && c.Currency != "" && !currencyPattern.MatchString(strings.ToUpper(c.Currency)) {
		return &destinations.Violation{Field: "custom_data.currency", Reason: "must be an ISO 4217 code such as EUR"}
	}
	return nil
}
