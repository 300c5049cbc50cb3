package model

import (
	"strings"
	"testing"
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
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q (tenant %q): %v", tt.domain, tt.tenant, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "sites[0].domains[0]")):
			t.Errorf("%q (tenant %q): %v; want %q", tt.domain, tt.tenant, err, tt.want)
		}
	}
}
