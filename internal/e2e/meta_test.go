package e2e

// End-to-end tests of issue 3 (Meta Conversions API exactly right): every
// server-event field from both ingest paths into Meta's request, several
// pixels per site, the drop-in endpoint, identity enrichment across
// requests, and dead-lettering of events that aged past Meta's limit while
// queued. Real redis-server, strict fake Graph API.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/queue"
)

// TestMetaEveryFieldBothPaths: each documented server-event field, sent
// through /collect and through /v1/events, reaches Meta's request as sent.
func TestMetaEveryFieldBothPaths(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	now := time.Now().Unix()
	allCustom := `{"value":129.5,"currency":"EUR","content_ids":["sku-1","sku-2"],
	  "contents":[{"id":"sku-1","quantity":2,"item_price":49.5,"delivery_category":"home_delivery"},{"id":"sku-2","quantity":1,"item_price":30}],
	  "content_type":"product","content_name":"Blue shoes","content_category":"Shoes","num_items":3,"order_id":"1001",
	  "predicted_ltv":410.25,"search_string":"blue shoes","status":"completed","delivery_category":"curbside",
	  "coupon":"WELCOME10","gift":{"wrap":true,"note":"happy birthday"}}`
	rows := []struct {
		name   string
		fields string         // extra event fields, JSON object members
		want   map[string]any // expected members of Meta's event (JSON values)
	}{
		{"event_time", fmt.Sprintf(`"event_time":%d`, now-3600), map[string]any{"event_time": now - 3600}},
		{"event_source_url", `"event_source_url":"https://shop.example/p/1?x=2"`, map[string]any{"event_source_url": "https://shop.example/p/1?x=2"}},
		{"opt_out", `"opt_out":true`, map[string]any{"opt_out": true}},
		{"referrer_url", `"referrer_url":"https://www.google.com/search?q=shoes"`, map[string]any{"referrer_url": "https://www.google.com/search?q=shoes"}},
		{"LDU", `"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000`,
			map[string]any{"data_processing_options": []string{"LDU"}, "data_processing_options_country": 1, "data_processing_options_state": 1000}},
		{"explicitly no LDU", `"data_processing_options":[]`, map[string]any{}},
		{"custom_data, every field and custom properties", `"custom_data":` + allCustom, map[string]any{"custom_data": json.RawMessage(allCustom)}},
		{"numeric strings", `"custom_data":{"value":"142.52","currency":"usd","num_items":"2"}`,
			map[string]any{"custom_data": map[string]any{"value": 142.52, "currency": "USD", "num_items": 2}}},
	}
	for _, src := range []string{"email", "website", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other"} {
		rows = append(rows, struct {
			name   string
			fields string
			want   map[string]any
		}{"action_source " + src, `"action_source":"` + src + `"`, map[string]any{"action_source": src}})
	}

	type sent struct {
		id   string
		want map[string]any
	}
	var all []sent
	for i, row := range rows {
		for _, path := range []string{"collect", "server"} {
			id := fmt.Sprintf("%s-%d", path, i)
			name := "Lead"
			want := map[string]any{"event_name": name, "event_id": id}
			for k, v := range row.want {
				want[k] = v
			}
			var resp *http.Response
			var out map[string]any
			if path == "collect" {
				resp, out = post(t, g.URL+"/collect", map[string]string{"Origin": "http://127.0.0.1", "User-Agent": "Mozilla/5.0 (e2e)"},
					fmt.Sprintf(`{"url":"http://127.0.0.1/page","events":[{"event_name":%q,"event_id":%q,%s}]}`, name, id, row.fields))
			} else {
				base := fmt.Sprintf(`"event_name":%q,"event_id":%q,"event_time":%d,"action_source":"website","event_source_url":"http://127.0.0.1/page"`, name, id, now)
				ev := "{" + base + "," + row.fields + `,"user_data":{"em":"jane@example.com","client_user_agent":"Mozilla/5.0 (e2e)","client_ip_address":"203.0.113.9"}}`
				resp, out = post(t, g.URL+"/v1/events", map[string]string{"Authorization": "Bearer " + testIngestKey}, `{"data":[`+ev+`]}`)
			}
			// A browser event the gateway fixed (numeric strings) is kept,
			// answered with a 200 that lists the fixes.
			if want := map[string]int{"collect": http.StatusNoContent, "server": http.StatusOK}[path]; resp.StatusCode != want &&
				(path != "collect" || resp.StatusCode != http.StatusOK || out["accepted"] != float64(1)) {
				t.Fatalf("%s via %s: %d %v", row.name, path, resp.StatusCode, out)
			}
			all = append(all, sent{id, want})
		}
	}
	got := g.Graph.WaitEvents(testPixel, len(all), 20*time.Second)
	byID := map[string]metatest.Received{}
	for _, r := range got {
		byID[r.EventID] = r
	}
	for _, s := range all {
		r, ok := byID[s.id]
		if !ok {
			t.Errorf("%s never reached Meta", s.id)
			continue
		}
		for k, v := range s.want {
			if canon(t, r.Event[k]) != canon(t, v) {
				t.Errorf("%s: %s = %s; want %s", s.id, k, canon(t, r.Event[k]), canon(t, v))
			}
		}
		if r.PartnerAgent != "tagway" {
			t.Errorf("%s: partner_agent %q", s.id, r.PartnerAgent)
		}
	}
}

