package dispatch

import (
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// TestApplyPolicyAnonymous: an event the gateway stripped of identifiers
// (consent_denied_mode: anonymous) goes to an advertising platform without
// marketing consent, unless the platform refuses events without identifiers
// (Meta); a route that names purposes still needs them.
func TestApplyPolicyAnonymous(t *testing.T) {
	denied := destinations.Consent{AdStorage: "denied", AdUserData: "denied"}
	granted := destinations.Consent{AdStorage: "granted", AdUserData: "granted"}
	for _, tt := range []struct {
		name      string
		anonymous bool
		consent   destinations.Consent
		to        Recipient
		route     model.Route
		send      bool
		reason    string
	}{
		{"anonymous", true, denied, Recipient{AdPlatform: true}, model.Route{}, true, ""},
		{"not anonymous", false, denied, Recipient{AdPlatform: true}, model.Route{}, false, "consent:ad_storage"},
		{"anonymous, route needs ad_storage", true, denied, Recipient{AdPlatform: true}, model.Route{Consent: []string{"ad_storage"}}, false, "consent:ad_storage"},
		{"anonymous to a platform refusing it", true, denied, Recipient{AdPlatform: true, RefusesAnonymous: true}, model.Route{}, false, ReasonAnonymousUnsupported},
		{"anonymous to a platform refusing it, route needs nothing", true, denied, Recipient{AdPlatform: true, RefusesAnonymous: true},
			model.Route{Consent: []string{model.ConsentNone}}, false, ReasonAnonymousUnsupported},
		{"anonymous to a non-ad destination refusing it", true, denied, Recipient{RefusesAnonymous: true}, model.Route{}, false, ReasonAnonymousUnsupported},
		{"consented event to a platform refusing anonymous ones", false, granted, Recipient{AdPlatform: true, RefusesAnonymous: true}, model.Route{}, true, ""},
	} {
		ev := destinations.Event{EventName: "Purchase", Context: destinations.Context{Consent: tt.consent, Anonymous: tt.anonymous}}
		send, reason := ApplyPolicy(tt.route, model.Site{}, tt.to, &ev)
		if send != tt.send || reason != tt.reason {
			t.Errorf("%s: send %v (%q), want %v (%q)", tt.name, send, reason, tt.send, tt.reason)
		}
	}
	if ReasonAnonymousUnsupported != "consent:anonymous_unsupported" {
		t.Errorf("reason label %q", ReasonAnonymousUnsupported)
	}
}
