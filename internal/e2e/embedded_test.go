package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEmbeddedRedisQuickStart is `go run .` on a fresh machine: no REDIS_URL
// (the embedded in-process Redis), no Meta credentials (dry-run), the demo
// on. An event posted to /collect must travel the whole path — queue,
// consumer group, dispatcher, Meta adapter — into the dry-run recorder, and
// the loud warning must be logged.
func TestEmbeddedRedisQuickStart(t *testing.T) {
	g := startGateway(t, gatewayOptions{embedded: true})
	base, logs := g.URL, g.Logs

	for _, path := range []string{"/", "/tw.js", "/readyz"} {
		resp, _ := getStatus(t, base+path)
		if resp != 200 {
			t.Fatalf("GET %s: %d", path, resp)
		}
	}
	resp, out := post(t, base+"/collect", map[string]string{"Origin": "http://localhost", "User-Agent": "Mozilla/5.0 (embedded)"},
		`{"url":"http://localhost/","events":[{"event_name":"ViewContent","event_id":"embedded-1","custom_data":{"content_ids":["sku-1"]}}]}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("collect: %d %v", resp.StatusCode, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, body := range g.App.DryRuns() {
			if strings.Contains(string(body), `"event_id":"embedded-1"`) {
				if !strings.Contains(logs.String(), "embedded in-process Redis") {
					t.Error("no warning that queued events are lost on restart")
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the event never reached the dry-run Meta destination; logs:\n%s", logs.String())
}
