package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/model"
)

func TestApplyPolicyTable(t *testing.T) {
	granted := destinations.Consent{AdStorage: "granted", AdUserData: "granted", AdPersonalization: "granted", AnalyticsStorage: "granted"}
	analyticsOnly := destinations.Consent{AdStorage: "denied", AdUserData: "denied", AdPersonalization: "denied", AnalyticsStorage: "granted"}
	noUserData := destinations.Consent{AdStorage: "granted", AdUserData: "denied", AnalyticsStorage: "granted"}
	eeaNoIP := model.RegionRule{Name: "eea-no-ip", Regions: []string{"EEA"}, Drop: []string{"client_ip_address"}}
	ccpa := model.RegionRule{Name: "ccpa", Regions: []string{"US-CA"}, LimitedDataUse: true}
	usLDU := model.RegionRule{Regions: []string{"US"}, LimitedDataUse: true}
	noRU := model.RegionRule{Name: "no-ru", Regions: []string{"RU", "unknown"}, Withhold: true}
	needPersonalization := model.RegionRule{Name: "eea-personal", Regions: []string{"EEA"}, Consent: []string{"ad_personalization"}}

	type want struct {
		send    bool
		reason  string
		ip      string
		ldu     bool
		country int
		state   int
	}
	tests := []struct {
		name      string
		route     model.Route
		site      model.Site
		ad        bool
		consent   destinations.Consent
		country   string
		region    string
		source    string
		want      want
		eventName string
	}{
		{name: "granted ad platform", ad: true, consent: granted, country: "US", want: want{send: true, ip: "1.2.3.4"}},
		{name: "ad platform without marketing consent", ad: true, consent: analyticsOnly, want: want{reason: "consent:ad_storage"}},
		{name: "ad platform without ad_user_data", ad: true, consent: noUserData, want: want{reason: "consent:ad_user_data"}},
		{name: "analytics destination without marketing consent", ad: false, consent: analyticsOnly, want: want{send: true, ip: "1.2.3.4"}},
		{name: "route needs analytics_storage", ad: false, route: model.Route{Consent: []string{"analytics_storage"}},
			consent: destinations.Consent{AnalyticsStorage: "denied"}, want: want{reason: "consent:analytics_storage"}},
		{name: "route needs none", ad: true, route: model.Route{Consent: []string{"none"}}, consent: analyticsOnly, want: want{send: true, ip: "1.2.3.4"}},
		{name: "EEA visitor: no IP", ad: true, consent: granted, country: "DE", site: model.Site{RegionRules: []model.RegionRule{eeaNoIP}},
			want: want{send: true, ip: ""}},
		{name: "non-EEA visitor keeps IP", ad: true, consent: granted, country: "GB", site: model.Site{RegionRules: []model.RegionRule{eeaNoIP}},
			want: want{send: true, ip: "1.2.3.4"}},
		{name: "route rule after site rule", ad: true, consent: granted, country: "FR", route: model.Route{RegionRules: []model.RegionRule{eeaNoIP}},
			want: want{send: true, ip: ""}},
		{name: "California: LDU 1/1000", ad: true, consent: granted, country: "US", region: "CA", site: model.Site{RegionRules: []model.RegionRule{ccpa}},
			want: want{send: true, ip: "1.2.3.4", ldu: true, country: 1, state: 1000}},
		{name: "Texas under a CA rule: no LDU", ad: true, consent: granted, country: "US", region: "TX", site: model.Site{RegionRules: []model.RegionRule{ccpa}},
			want: want{send: true, ip: "1.2.3.4"}},
		{name: "US rule outside California: LDU 0/0 (geolocate)", ad: true, consent: granted, country: "US", region: "TX",
			site: model.Site{RegionRules: []model.RegionRule{usLDU}}, want: want{send: true, ip: "1.2.3.4", ldu: true}},
		{name: "withheld region", ad: true, consent: granted, country: "RU", route: model.Route{RegionRules: []model.RegionRule{noRU}},
			want: want{reason: "region:no-ru"}},
		{name: "unknown region withheld", ad: true, consent: granted, country: "", route: model.Route{RegionRules: []model.RegionRule{noRU}},
			want: want{reason: "region:no-ru"}},
		{name: "region adds a purpose", ad: true, consent: noUserData, country: "IT",
			site: model.Site{RegionRules: []model.RegionRule{needPersonalization}}, route: model.Route{Consent: []string{"ad_storage"}},
			want: want{reason: "consent:ad_personalization"}},
		{name: "synthetic event on a live route", ad: true, consent: granted, source: SourceTest, want: want{reason: "synthetic_test_event"}},
		{name: "synthetic event on a test route", ad: true, consent: granted, source: SourceTest, route: model.Route{TestMode: true},
			want: want{send: true, ip: "1.2.3.4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := destinations.Event{EventName: "Purchase", UserData: destinations.UserData{ClientIPAddress: "1.2.3.4", Em: []string{"h"}},
				Context: destinations.Context{Consent: tt.consent, Country: tt.country, Region: tt.region, Source: tt.source}}
			orig := ev
			tt.route.ID = "r1"
			send, reason := ApplyPolicy(tt.route, tt.site, Recipient{AdPlatform: tt.ad}, &ev)
			if send != tt.want.send || reason != tt.want.reason {
				t.Fatalf("ApplyPolicy = %v, %q; want %v, %q", send, reason, tt.want.send, tt.want.reason)
			}
			if !send {
				if ev.UserData.ClientIPAddress != orig.UserData.ClientIPAddress || ev.Context.Route != "" {
					t.Error("a withheld event was changed")
				}
				return
			}
			if ev.UserData.ClientIPAddress != tt.want.ip {
				t.Errorf("ip %q; want %q", ev.UserData.ClientIPAddress, tt.want.ip)
			}
			if len(ev.UserData.Em) != 1 {
				t.Error("em dropped by a rule that does not name it")
			}
			gotLDU := slices.Equal(ev.DataProcessingOptions, []string{"LDU"})
			if gotLDU != tt.want.ldu {
				t.Errorf("data_processing_options %v", ev.DataProcessingOptions)
			}
			if tt.want.ldu && (*ev.DataProcessingOptionsCountry != tt.want.country || *ev.DataProcessingOptionsState != tt.want.state) {
				t.Errorf("LDU country/state %d/%d; want %d/%d", *ev.DataProcessingOptionsCountry, *ev.DataProcessingOptionsState, tt.want.country, tt.want.state)
			}
			if ev.Context.Route != "r1" {
				t.Error("the route is not recorded on the event")
			}
		})
	}
}

