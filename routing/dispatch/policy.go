package dispatch

import (
	"encoding/json"
	"slices"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// Reasons ApplyPolicy gives for withholding an event: the values of the
// reason label of tagway_events_withheld_total. A region rule's reason is
// "region:" followed by the rule's name ("region" when it has none).
const (
	ReasonConsentPrefix  = "consent:" // followed by the purpose not granted
	ReasonRegionPrefix   = "region:"
	ReasonSyntheticEvent = "synthetic_test_event"
	// ReasonAnonymousUnsupported: an anonymous event (no marketing consent,
	// identifiers stripped) for a destination whose platform refuses events
	// without identifiers.
	ReasonAnonymousUnsupported = ReasonConsentPrefix + "anonymous_unsupported"
	// ReasonIncompletePrefix, followed by the missing field
	// (Context.Incomplete): an event the gateway kept although it lacks
	// what the destination's platform requires, which would refuse it.
	ReasonIncompletePrefix = "incomplete:"
)

// Recipient is what ApplyPolicy knows of the destination an event is
// headed for.
type Recipient struct {
	// AdPlatform: an advertising platform (see AdPlatform), which by
	// default needs marketing consent.
	AdPlatform bool
	// RefusesAnonymous: its platform refuses anonymous events
	// (destinations.AnonymousAcceptor answering false).
	RefusesAnonymous bool
	// RefusesIncomplete: its platform refuses events the gateway marked
	// incomplete (destinations.IncompleteAcceptor answering false).
	RefusesIncomplete bool
}

// AdPlatform may be implemented by a Destination to say whether it is an
// advertising platform. A destination that does not implement it is treated
// as one, the safe default: it receives no event without marketing consent.
type AdPlatform interface {
	AdPlatform() bool
}

// SourceTest is the Context.Source of a synthetic event fired by
// `tagway send-test`: it goes only to routes in test mode, or with a test
// event code, never to a platform's live data.
const SourceTest = "test"

// ApplyPolicy is tagway's one privacy and routing policy for an event on its
// way along route to a destination, evaluated by the dispatcher for every
// event and nowhere else. It decides whether the event may be sent and, when
// it may, rewrites it for the route: fields dropped and Limited Data Use set
// by region rules, event name mapped, route overrides and test mode applied.
//
// Consent: the route's purposes (default for an advertising platform:
// ad_storage and ad_user_data; for another destination: none) plus those of
// every region rule matching the visitor must be granted. Region rules of the
// site come first, then the route's; a matching rule with withhold stops the
// event. An anonymous event (Context.Anonymous) needs no marketing consent
// but goes only to a destination that takes events without identifiers.
// An incomplete event (Context.Incomplete) goes to a destination refusing
// such events only when the route's rewriting (overrides, event map)
// supplied what it lacked. When send is false, reason says why (see the
// Reason constants) and ev is unchanged.
func ApplyPolicy(route model.Route, site model.Site, to Recipient, ev *destinations.Event) (send bool, reason string) {
	if ev.Context.Incomplete != "" && to.RefusesIncomplete {
		orig := *ev
		send, reason = applyPolicy(route, site, to, ev)
		if send && stillIncomplete(ev) {
			*ev = orig
			return false, ReasonIncompletePrefix + orig.Context.Incomplete
		}
		return send, reason
	}
	return applyPolicy(route, site, to, ev)
}

// stillIncomplete reports whether ev, rewritten for a route, still lacks
// the field its Context.Incomplete names. Customer information too weak to
// match stays so: a route only ever drops identifiers.
func stillIncomplete(ev *destinations.Event) bool {
	cd := ev.CustomData
	switch ev.Context.Incomplete {
	case destinations.IncompleteSourceURL:
		return ev.ActionSource == "website" && ev.EventSourceURL == ""
	case destinations.IncompleteUserAgent:
		return ev.ActionSource == "website" && ev.UserData.ClientUserAgent == ""
	case destinations.IncompleteValue:
		return ev.EventName == "Purchase" && (cd == nil || cd.Value == nil)
	case destinations.IncompleteCurrency:
		return ev.EventName == "Purchase" && (cd == nil || cd.Currency == "")
	}
	return true
}

// applyPolicy is ApplyPolicy without the check of incomplete events.
func applyPolicy(route model.Route, site model.Site, to Recipient, ev *destinations.Event) (send bool, reason string) {
	if ev.Context.Source == SourceTest && !route.TestMode && ev.Context.TestEventCode == "" {
		return false, ReasonSyntheticEvent
	}
	var need []string
	switch {
	case slices.Equal(route.Consent, []string{model.ConsentNone}):
	case len(route.Consent) > 0:
		need = append(need, route.Consent...)
	case to.AdPlatform && ev.Context.Anonymous:
		// Stripped of every identifier at ingest (the site's
		// consent_denied_mode is anonymous): it may go without consent.
	case to.AdPlatform:
		need = append(need, "ad_storage", "ad_user_data")
	}
	var matched []model.RegionRule
	for _, r := range slices.Concat(site.RegionRules, route.RegionRules) {
		if !r.Matches(ev.Context.Country, ev.Context.Region) {
			continue
		}
		if r.Withhold {
			return false, ReasonRegionPrefix + ruleName(r)
		}
		need = append(need, r.Consent...)
		matched = append(matched, r)
	}
	for _, p := range need {
		if !granted(ev.Context.Consent, p) {
			return false, ReasonConsentPrefix + p
		}
	}
	if ev.Context.Anonymous && to.RefusesAnonymous {
		return false, ReasonAnonymousUnsupported
	}

	for _, r := range matched {
		for _, f := range r.Drop {
			dropUserData(&ev.UserData, f)
		}
		if r.LimitedDataUse {
			country, state := 0, 0
			if ev.Context.Country == "US" && ev.Context.Region == "CA" {
				country, state = 1, 1000
			}
			ev.DataProcessingOptions = []string{"LDU"}
			ev.DataProcessingOptionsCountry, ev.DataProcessingOptionsState = &country, &state
		}
	}
	if to, ok := route.EventMap[ev.EventName]; ok {
		ev.EventName = to
	}
	if o := route.Overrides; o != nil {
		if o.ActionSource != "" {
			ev.ActionSource = o.ActionSource
		}
		if len(o.CustomData) > 0 {
			ev.CustomData = overrideCustomData(ev.CustomData, o.CustomData)
		}
	}
	if route.TestMode && route.TestEventCode != "" {
		ev.Context.TestEventCode = route.TestEventCode
	}
	ev.Context.Route = route.ID
	return true, ""
}

func ruleName(r model.RegionRule) string {
	if r.Name != "" {
		return r.Name
	}
	return "region"
}

// granted reports whether a consent purpose is granted.
func granted(c destinations.Consent, purpose string) bool {
	switch purpose {
	case "ad_storage":
		return c.AdStorage == destinations.Granted
	case "ad_user_data":
		return c.AdUserData == destinations.Granted
	case "ad_personalization":
		return c.AdPersonalization == destinations.Granted
	case "analytics_storage":
		return c.AnalyticsStorage == destinations.Granted
	}
	return false // an unknown purpose is never granted
}

func dropUserData(u *destinations.UserData, field string) {
	switch field {
	case "client_ip_address":
		u.ClientIPAddress = ""
	case "client_user_agent":
		u.ClientUserAgent = ""
	case "fbc":
		u.Fbc = ""
	case "fbp":
		u.Fbp = ""
	case "em":
		u.Em = nil
	case "ph":
		u.Ph = nil
	case "fn":
		u.Fn = nil
	case "ln":
		u.Ln = nil
	case "ge":
		u.Ge = nil
	case "db":
		u.Db = nil
	case "ct":
		u.Ct = nil
	case "st":
		u.St = nil
	case "zp":
		u.Zp = nil
	case "country":
		u.Country = nil
	case "external_id":
		u.ExternalID = nil
	}
}

// overrideCustomData returns cd with the properties of set replacing its
// own, through the JSON form so typed and custom properties are treated
// alike. A property that does not fit its typed field is left as it was.
func overrideCustomData(cd *destinations.CustomData, set map[string]json.RawMessage) *destinations.CustomData {
	all := map[string]json.RawMessage{}
	if cd != nil {
		if b, err := json.Marshal(cd); err == nil {
			_ = json.Unmarshal(b, &all)
		}
	}
	for k, v := range set {
		all[k] = v
	}
	b, err := json.Marshal(all)
	if err != nil {
		return cd
	}
	var out destinations.CustomData
	if err := json.Unmarshal(b, &out); err != nil {
		return cd
	}
	return &out
}
