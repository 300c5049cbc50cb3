package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/authlimit"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
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

// TestIngestKeyDigestsStayPrivateAndUnique: nobody reads an ingest key's
// digest back (a GET, a list or an export shows an id and the last four
// characters), and no site may hold a digest another site holds, with an
// answer that names nothing of the other site.
func TestIngestKeyDigestsStayPrivateAndUnique(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	const keyB = "b-ingest-key-0123456789-wxyz"
	digest := model.HashKey(keyB)
	r := e.must(200, e.do("b-admin", "GET", "/admin/v1/sites/b-shop", nil))
	e.must(200, e.do("b-admin", "PUT", "/admin/v1/sites/b-shop",
		map[string]any{"id": "b-shop", "domains": []string{"b-shop.example"}, "ingest_keys": []string{keyB}}, "If-Match", r.header.Get("ETag")))
	e.newKey("b-viewer", "b", "viewer")
	for _, who := range []string{"b-viewer", "b-admin", "root"} {
		for _, p := range []string{"/admin/v1/sites/b-shop", "/admin/v1/sites", "/admin/v1/export"} {
			r := e.must(200, e.do(who, "GET", p, nil))
			if strings.Contains(r.raw, digest) || strings.Contains(r.raw, "ingest_key_hashes") || strings.Contains(r.raw, keyB) {
				t.Errorf("GET %s as %s shows the key or its digest: %s", p, who, r.raw)
			}
			if !strings.Contains(r.raw, model.IngestKeyID(digest)) || !strings.Contains(r.raw, `"last4": "wxyz"`) {
				t.Errorf("GET %s as %s does not show the key's id and hint: %s", p, who, r.raw)
			}
		}
	}
	// A GET written back keeps the key.
	r = e.must(200, e.do("b-admin", "GET", "/admin/v1/sites/b-shop", nil))
	e.must(200, e.do("b-admin", "PUT", "/admin/v1/sites/b-shop", r.raw, "If-Match", r.header.Get("ETag")))
	if s, _ := e.store.Snapshot().SiteByIngestKey(keyB); s == nil || s.ID != "b-shop" {
		t.Fatalf("the key stopped working after a GET written back: %v", s)
	}
	// Copying the digest (as a viewer could before) is refused, in every
	// form, without a word about b-shop.
	for _, body := range []map[string]any{
		{"id": "zz", "domains": []string{"zz.example"}, "ingest_key_hashes": []string{digest}},
		{"id": "zz", "domains": []string{"zz.example"}, "ingest_keys": []string{keyB}},
		{"id": "zz", "domains": []string{"zz.example"}, "retiring_ingest_keys": []map[string]any{{"hash": digest, "until": "2030-01-01T00:00:00Z"}}},
	} {
		r := e.do("a-admin", "POST", "/admin/v1/sites", body)
		if r.status != 422 || !strings.Contains(r.errField(), "ingest_key") || strings.Contains(r.raw, "b-shop") || strings.Contains(r.raw, "sites[") {
			t.Errorf("a copied key: %d %s", r.status, r.raw)
		}
	}
	r = e.do("a-admin", "POST", "/admin/v1/apply", map[string]any{"sites": []any{map[string]any{"id": "zz", "domains": []string{"zz.example"}, "ingest_key_hashes": []string{digest}}}})
	if r.status != 422 || r.errField() != "sites[0].ingest_key_hashes[0]" || strings.Contains(r.raw, "b-shop") {
		t.Errorf("a copied key through apply: %d %s", r.status, r.raw)
	}
	if s, _ := e.store.Snapshot().SiteByIngestKey(keyB); s == nil || s.ID != "b-shop" {
		t.Errorf("B's key now authenticates for %v", s)
	}
	// A rotation answers the new key once, with its id and hint.
	r = e.must(201, e.do("b-admin", "POST", "/admin/v1/sites/b-shop/ingest-keys", map[string]string{"overlap": "1h"}))
	key, _ := r.body["ingest_key"].(string)
	if r.body["id"] != model.IngestKeyID(model.HashKey(key)) || r.body["last4"] != key[len(key)-4:] {
		t.Errorf("rotation answer: %s", r.raw)
	}
	r = e.must(200, e.do("b-viewer", "GET", "/admin/v1/sites/b-shop", nil))
	if !strings.Contains(r.raw, "valid_until") || !strings.Contains(r.raw, `"last4": "`+key[len(key)-4:]+`"`) {
		t.Errorf("after the rotation: %s", r.raw)
	}
}

