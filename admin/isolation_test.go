package admin

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// isolationRow is how tenant A attacks tenant B's resources through one
// endpoint: the request, and whether the endpoint lists (200 with nothing
// of B's; 403 when the role may not list) or must refuse (404 or 403).
type isolationRow struct {
	path   string
	body   any
	header []string
	lists  bool
	// refused, when set, are the statuses that refuse instead of 404/403
	// (a route to B's destination is 422 as for a missing one).
	refused []int
}

// isolationRows has a row for every admin endpoint (Endpoints()): a new
// endpoint without one fails TestEveryEndpointIsolatesTenants.
func isolationRows() map[string]isolationRow {
	site := map[string]any{"id": "b-shop", "domains": []string{"b-shop.example"}}
	dest := map[string]any{"id": "b-meta", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "9"}}
	route := map[string]any{"id": "b-route", "site": "b-shop", "destination": "b-meta"}
	anyTag := []string{"If-Match", "*"}
	return map[string]isolationRow{
		"GET /admin/v1/tenants":                        {path: "/admin/v1/tenants", lists: true},
		"POST /admin/v1/tenants":                       {path: "/admin/v1/tenants", body: map[string]any{"id": "b", "name": "Agency b"}},
		"GET /admin/v1/tenants/{id}":                   {path: "/admin/v1/tenants/b"},
		"PUT /admin/v1/tenants/{id}":                   {path: "/admin/v1/tenants/b", body: map[string]any{"id": "b"}, header: anyTag},
		"DELETE /admin/v1/tenants/{id}":                {path: "/admin/v1/tenants/b"},
		"GET /admin/v1/sites":                          {path: "/admin/v1/sites?tenant=b", lists: true},
		"POST /admin/v1/sites":                         {path: "/admin/v1/sites", body: map[string]any{"id": "sneaky", "tenant": "b", "domains": []string{"sneaky.example"}}},
		"GET /admin/v1/sites/{id}":                     {path: "/admin/v1/sites/b-shop"},
		"PUT /admin/v1/sites/{id}":                     {path: "/admin/v1/sites/b-shop", body: site, header: anyTag},
		"DELETE /admin/v1/sites/{id}":                  {path: "/admin/v1/sites/b-shop"},
		"POST /admin/v1/sites/{id}/ingest-keys":        {path: "/admin/v1/sites/b-shop/ingest-keys", body: map[string]string{"overlap": "0s"}},
		"POST /admin/v1/sites/{id}/test-event":         {path: "/admin/v1/sites/b-shop/test-event", body: map[string]string{"event_name": "Purchase"}},
		"GET /admin/v1/sites/{id}/deadletters":         {path: "/admin/v1/sites/b-shop/deadletters?destination=b-meta"},
		"POST /admin/v1/sites/{id}/deadletters/replay": {path: "/admin/v1/sites/b-shop/deadletters/replay", body: map[string]any{}},
		"POST /admin/v1/sites/{id}/deadletters/drop":   {path: "/admin/v1/sites/b-shop/deadletters/drop", body: map[string]any{}},
		"GET /admin/v1/destinations":                   {path: "/admin/v1/destinations?site=b-shop", lists: true},
		"POST /admin/v1/destinations":                  {path: "/admin/v1/destinations", body: map[string]any{"id": "sneaky", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "9"}}},
		"GET /admin/v1/destinations/{id}":              {path: "/admin/v1/destinations/b-meta"},
		"PUT /admin/v1/destinations/{id}":              {path: "/admin/v1/destinations/b-meta", body: dest, header: anyTag},
		"DELETE /admin/v1/destinations/{id}":           {path: "/admin/v1/destinations/b-meta"},
		"GET /admin/v1/routes":                         {path: "/admin/v1/routes?site=b-shop", lists: true},
		"POST /admin/v1/routes":                        {path: "/admin/v1/routes", body: map[string]any{"id": "sneaky", "site": "a-shop", "destination": "b-meta"}, refused: []int{422, 403}},
		"GET /admin/v1/routes/{id}":                    {path: "/admin/v1/routes/b-route"},
		"PUT /admin/v1/routes/{id}":                    {path: "/admin/v1/routes/b-route", body: route, header: anyTag},
		"DELETE /admin/v1/routes/{id}":                 {path: "/admin/v1/routes/b-route"},
		"GET /admin/v1/routes/{id}/test-results":       {path: "/admin/v1/routes/b-route/test-results"},
		"GET /admin/v1/keys":                           {path: "/admin/v1/keys", lists: true},
		"POST /admin/v1/keys":                          {path: "/admin/v1/keys", body: map[string]string{"id": "sneaky", "tenant": "b", "role": "admin"}},
		"GET /admin/v1/keys/{id}":                      {path: "/admin/v1/keys/b-admin"},
		"DELETE /admin/v1/keys/{id}":                   {path: "/admin/v1/keys/b-admin"},
		"GET /admin/v1/audit":                          {path: "/admin/v1/audit?limit=200", lists: true},
		"POST /admin/v1/apply":                         {path: "/admin/v1/apply?prune=true", body: map[string]any{"sites": []any{}, "routes": []any{route}}},
		"GET /admin/v1/export":                         {path: "/admin/v1/export", lists: true},
		"POST /admin/v1/secrets/reencrypt":             {path: "/admin/v1/secrets/reencrypt", body: map[string]any{}},
	}
}

