package snaptest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	pixel = "1ec32188-754e-4be2-8e55-c949a984a39f"
	token = "snap-test-token/with+chars="
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

func goodEvent() map[string]any {
	return map[string]any{
		"event_name":       "PURCHASE",
		"event_time":       testNow.Add(-time.Hour).Unix(),
		"event_id":         "3f0c6a52-0000-4000-8000-000000000001",
		"action_source":    "WEB",
		"event_source_url": "https://shop.example/thanks",
		"user_data": map[string]any{
			"em":                []string{sha("jane@example.com")},
			"ph":                []string{sha("16505551212")},
			"client_ip_address": "2001:db8::1",
			"client_user_agent": "Mozilla/5.0",
			"sc_click_id":       "c1a2b3",
			"sc_cookie1":        "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11",
		},
		"custom_data": map[string]any{"currency": "EUR", "value": 42.5, "order_id": "1001",
			"contents": []any{map[string]any{"id": "sku-1", "quantity": "1", "item_price": "42.5"}}},
	}
}

func body(events ...map[string]any) map[string]any {
	data := make([]any, len(events))
	for i, e := range events {
		data[i] = e
	}
	return map[string]any{"data": data}
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddPixel(pixel, token)
	s.AddPixel("other-pixel", "other-token")
	return s
}

// post sends b to path (relative to /v3/{pixel}) with the token in the query.
func post(t *testing.T, s *Server, pixelID, suffix, tok string, b any) (int, Reply) {
	t.Helper()
	target := s.URL() + "/v3/" + pixelID + "/events" + suffix
	if tok != "" {
		target += "?access_token=" + url.QueryEscape(tok)
	}
	status, rb := destinationstest.Post(t, target, http.Header{"Content-Type": {"application/json"}}, b)
	var r Reply
	if err := json.Unmarshal(rb, &r); err != nil {
		t.Fatalf("reply %q: %v", rb, err)
	}
	return status, r
}

func TestAccepts(t *testing.T) {
	s := newFake(t)
	status, r := post(t, s, pixel, "", token, body(goodEvent()))
	if status != 200 || r.Status != "VALID" {
		t.Fatalf("got %d %+v", status, r)
	}
	got := s.Events(pixel)
	if len(got) != 1 || got[0].EventName != "PURCHASE" || got[0].EventID != "3f0c6a52-0000-4000-8000-000000000001" ||
		got[0].ActionSource != "WEB" || got[0].TokenIn != "query" || got[0].UserData["sc_click_id"] != "c1a2b3" {
		t.Errorf("recorded %+v", got)
	}

	// The token in a Bearer header works too.
	raw, _ := json.Marshal(body(goodEvent()))
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v3/"+pixel+"/events", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := s.Events(pixel); resp.StatusCode != 200 || len(got) != 2 || got[1].TokenIn != "header" {
		t.Errorf("bearer: %d %+v", resp.StatusCode, got)
	}
}

