package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/dispatch"
)

// TestAnonymousEventsWithheldFromMeta: with consent_denied_mode anonymous,
// an event without marketing consent keeps only the user agent, which Meta
// refuses (too little customer information, 2804050). Routing withholds it
// from Meta, counted under consent:anonymous_unsupported, instead of
// sending it and dead-lettering Meta's refusal; a consented event of the
// same visitor still goes.
func TestAnonymousEventsWithheldFromMeta(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{"TAGWAY_CONSENT_DENIED_MODE": "anonymous"}})
	now := time.Now().Unix()
	send := func(id, consent string) {
		t.Helper()
		body := fmt.Sprintf(`{"vid":"1732752000000.482913756104","url":"http://127.0.0.1/thank-you",
		  "consent":{"ad_storage":%[3]q,"ad_user_data":%[3]q,"ad_personalization":%[3]q,"analytics_storage":"granted"},
		  "events":[{"event_name":"Purchase","event_id":%[1]q,"event_time":%[2]d,
		    "custom_data":{"value":42.5,"currency":"EUR"},
		    "user_data":{"em":"jane@example.com","external_id":"cust-9"}}]}`, id, now, consent)
		resp, out := post(t, g.URL+"/collect", map[string]string{"Origin": "http://127.0.0.1", "User-Agent": "Mozilla/5.0 (e2e)"}, body)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("collect %s: %d %v", id, resp.StatusCode, out)
		}
	}
	send("denied-1", "denied")
	send("granted-1", "granted")

	// The consented event arrives; the anonymous one, queued before it, has
	// been decided by then.
	got := g.Graph.WaitEvents(testPixel, 1, 10*time.Second)
	if len(got) != 1 || got[0].EventID != "granted-1" {
		t.Fatalf("graph received %+v; want only granted-1", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for withheldMetric(t, g, "meta", dispatch.ReasonAnonymousUnsupported) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("tagway_events_withheld_total{destination=meta,reason=%s} never counted the anonymous event", dispatch.ReasonAnonymousUnsupported)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a wrong delivery would show by now
	for _, r := range g.Graph.Events(testPixel) {
		if r.EventID != "granted-1" {
			t.Errorf("Meta received %s (%v)", r.EventID, r.UserData)
		}
	}
	if rej := g.Graph.Rejections(); len(rej) != 0 {
		t.Errorf("Meta refused %d requests: %v", len(rej), rej)
	}
	n, err := g.Redis.Client().XLen(context.Background(), routing.DeadKey("default", "meta")).Result()
	if err != nil || n != 0 {
		t.Errorf("dead letters for meta: %d (%v); want none", n, err)
	}
	if c := withheldMetric(t, g, "meta", "consent:ad_storage"); c != 0 {
		t.Errorf("withheld as consent:ad_storage %v times: anonymous mode is on", c)
	}
}
