package admin

import (
	"strings"
	"testing"
)

// TestReservedKeyIDs: no API key takes an operator actor's name, so an
// audit entry's actor "root" is always the root token; every entry names
// the actor's tenant.
func TestReservedKeyIDs(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	for _, id := range []string{"root", "config"} {
		for _, who := range []string{"a-admin", "root"} {
			r := e.do(who, "POST", "/admin/v1/keys", map[string]string{"id": id, "tenant": "a", "role": "admin"})
			if r.status != 400 || r.errField() != "id" || !strings.Contains(r.raw, "reserved") {
				t.Errorf("key id %q as %s: %d %s", id, who, r.status, r.raw)
			}
		}
	}
	r := e.must(200, e.do("a-admin", "GET", "/admin/v1/audit", nil))
	items, _ := r.body["items"].([]any)
	if len(items) == 0 {
		t.Fatal("no audit entries")
	}
	for _, it := range items {
		m := it.(map[string]any)
		tenant, ok := m["actor_tenant"]
		if !ok {
			t.Fatalf("audit entry without actor_tenant: %v", m)
		}
		if m["actor"] == "a-admin" && tenant != "a" {
			t.Errorf("a-admin's entry names tenant %v", tenant)
		}
	}
	if !strings.Contains(e.logs.String(), `"actor_tenant":"a"`) {
		t.Error("the config-change log line does not name the actor's tenant")
	}
}

// TestRouteToAnotherTenantsDestination: a route naming another tenant's
// destination gets the answer of a missing one, naming nothing of the
// other tenant.
func TestRouteToAnotherTenantsDestination(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	other := e.do("a-admin", "POST", "/admin/v1/routes", map[string]any{"id": "r1", "site": "a-shop", "destination": "b-meta"})
	missing := e.do("a-admin", "POST", "/admin/v1/routes", map[string]any{"id": "r1", "site": "a-shop", "destination": "no-such"})
	if other.status != 422 || missing.status != 422 || other.errField() != "destination" {
		t.Fatalf("other tenant's: %d %s; missing: %d %s", other.status, other.raw, missing.status, missing.raw)
	}
	if strings.ReplaceAll(other.raw, "b-meta", "no-such") != missing.raw {
		t.Errorf("the answers differ:\n%s\n%s", other.raw, missing.raw)
	}
	if strings.Contains(other.raw, "b-shop") {
		t.Errorf("the answer names the other tenant's site: %s", other.raw)
	}
}

// TestPublicSuffixDomainRefused: a tenant cannot claim "com" or "co.uk"
// (which would block and catch every other tenant's sites below them).
func TestPublicSuffixDomainRefused(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	r := e.do("a-admin", "POST", "/admin/v1/sites", map[string]any{"id": "grab", "domains": []string{"com", "co.uk"}})
	if r.status != 422 || r.errField() != "domains[0]" || !strings.Contains(r.raw, "domains[1]") || !strings.Contains(r.raw, "public suffix") {
		t.Errorf("public suffixes: %d %s", r.status, r.raw)
	}
	r = e.do("a-admin", "POST", "/admin/v1/sites", map[string]any{"id": "grab", "domains": []string{"10.0.0.1"}})
	if r.status != 422 || r.errField() != "domains[0]" {
		t.Errorf("an IP address on a tenant's site: %d %s", r.status, r.raw)
	}
}