// bLeaks are the strings no answer to A may hold: B's domains, pixel,
// token, tenant name, key ids, ingest key (id and hint), dead letters,
// test results and audit entries.
func bLeaks(keyB string) []string {
	digest := model.HashKey(keyB)
	return []string{"b-shop.example", `"222"`, "bbbb2222", "Agency b", `"b-admin"`, `"b-viewer"`, digest,
		model.IngestKeyID(digest), keyB[len(keyB)-4:], "b-dead-1", "198.51.100.77", "b-test-1", `"actor_tenant": "b"`}
}

// seedB gives tenant B an ingest key, a dead letter and a test result.
func seedB(t *testing.T, e *env, keyB string) {
	t.Helper()
	ctx := context.Background()
	r := e.must(200, e.do("b-admin", "GET", "/admin/v1/sites/b-shop", nil))
	e.must(200, e.do("b-admin", "PUT", "/admin/v1/sites/b-shop",
		map[string]any{"id": "b-shop", "domains": []string{"b-shop.example"}, "ingest_keys": []string{keyB}}, "If-Match", r.header.Get("ETag")))
	err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.DeadKey("b-shop", "b-meta"), Values: []any{
		"event", `{"event_name":"Purchase","event_id":"b-dead-1","user_data":{"client_ip_address":"198.51.100.77"}}`,
		"reason", "permanent", "message", "refused", "attempts", "1", "failed_at", "1772366400000"}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.LPush(ctx, routing.TestResultsKey("b-shop", "b-route"), `{"event_id":"b-test-1","outcome":"delivered"}`).Err(); err != nil {
		t.Fatal(err)
	}
}

// bState is what B owns, as the operator sees it.
func bState(t *testing.T, e *env) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/admin/v1/export", "/admin/v1/keys", "/admin/v1/sites/b-shop/deadletters", "/admin/v1/routes/b-route/test-results"} {
		b.WriteString(e.must(200, e.do("root", "GET", p, nil)).raw)
	}
	return b.String()
}

// TestEveryEndpointIsolatesTenants: for every admin endpoint, each of
// tenant A's keys (admin, editor, viewer) acting on tenant B's resources
// gets 404 or 403 and nothing of B's (lists: only A's own), and changes
// nothing of B's; again after B deleted and re-created its resources.
func TestEveryEndpointIsolatesTenants(t *testing.T) {
	rows := isolationRows()
	known := map[string]bool{}
	for _, ep := range Endpoints() {
		key := ep.Method + " " + ep.Path
		known[key] = true
		if _, ok := rows[key]; !ok {
			t.Errorf("the endpoint %s has no isolation row: add one to isolationRows", key)
		}
	}
	for key := range rows {
		if !known[key] {
			t.Errorf("the isolation row %s names no endpoint", key)
		}
	}

	e := newEnv(t, true, rootToken)
	e.seed()
	e.newKey("b-viewer", "b", "viewer")
	const keyB = "b-ingest-key-0123456789-qrst"
	seedB(t, e, keyB)
	leaks := bLeaks(keyB)

	attack := func(phase string) {
		before := bState(t, e)
		for _, who := range []string{"a-admin", "a-editor", "a-viewer"} {
			for key, row := range rows {
				r := e.do(who, strings.SplitN(key, " ", 2)[0], row.path, row.body, row.header...)
				want := []int{404, 403}
				switch {
				case row.lists:
					want = []int{200, 403}
				case row.refused != nil:
					want = row.refused
				}
				if !slices.Contains(want, r.status) {
					t.Errorf("%s: %s as %s: %d, want one of %v: %s", phase, key, who, r.status, want, r.raw)
				}
				for _, leak := range leaks {
					if strings.Contains(r.raw, leak) {
						t.Errorf("%s: %s as %s shows %s: %s", phase, key, who, leak, r.raw)
					}
				}
			}
		}
		if after := bState(t, e); after != before {
			t.Errorf("%s: A's requests changed B's resources:\nbefore %s\nafter %s", phase, before, after)
		}
	}
	attack("as seeded")

	// B deletes and re-creates its resources under the same ids.
	for _, p := range []string{"/admin/v1/routes/b-route", "/admin/v1/destinations/b-meta", "/admin/v1/sites/b-shop"} {
		e.must(204, e.do("b-admin", "DELETE", p, nil))
	}
	e.must(201, e.do("b-admin", "POST", "/admin/v1/sites", map[string]any{"id": "b-shop", "domains": []string{"b-shop.example"}}))
	e.must(201, e.do("b-admin", "POST", "/admin/v1/destinations", map[string]any{"id": "b-meta", "site": "b-shop", "type": "meta",
		"settings": map[string]any{"pixel_id": "222", "access_token": tokenB}}))
	e.must(201, e.do("b-admin", "POST", "/admin/v1/routes", map[string]any{"id": "b-route", "site": "b-shop", "destination": "b-meta"}))
	seedB(t, e, keyB)
	attack("after B re-created its resources")

	// A's own resources still answer A: the refusals above are about B.
	for _, p := range []string{"/admin/v1/sites/a-shop", "/admin/v1/destinations/a-meta", "/admin/v1/routes/a-route", "/admin/v1/sites/a-shop/deadletters"} {
		e.must(200, e.do("a-viewer", "GET", p, nil))
	}
}
