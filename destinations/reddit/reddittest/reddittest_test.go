package reddittest

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
	pixel = "a2_testpixel"
	token = "reddit-test-token"
	uuid  = "1764329000000.7c73f2ae-a433-4d7b-9838-f467da98f48e"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

// goodEvent is a website purchase the fake must accept.
func goodEvent(id string) map[string]any {
	return map[string]any{
		"event_at":         testNow.Add(-time.Hour).UnixMilli(),
		"action_source":    "WEBSITE",
		"type":             map[string]any{"tracking_type": "PURCHASE"},
		"click_id":         "2712345678901234567_Zb3X",
		"event_source_url": "https://shop.example/thank-you",
		"metadata": map[string]any{
			"conversion_id": id, "currency": "EUR", "value": 42.5, "item_count": 2,
			"products": []any{map[string]any{"id": "sku-1", "name": "Shoe", "quantity": 2, "item_price": 21.25}},
		},
		"user": map[string]any{
			"email": sha("jane@example.com"), "phone_number": sha("+16505551212"), "external_id": sha("cust-9"),
			"ip_address": "2001:db8::1", "user_agent": "Mozilla/5.0", "uuid": uuid,
			"data_processing_options": map[string]any{"modes": []string{"LDU"}, "country": "US", "region": "US-CA"},
		},
	}
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddPixel(pixel, token)
	return s
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (a answer) error() ErrorBody {
	var env struct{ Error ErrorBody }
	_ = json.Unmarshal([]byte(a.raw), &env)
	return env.Error
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

const eventsPath = "/api/v3/pixels/" + pixel + "/conversion_events"

func withEvents(events ...map[string]any) map[string]any {
	list := make([]any, len(events))
	for i, e := range events {
		list[i] = e
	}
	return map[string]any{"data": map[string]any{"events": list}}
}

func TestAcceptsGoodEvents(t *testing.T) {
	s := newFake(t)
	custom := goodEvent("c")
	custom["type"] = map[string]any{"tracking_type": "CUSTOM", "custom_event_name": "InitiateCheckout"}
	bare := map[string]any{"event_at": testNow.UnixMilli(), "action_source": "OTHER",
		"type": map[string]any{"tracking_type": "LEAD"}, "click_id": "cid"}
	a := post(t, s, eventsPath, token, "application/json", withEvents(goodEvent("a"), custom, bare))
	if a.status != 200 || a.body["message"] != "Successfully processed 3 conversion events." {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	got := s.Events(pixel)
	if len(got) != 3 || got[0].ConversionID != "a" || got[0].TrackingType != "PURCHASE" || got[0].EventAt != testNow.Add(-time.Hour).UnixMilli() ||
		got[1].CustomEventName != "InitiateCheckout" || got[2].ClickID != "cid" || got[0].User["uuid"] != uuid {
		t.Errorf("recorded %+v", got)
	}
	body := withEvents(goodEvent("t"))
	body["data"].(map[string]any)["test_id"] = "t2_session"
	if a := post(t, s, eventsPath, token, "application/json", body); a.status != 200 || s.Events(pixel)[3].TestID != "t2_session" {
		t.Errorf("test request: %d %s", a.status, a.raw)
	}
}

// TestRefusesRequests: refusals of the request itself, with Reddit's status.
func TestRefusesRequests(t *testing.T) {
	s := newFake(t)
	s.AddPixel("a2_other", "other-token")
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
		field  string
	}{
		{"wrong path", "/api/v2.0/conversions/events/" + pixel, token, "application/json", withEvents(goodEvent("a")), 404, ""},
		{"no token", eventsPath, "", "application/json", withEvents(goodEvent("a")), 401, ""},
		{"unknown token", eventsPath, "nope", "application/json", withEvents(goodEvent("a")), 401, ""},
		{"pixel of another token", "/api/v3/pixels/a2_other/conversion_events", token, "application/json", withEvents(goodEvent("a")), 403, ""},
		{"unknown pixel", "/api/v3/pixels/a2_nope/conversion_events", token, "application/json", withEvents(goodEvent("a")), 404, ""},
		{"form body", eventsPath, token, "application/x-www-form-urlencoded", "a=1", 415, ""},
		{"not JSON", eventsPath, token, "application/json", "{", 400, "$"},
		{"v2 shape", eventsPath, token, "application/json", map[string]any{"events": []any{goodEvent("a")}, "test_mode": true}, 400, "$.events"},
		{"unknown data field", eventsPath, token, "application/json",
			map[string]any{"data": map[string]any{"events": []any{goodEvent("a")}, "test_mode": true}}, 400, "$.data.test_mode"},
		{"no events", eventsPath, token, "application/json", map[string]any{"data": map[string]any{}}, 400, "$.data.events"},
		{"too many", eventsPath, token, "application/json", withEvents(many...), 400, "$.data.events"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, s, tc.path, tc.token, tc.ctype, tc.body)
			eb := a.error()
			if a.status != tc.status || eb.Code != tc.status {
				t.Errorf("got %d %s; want %d", a.status, a.raw, tc.status)
			}
			if tc.field != "" && (len(eb.Fields) != 1 || eb.Fields[0].Field != tc.field) {
				t.Errorf("fields %+v, want %s", eb.Fields, tc.field)
			}
		})
	}
	if len(s.Events(pixel)) != 0 || len(s.Rejections()) != len(cases) {
		t.Errorf("events %d, rejections %d", len(s.Events(pixel)), len(s.Rejections()))
	}
}

