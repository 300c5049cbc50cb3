package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestServerIngestConsent: a store back end states the buyer's consent on
// /v1/events (tagway's extension): an event whose marketing consent is
// denied is kept from Meta like a browser event without consent, and a
// consented one of the same request goes.
func TestServerIngestConsent(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	now := time.Now().Unix()
	event := func(id, consent string) string {
		return fmt.Sprintf(`{"event_name":"Purchase","event_time":%d,"event_id":%q,"action_source":"physical_store",%s
		  "user_data":{"em":"buyer@example.com","client_ip_address":"2001:db8::1"},
		  "custom_data":{"value":19.9,"currency":"GBP"}}`, now, id, consent)
	}
	body := `{"data":[` + event("order-denied", `"consent":{"ad_storage":"denied","ad_user_data":"denied"},`) + `,` +
		event("order-granted", "") + `]}`
	resp, out := post(t, g.URL+"/v1/events", map[string]string{"Authorization": "Bearer " + testIngestKey}, body)
	if resp.StatusCode != http.StatusOK || out["events_received"] != float64(2) {
		t.Fatalf("ingest: %d %v", resp.StatusCode, out)
	}
	got := g.Graph.WaitEvents(testPixel, 1, 10*time.Second)
	if len(got) != 1 || got[0].EventID != "order-granted" {
		t.Fatalf("graph received %+v; want order-granted only", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for withheldMetric(t, g, "meta", "consent:ad_storage") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the denied server event was not withheld from Meta")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(g.Graph.Events(testPixel)); n != 1 {
		t.Errorf("Meta received %d events; want 1", n)
	}
}