func TestApplyPolicyRewrites(t *testing.T) {
	v := 10.0
	ev := destinations.Event{EventName: "Purchase", ActionSource: "website",
		CustomData: &destinations.CustomData{Value: &v, Currency: "USD", Custom: map[string]json.RawMessage{"x": json.RawMessage(`1`)}},
		Context:    destinations.Context{Consent: destinations.Consent{AdStorage: "granted", AdUserData: "granted"}}}
	route := model.Route{ID: "r", EventMap: map[string]string{"Purchase": "CompletePayment"}, TestMode: true, TestEventCode: "TEST42",
		Overrides: &model.RouteOverrides{ActionSource: "physical_store", CustomData: map[string]json.RawMessage{"currency": json.RawMessage(`"EUR"`), "channel": json.RawMessage(`"pos"`)}}}
	if send, _ := ApplyPolicy(route, model.Site{}, Recipient{AdPlatform: true}, &ev); !send {
		t.Fatal("withheld")
	}
	cd := ev.CustomData
	if ev.EventName != "CompletePayment" || ev.ActionSource != "physical_store" || ev.Context.TestEventCode != "TEST42" ||
		cd.Currency != "EUR" || *cd.Value != 10 || string(cd.Custom["channel"]) != `"pos"` || string(cd.Custom["x"]) != `1` {
		t.Errorf("rewritten event %+v custom %+v", ev, cd)
	}
}

// TestDispatcherAppliesPolicy: the dispatcher withholds by policy with the
// reason as a metric label, sends the rewritten event, records test-mode
// outcomes, and does not apply a route twice to a retried event.
func TestDispatcherAppliesPolicy(t *testing.T) {
	cfg := routingtest.Config(routingtest.Dest{ID: "meta"})
	cfg.Sites[0].RegionRules = []model.RegionRule{{Name: "eea-no-ip", Regions: []string{"EEA"}, Drop: []string{"client_ip_address"}}}
	cfg.Routes[0].EventMap = map[string]string{"Purchase": "CompletePayment"}
	cfg.Routes[0].Events = []string{"Purchase"}
	cfg.Routes[0].TestMode = true
	cfg.Routes[0].TestEventCode = "TEST77"
	h := newHarness(t, cfg)
	var mu sync.Mutex
	var got []destinations.Event
	calls := 0
	fake := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		got = append(got, batch...)
		if calls == 1 {
			return destinations.All(len(batch), errors.New("boom: try again"))
		}
		return make([]error, len(batch))
	})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": fake}), h.fastOptions())

	denied := routingtest.Event("e-denied", "Purchase")
	denied.Context.Consent.AdUserData = destinations.Denied
	de := routingtest.Event("e-de", "Purchase")
	de.Context.Country = "DE"
	de.UserData.ClientIPAddress = "192.0.2.1"
	h.enqueue(de, denied)
	routingtest.WaitFor(t, "delivery after one retry", func() bool {
		return h.groupDone("meta") && h.retryCount("meta") == 0 && h.metric("meta", "delivered") == 1
	})

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("deliveries %d; want the DE event twice (failed, then retried)", len(got))
	}
	for _, ev := range got {
		if ev.EventID != "e-de" || ev.EventName != "CompletePayment" || ev.UserData.ClientIPAddress != "" || ev.Context.TestEventCode != "TEST77" {
			t.Errorf("sent %+v", ev)
		}
	}
	if n := h.withheld("meta", "consent:ad_user_data"); n != 1 {
		t.Errorf("withheld{reason=consent:ad_user_data} = %v; want 1", n)
	}
	results, err := config.ReadTestResults(context.Background(), h.rdb, routingtest.Site, "to-meta")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].Outcome != "delivered" || results[1].Outcome != "retry" ||
		results[1].Message == "" || results[0].EventName != "CompletePayment" || results[0].TestEventCode != "TEST77" {
		t.Errorf("test results %+v", results)
	}
}

func (h *harness) withheld(destID, reason string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tagway_events_withheld_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["destination"] == destID && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
