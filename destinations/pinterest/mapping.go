package pinterest

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// PartnerName identifies tagway to Pinterest, in its "ss-<partner>"
// convention for the partner_name field.
const PartnerName = "ss-tagway"

// clickWindow is the longest click-through attribution window Pinterest
// offers (60 days); an epik captured longer before the event can no
// longer attribute it.
const clickWindow = 60 * 24 * time.Hour

// eventNames maps Meta's standard event names to Pinterest's.
var eventNames = map[string]string{
	"AddPaymentInfo":       "add_payment_info",
	"AddToCart":            "add_to_cart",
	"AddToWishlist":        "add_to_wishlist",
	"CompleteRegistration": "signup",
	"Contact":              "contact",
	"CustomizeProduct":     "customize_product",
	"FindLocation":         "find_location",
	"InitiateCheckout":     "initiate_checkout",
	"Lead":                 "lead",
	"PageView":             "page_visit",
	"Purchase":             "checkout",
	"Schedule":             "schedule",
	"Search":               "search",
	"StartTrial":           "start_trial",
	"SubmitApplication":    "submit_application",
	"Subscribe":            "subscribe",
	"ViewContent":          "view_content",
}

// pinterestNames are the event_name values Pinterest takes: those of the
// API reference (v5.23) and of the conversion guide's event table.
var pinterestNames = map[string]bool{
	"add_payment_info": true, "add_to_cart": true, "add_to_wishlist": true, "app_install": true,
	"app_open": true, "checkout": true, "contact": true, "custom": true, "customize_product": true,
	"find_location": true, "initiate_checkout": true, "lead": true, "page_visit": true,
	"schedule": true, "search": true, "signup": true, "start_trial": true,
	"submit_application": true, "subscribe": true, "view_category": true, "view_content": true,
	"watch_video": true,
}

// EventName gives Pinterest's event_name for a canonical name (Meta's
// standard names) or for one of Pinterest's own; false when Pinterest has
// no such event (Donate, or a custom name a route did not map, for
// instance to "custom").
func EventName(name string) (string, bool) {
	if n, ok := eventNames[name]; ok {
		return n, true
	}
	if pinterestNames[name] {
		return name, true
	}
	return "", false
}

// wireEvent is one event of the request's data array: the fields of
// Pinterest's ConversionEvents schema that tagway fills.
type wireEvent struct {
	EventName      string      `json:"event_name"`
	ActionSource   string      `json:"action_source"`
	EventTime      int64       `json:"event_time"`
	EventID        string      `json:"event_id"`
	EventSourceURL string      `json:"event_source_url,omitempty"`
	OptOut         bool        `json:"opt_out,omitempty"`
	PartnerName    string      `json:"partner_name"`
	UserData       wireUser    `json:"user_data"`
	CustomData     *wireCustom `json:"custom_data,omitempty"`
}

// wireUser is user_data: SHA-256 hex arrays but for the IP address, the
// user agent and the click id.
type wireUser struct {
	Em              []string `json:"em,omitempty"`
	Ph              []string `json:"ph,omitempty"`
	Ge              []string `json:"ge,omitempty"`
	Db              []string `json:"db,omitempty"`
	Ln              []string `json:"ln,omitempty"`
	Fn              []string `json:"fn,omitempty"`
	Ct              []string `json:"ct,omitempty"`
	St              []string `json:"st,omitempty"`
	Zp              []string `json:"zp,omitempty"`
	Country         []string `json:"country,omitempty"`
	ExternalID      []string `json:"external_id,omitempty"`
	ClientIPAddress string   `json:"client_ip_address,omitempty"`
	ClientUserAgent string   `json:"client_user_agent,omitempty"`
	ClickID         string   `json:"click_id,omitempty"`
}

// wireCustom is custom_data; Pinterest takes amounts as decimal strings and
// refuses any property its schema does not list.
type wireCustom struct {
	Currency        string        `json:"currency,omitempty"`
	Value           string        `json:"value,omitempty"`
	ContentIDs      []string      `json:"content_ids,omitempty"`
	ContentName     string        `json:"content_name,omitempty"`
	ContentCategory string        `json:"content_category,omitempty"`
	Contents        []wireContent `json:"contents,omitempty"`
	NumItems        *int          `json:"num_items,omitempty"`
	OrderID         string        `json:"order_id,omitempty"`
	SearchString    string        `json:"search_string,omitempty"`
	PredictedLTV    string        `json:"predicted_ltv,omitempty"`
	OptOutType      string        `json:"opt_out_type,omitempty"`
}

// wireContent is one item of custom_data.contents.
type wireContent struct {
	ID        string `json:"id,omitempty"`
	ItemPrice string `json:"item_price,omitempty"`
	Quantity  *int   `json:"quantity,omitempty"`
	ItemName  string `json:"item_name,omitempty"`
}

