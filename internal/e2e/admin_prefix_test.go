package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAdminUnderPathPrefix: behind the store's web server the admin API
// lives under the same prefix as the rest of the gateway, configured
// (TAGWAY_BASE_PATH) or announced by a trusted proxy (X-Forwarded-Prefix),
// and the CLI reaches it with the prefix in TAGWAY_URL.
func TestAdminUnderPathPrefix(t *testing.T) {
	base := startGateway(t, gatewayOptions{env: map[string]string{
		"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_BASE_PATH": "/tw", "TAGWAY_TRUSTED_PROXIES": "127.0.0.1/32"}}).URL
	get := func(path, token string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	edge := map[string]string{"X-Forwarded-Prefix": "/edge"}
	for _, c := range []struct {
		path   string
		token  string
		header map[string]string
		want   int
	}{
		{"/tw/admin/v1/sites", adminToken, nil, http.StatusOK},
		{"/tw/admin/v1/sites", "", nil, http.StatusUnauthorized},
		{"/tw/admin/v1/sites", "wrong-token-0123456789", nil, http.StatusUnauthorized},
		{"/tw/admin/v1", "", nil, http.StatusUnauthorized},
		{"/admin/v1/sites", adminToken, nil, http.StatusOK}, // a proxy that strips the prefix
		{"/edge/admin/v1/sites", adminToken, edge, http.StatusOK},
		{"/edge/admin/v1/sites", "", edge, http.StatusUnauthorized},
	} {
		code, body := get(c.path, c.token, c.header)
		if code != c.want {
			t.Errorf("GET %s (token %v, %v): %d, want %d: %s", c.path, c.token != "", c.header, code, c.want, body)
		}
		if c.want == http.StatusOK && !strings.Contains(body, `"default"`) {
			t.Errorf("GET %s: the quick-start site is missing: %s", c.path, body)
		}
	}
	if out := mustCLI(t, base+"/tw", adminToken, "sites", "list"); !strings.Contains(out, "default") {
		t.Errorf("tagway sites list with TAGWAY_URL=…/tw: %s", out)
	}
}
