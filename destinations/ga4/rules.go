package ga4

import (
	"strings"
	"unicode/utf8"
)

// GA4's collection rules, as the Measurement Protocol reference and the
// Analytics collection-limits page state them. GA4 answers 2xx to every
// request and drops what breaks them; the adapter applies them before
// sending.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 25
	// MaxParams is the most parameters one event may carry.
	MaxParams = 25
	// MaxNameLen bounds an event or parameter name.
	MaxNameLen = 40
	// MaxValueLen bounds a parameter's string value (but see
	// maxValueLen for the page parameters).
	MaxValueLen = 100
	// MaxItems bounds the items of one event.
	MaxItems = 200
	// MaxUserIDLen bounds user_id.
	MaxUserIDLen = 256
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 130_000
	// maxUserDataValues bounds each list of user_data (e-mails, phones,
	// addresses).
	maxUserDataValues = 3
)

// reservedEventNames are the event names GA4 keeps for itself.
var reservedEventNames = map[string]bool{
	"ad_activeview": true, "ad_click": true, "ad_exposure": true, "ad_impression": true,
	"ad_query": true, "ad_reward": true, "adunit_exposure": true, "app_background": true,
	"app_clear_data": true, "app_exception": true, "app_remove": true, "app_store_refund": true,
	"app_store_subscription_cancel": true, "app_store_subscription_convert": true,
	"app_store_subscription_renew": true, "app_uninstall": true, "app_update": true,
	"app_upgrade": true, "dynamic_link_app_open": true, "dynamic_link_app_update": true,
	"dynamic_link_first_open": true, "error": true, "firebase_campaign": true,
	"firebase_in_app_message_action": true, "firebase_in_app_message_dismiss": true,
	"firebase_in_app_message_impression": true, "first_open": true, "first_visit": true,
	"in_app_purchase": true, "notification_dismiss": true, "notification_foreground": true,
	"notification_open": true, "notification_receive": true, "os_update": true,
	"session_start": true, "session_start_with_rollout": true, "user_engagement": true,
}

// reservedPrefixes start no event or parameter name.
var reservedPrefixes = [...]string{"_", "firebase_", "ga_", "google_", "gtag."}

// reservedParamNames are the parameter names GA4 keeps for itself.
var reservedParamNames = map[string]bool{"firebase_conversion": true}

// standardNames maps the canonical event names to GA4's recommended ones.
var standardNames = map[string]string{
	"PageView":             "page_view",
	"ViewContent":          "view_item",
	"AddToCart":            "add_to_cart",
	"AddToWishlist":        "add_to_wishlist",
	"InitiateCheckout":     "begin_checkout",
	"AddPaymentInfo":       "add_payment_info",
	"Purchase":             "purchase",
	"Lead":                 "generate_lead",
	"CompleteRegistration": "sign_up",
	"Search":               "search",
}

// EventName gives GA4's name for an event name: the recommended event for
// a canonical name ("AddToCart" → "add_to_cart"), else the name itself
// when it obeys GA4's naming rules. False means GA4 would drop the event:
// an empty, too long or reserved name, or one with a character other than
// letters, digits and underscores, or not starting with a letter.
func EventName(name string) (string, bool) {
	if n, ok := standardNames[name]; ok {
		return n, true
	}
	if nameProblem(name) != "" || reservedEventNames[name] {
		return "", false
	}
	return name, true
}

// nameProblem says why name is no valid GA4 event or parameter name; ""
// when it is one (reserved names aside).
func nameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxNameLen:
		return "is longer than 40 characters"
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return "starts with the reserved prefix " + p
		}
	}
	if c := name[0]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return "does not start with a letter"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return "holds a character other than letters, digits and underscores"
		}
	}
	return ""
}

// paramNameOK reports whether name may name an event parameter.
func paramNameOK(name string) bool {
	return nameProblem(name) == "" && !reservedParamNames[name]
}

// maxValueLen is the longest string value of parameter name: GA4 allows
// the page parameters more than the others.
func maxValueLen(name string) int {
	switch name {
	case "page_location":
		return 1000
	case "page_referrer":
		return 420
	case "page_title":
		return 300
	}
	return MaxValueLen
}

// clip cuts s to at most n characters, at a character boundary.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for count := 0; count < n; count++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}