func TestRejections(t *testing.T) {
	with := func(mut func(e map[string]any)) map[string]any {
		e := goodEvent()
		mut(e)
		return body(e)
	}
	user := func(k string, v any) map[string]any {
		return with(func(e map[string]any) { e["user_data"].(map[string]any)[k] = v })
	}
	custom := func(k string, v any) map[string]any {
		return with(func(e map[string]any) { e["custom_data"].(map[string]any)[k] = v })
	}
	many := make([]map[string]any, MaxEvents+1)
	for i := range many {
		many[i] = goodEvent()
	}
	cases := []struct {
		name   string
		pixel  string
		token  string
		body   any
		status int
		msg    string
	}{
		{"no token", pixel, "", body(goodEvent()), 401, "Unauthorized"},
		{"unknown token", pixel, "nope", body(goodEvent()), 401, "Unauthorized"},
		{"pixel of another token", "other-pixel", token, body(goodEvent()), 403, "other-pixel"},
		{"unknown top-level field", pixel, token, map[string]any{"data": []any{goodEvent()}, "pixel_id": pixel}, 400, "pixel_id"},
		{"empty data", pixel, token, body(), 400, "at least one"},
		{"too many events", pixel, token, body(many...), 400, "at most 2000"},
		{"not an object", pixel, token, map[string]any{"data": []any{"x"}}, 400, "object"},
		{"unknown name", pixel, token, with(func(e map[string]any) { e["event_name"] = "Purchase" }), 400, "event_name"},
		{"lead", pixel, token, with(func(e map[string]any) { e["event_name"] = "LEAD" }), 400, "event_name"},
		{"milliseconds", pixel, token, with(func(e map[string]any) { e["event_time"] = testNow.UnixMilli() }), 400, "milliseconds"},
		{"too old", pixel, token, with(func(e map[string]any) { e["event_time"] = testNow.Add(-MaxAge - time.Minute).Unix() }), 400, "37 days"},
		{"future", pixel, token, with(func(e map[string]any) { e["event_time"] = testNow.Add(time.Hour).Unix() }), 400, "future"},
		{"lowercase source", pixel, token, with(func(e map[string]any) { e["action_source"] = "web" }), 400, "action_source"},
		{"app source", pixel, token, with(func(e map[string]any) { e["action_source"] = "MOBILE_APP" }), 400, "Snap App ID"},
		{"web without url", pixel, token, with(func(e map[string]any) { delete(e, "event_source_url") }), 400, "event_source_url"},
		{"unknown event field", pixel, token, with(func(e map[string]any) { e["user"] = map[string]any{} }), 400, "user: unknown"},
		{"raw email", pixel, token, user("em", []string{"jane@example.com"}), 400, "user_data.em"},
		{"raw phone", pixel, token, user("ph", "+16505551212"), 400, "user_data.ph"},
		{"uppercase digest", pixel, token, user("fn", []string{strings.ToUpper(sha("jane"))}), 400, "user_data.fn"},
		{"unknown user field", pixel, token, user("fbp", "fb.1.1.1"), 400, "user_data.fbp"},
		{"bad ip", pixel, token, user("client_ip_address", "x"), 400, "client_ip_address"},
		{"insufficient pii", pixel, token, with(func(e map[string]any) {
			e["user_data"] = map[string]any{"client_user_agent": "Mozilla/5.0", "sc_cookie1": "x"}
		}), 400, "insufficient PII"},
		{"purchase without currency", pixel, token, with(func(e map[string]any) { delete(e["custom_data"].(map[string]any), "currency") }), 400, "currency"},
		{"purchase without value", pixel, token, with(func(e map[string]any) { delete(e["custom_data"].(map[string]any), "value") }), 400, "price"},
		{"lowercase currency", pixel, token, custom("currency", "eur"), 400, "currency"},
		{"unknown custom field", pixel, token, custom("coupon", "X"), 400, "custom_data.coupon"},
		{"numeric quantity", pixel, token, custom("contents", []any{map[string]any{"id": "a", "quantity": 1}}), 400, "quantity"},
		{"item without id", pixel, token, custom("contents", []any{map[string]any{"quantity": "1"}}), 400, "id"},
		{"bad dpo", pixel, token, with(func(e map[string]any) { e["data_processing_options"] = []any{"GDPR"} }), 400, "LDU"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			status, r := post(t, s, tc.pixel, "", tc.token, tc.body)
			text := r.Reason
			if r.Errors != nil {
				text += " " + strings.Join(r.Errors.ErrorMsgs, " ")
			}
			if status != tc.status || r.Status != "INVALID" || !strings.Contains(text, tc.msg) {
				t.Errorf("got HTTP %d %+v, want %d mentioning %q", status, r, tc.status, tc.msg)
			}
			if n := len(s.Events(pixel)) + len(s.Events("other-pixel")); n != 0 {
				t.Errorf("kept %d events of a refused request", n)
			}
			if len(s.Rejections()) != 1 {
				t.Errorf("rejections %+v", s.Rejections())
			}
		})
	}
}

// TestEventIndex: Snap names the first bad event of a refused request.
func TestEventIndex(t *testing.T) {
	s := newFake(t)
	bad := goodEvent()
	bad["event_name"] = "NOPE"
	status, r := post(t, s, pixel, "", token, body(goodEvent(), goodEvent(), bad, bad))
	if status != 400 || r.Event == nil || *r.Event != 2 {
		t.Errorf("got %d %+v", status, r)
	}
}

func TestValidate(t *testing.T) {
	s := newFake(t)
	bad := goodEvent()
	delete(bad, "event_source_url")
	status, r := post(t, s, pixel, "/validate", token, body(goodEvent(), bad))
	if status != 400 || r.Status != "INVALID" || len(r.EventLogs) != 2 || r.TestEvent == nil || !*r.TestEvent ||
		r.EventLogs[0].Status != "VALID" || r.EventLogs[1].Status != "INVALID" || r.EventLogs[1].Event != 1 ||
		!strings.Contains(r.EventLogs[1].Errors.ErrorMsgs[0], "event_source_url") {
		t.Errorf("got %d %+v", status, r)
	}
	status, r = post(t, s, pixel, "/validate", token, body(goodEvent()))
	if status != 200 || r.Status != "VALID" || len(r.EventLogs) != 1 {
		t.Errorf("got %d %+v", status, r)
	}
	if len(s.Events(pixel)) != 0 || len(s.Validated(pixel)) != 2 {
		t.Errorf("kept %d, validated %d", len(s.Events(pixel)), len(s.Validated(pixel)))
	}
}

func TestTransport(t *testing.T) {
	s := newFake(t)
	resp, err := http.Get(s.URL() + "/v3/" + pixel + "/events?access_token=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, err = http.Post(s.URL()+"/v2/conversion", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("v2 path: %d", resp.StatusCode)
	}
	resp, err = http.Post(s.URL()+"/v3/"+pixel+"/events?access_token="+url.QueryEscape(token), "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Content-Type") {
		t.Errorf("text/plain: %d %s", resp.StatusCode, b)
	}
}

func TestFailNext(t *testing.T) {
	s := newFake(t)
	s.FailNext(2, http.StatusTooManyRequests, Reply{Status: "INVALID", Reason: "Too many requests"}.Body())
	for range 2 {
		if status, _ := post(t, s, pixel, "", token, body(goodEvent())); status != 429 {
			t.Errorf("status %d", status)
		}
	}
	if status, _ := post(t, s, pixel, "", token, body(goodEvent())); status != 200 {
		t.Errorf("third: %d", status)
	}
	if s.Requests() != 3 || len(s.Events(pixel)) != 1 || len(s.Rejections()) != 0 {
		t.Errorf("requests %d, events %d, rejections %v", s.Requests(), len(s.Events(pixel)), s.Rejections())
	}
}
