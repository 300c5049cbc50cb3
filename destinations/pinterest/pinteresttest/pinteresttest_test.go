package pinteresttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	account = "549755885175"
	token   = "pina_testtoken"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

// goodEvent is a web checkout the fake must accept.
func goodEvent(id string) map[string]any {
	return map[string]any{
		"event_name":       "checkout",
		"action_source":    "web",
		"event_time":       testNow.Add(-time.Hour).Unix(),
		"event_id":         id,
		"event_source_url": "https://shop.example/thank-you",
		"partner_name":     "ss-tagway",
		"user_data": map[string]any{
			"em":                []string{sha("jane@example.com")},
			"ph":                []string{sha("16505551212")},
			"client_ip_address": "2001:db8::1",
			"client_user_agent": "Mozilla/5.0",
			"click_id":          "dj0yJnU9b2JDcFFHekV4",
		},
		"custom_data": map[string]any{
			"currency": "EUR", "value": "42.5", "order_id": "1001", "num_items": 2,
			"contents":     []any{map[string]any{"id": "sku-1", "item_price": "21.25", "quantity": 2}},
			"opt_out_type": "LDP",
		},
	}
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddAccount(account, token)
	return s
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func post(t *testing.T, s *Server, path, tok, contentType string, body any) answer {
	t.Helper()
	h := http.Header{"Content-Type": {contentType}}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	status, raw := destinationstest.Post(t, s.URL()+path, h, body)
	a := answer{status: status, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

const eventsPath = "/v5/ad_accounts/" + account + "/events"

func withData(events ...map[string]any) map[string]any {
	list := make([]any, len(events))
	for i, e := range events {
		list[i] = e
	}
	return map[string]any{"data": list}
}

func TestAcceptsGoodEvents(t *testing.T) {
	s := newFake(t)
	a := post(t, s, eventsPath, token, "application/json", withData(goodEvent("a"), goodEvent("b")))
	if a.status != 200 || a.body["num_events_processed"] != 2.0 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	got := s.Events(account)
	if len(got) != 2 || got[0].EventID != "a" || got[0].EventName != "checkout" || got[0].Test ||
		got[0].EventTime != testNow.Add(-time.Hour).Unix() || got[0].CustomData["order_id"] != "1001" {
		t.Errorf("recorded %+v", got)
	}
	a = post(t, s, eventsPath+"?test=true", token, "application/json", withData(goodEvent("t")))
	if all := s.Events(account); a.status != 200 || len(all) != 3 || !all[2].Test {
		t.Errorf("test request: %d %s, recorded %+v", a.status, a.raw, all)
	}
}

// TestRefusesWholeRequests: what Pinterest refuses for the whole request,
// with its status and code.
func TestRefusesWholeRequests(t *testing.T) {
	s := newFake(t)
	s.AddAccount("777", "pina_other")
	mutate := func(f func(ev map[string]any)) map[string]any {
		ev := goodEvent("x")
		f(ev)
		return withData(ev)
	}
	many := make([]map[string]any, MaxEvents+1)
	for i := range many {
		many[i] = goodEvent(fmt.Sprint(i))
	}
	cases := []struct {
		name   string
		path   string
		token  string
		ctype  string
		body   any
		status int
		code   int
		msg    string
	}{
		{"wrong path", "/v5/ad_accounts/abc/events", token, "application/json", withData(goodEvent("a")), 404, 404, "not found"},
		{"no token", eventsPath, "", "application/json", withData(goodEvent("a")), 401, CodeAuthFailed, "Authentication"},
		{"unknown token", eventsPath, "pina_nope", "application/json", withData(goodEvent("a")), 401, CodeAuthFailed, "Authentication"},
		{"account of another token", "/v5/ad_accounts/777/events", token, "application/json", withData(goodEvent("a")), 403, CodeNotPermitted, "not permitted"},
		{"unknown query", eventsPath + "?validate=1", token, "application/json", withData(goodEvent("a")), 400, CodeInvalidRequest, "validate"},
		{"form body", eventsPath, token, "application/x-www-form-urlencoded", "data=1", 400, CodeInvalidRequest, "application/json"},
		{"not JSON", eventsPath, token, "application/json", "{", 400, CodeInvalidRequest, "JSON"},
		{"unknown top-level", eventsPath, token, "application/json", map[string]any{"data": []any{goodEvent("a")}, "test": true}, 400, CodeInvalidRequest, `"test"`},
		{"no data", eventsPath, token, "application/json", map[string]any{}, 400, CodeInvalidRequest, "data"},
		{"empty data", eventsPath, token, "application/json", withData(), 400, CodeInvalidRequest, "non-empty"},
		{"too many", eventsPath, token, "application/json", withData(many...), 400, CodeInvalidRequest, "too long"},
		{"unknown event property", eventsPath, token, "application/json", mutate(func(ev map[string]any) { ev["tw"] = map[string]any{} }), 400, CodeInvalidRequest, `"tw"`},
		{"unknown custom property", eventsPath, token, "application/json", mutate(func(ev map[string]any) {
			ev["custom_data"].(map[string]any)["category_name"] = "x"
		}), 400, CodeInvalidRequest, "category_name"},
		{"unknown user property", eventsPath, token, "application/json", mutate(func(ev map[string]any) {
			ev["user_data"].(map[string]any)["fbp"] = "fb.1.1.1"
		}), 400, CodeInvalidRequest, "fbp"},
		{"unknown content property", eventsPath, token, "application/json", mutate(func(ev map[string]any) {
			ev["custom_data"].(map[string]any)["contents"] = []any{map[string]any{"id": "a", "item_price": "1", "title": "x"}}
		}), 400, CodeInvalidRequest, "title"},
		{"missing event_id", eventsPath, token, "application/json", mutate(func(ev map[string]any) { delete(ev, "event_id") }), 400, CodeInvalidRequest, "event_id"},
		{"missing user_data", eventsPath, token, "application/json", mutate(func(ev map[string]any) { delete(ev, "user_data") }), 400, CodeInvalidRequest, "user_data"},
		{"event_time as string", eventsPath, token, "application/json", mutate(func(ev map[string]any) { ev["event_time"] = "1700000000" }), 400, CodeInvalidRequest, "integer"},
		{"value as number", eventsPath, token, "application/json", mutate(func(ev map[string]any) { ev["custom_data"].(map[string]any)["value"] = 42.5 }), 400, CodeInvalidRequest, "string"},
		{"em as string", eventsPath, token, "application/json", mutate(func(ev map[string]any) { ev["user_data"].(map[string]any)["em"] = sha("a@b.c") }), 400, CodeInvalidRequest, "array"},
		{"user agent without IP", eventsPath, token, "application/json", mutate(func(ev map[string]any) {
			ev["user_data"] = map[string]any{"client_user_agent": "Mozilla/5.0", "ph": []string{sha("1")}}
		}), 400, CodeInvalidRequest, "user_data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Events(account))
			a := post(t, s, tc.path, tc.token, tc.ctype, tc.body)
			if a.status != tc.status || a.body["code"] != float64(tc.code) || !strings.Contains(fmt.Sprint(a.body["message"]), tc.msg) {
				t.Errorf("got %d %s; want %d code %d naming %q", a.status, a.raw, tc.status, tc.code, tc.msg)
			}
			if len(s.Events(account)) != before {
				t.Error("a refused request was recorded")
			}
		})
	}
	if r := s.Rejections(); len(r) != len(cases) || r[0].Index != -1 {
		t.Errorf("rejections %+v", r)
	}
}

// TestJudgesEventsOneByOne: an event breaking a per-event rule fails on its
// own, the 422 details say which, and the others are recorded.
func TestJudgesEventsOneByOne(t *testing.T) {
	cases := []struct {
		name string
		f    func(ev map[string]any)
		msg  string
	}{
		{"unknown event name", func(ev map[string]any) { ev["event_name"] = "Purchase" }, "event_name"},
		{"unknown action source", func(ev map[string]any) { ev["action_source"] = "website" }, "action_source"},
		{"empty event id", func(ev map[string]any) { ev["event_id"] = "" }, "event_id"},
		{"milliseconds", func(ev map[string]any) { ev["event_time"] = testNow.UnixMilli() }, "milliseconds"},
		{"too old", func(ev map[string]any) { ev["event_time"] = testNow.Add(-MaxAge - time.Minute).Unix() }, "older"},
		{"unhashed e-mail", func(ev map[string]any) { ev["user_data"].(map[string]any)["em"] = []string{"jane@example.com"} }, "user_data.em"},
		{"uppercase digest", func(ev map[string]any) {
			ev["user_data"].(map[string]any)["ph"] = []string{strings.ToUpper(sha("1"))}
		}, "user_data.ph"},
		{"bad IP", func(ev map[string]any) { ev["user_data"].(map[string]any)["client_ip_address"] = "300.1.1.1" }, "client_ip_address"},
		{"bad currency", func(ev map[string]any) { ev["custom_data"].(map[string]any)["currency"] = "eur" }, "currency"},
		{"bad value", func(ev map[string]any) { ev["custom_data"].(map[string]any)["value"] = "12,50" }, "value"},
		{"bad item price", func(ev map[string]any) {
			ev["custom_data"].(map[string]any)["contents"] = []any{map[string]any{"id": "a", "item_price": "free"}}
		}, "item_price"},
		{"bad partner name", func(ev map[string]any) { ev["partner_name"] = "Tagway" }, "partner_name"},
		{"bad opt-out flag", func(ev map[string]any) { ev["custom_data"].(map[string]any)["opt_out_type"] = "LDU" }, "opt_out_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			bad := goodEvent("bad")
			tc.f(bad)
			a := post(t, s, eventsPath, token, "application/json", withData(goodEvent("good"), bad))
			if a.status != http.StatusUnprocessableEntity {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			var details Response
			raw, _ := json.Marshal(a.body["details"])
			if err := json.Unmarshal(raw, &details); err != nil || len(details.Events) != 2 {
				t.Fatalf("details %s (%v)", raw, err)
			}
			if details.Events[0].Status != "processed" || details.Events[1].Status != "failed" ||
				!strings.Contains(details.Events[1].ErrorMessage, tc.msg) || details.NumEventsProcessed != 1 {
				t.Errorf("details %+v", details)
			}
			if got := s.Events(account); len(got) != 1 || got[0].EventID != "good" {
				t.Errorf("recorded %+v", got)
			}
			if r := s.Rejections(); len(r) != 1 || r[0].Index != 1 {
				t.Errorf("rejections %+v", r)
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	s := newFake(t)
	s.FailNext(1, http.StatusTooManyRequests, Error{Code: CodeRateLimited, Message: "This request exceeded a rate limit."}.Body())
	if a := post(t, s, eventsPath, token, "application/json", withData(goodEvent("a"))); a.status != 429 || a.body["code"] != 8.0 {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if a := post(t, s, eventsPath, token, "application/json", withData(goodEvent("a"))); a.status != 200 {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if s.Requests() != 2 || len(s.Events(account)) != 1 {
		t.Errorf("requests %d events %d", s.Requests(), len(s.Events(account)))
	}
	if got := s.WaitEvents(account, 1, time.Second); got[0].EventID != "a" {
		t.Errorf("WaitEvents %+v", got)
	}
}
