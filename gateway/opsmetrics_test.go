package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsAreNotPublic: the public port, which any visitor reaches,
// does not list the tenants' site ids in /metrics: without a token it
// serves no metrics, with one it serves them to that bearer only; the
// private listener's OpsHandler serves them with /healthz and /readyz.
func TestMetricsAreNotPublic(t *testing.T) {
	tg := newTestGateway(t, nil)
	tg.do("POST", "/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example")
	const site = `site="shop"`
	if w := tg.do("GET", "/metrics", ""); w.Code != 404 || strings.Contains(w.Body.String(), site) {
		t.Errorf("public /metrics without a token: %d %s", w.Code, w.Body)
	}
	ops := tg.OpsHandler()
	for path, want := range map[string]string{"/metrics": site, "/healthz": "ok", "/readyz": "ok"} {
		w := httptest.NewRecorder()
		ops.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:9090"+path, nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("ops %s: %d %s", path, w.Code, w.Body)
		}
	}
	w := httptest.NewRecorder()
	ops.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:9090/collect", nil))
	if w.Code != 404 {
		t.Errorf("the ops listener serves /collect: %d", w.Code)
	}

	const token = "metrics-token-0123456789"
	tg = newTestGateway(t, func(o *Options) { o.MetricsToken = token })
	tg.do("POST", "/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example")
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + token, token} {
		if w := tg.do("GET", "/metrics", "", "Authorization", auth); w.Code != 401 || strings.Contains(w.Body.String(), site) || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("public /metrics with %q: %d %s", auth, w.Code, w.Body)
		}
	}
	if w := tg.do("GET", "/metrics", "", "Authorization", "Bearer "+token); w.Code != 200 || !strings.Contains(w.Body.String(), site) {
		t.Errorf("public /metrics with the token: %d %s", w.Code, w.Body)
	}
}