// TestRefusesInvalidEvents: one invalid event refuses the whole request,
// naming it (and each of its fields at fault) by index; nothing is
// recorded.
func TestRefusesInvalidEvents(t *testing.T) {
	user := func(ev map[string]any) map[string]any { return ev["user"].(map[string]any) }
	cases := []struct {
		name  string
		f     func(ev map[string]any)
		field string
	}{
		{"seconds, not milliseconds", func(ev map[string]any) { ev["event_at"] = testNow.Unix() }, "event_at"},
		{"too old", func(ev map[string]any) { ev["event_at"] = testNow.Add(-MaxAge - time.Minute).UnixMilli() }, "event_at"},
		{"too far ahead", func(ev map[string]any) { ev["event_at"] = testNow.Add(6 * time.Minute).UnixMilli() }, "event_at"},
		{"ISO time", func(ev map[string]any) { ev["event_at"] = "2026-11-28T11:00:00Z" }, "event_at"},
		{"lowercase action source", func(ev map[string]any) { ev["action_source"] = "website" }, "action_source"},
		{"v2 tracking type", func(ev map[string]any) { ev["type"] = map[string]any{"tracking_type": "Purchase"} }, "type.tracking_type"},
		{"nameless custom", func(ev map[string]any) { ev["type"] = map[string]any{"tracking_type": "CUSTOM"} }, "type.custom_event_name"},
		{"named standard", func(ev map[string]any) {
			ev["type"] = map[string]any{"tracking_type": "LEAD", "custom_event_name": "x"}
		}, "type.custom_event_name"},
		{"v2 event_type", func(ev map[string]any) { ev["event_type"] = ev["type"] }, "event_type"},
		{"bad currency", func(ev map[string]any) { ev["metadata"].(map[string]any)["currency"] = "eur" }, "metadata.currency"},
		{"value as string", func(ev map[string]any) { ev["metadata"].(map[string]any)["value"] = "42.5" }, "metadata.value"},
		{"v2 value_decimal", func(ev map[string]any) { ev["metadata"].(map[string]any)["value_decimal"] = 42.5 }, "metadata.value_decimal"},
		{"unknown product field", func(ev map[string]any) {
			ev["metadata"].(map[string]any)["products"] = []any{map[string]any{"sku": "a"}}
		}, "metadata.products[0].sku"},
		{"unhashed e-mail", func(ev map[string]any) { user(ev)["email"] = "jane@example.com" }, "user.email"},
		{"phone digest of digits", func(ev map[string]any) { user(ev)["phone_number"] = strings.ToUpper(sha("16505551212")) }, "user.phone_number"},
		{"bad IP", func(ev map[string]any) { user(ev)["ip_address"] = "999.1.1.1" }, "user.ip_address"},
		{"bad uuid", func(ev map[string]any) { user(ev)["uuid"] = "1700000000.abcd-uuid" }, "user.uuid"},
		{"unknown user field", func(ev map[string]any) { user(ev)["fbp"] = "fb.1.1.1" }, "user.fbp"},
		{"bad LDU mode", func(ev map[string]any) {
			user(ev)["data_processing_options"] = map[string]any{"modes": []string{"CCPA"}}
		}, "user.data_processing_options.modes"},
		{"bad region", func(ev map[string]any) {
			user(ev)["data_processing_options"] = map[string]any{"modes": []string{"LDU"}, "country": "US", "region": "CA"}
		}, "user.data_processing_options.region"},
		{"no match key", func(ev map[string]any) {
			delete(ev, "click_id")
			ev["user"] = map[string]any{"user_agent": "Mozilla/5.0"}
		}, "user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			bad := goodEvent("bad")
			tc.f(bad)
			a := post(t, s, eventsPath, token, "application/json", withEvents(goodEvent("good"), bad, goodEvent("good2")))
			eb := a.error()
			if a.status != 400 || eb.Code != 400 || eb.Message != "There were 1 invalid conversion events. None were processed." {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			want := "$.data.events[1]." + tc.field
			found := false
			for _, f := range eb.Fields {
				if !strings.HasPrefix(f.Field, "$.data.events[1]") {
					t.Errorf("a field of another event: %+v", f)
				}
				found = found || f.Field == want
			}
			if !found {
				t.Errorf("fields %+v do not name %s", eb.Fields, want)
			}
			if len(s.Events(pixel)) != 0 {
				t.Error("part of a refused request was recorded")
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	s := newFake(t)
	s.FailNext(1, http.StatusTooManyRequests, ErrorBody{Code: 429, Message: "Too Many Requests"}.Body())
	if a := post(t, s, eventsPath, token, "application/json", withEvents(goodEvent("a"))); a.status != 429 || a.error().Code != 429 {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if a := post(t, s, eventsPath, token, "application/json", withEvents(goodEvent("a"))); a.status != 200 {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if s.Requests() != 2 || len(s.Events(pixel)) != 1 || len(s.Rejections()) != 0 {
		t.Errorf("requests %d events %d rejections %d", s.Requests(), len(s.Events(pixel)), len(s.Rejections()))
	}
	if got := s.WaitEvents(pixel, 1, time.Second); got[0].ConversionID != "a" {
		t.Errorf("WaitEvents %+v", got)
	}
}
