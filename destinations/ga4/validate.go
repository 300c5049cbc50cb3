package ga4

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tagway/tagway/destinations/internal/platform"
)

// problem is a GA4 rule a request breaks: where, and why.
type problem struct {
	field  string
	reason string
}

func (p *problem) String() string { return p.field + ": " + p.reason }

// validateEvent applies GA4's documented rules to one event and the
// request-level fields it would travel with, as GA4 would at now. A
// problem means GA4 would drop the event (its answer would still be 2xx).
func validateEvent(top *mpRequest, ev *mpEvent, now time.Time) *problem {
	if p := validateTop(top); p != nil {
		return p
	}
	if why := nameProblem(ev.Name); why != "" {
		return &problem{"name", fmt.Sprintf("event name %q %s", ev.Name, why)}
	}
	if reservedEventNames[ev.Name] {
		return &problem{"name", fmt.Sprintf("event name %q is reserved by GA4", ev.Name)}
	}
	if ev.TimestampMicros != 0 {
		ts := time.UnixMicro(ev.TimestampMicros)
		if now.Sub(ts) > MaxAge {
			return &problem{"timestamp_micros", fmt.Sprintf("the event is %s old; GA4 takes events up to 72 hours old",
				now.Sub(ts).Truncate(time.Second))}
		}
		if ts.After(now) {
			return &problem{"timestamp_micros", "the event time is in the future"}
		}
	}
	if len(ev.Params) > MaxParams {
		return &problem{"params", fmt.Sprintf("%d parameters; GA4 keeps at most %d", len(ev.Params), MaxParams)}
	}
	for k, v := range ev.Params {
		if !paramNameOK(k) {
			return &problem{"params." + k, "not a parameter name GA4 takes"}
		}
		switch v := v.(type) {
		case string:
			if n := utf8.RuneCountInString(v); n > maxValueLen(k) {
				return &problem{"params." + k, fmt.Sprintf("%d characters; GA4 keeps at most %d", n, maxValueLen(k))}
			}
		case []mpItem:
			if p := validateItems(v); p != nil {
				p.field = "params.items" + p.field
				return p
			}
		}
	}
	return nil
}

// validateTop checks the request-level fields.
func validateTop(top *mpRequest) *problem {
	switch {
	case top.ClientID == "":
		return &problem{"client_id", "required for a web stream"}
	case utf8.RuneCountInString(top.UserID) > MaxUserIDLen:
		return &problem{"user_id", "longer than 256 characters"}
	}
	if top.IPOverride != "" {
		if _, err := netip.ParseAddr(top.IPOverride); err != nil {
			return &problem{"ip_override", "not an IP address"}
		}
	}
	if l := top.UserLocation; l != nil && (len(l.CountryID) != 2 || !alnum(l.CountryID, false) ||
		l.RegionID != "" && !strings.HasPrefix(l.RegionID, l.CountryID+"-")) {
		return &problem{"user_location", "not ISO 3166 codes"}
	}
	if c := top.Consent; c != nil {
		for _, v := range []string{c.AdUserData, c.AdPersonalization} {
			if v != "" && v != "GRANTED" && v != "DENIED" {
				return &problem{"consent", fmt.Sprintf("%q is neither GRANTED nor DENIED", v)}
			}
		}
	}
	if u := top.UserData; u != nil {
		if len(u.Emails) > maxUserDataValues || len(u.Phones) > maxUserDataValues || len(u.Addresses) > maxUserDataValues {
			return &problem{"user_data", "more than 3 values in a list"}
		}
		digests := append(append([]string(nil), u.Emails...), u.Phones...)
		for _, a := range u.Addresses {
			digests = append(digests, a.FirstName, a.LastName)
		}
		for _, d := range digests {
			if d != "" && !platform.IsDigest(d) {
				return &problem{"user_data", "a value is not a lowercase hex SHA-256 digest"}
			}
		}
	}
	return nil
}

// validateItems checks the items parameter.
func validateItems(items []mpItem) *problem {
	if len(items) > MaxItems {
		return &problem{"", fmt.Sprintf("%d items; GA4 keeps at most %d", len(items), MaxItems)}
	}
	for i, it := range items {
		if it.ItemID == "" && it.ItemName == "" {
			return &problem{fmt.Sprintf("[%d]", i), "an item needs item_id or item_name"}
		}
		for _, s := range []string{it.ItemID, it.ItemName, it.ItemCategory} {
			if utf8.RuneCountInString(s) > MaxValueLen {
				return &problem{fmt.Sprintf("[%d]", i), "a value longer than 100 characters"}
			}
		}
	}
	return nil
}
