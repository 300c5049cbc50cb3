package dispatch

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/model"
)

// TestApplyPolicyIncomplete: an event the gateway kept although it lacks
// what Meta requires goes to every destination but one whose platform
// refuses such events, unless the route's rewriting supplied the missing
// field; a withheld event is left as it was.
func TestApplyPolicyIncomplete(t *testing.T) {
	granted := destinations.Consent{AdStorage: "granted", AdUserData: "granted"}
	refuses := Recipient{AdPlatform: true, RefusesIncomplete: true}
	eur := &model.RouteOverrides{CustomData: map[string]json.RawMessage{"currency": json.RawMessage(`"EUR"`)}}
	value := &model.RouteOverrides{CustomData: map[string]json.RawMessage{"value": json.RawMessage(`1`)}}
	for _, tt := range []struct {
		name       string
		incomplete string
		eventName  string
		to         Recipient
		route      model.Route
		send       bool
		reason     string
	}{
		{"complete", "", "Purchase", refuses, model.Route{}, true, ""},
		{"no currency, to a platform taking it", destinations.IncompleteCurrency, "Purchase", Recipient{AdPlatform: true}, model.Route{}, true, ""},
		{"no currency, to a platform refusing it", destinations.IncompleteCurrency, "Purchase", refuses, model.Route{}, false, "incomplete:custom_data.currency"},
		{"no currency, route sets one", destinations.IncompleteCurrency, "Purchase", refuses, model.Route{Overrides: eur}, true, ""},
		{"no currency, route sets a value only", destinations.IncompleteCurrency, "Purchase", refuses, model.Route{Overrides: value}, false, "incomplete:custom_data.currency"},
		{"no value, route renames the Purchase", destinations.IncompleteValue, "Purchase", refuses,
			model.Route{EventMap: map[string]string{"Purchase": "OrderPlaced"}}, true, ""},
		{"no user agent", destinations.IncompleteUserAgent, "PageView", refuses, model.Route{}, false, "incomplete:user_data.client_user_agent"},
		{"no user agent, route makes it a store event", destinations.IncompleteUserAgent, "PageView", refuses,
			model.Route{Overrides: &model.RouteOverrides{ActionSource: "physical_store"}}, true, ""},
		{"no page URL", destinations.IncompleteSourceURL, "PageView", refuses, model.Route{}, false, "incomplete:event_source_url"},
		{"weak customer information", destinations.IncompleteCustomerInfo, "Lead", refuses, model.Route{Overrides: eur}, false, "incomplete:user_data"},
		{"consent decides first", destinations.IncompleteCurrency, "Purchase", refuses, model.Route{Consent: []string{"ad_personalization"}}, false, "consent:ad_personalization"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := destinations.Event{EventName: tt.eventName, ActionSource: "website", EventID: "e1",
				CustomData: &destinations.CustomData{},
				Context:    destinations.Context{Consent: granted, Incomplete: tt.incomplete}}
			before, _ := json.Marshal(ev)
			send, reason := ApplyPolicy(tt.route, model.Site{}, tt.to, &ev)
			if send != tt.send || reason != tt.reason {
				t.Fatalf("send %v (%q), want %v (%q)", send, reason, tt.send, tt.reason)
			}
			if after, _ := json.Marshal(ev); !send && string(after) != string(before) {
				t.Errorf("a withheld event was changed:\n%s\n%s", before, after)
			}
		})
	}
}

// incompleteRefuser is a fake destination whose platform refuses
// incomplete events.
type incompleteRefuser struct{ routingtest.DeliverFunc }

func (incompleteRefuser) AcceptsIncomplete() bool { return false }

// TestDispatcherWithholdsIncomplete: the dispatcher asks the destination
// whether it takes incomplete events, withholds them from one that does not
// (counted with the missing field as the reason) and delivers the rest.
func TestDispatcherWithholdsIncomplete(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "hook"}))
	var mu sync.Mutex
	got := map[string][]string{}
	record := func(name string) routingtest.DeliverFunc {
		return func(_ context.Context, batch []destinations.Event) []error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range batch {
				got[name] = append(got[name], ev.EventID)
			}
			return make([]error, len(batch))
		}
	}
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": incompleteRefuser{record("meta")}, "hook": record("hook")}), h.fastOptions())

	short := routingtest.Event("e-short", "Purchase")
	short.Context.Incomplete = destinations.IncompleteCurrency
	h.enqueue(short, routingtest.Event("e-ok", "PageView"))
	routingtest.WaitFor(t, "both destinations done", func() bool { return h.groupDone("meta") && h.groupDone("hook") })

	mu.Lock()
	defer mu.Unlock()
	if len(got["meta"]) != 1 || got["meta"][0] != "e-ok" {
		t.Errorf("meta got %v; want only e-ok", got["meta"])
	}
	if len(got["hook"]) != 2 {
		t.Errorf("hook got %v; want both events", got["hook"])
	}
	if n := h.withheld("meta", "incomplete:custom_data.currency"); n != 1 {
		t.Errorf("withheld{reason=incomplete:custom_data.currency} = %v; want 1", n)
	}
}