// TestPlatformURLsAreTheOperators: a tenant key can neither set nor change
// a destination's platform API URL (any *_url setting), through any write;
// a write that leaves it out keeps the operator's value. A stored secret
// never follows a destination to a new address, not even the root's.
func TestPlatformURLsAreTheOperators(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	const capture = "http://127.0.0.1:18778"
	kept := map[string]any{"set": true}
	get := func(who, id string) resp { return e.must(200, e.do(who, "GET", "/admin/v1/destinations/"+id, nil)) }
	put := func(who, id string, settings map[string]any) resp {
		etag := get("root", id).header.Get("ETag")
		return e.do(who, "PUT", "/admin/v1/destinations/"+id, map[string]any{"id": id, "site": "b-shop", "type": "meta", "settings": settings}, "If-Match", etag)
	}
	// The attack: B's own key points b-meta elsewhere, keeping the
	// stored token.
	for _, settings := range []map[string]any{
		{"pixel_id": "222", "access_token": kept, "graph_url": capture},
		{"pixel_id": "222", "access_token": "EAAnew-token-0123456789", "graph_url": capture},
		{"pixel_id": "222", "token_url": capture},
	} {
		r := put("b-admin", "b-meta", settings)
		if r.status != 422 || !strings.HasSuffix(r.errField(), "_url") || !strings.Contains(r.raw, "operator") {
			t.Errorf("tenant PUT %v: %d %s", settings, r.status, r.raw)
		}
	}
	r := e.do("b-admin", "POST", "/admin/v1/destinations", map[string]any{"id": "b-two", "site": "b-shop", "type": "meta",
		"settings": map[string]any{"pixel_id": "3", "graph_url": capture}})
	if r.status != 422 || r.errField() != "settings.graph_url" {
		t.Errorf("tenant POST: %d %s", r.status, r.raw)
	}
	r = e.do("b-admin", "POST", "/admin/v1/apply", map[string]any{"sites": []any{}, "destinations": []any{map[string]any{
		"id": "b-meta", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "222", "access_token": kept, "graph_url": capture}}}})
	if r.status != 422 || r.errField() != "destinations[0].settings.graph_url" {
		t.Errorf("tenant apply: %d %s", r.status, r.raw)
	}
	// The store refuses it too, whatever the endpoint.
	_, err := e.store.Update(t.Context(), config.Actor{ID: "b-admin", Tenant: "b"}, config.UpdateOptions{}, func(st *config.State) error {
		for i, d := range st.Config.Destinations {
			if d.ID == "b-meta" {
				st.Config.Destinations[i].Settings = []byte(`{"pixel_id":"222","access_token":"` + tokenB + `","graph_url":"` + capture + `"}`)
			}
		}
		return nil
	})
	var inv *config.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "settings.graph_url") {
		t.Errorf("a tenant's Update setting graph_url: %v", err)
	}
	// The operator (root) may set it; the tenant's later writes keep it,
	// whether they echo it or leave it out.
	const operatorURL = "https://graph-proxy.operator.example"
	e.must(200, put("root", "b-meta", map[string]any{"pixel_id": "222", "access_token": tokenB, "graph_url": operatorURL}))
	e.must(200, put("b-admin", "b-meta", map[string]any{"pixel_id": "222", "access_token": kept, "test_event_code": "T1"}))
	e.must(200, put("b-admin", "b-meta", map[string]any{"pixel_id": "222", "access_token": kept, "graph_url": operatorURL}))
	st, err := e.store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Config.Destinations {
		if d.ID == "b-meta" && (!strings.Contains(string(d.Settings), operatorURL) || !strings.Contains(string(d.Settings), tokenB)) {
			t.Errorf("b-meta after the tenant's writes: %s", d.Settings)
		}
	}
	// Where it sends changes: the redacted token is refused, even for root;
	// a new token goes.
	r = put("root", "b-meta", map[string]any{"pixel_id": "222", "access_token": kept, "graph_url": "https://other.operator.example"})
	if r.status != 422 || r.errField() != "settings.access_token" || !strings.Contains(r.raw, "settings.graph_url") {
		t.Errorf("root moving b-meta with the stored token: %d %s", r.status, r.raw)
	}
	e.must(200, put("root", "b-meta", map[string]any{"pixel_id": "222", "access_token": "EAAfresh-token-0123456789", "graph_url": "https://other.operator.example"}))
}

