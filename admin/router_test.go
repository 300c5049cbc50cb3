package admin

import (
	"slices"
	"testing"
)

// TestNotFoundAndMethodNotAllowed: once authenticated, a path no endpoint
// has is 404, and a method a path does not take is 405 with the methods
// it takes in Allow, whatever the ids.
func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t, true, rootToken)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PATCH", "/admin/v1/sites", 405, "GET, POST"},
		{"HEAD", "/admin/v1/sites", 405, "GET, POST"},
		{"POST", "/admin/v1/sites/no-such-site", 405, "GET, PUT, DELETE"},
		{"PUT", "/admin/v1/keys/no-such-key", 405, "GET, DELETE"},
		{"GET", "/admin/v1/sites/no-such-site/ingest-keys", 405, "POST"},
		{"PUT", "/admin/v1/sites/no-such-site/deadletters", 405, "GET"},
		{"GET", "/admin/v1/sites/no-such-site/deadletters/replay", 405, "POST"},
		{"DELETE", "/admin/v1/export", 405, "GET"},
		{"GET", "/admin/v1/nope", 404, ""},
		{"GET", "/admin/v1/sites/a/b", 404, ""},
		{"GET", "/admin/v1", 404, ""},
		{"GET", "/admin/v2/sites", 404, ""},
	} {
		r := e.do("root", c.method, c.path, nil)
		code := map[int]string{404: "not_found", 405: "method_not_allowed"}[c.status]
		if r.status != c.status || r.header.Get("Allow") != c.allow || (c.method != "HEAD" && r.errCode() != code) {
			t.Errorf("%s %s = %d Allow %q %s; want %d Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), r.raw, c.status, c.allow)
		}
	}
}

// TestEndpointsComeFromTheRouter: Endpoints lists what the router serves,
// each method and path once.
func TestEndpointsComeFromTheRouter(t *testing.T) {
	eps := Endpoints()
	seen := map[Endpoint]bool{}
	for _, ep := range eps {
		if seen[ep] {
			t.Errorf("%v listed twice", ep)
		}
		seen[ep] = true
	}
	for _, want := range []Endpoint{{"GET", "/admin/v1/sites"}, {"PUT", "/admin/v1/routes/{id}"}, {"DELETE", "/admin/v1/keys/{id}"},
		{"POST", "/admin/v1/sites/{id}/deadletters/drop"}, {"POST", "/admin/v1/secrets/reencrypt"}} {
		if !slices.Contains(eps, want) {
			t.Errorf("Endpoints lacks %v", want)
		}
	}
	if slices.Contains(eps, Endpoint{"PUT", "/admin/v1/keys/{id}"}) {
		t.Error("Endpoints lists PUT /admin/v1/keys/{id}, which is not served")
	}
}
