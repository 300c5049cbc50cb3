package model

import (
	"strings"
	"testing"
)

const tenancyYAML = `
tenants: [{id: agency, name: Agency}, {id: other}]
sites:
  - id: shop
    tenant: agency
    domains: [shop.example]
    cookies: {max_age_days: 90}
    region_rules:
      - {name: eea-no-ip, regions: [EEA, GB], drop: [client_ip_address]}
      - {regions: [US-CA], limited_data_use: true}
destinations:
  - {id: meta-a, site: shop, type: meta, settings: {pixel_id: "1"}}
  - {id: meta-b, site: shop, type: meta, settings: {pixel_id: "2"}}
routes:
  - id: r1
    site: shop
    destination: meta-a
    event_map: {Purchase: CompletePayment}
    overrides: {action_source: physical_store, custom_data: {currency: EUR}}
    test_mode: true
    test_event_code: TEST1
    consent: [ad_storage, analytics_storage]
  - {id: r2, site: shop, destination: meta-b, consent: [none]}
`

func TestParseConfigTenancy(t *testing.T) {
	cfg, err := ParseConfig([]byte(tenancyYAML))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := NewSnapshot(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tn, ok := snap.Tenant("agency"); !ok || tn.Name != "Agency" {
		t.Error("tenant lookup")
	}
	if r, ok := snap.Route("r1"); !ok || r.EventMap["Purchase"] != "CompletePayment" || !r.TestMode {
		t.Error("route lookup")
	}
	if len(snap.Config().Tenants) != 2 {
		t.Error("Normalize dropped the tenants")
	}
	site, _ := snap.Site("shop")
	if !site.RegionRules[0].Matches("DE", "") || !site.RegionRules[0].Matches("gb", "") || site.RegionRules[0].Matches("US", "CA") ||
		!site.RegionRules[1].Matches("US", "CA") || site.RegionRules[1].Matches("US", "TX") {
		t.Error("region matching")
	}
}

func TestParseConfigTenancyErrors(t *testing.T) {
	base := "tenants: [{id: a}, {id: b}]\n"
	tests := []struct{ name, doc, want string }{
		{"bad tenant id", "tenants: [{id: 'A B'}]\nsites: []", "tenants[0].id"},
		{"duplicate tenant", "tenants: [{id: a}, {id: a}]\nsites: []", "tenants[1].id: duplicate"},
		{"unknown tenant", "sites: [{id: s, tenant: nope, domains: [s.example]}]", "sites[0].tenant"},
		{"domain of another tenant", base + "sites: [{id: s, tenant: a, domains: [t.x.example]}, {id: u, tenant: b, domains: [x.example]}]", "sites[0].domains[0]"},
		{"cookie age", "sites: [{id: s, domains: [s.example], cookies: {max_age_days: 500}}]", "sites[0].cookies.max_age_days"},
		{"region", "sites: [{id: s, domains: [s.example], region_rules: [{regions: [Europe], withhold: true}]}]", "sites[0].region_rules[0].regions[0]"},
		{"rule does nothing", "sites: [{id: s, domains: [s.example], region_rules: [{regions: [DE]}]}]", "sites[0].region_rules[0]: the rule does nothing"},
		{"drop field", "sites: [{id: s, domains: [s.example], region_rules: [{regions: [DE], drop: [password]}]}]", "sites[0].region_rules[0].drop[0]"},
		{"purpose", "sites: [{id: s, domains: [s.example]}]\ndestinations: [{id: d, site: s, type: meta, settings: {}}]\nroutes: [{id: r, site: s, destination: d, consent: [cookies]}]", "routes[0].consent[0]"},
		{"none with others", "sites: [{id: s, domains: [s.example]}]\ndestinations: [{id: d, site: s, type: meta, settings: {}}]\nroutes: [{id: r, site: s, destination: d, consent: [none, ad_storage]}]", "routes[0].consent[0]"},
		{"action source", "sites: [{id: s, domains: [s.example]}]\ndestinations: [{id: d, site: s, type: meta, settings: {}}]\nroutes: [{id: r, site: s, destination: d, overrides: {action_source: tv}}]", "routes[0].overrides.action_source"},
		{"code without test mode", "sites: [{id: s, domains: [s.example]}]\ndestinations: [{id: d, site: s, type: meta, settings: {}}]\nroutes: [{id: r, site: s, destination: d, test_event_code: T}]", "routes[0].test_event_code"},
		{"event map", "sites: [{id: s, domains: [s.example]}]\ndestinations: [{id: d, site: s, type: meta, settings: {}}]\nroutes: [{id: r, site: s, destination: d, event_map: {Purchase: ''}}]", "routes[0].event_map.Purchase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tt.want)
			}
		})
	}
	// The same domain is fine within one tenant.
	if _, err := ParseConfig([]byte(base + "sites: [{id: s, tenant: a, domains: [x.example]}, {id: u, tenant: a, domains: [t.x.example]}]")); err != nil {
		t.Errorf("same-tenant overlap refused: %v", err)
	}
}

func TestSecretFields(t *testing.T) {
	f := SecretFields{"meta": {"access_token"}, "webhook": {"signing_key"}}
	for _, tt := range []struct {
		typ, field string
		want       bool
	}{
		{"meta", "access_token", true},
		{"meta", "pixel_id", false},
		{"meta", "test_event_code", false},
		{"webhook", "signing_key", true},
		{"tiktok", "access_token", true}, // by convention
		{"x", "api_key", true},
		{"x", "client_secret", true},
		{"x", "password", true},
		{"x", "graph_url", false},
	} {
		if got := f.IsSecret(tt.typ, tt.field); got != tt.want {
			t.Errorf("IsSecret(%s, %s) = %v", tt.typ, tt.field, got)
		}
	}
}
