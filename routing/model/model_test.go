package model

import (
	"regexp"
	"strings"
	"testing"
)

const sampleYAML = `
sites:
  - id: shop
    domains: [shop.example, shop.co.uk]
    allowed_origins: ["https://checkout.partner.example"]
    ingest_keys: ["0123456789abcdef-secret"]
destinations:
  - id: meta-main
    site: shop
    type: meta
    settings: {pixel_id: "123", access_token: "EAAB"}
routes:
  - id: all-to-meta
    site: shop
    destination: meta-main
    exclude_events: [PageView]
`

func TestParseConfigAndSnapshot(t *testing.T) {
	cfg, err := ParseConfig([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := NewSnapshot(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"shop.example", "t.shop.example", "T.Shop.Example:8443", "shop.co.uk"} {
		if s, ok := snap.SiteByHost(host); !ok || s.ID != "shop" {
			t.Errorf("SiteByHost(%q) = %v, %v; want shop", host, s, ok)
		}
	}
	for _, host := range []string{"evilshop.example", "example", "co.uk", ""} {
		if _, ok := snap.SiteByHost(host); ok {
			t.Errorf("SiteByHost(%q) matched; want no site", host)
		}
	}
	site, _ := snap.Site("shop")
	if len(site.IngestKeys) != 0 || len(site.IngestKeyHashes) != 1 {
		t.Errorf("ingest keys not hashed: %+v", site)
	}
	if s, ok := snap.SiteByIngestKey("0123456789abcdef-secret"); !ok || s.ID != "shop" {
		t.Errorf("SiteByIngestKey failed")
	}
	if _, ok := snap.SiteByIngestKey("wrong-key-wrong-key"); ok {
		t.Errorf("wrong key accepted")
	}
	for origin, want := range map[string]bool{
		"https://shop.example":             true,
		"https://www.shop.example":         true,
		"http://shop.example:3000":         true,
		"https://checkout.partner.example": true,
		"https://evil.example":             false,
		"https://shop.example.evil.com":    false,
		"null":                             false,
		"https://shop.example/path":        false,
	} {
		if got := site.OriginAllowed(origin); got != want {
			t.Errorf("OriginAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
	r := snap.Routes("shop")[0]
	if r.Accepts("PageView") || !r.Accepts("Purchase") {
		t.Errorf("route filter wrong")
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "sites: [{id: a, domains: [a.example], colour: red}]", `unknown field "colour"`},
		{"bad id", "sites: [{id: 'A B', domains: [a.example]}]", "sites[0].id"},
		{"no domains", "sites: [{id: a}]", "sites[0].domains"},
		{"bad domain", "sites: [{id: a, domains: ['a b']}]", "sites[0].domains[0]"},
		{"short key", "sites: [{id: a, domains: [a.example], ingest_keys: [x]}]", "sites[0].ingest_keys[0]"},
		{"bad consent", "sites: [{id: a, domains: [a.example], consent_default: maybe}]", "sites[0].consent_default"},
		{"unknown site", "sites: [{id: a, domains: [a.example]}]\ndestinations: [{id: d, site: b, type: meta, settings: {}}]", "destinations[0].site"},
		{"route to other site", "sites: [{id: a, domains: [a.example]}, {id: b, domains: [b.example]}]\ndestinations: [{id: d, site: b, type: meta, settings: {}}]\nroutes: [{id: r, site: a, destination: d}]", "routes[0].destination"},
		{"bad path", "sites: [{id: a, domains: [a.example], script_path: 'x.js'}]", "sites[0].script_path"},
		{"not yaml", "sites: [", "config:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tt.want)
			}
		})
	}
}

// A host belongs to the site with the most specific matching domain,
// whatever the order of sites, and a parent domain never matches by a
// suffix that is not a label boundary.
func TestSiteByHostMostSpecific(t *testing.T) {
	cfg := Config{Sites: []Site{
		{ID: "brand", Domains: []string{"brand.example"}},
		{ID: "eu", Domains: []string{"eu.brand.example", "other.example"}},
	}}
	snap, err := NewSnapshot(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"brand.example":         "brand",
		"www.brand.example":     "brand",
		"eu.brand.example":      "eu",
		"t.eu.brand.example.":   "eu",
		"[eu.brand.example]:80": "eu",
		"x.other.example":       "eu",
		"neu.brand.example":     "brand",
		"notbrand.example":      "",
		"example":               "",
	} {
		s, ok := snap.SiteByHost(host)
		got := ""
		if ok {
			got = s.ID
		}
		if got != want {
			t.Errorf("SiteByHost(%q) = %q; want %q", host, got, want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	oracle := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	for _, s := range []string{"shop", "shop-eu_2", "", "-a", "_a", "A", strings.Repeat("a", 63), strings.Repeat("a", 64), "a b", "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidID(s), oracle.MatchString(s); got != want {
			t.Fatalf("ValidID(%q) = %v; the pattern says %v", s, got, want)
		}
	})
}
