package tiktoktest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	pixel = "C4ABCDEFGHIJKLMNOPQR"
	token = "tt-test-token-0123456789"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

func goodEvent() map[string]any {
	return map[string]any{
		"event":      "Purchase",
		"event_time": testNow.Add(-time.Hour).Unix(),
		"event_id":   "3f0c6a52-0000-4000-8000-000000000001",
		"user": map[string]any{
			"email":      []string{sha("jane@example.com")},
			"phone":      sha("+16505551212"),
			"first_name": sha("jane"),
			"ttclid":     "E.C.P.abc",
			"ttp":        "2F7h37YkS1j57AYSKTI7IHhJPYH",
			"ip":         "2001:db8::1",
			"user_agent": "Mozilla/5.0",
		},
		"page":       map[string]any{"url": "https://shop.example/thanks", "referrer": "https://shop.example/checkout"},
		"properties": map[string]any{"currency": "EUR", "value": 42.5, "content_type": "product", "contents": []any{map[string]any{"content_id": "sku-1", "price": 42.5, "quantity": 1}}},
	}
}

func body(events ...map[string]any) map[string]any {
	data := make([]any, len(events))
	for i, e := range events {
		data[i] = e
	}
	return map[string]any{"event_source": "web", "event_source_id": pixel, "data": data}
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddPixel(pixel, token)
	s.AddPixel("C4OTHERPIXEL", "other-token")
	return s
}

func post(t *testing.T, s *Server, tok string, b any) (int, Reply) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	if tok != "" {
		h.Set("Access-Token", tok)
	}
	status, rb := destinationstest.Post(t, s.URL()+Path, h, b)
	var r Reply
	if err := json.Unmarshal(rb, &r); err != nil {
		t.Fatalf("reply %q: %v", rb, err)
	}
	return status, r
}

func TestAccepts(t *testing.T) {
	s := newFake(t)
	status, r := post(t, s, token, body(goodEvent()))
	if status != 200 || r.Code != CodeOK || r.Message != "OK" || r.RequestID == "" {
		t.Fatalf("got %d %+v", status, r)
	}
	got := s.Events(pixel)
	if len(got) != 1 || got[0].EventName != "Purchase" || got[0].EventID != "3f0c6a52-0000-4000-8000-000000000001" ||
		got[0].EventTime != testNow.Add(-time.Hour).Unix() || got[0].User["ttp"] != "2F7h37YkS1j57AYSKTI7IHhJPYH" ||
		got[0].PixelCode != pixel {
		t.Errorf("recorded %+v", got)
	}
}

