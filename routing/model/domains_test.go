package model

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSiteDomainsRefusePublicSuffixes: no site claims a public suffix (it
// would cover every other site below it); a tenant's site needs a domain
// name, while the operator's own sites (the quick start) may use an IP
// address or localhost.
func TestSiteDomainsRefusePublicSuffixes(t *testing.T) {
	tests := []struct {
		domain, tenant string
		want           string // "" for valid
	}{
		{"com", "", "public suffix"},
		{"co.uk", "", "public suffix"},
		{"CO.UK", "agency", "public suffix"},
		{"github.io", "agency", "public suffix"},
		{"com", "agency", "public suffix"},
		{"shop.example", "agency", ""},
		{"shop.co.uk", "agency", ""},
		{"alice.github.io", "agency", ""},
		{"127.0.0.1", "", ""},
		{"localhost", "", ""},
		{"127.0.0.1", "agency", "IP address or a single-label name"},
		{"::1", "agency", "IP address or a single-label name"},
		{"localhost", "agency", "IP address or a single-label name"},
	}
	for _, tt := range tests {
		cfg := Config{Sites: []Site{{ID: "s", Tenant: tt.tenant, Domains: []string{tt.domain}}}}
		if tt.tenant != "" {
			cfg.Tenants = []Tenant{{ID: tt.tenant}}
		}
		err := errors.Join(cfg.Validate(), cfg.ValidateClaims(func(string) bool { return true }))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q (tenant %q): %v", tt.domain, tt.tenant, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "sites[0].domains[0]")):
			t.Errorf("%q (tenant %q): %v; want %q", tt.domain, tt.tenant, err, tt.want)
		}
	}
}

// TestClaimsOfStoredSitesWait: sites stored before the claim rules are
// not refused until they change; a changed site sharing an ingest key with
// another is refused, naming only its own field.
func TestClaimsOfStoredSitesWait(t *testing.T) {
	shared := HashKey("shared-key-0123456789")
	cfg := Config{Tenants: []Tenant{{ID: "a"}, {ID: "b"}}, Sites: []Site{
		{ID: "old", Tenant: "a", Domains: []string{"com"}, IngestKeyHashes: []string{shared}},
		{ID: "new", Tenant: "b", Domains: []string{"new.example"}, RetiringIngestKeys: []RetiringKey{{Hash: shared, Until: time.Now()}}},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := cfg.ValidateClaims(func(id string) bool { return false }); err != nil {
		t.Errorf("nothing changed: %v", err)
	}
	err := cfg.ValidateClaims(func(id string) bool { return id == "new" })
	if err == nil || err.Error() != "sites[1].retiring_ingest_keys[0]: this ingest key cannot be used; mint a new one (POST /admin/v1/sites/{id}/ingest-keys)" {
		t.Errorf("the changed site: %v", err)
	}
}
