package routing

import (
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// TestApplyPolicyAnonymous: an event the gateway stripped of identifiers
// (consent_denied_mode: anonymous) goes to an advertising platform without
// marketing consent; a route that names purposes still needs them.
func TestApplyPolicyAnonymous(t *testing.T) {
	denied := destinations.Consent{AdStorage: "denied", AdUserData: "denied"}
	for _, tt := range []struct {
		name      string
		anonymous bool
		route     model.Route
		send      bool
	}{
		{"anonymous", true, model.Route{}, true},
		{"not anonymous", false, model.Route{}, false},
		{"anonymous, route needs ad_storage", true, model.Route{Consent: []string{"ad_storage"}}, false},
	} {
		ev := destinations.Event{EventName: "Purchase", Context: destinations.Context{Consent: denied, Anonymous: tt.anonymous}}
		if send, reason := ApplyPolicy(tt.route, model.Site{}, true, &ev); send != tt.send {
			t.Errorf("%s: send %v (%s), want %v", tt.name, send, reason, tt.send)
		}
	}
}