// toWire maps a canonical event whose name Pinterest knows (name) and
// whose action source it takes (source).
func toWire(e *destinations.Event, name, source string) wireEvent {
	u := e.UserData
	return wireEvent{
		EventName:      name,
		ActionSource:   source,
		EventTime:      e.EventTime,
		EventID:        e.EventID,
		EventSourceURL: e.EventSourceURL,
		OptOut:         e.OptOut,
		PartnerName:    PartnerName,
		UserData: wireUser{
			Em: u.Em, Ph: u.Ph, Ge: u.Ge, Db: u.Db, Ln: u.Ln, Fn: u.Fn, Ct: u.Ct, St: u.St, Zp: u.Zp,
			Country: u.Country, ExternalID: u.ExternalID,
			ClientIPAddress: u.ClientIPAddress,
			ClientUserAgent: u.ClientUserAgent,
			ClickID:         clickID(e),
		},
		CustomData: toCustom(e),
	}
}

// clickID is the event's epik: the one the gateway captured from the
// landing URL while it can still attribute the event, else the Pinterest
// tag's _epik cookie.
func clickID(e *destinations.Event) string {
	return cmp.Or(platform.ClickID(e, "epik", clickWindow), e.Context.Cookies["_epik"])
}

// ldu reports whether the event asks for Limited Data Use.
func ldu(e *destinations.Event) bool {
	for _, o := range e.DataProcessingOptions {
		if o == "LDU" {
			return true
		}
	}
	return false
}

func toCustom(e *destinations.Event) *wireCustom {
	var w wireCustom
	if ldu(e) {
		// Pinterest's flag for limited data processing under US state
		// privacy laws.
		w.OptOutType = "LDP"
	}
	if c := e.CustomData; c != nil {
		w.Currency = strings.ToUpper(c.Currency)
		w.Value = decimal(c.Value)
		w.ContentIDs = c.ContentIDs
		w.ContentName = c.ContentName
		w.ContentCategory = c.ContentCategory
		w.NumItems = c.NumItems
		w.OrderID = c.OrderID
		w.SearchString = c.SearchString
		w.PredictedLTV = decimal(c.PredictedLTV)
		for _, it := range c.Contents {
			w.Contents = append(w.Contents, wireContent{ID: it.ID, ItemPrice: decimal(it.ItemPrice), Quantity: it.Quantity, ItemName: it.Title})
		}
	}
	if w.Currency == "" && w.Value == "" && len(w.ContentIDs) == 0 && w.ContentName == "" && w.ContentCategory == "" &&
		len(w.Contents) == 0 && w.NumItems == nil && w.OrderID == "" && w.SearchString == "" && w.PredictedLTV == "" &&
		w.OptOutType == "" {
		return nil
	}
	return &w
}

// decimal writes an amount as the decimal string Pinterest parses.
func decimal(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// actionSource gives Pinterest's action_source for a canonical one: web
// for website, app_android or app_ios for app (told apart by the user
// agent; false when it names neither), offline for the others.
func actionSource(e *destinations.Event) (string, bool) {
	switch e.ActionSource {
	case "website":
		return "web", true
	case "app":
		ua := e.UserData.ClientUserAgent
		switch {
		case strings.Contains(ua, "Android"):
			return "app_android", true
		case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iOS"):
			return "app_ios", true
		}
		return "", false
	}
	return "offline", true
}

// Check reports why Pinterest would refuse e: an event without an
// event_id; user_data without em and without both the IP address and the
// user agent (Pinterest's minimum, for tagway which sends no mobile ad
// ids); an app event whose user agent names neither Android nor iOS; a
// currency that is no ISO 4217 code.
func Check(e *destinations.Event) *destinations.Violation {
	if e.EventID == "" {
		return &destinations.Violation{Field: "event_id", Reason: "Pinterest requires an event_id (its deduplication key)"}
	}
	u := e.UserData
	if len(u.Em) == 0 && (u.ClientIPAddress == "" || u.ClientUserAgent == "") {
		return &destinations.Violation{Field: "user_data",
			Reason: "Pinterest needs em, or client_ip_address together with client_user_agent"}
	}
	if _, ok := actionSource(e); !ok {
		return &destinations.Violation{Field: "action_source",
			Reason: "Pinterest takes app events only from Android or iOS, and client_user_agent names neither"}
	}
	if c := e.CustomData; c != nil && c.Currency != "" && !isCurrencyCode(strings.ToUpper(c.Currency)) {
		return &destinations.Violation{Field: "custom_data.currency", Reason: "must be an ISO 4217 code such as EUR"}
	}
	return nil
}

// isCurrencyCode reports whether s has the form of an ISO 4217 code.
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
