package e2e

// The two ingest paths end to end: browser events on /collect and server
// events on /v1/events, through the queue, the dispatcher and the Meta
// adapter into the fake Graph API; bad input answered and counted; a dry
// run kept in memory.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEndToEndCollectToMeta(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	now := time.Now().Unix()
	body := fmt.Sprintf(`{
	  "vid": "1732752000000.482913756104",
	  "url": "http://127.0.0.1/thank-you?fbclid=IwAR_Case_Kept",
	  "referrer": "https://www.google.com/",
	  "events": [{
	    "event_name": "Purchase", "event_id": "order-1001-purchase", "event_time": %d,
	    "custom_data": {"value": 42.5, "currency": "EUR", "content_ids": ["sku-1"], "order_id": "1001", "gift_wrap": true},
	    "user_data": {"em": " Jane.Doe@Example.com ", "ph": "+1 (650) 555-1212", "external_id": "cust-9"}
	  }]}`, now)
	resp, out := post(t, g.URL+"/collect", map[string]string{
		"Origin":       "http://127.0.0.1",
		"User-Agent":   "Mozilla/5.0 (e2e)",
		"Content-Type": "text/plain;charset=UTF-8",
	}, body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("collect: %d %v", resp.StatusCode, out)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://127.0.0.1" {
		t.Errorf("CORS origin %q", got)
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		cookies[c.Name] = c
	}
	fbp, fbc := cookies["_fbp"], cookies["_fbc"]
	if fbp == nil || fbp.Value != "fb.0.1732752000000.482913756104" {
		t.Fatalf("_fbp cookie %v; want it derived from the visitor seed with index 0 on an IP host", fbp)
	}
	if fbc == nil || !strings.HasPrefix(fbc.Value, "fb.0.") || !strings.HasSuffix(fbc.Value, ".IwAR_Case_Kept") {
		t.Fatalf("_fbc cookie %v", fbc)
	}
	if fbp.MaxAge != 400*24*3600 || fbp.HttpOnly || fbp.Path != "/" || fbp.SameSite != http.SameSiteLaxMode {
		t.Errorf("_fbp attributes: %+v", fbp)
	}

	got := g.Graph.WaitEvents(testPixel, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("graph received %d events", len(got))
	}
	ev := got[0].Event
	want := map[string]any{
		"event_name":       "Purchase",
		"event_id":         "order-1001-purchase",
		"event_time":       float64(now),
		"action_source":    "website",
		"event_source_url": "http://127.0.0.1/thank-you?fbclid=IwAR_Case_Kept",
		"referrer_url":     "https://www.google.com/",
		"user_data": map[string]any{
			"em":                []any{sha("jane.doe@example.com")},
			"ph":                []any{sha("16505551212")},
			"external_id":       []any{sha("cust-9")},
			"client_ip_address": "127.0.0.1",
			"client_user_agent": "Mozilla/5.0 (e2e)",
			"fbp":               fbp.Value,
			"fbc":               fbc.Value,
		},
		"custom_data": map[string]any{
			"value": 42.5, "currency": "EUR", "content_ids": []any{"sku-1"}, "order_id": "1001", "gift_wrap": true,
		},
	}
	assertJSONEqual(t, ev, want)

	// Raw PII never reaches Redis.
	assertRedisFreeOf(t, g, "jane.doe@example.com", "Jane.Doe", "16505551212", "555-1212")
}

func TestEndToEndServerIngest(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	now := time.Now().Unix()
	body := fmt.Sprintf(`{"data":[{
	  "event_name":"Purchase","event_time":%d,"event_id":"order-2002","action_source":"physical_store",
	  "user_data":{"em":["%s"],"ph":"+44 20 7946 0958","client_ip_address":"2001:db8::1"},
	  "custom_data":{"value":"19.90","currency":"GBP"}}],"test_event_code":"TEST123"}`, now, sha("known@example.com"))
	resp, out := post(t, g.URL+"/v1/events", map[string]string{"Authorization": "Bearer wrong-key-wrong-key"}, body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %v", resp.StatusCode, out)
	}
	resp, out = post(t, g.URL+"/v1/events", map[string]string{"Authorization": "Bearer " + testIngestKey}, body)
	if resp.StatusCode != http.StatusOK || out["events_received"] != float64(1) {
		t.Fatalf("ingest: %d %v", resp.StatusCode, out)
	}
	got := g.Graph.WaitEvents(testPixel, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("graph received %d events", len(got))
	}
	if got[0].TestEventCode != "TEST123" {
		t.Errorf("test_event_code %q", got[0].TestEventCode)
	}
	ud := got[0].Event["user_data"].(map[string]any)
	if fmt.Sprint(ud["em"]) != fmt.Sprint([]any{sha("known@example.com")}) {
		t.Errorf("already-hashed em was changed: %v", ud["em"])
	}
	if fmt.Sprint(ud["ph"]) != fmt.Sprint([]any{sha("442079460958")}) {
		t.Errorf("ph %v", ud["ph"])
	}
	if ud["client_ip_address"] != "2001:db8::1" {
		t.Errorf("ip %v", ud["client_ip_address"])
	}
}