func TestRejections(t *testing.T) {
	with := func(mut func(e map[string]any)) map[string]any {
		e := goodEvent()
		mut(e)
		return body(e)
	}
	user := func(k string, v any) map[string]any {
		return with(func(e map[string]any) { e["user"].(map[string]any)[k] = v })
	}
	props := func(k string, v any) map[string]any {
		return with(func(e map[string]any) { e["properties"].(map[string]any)[k] = v })
	}
	many := make([]map[string]any, MaxEvents+1)
	for i := range many {
		many[i] = goodEvent()
	}
	cases := []struct {
		name  string
		token string
		body  any
		code  int
		msg   string
	}{
		{"no token", "", body(goodEvent()), CodeTokenEmpty, "null"},
		{"bearer prefix", "Bearer " + token, body(goodEvent()), CodeTokenInvalid, "revoked"},
		{"unknown token", "nope", body(goodEvent()), CodeTokenInvalid, "revoked"},
		{"pixel of another token", "other-token", body(goodEvent()), CodeNoPermission, pixel},
		{"unknown pixel", token, map[string]any{"event_source": "web", "event_source_id": "C4NOPE", "data": []any{goodEvent()}}, CodeNoPermission, "C4NOPE"},
		{"app source", token, map[string]any{"event_source": "app", "event_source_id": pixel, "data": []any{goodEvent()}}, CodeInvalidParam, "event_source"},
		{"unknown top-level field", token, map[string]any{"event_source": "web", "event_source_id": pixel, "data": []any{goodEvent()}, "pixel_code": pixel}, CodeInvalidParam, "pixel_code"},
		{"empty data", token, body(), CodeInvalidParam, "at least one"},
		{"too many events", token, body(many...), CodeInvalidParam, "at most 1000"},
		{"no event name", token, with(func(e map[string]any) { delete(e, "event") }), CodeInvalidParam, "data[0].event"},
		{"event name with spaces", token, with(func(e map[string]any) { e["event"] = "add to cart" }), CodeInvalidParam, "event"},
		{"milliseconds", token, with(func(e map[string]any) { e["event_time"] = testNow.UnixMilli() }), CodeInvalidParam, "milliseconds"},
		{"too old", token, with(func(e map[string]any) { e["event_time"] = testNow.Add(-MaxAge - time.Minute).Unix() }), CodeInvalidParam, "28 days"},
		{"future", token, with(func(e map[string]any) { e["event_time"] = testNow.Add(time.Hour).Unix() }), CodeInvalidParam, "future"},
		{"time as string", token, with(func(e map[string]any) { e["event_time"] = "1764331200" }), CodeInvalidParam, "event_time"},
		{"unknown event field", token, with(func(e map[string]any) { e["user_data"] = map[string]any{} }), CodeInvalidParam, "user_data"},
		{"raw email", token, user("email", "jane@example.com"), CodeInvalidParam, "user.email"},
		{"uppercase digest", token, user("phone", strings.ToUpper(sha("+16505551212"))), CodeInvalidParam, "user.phone"},
		{"raw first name", token, user("first_name", "jane"), CodeInvalidParam, "user.first_name"},
		{"bad ip", token, user("ip", "not-an-ip"), CodeInvalidParam, "user.ip"},
		{"unknown user field", token, user("fbp", "fb.1.1.1"), CodeInvalidParam, "user.fbp"},
		{"lowercase currency", token, props("currency", "eur"), CodeInvalidParam, "currency"},
		{"value as string", token, props("value", "42.5"), CodeInvalidParam, "value"},
		{"negative value", token, props("value", -1), CodeInvalidParam, "value"},
		{"bad content type", token, props("content_type", "sku"), CodeInvalidParam, "content_type"},
		{"content without id", token, props("contents", []any{map[string]any{"price": 1}}), CodeInvalidParam, "content_id"},
		{"relative page url", token, with(func(e map[string]any) { e["page"] = map[string]any{"url": "/thanks"} }), CodeInvalidParam, "page.url"},
		{"ldu not bool", token, with(func(e map[string]any) { e["limited_data_use"] = "yes" }), CodeInvalidParam, "limited_data_use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			status, r := post(t, s, tc.token, tc.body)
			if status != 200 || r.Code != tc.code || !strings.Contains(r.Message, tc.msg) {
				t.Errorf("got HTTP %d %+v, want code %d mentioning %q", status, r, tc.code, tc.msg)
			}
			if n := len(s.Events(pixel)); n != 0 {
				t.Errorf("recorded %d events of a refused request", n)
			}
			if rj := s.Rejections(); len(rj) != 1 || rj[0].Code != tc.code {
				t.Errorf("rejections %+v", rj)
			}
		})
	}
}

func TestTransport(t *testing.T) {
	s := newFake(t)
	resp, err := http.Get(s.URL() + Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, err = http.Post(s.URL()+"/open_api/v1.2/pixel/track/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("old path: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+Path, strings.NewReader(`{}`))
	req.Header.Set("Access-Token", token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"code":40002`) {
		t.Errorf("text/plain body: %s", b)
	}
}

func TestFailNext(t *testing.T) {
	s := newFake(t)
	s.FailNext(2, http.StatusOK, Reply{Code: CodeRateLimited, Message: "Too many requests"}.Body())
	for range 2 {
		if _, r := post(t, s, token, body(goodEvent())); r.Code != CodeRateLimited {
			t.Errorf("got %+v", r)
		}
	}
	if _, r := post(t, s, token, body(goodEvent())); r.Code != CodeOK {
		t.Errorf("third: %+v", r)
	}
	if s.Requests() != 3 || len(s.Events(pixel)) != 1 || len(s.Rejections()) != 0 {
		t.Errorf("requests %d, events %d, rejections %v", s.Requests(), len(s.Events(pixel)), s.Rejections())
	}
}