// TestReusedSiteIDInheritsNothing: the case. B deletes its route,
// destination and site; A cannot take the id while B's last writes may
// still land, and once it can, A's site has no dead letters, replays
// nothing and has no identities or test results of B's.
func TestReusedSiteIDInheritsNothing(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	ctx := t.Context()
	for i := range 8 {
		err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.DeadKey("b-shop", "b-meta"), Values: []any{
			"event", fmt.Sprintf(`{"event_name":"Purchase","event_id":"b-%d","user_data":{"em":["%s"],"client_ip_address":"198.51.100.7","fbp":"fb.1.1.B"}}`, i, model.HashKey("jane@b.example")),
			"reason", "permanent", "message", "meta: refused", "attempts", "1", "failed_at", "1772366400000"}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	e.rdb.HSet(ctx, routing.IdentityKey("b-shop", "fb.1.1.B"), "em", model.HashKey("jane@b.example"))
	e.rdb.LPush(ctx, routing.TestResultsKey("b-shop", "b-route"), `{"event_id":"b-test"}`)
	r := e.must(200, e.do("b-admin", "GET", "/admin/v1/sites/b-shop/deadletters", nil))
	if !strings.Contains(r.raw, "b-7") {
		t.Fatalf("B's dead letters: %s", r.raw)
	}
	for _, p := range []string{"/admin/v1/routes/b-route", "/admin/v1/destinations/b-meta", "/admin/v1/sites/b-shop"} {
		e.must(204, e.do("b-admin", "DELETE", p, nil))
	}
	newSite := map[string]any{"id": "b-shop", "domains": []string{"a-second.example"}}
	r = e.do("a-admin", "POST", "/admin/v1/sites", newSite)
	if r.status != 409 || r.errCode() != "id_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("A taking the id at once: %d %v %s", r.status, r.header, r.raw)
	}
	e.advance(config.DefaultSiteReuseDelay)
	e.must(201, e.do("a-admin", "POST", "/admin/v1/sites", newSite))
	e.must(201, e.do("a-admin", "POST", "/admin/v1/destinations", map[string]any{"id": "b-meta", "site": "b-shop", "type": "meta",
		"settings": map[string]any{"pixel_id": "333", "access_token": tokenA}}))
	e.must(201, e.do("a-admin", "POST", "/admin/v1/routes", map[string]any{"id": "b-route", "site": "b-shop", "destination": "b-meta"}))
	r = e.must(200, e.do("a-admin", "GET", "/admin/v1/sites/b-shop/deadletters", nil))
	if strings.Contains(r.raw, `"b-`) || strings.Contains(r.raw, "198.51.100.7") || !strings.Contains(r.raw, `"items": []`) {
		t.Errorf("A sees B's dead letters: %s", r.raw)
	}
	if r := e.must(200, e.do("a-admin", "POST", "/admin/v1/sites/b-shop/deadletters/replay", "{}")); !strings.Contains(r.raw, `"replayed": 0`) {
		t.Errorf("replay: %s", r.raw)
	}
	if r := e.must(200, e.do("a-admin", "GET", "/admin/v1/routes/b-route/test-results", nil)); strings.Contains(r.raw, "b-test") {
		t.Errorf("test results: %s", r.raw)
	}
	if n, _ := e.rdb.Exists(ctx, routing.IdentityKey("b-shop", "fb.1.1.B")).Result(); n != 0 {
		t.Error("B's visitor identity is still stored")
	}
}

// TestWrongTokensBackOff: past a few wrong tokens, a client gets 429 with
// Retry-After before its token is looked at, even the root token; other
// clients are not held back; the limiter's memory stays bounded.
func TestWrongTokensBackOff(t *testing.T) {
	e := newEnv(t, true, rootToken)
	limiter := authlimit.New(authlimit.Options{Free: 3, Base: 4 * time.Second, Now: e.clock})
	api, err := New(Options{Store: e.store, RootToken: rootToken, Now: e.clock, AuthLimiter: limiter,
		ClientAddr: func(r *http.Request) string { return r.Header.Get("X-Test-Client") }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	e.url = srv.URL
	const attacker, other = "X-Test-Client", "203.0.113.66"
	for i, tok := range []string{"", "wrong-token-0123456789", "twk_a-admin_" + strings.Repeat("x", 43)} {
		if r := e.do(tok, "GET", "/admin/v1/sites", nil, attacker, "203.0.113.50"); r.status != 401 {
			t.Fatalf("wrong token %d: %d", i, r.status)
		}
	}
	r := e.do("root", "GET", "/admin/v1/sites", nil, attacker, "203.0.113.50")
	if r.status != 429 || r.errCode() != "too_many_failures" || r.header.Get("Retry-After") != "4" {
		t.Errorf("after 3 wrong tokens, with the root token: %d %v %s", r.status, r.header, r.raw)
	}
	if r := e.do("root", "GET", "/admin/v1/sites", nil, attacker, other); r.status != 200 {
		t.Errorf("another client: %d %s", r.status, r.raw)
	}
	e.advance(4 * time.Second)
	if r := e.do("root", "GET", "/admin/v1/sites", nil, attacker, "203.0.113.50"); r.status != 200 {
		t.Errorf("after Retry-After: %d %s", r.status, r.raw)
	}
}