// TestMetaSeveralPixelsPerSite: one site, two Meta pixels, each with its
// own token, test_event_code and API version; both get every event, from
// /v1/events and from the drop-in endpoint (which fans out to every route
// of the site).
func TestMetaSeveralPixelsPerSite(t *testing.T) {
	g := startGateway(t, gatewayOptions{config: fmt.Sprintf(`{"sites":[{"id":"shop","domains":["127.0.0.1","localhost"],"ingest_keys":[%q]}],
	  "destinations":[
	    {"id":"meta-one","site":"shop","type":"meta","settings":{"pixel_id":"1001","access_token":"EAAtokenONE-secret","test_event_code":"TEST1"}},
	    {"id":"meta-two","site":"shop","type":"meta","settings":{"pixel_id":"2002","access_token":"EAAtokenTWO-secret","test_event_code":"TEST2","api_version":"v23.0"}}],
	  "routes":[{"id":"r1","site":"shop","destination":"meta-one"},{"id":"r2","site":"shop","destination":"meta-two"}]}`, testIngestKey)})
	graph := g.Graph
	graph.AddPixel("1001", "EAAtokenONE-secret")
	graph.AddPixel("2002", "EAAtokenTWO-secret")
	now := time.Now().Unix()
	ev := fmt.Sprintf(`{"event_name":"Purchase","event_time":%d,"event_id":"order-9","action_source":"physical_store",
	  "user_data":{"em":"jane@example.com"},"custom_data":{"value":10,"currency":"EUR"}}`, now)
	if resp, out := post(t, g.URL+"/v1/events", map[string]string{"Authorization": "Bearer " + testIngestKey}, `{"data":[`+ev+`]}`); resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, out)
	}
	// The drop-in endpoint, named by the second pixel, form-encoded.
	ev2 := strings.Replace(ev, "order-9", "order-10", 1)
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v24.0/2002/events", strings.NewReader("data="+urlEscape(`[`+ev2+`]`)+"&access_token="+urlEscape(testIngestKey)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ok struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages"`
		FBTraceID      string   `json:"fbtrace_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ok)
	resp.Body.Close()
	if resp.StatusCode != 200 || ok.EventsReceived != 1 || ok.FBTraceID == "" {
		t.Fatalf("drop-in endpoint: %d %+v", resp.StatusCode, ok)
	}
	for pixel, code := range map[string]string{"1001": "TEST1", "2002": "TEST2"} {
		got := graph.WaitEvents(pixel, 2, 10*time.Second)
		for _, r := range got {
			if r.TestEventCode != code || r.PartnerAgent != "tagway" {
				t.Errorf("pixel %s got test_event_code %q partner_agent %q; want %s, tagway", pixel, r.TestEventCode, r.PartnerAgent, code)
			}
		}
	}
	if rej := graph.Rejections(); len(rej) != 0 {
		t.Errorf("the fake refused requests (wrong token for a pixel?): %v", rej)
	}
	if strings.Contains(g.Logs.String(), "EAAtokenONE-secret") || strings.Contains(g.Logs.String(), "EAAtokenTWO-secret") {
		t.Error("a pixel token is in the logs")
	}
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "=", "%3D", " ", "%20", "\n", "%0A", "\t", "%09", "#", "%23")
	return r.Replace(s)
}