func TestEndToEndBadInputKeepsServing(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	origin := map[string]string{"Origin": "http://127.0.0.1"}
	many := `{"url":"http://127.0.0.1/","events":[` + strings.TrimSuffix(strings.Repeat(`{"event_name":"PageView"},`, 10000), ",") + `]}`
	tests := []struct {
		name   string
		path   string
		header map[string]string
		body   string
		status int
		code   string
	}{
		{"malformed json", "/collect", origin, `{"url":`, 400, "invalid_json"},
		{"events not a list", "/collect", origin, `{"url":"http://127.0.0.1/","events":{"event_name":"PageView"}}`, 400, "invalid_json"},
		{"3 MB body", "/collect", origin, `{"url":"` + strings.Repeat("a", 3<<20) + `"}`, 413, "body_too_large"},
		{"10000 events", "/collect", origin, many, 413, ""},
		{"disallowed origin", "/collect", map[string]string{"Origin": "https://evil.example"}, `{"url":"http://127.0.0.1/","events":[{"event_name":"PageView"}]}`, 403, "origin_not_allowed"},
		{"server ingest without key", "/v1/events", nil, `{"data":[]}`, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL+tt.path, tt.header, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.status, out)
			}
			e, _ := out["error"].(map[string]any)
			if e == nil || e["message"] == "" {
				t.Fatalf("no error envelope: %v", out)
			}
			if tt.code != "" && e["code"] != tt.code {
				t.Fatalf("code %v, want %s", e["code"], tt.code)
			}
		})
	}
	t.Run("unknown site", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/collect", strings.NewReader(`{"url":"https://other.example/","events":[{"event_name":"PageView"}]}`))
		req.Host = "t.other.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown site: %d", resp.StatusCode)
		}
	})
	// Still serving.
	resp, err := http.Get(g.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after bad input: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(g.URL + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp = getMetrics(t, g)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tagway_events_rejected_total", "origin_not_allowed", "go_goroutines"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// assertRedisFreeOf scans every key and value in Redis for the needles.
func assertRedisFreeOf(t *testing.T, g *testGateway, needles ...string) {
	t.Helper()
	ctx := context.Background()
	c := g.Redis.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	for _, k := range keys {
		dump.WriteString(k)
		switch c.Type(ctx, k).Val() {
		case "string":
			dump.WriteString(c.Get(ctx, k).Val())
		case "stream":
			for _, m := range c.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprint(&dump, m.Values)
			}
		case "zset":
			fmt.Fprint(&dump, c.ZRange(ctx, k, 0, -1).Val())
		case "hash":
			fmt.Fprint(&dump, c.HGetAll(ctx, k).Val())
		}
	}
	if dump.Len() == 0 {
		t.Fatal("redis is empty: the scan proves nothing")
	}
	for _, n := range needles {
		if strings.Contains(strings.ToLower(dump.String()), strings.ToLower(n)) {
			t.Errorf("redis holds raw PII %q", n)
		}
	}
}

func assertJSONEqual(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	var gv, wv any
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	gn, _ := json.MarshalIndent(gv, "", "  ")
	wn, _ := json.MarshalIndent(wv, "", "  ")
	if !bytes.Equal(gn, wn) {
		t.Fatalf("payload mismatch\n got: %s\nwant: %s", gn, wn)
	}
}

func TestDryRunKeepsTheRequestInMemory(t *testing.T) {
	g := startGateway(t, gatewayOptions{})
	resp, out := post(t, g.URL+"/collect", map[string]string{"Origin": "http://localhost", "User-Agent": "ua"},
		`{"url":"http://localhost/p","events":[{"event_name":"AddToCart","event_id":"dry-1","custom_data":{"value":1,"currency":"EUR"}}]}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("collect %d %v", resp.StatusCode, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(g.App.DryRuns()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	rec := g.App.DryRuns()
	if len(rec) != 1 || !strings.Contains(string(rec[0]), `"event_id":"dry-1"`) || strings.Contains(string(rec[0]), "access_token") {
		t.Fatalf("dry-run recorder holds %q", rec)
	}
	if !strings.Contains(g.Logs.String(), "dry-1") {
		t.Errorf("the dry-run request was not logged")
	}
}
