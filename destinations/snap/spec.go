package snap

import (
	"time"

	"github.com/tagway/tagway/destinations"
)

// Type is the destination type name in the configuration.
const Type = "snap"

// Spec describes the snap destination type to the registry.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        New,
		Secrets:    []string{"access_token"},
		APIURLs:    map[string]string{APIURLSetting: APIURLEnv},
		AdPlatform: true,
		// Snap refuses an event without an e-mail, a phone, a mobile ad id,
		// or both an IP address and a user agent: an anonymous event keeps
		// only its user agent.
		Anonymous: false,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		Check:     Check,
		EventName: EventName,
		// Snap hashes phones as digits without "+", as Meta does: no
		// variant is needed.
		Hashes: 0,
	}
}

// canonicalNames maps the canonical names Snap has an event for.
var canonicalNames = map[string]string{
	"PageView":             "PAGE_VIEW",
	"ViewContent":          "VIEW_CONTENT",
	"AddToCart":            "ADD_CART",
	"AddToWishlist":        "ADD_TO_WISHLIST",
	"InitiateCheckout":     "START_CHECKOUT",
	"AddPaymentInfo":       "ADD_BILLING",
	"Purchase":             "PURCHASE",
	"CompleteRegistration": "SIGN_UP",
	"Search":               "SEARCH",
	"Subscribe":            "SUBSCRIBE",
	"StartTrial":           "START_TRIAL",
}

// snapNames are Snap's own event names (Conversions API v3).
var snapNames = map[string]bool{
	"PAGE_VIEW": true, "VIEW_CONTENT": true, "LIST_VIEW": true, "SEARCH": true, "ADD_CART": true,
	"ADD_TO_WISHLIST": true, "START_CHECKOUT": true, "ADD_BILLING": true, "PURCHASE": true, "SIGN_UP": true,
	"SUBSCRIBE": true, "START_TRIAL": true, "SAVE": true, "SHARE": true, "INVITE": true, "LOGIN": true,
	"RESERVE": true, "RATE": true, "AD_CLICK": true, "AD_VIEW": true, "COMPLETE_TUTORIAL": true,
	"LEVEL_COMPLETE": true, "ACHIEVEMENT_UNLOCKED": true, "SPEND_CREDITS": true, "APP_OPEN": true,
	"APP_INSTALL": true, "CUSTOM_EVENT_1": true, "CUSTOM_EVENT_2": true, "CUSTOM_EVENT_3": true,
	"CUSTOM_EVENT_4": true, "CUSTOM_EVENT_5": true,
}

// EventName gives Snap's name for an event name: a canonical name Snap has
// an event for (AddToCart → ADD_CART, InitiateCheckout → START_CHECKOUT,
// AddPaymentInfo → ADD_BILLING, CompleteRegistration → SIGN_UP...), or one
// of Snap's own names, which a route's event_map may produce (LIST_VIEW,
// CUSTOM_EVENT_1...). Snap takes no free names: Lead, Contact, Schedule and
// any custom event have no Snap event unless an event_map names one (tw.js
// hands the same names to snaptr).
func EventName(name string) (string, bool) {
	if n, ok := canonicalNames[name]; ok {
		return n, true
	}
	if snapNames[name] {
		return name, true
	}
	return "", false
}

// Check reports why Snap would refuse e: a website event without its page
// URL, a purchase without value or currency, an app event (those go to a
// Snap App ID, not a pixel), or too little customer information to match
// (an e-mail, a phone, or both IP address and user agent). An anonymous
// event is not checked for customer information: routing withholds those
// from Snap (Spec.Anonymous).
func Check(e *destinations.Event) *destinations.Violation {
	name, ok := EventName(e.EventName)
	if !ok {
		return nil // routing skips it
	}
	switch e.ActionSource {
	case "website":
		if e.EventSourceURL == "" {
			return &destinations.Violation{Field: "event_source_url", Reason: "Snap requires the page URL of a website event"}
		}
	case "app":
		return &destinations.Violation{Field: "action_source", Reason: "Snap takes app events on a Snap App ID, not on a pixel"}
	}
	if name == "PURCHASE" {
		cd := e.CustomData
		if cd == nil || cd.Value == nil {
			return &destinations.Violation{Field: "custom_data.value", Reason: "Snap requires the value of a purchase"}
		}
		if cd.Currency == "" {
			return &destinations.Violation{Field: "custom_data.currency", Reason: "Snap requires the currency of a purchase"}
		}
	}
	if !e.Context.Anonymous && !matchable(e.UserData) {
		return &destinations.Violation{Field: "user_data",
			Reason: "Snap requires em, ph, or both client_ip_address and client_user_agent"}
	}
	return nil
}

// matchable reports whether u holds the least customer information Snap
// takes: an e-mail, a phone, or both an IP address and a user agent.
func matchable(u destinations.UserData) bool {
	return len(u.Em) > 0 || len(u.Ph) > 0 || (u.ClientIPAddress != "" && u.ClientUserAgent != "")
}