// TestIdentityEnrichmentAcrossRequests: a visitor identifies on one page
// (a Lead with an e-mail); an AddToCart in a later request, with no
// user_data, reaches Meta with that e-mail's digest.
func TestIdentityEnrichmentAcrossRequests(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	send := func(body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/collect", strings.NewReader(body))
		req.Header.Set("Origin", "http://127.0.0.1")
		req.Header.Set("User-Agent", "Mozilla/5.0 (e2e)")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("collect: %d", resp.StatusCode)
		}
	}
	send(`{"vid":"1732752000000.482913756104","url":"http://127.0.0.1/login","events":[{"event_name":"Lead","event_id":"lead-1","user_data":{"em":"Jane@Example.com","external_id":"cust-9"}}]}`)
	send(`{"vid":"1732752000000.482913756104","url":"http://127.0.0.1/p/1","events":[{"event_name":"AddToCart","event_id":"cart-1","custom_data":{"content_ids":["sku-1"]}}]}`)
	got := g.Graph.WaitEvents(testPixel, 2, 10*time.Second)
	for _, r := range got {
		if r.EventID != "cart-1" {
			continue
		}
		if fmt.Sprint(r.UserData["em"]) != fmt.Sprint([]any{sha("jane@example.com")}) ||
			fmt.Sprint(r.UserData["external_id"]) != fmt.Sprint([]any{sha("cust-9")}) {
			t.Errorf("AddToCart user_data %v; want the Lead's em and external_id", r.UserData)
		}
		return
	}
	t.Fatal("AddToCart never reached Meta")
}

// TestStaleEventDeadLetteredAtSendTime: an event that aged past Meta's
// 7 days while queued goes to the dead letters with the reason, never to
// Meta (which would reject the whole batch with it); a fresh event of the
// same batch is delivered.
func TestStaleEventDeadLetteredAtSendTime(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	rdb := redis.NewClient(&redis.Options{Addr: g.Redis.Addr})
	defer rdb.Close()
	ctx := context.Background()
	now := time.Now()
	event := func(id string, at time.Time, src string) destinations.Event {
		return destinations.Event{EventName: "Purchase", EventID: id, EventTime: at.Unix(), ActionSource: src,
			EventSourceURL: "https://shop.example/", UserData: destinations.UserData{Em: []string{sha("a@example.com")},
				ClientUserAgent: "UA", ClientIPAddress: "203.0.113.9"},
			CustomData: &destinations.CustomData{Value: new(float64), Currency: "EUR"},
			Context: destinations.Context{SiteID: "default", Source: "server",
				Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}}}
	}
	// As if enqueued long ago: the ingest check passed then.
	batch := []destinations.Event{
		event("stale", now.Add(-7*24*time.Hour-time.Minute), "website"),
		event("fresh", now.Add(-time.Minute), "website"),
		event("store-30d", now.Add(-30*24*time.Hour), "physical_store"),
		event("store-63d", now.Add(-63*24*time.Hour), "physical_store"),
	}
	if err := queue.New(rdb, queue.Options{}).Enqueue(ctx, "default", batch); err != nil {
		t.Fatal(err)
	}
	got := g.Graph.WaitEvents(testPixel, 2, 10*time.Second)
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.EventID] = true
	}
	if !ids["fresh"] || !ids["store-30d"] || ids["stale"] || ids["store-63d"] {
		t.Errorf("Meta got %v; want fresh and store-30d only", ids)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, err := rdb.XRange(ctx, routing.DeadKey("default", "meta"), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) == 2 {
			for _, d := range dead {
				var ev destinations.Event
				_ = json.Unmarshal([]byte(fmt.Sprint(d.Values["event"])), &ev)
				if d.Values["reason"] != dispatch.ReasonTooOld || (ev.EventID != "stale" && ev.EventID != "store-63d") {
					t.Errorf("dead letter %v", d.Values)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %v; want the two stale events", dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rej := g.Graph.Rejections(); len(rej) != 0 {
		t.Errorf("Meta rejected requests: %v", rej)
	}
}
