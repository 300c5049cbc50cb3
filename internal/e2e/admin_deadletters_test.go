package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAdminDeadLettersWired: the gateway's admin API reaches the queue's
// dead letters (without the queue it answers 503).
func TestAdminDeadLettersWired(t *testing.T) {
	url := startGateway(t, gatewayOptions{env: map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SITE_DOMAINS": "shop.example"}}).URL
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/admin/v1/sites/default/deadletters", "", `"items": []`},
		{"POST", "/admin/v1/sites/default/deadletters/replay", "{}", `"replayed": 0`},
	} {
		req, err := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, res.StatusCode, b)
		}
	}
}
