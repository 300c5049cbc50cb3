package metatest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	pixel = "1234567890"
	token = "EAAtesttoken"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

// goodEvent is a website Purchase the fake must accept.
func goodEvent() map[string]any {
	return map[string]any{
		"event_name":       "Purchase",
		"event_time":       testNow.Add(-time.Hour).Unix(),
		"event_id":         "3f0c6a52-0000-4000-8000-000000000001",
		"action_source":    "website",
		"event_source_url": "https://shop.example/thank-you",
		"user_data": map[string]any{
			"em":                []string{sha("jane@example.com")},
			"ph":                sha("16505551212"),
			"external_id":       "cust-9",
			"client_ip_address": "2001:db8::1",
			"client_user_agent": "Mozilla/5.0",
			"fbp":               "fb.1.1732752000000.482913756",
			"fbc":               "fb.1.1732752000000.IwAR2F4-dbP0l7Mn1",
		},
		"custom_data": map[string]any{"value": 42.5, "currency": "EUR", "content_ids": []string{"sku-1"}},
	}
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddPixel(pixel, token)
	return s
}

func postJSON(t *testing.T, target string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, target, "application/json", bytes.NewReader(b))
}

func do(t *testing.T, method, target, contentType string, body io.Reader) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func eventsURL(s *Server) string { return s.URL() + "/v24.0/" + pixel + "/events" }

// errorCode reads code and subcode from a Graph error envelope.
func errorCode(t *testing.T, resp map[string]any) (int, int) {
	t.Helper()
	e, ok := resp["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", resp)
	}
	for _, k := range []string{"message", "type", "code", "is_transient", "fbtrace_id"} {
		if _, ok := e[k]; !ok {
			t.Errorf("error envelope lacks %q: %v", k, e)
		}
	}
	code, _ := e["code"].(float64)
	sub, _ := e["error_subcode"].(float64)
	return int(code), int(sub)
}

func TestAcceptsAllEncodings(t *testing.T) {
	ev, err := json.Marshal([]any{goodEvent()})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"data": {string(ev)}, "access_token": {token}, "test_event_code": {"TEST1"}, "partner_agent": {"tagway"}}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	for k, v := range form {
		if err := mw.WriteField(k, v[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	jsonBody, _ := json.Marshal(map[string]any{"data": []any{goodEvent()}, "access_token": token,
		"test_event_code": "TEST1", "partner_agent": "tagway"})

	cases := []struct {
		name, contentType string
		body              []byte
	}{
		{"json", "application/json", jsonBody},
		{"form", "application/x-www-form-urlencoded", []byte(form.Encode())},
		{"multipart", mw.FormDataContentType(), mp.Bytes()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			status, resp := do(t, http.MethodPost, eventsURL(s), tc.contentType, bytes.NewReader(tc.body))
			if status != http.StatusOK || resp["events_received"] != float64(1) {
				t.Fatalf("status %d, body %v", status, resp)
			}
			if _, ok := resp["messages"].([]any); !ok {
				t.Errorf("messages is not an array: %v", resp)
			}
			if resp["fbtrace_id"] == "" || resp["fbtrace_id"] == nil {
				t.Errorf("no fbtrace_id: %v", resp)
			}
			got := s.Events(pixel)
			if len(got) != 1 {
				t.Fatalf("got %d events", len(got))
			}
			r := got[0]
			if r.EventName != "Purchase" || r.EventID != "3f0c6a52-0000-4000-8000-000000000001" ||
				r.EventTime != testNow.Add(-time.Hour).Unix() || r.TestEventCode != "TEST1" ||
				r.PartnerAgent != "tagway" || r.TokenIn != "body" || r.ActionSource != "website" {
				t.Errorf("received %+v", r)
			}
			if r.UserData["fbp"] != "fb.1.1732752000000.482913756" {
				t.Errorf("user_data %v", r.UserData)
			}
			if r.CustomData["currency"] != "EUR" {
				t.Errorf("custom_data %v", r.CustomData)
			}
		})
	}
}

func TestTokenInQueryOrHeader(t *testing.T) {
	s := newFake(t)
	status, resp := postJSON(t, eventsURL(s)+"?access_token="+token, map[string]any{"data": []any{goodEvent()}})
	if status != http.StatusOK {
		t.Fatalf("query token: %d %v", status, resp)
	}
	b, _ := json.Marshal(map[string]any{"data": []any{goodEvent()}})
	req, _ := http.NewRequest(http.MethodPost, eventsURL(s), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("header token: %d", resp2.StatusCode)
	}
	got := s.Events(pixel)
	if len(got) != 2 || got[0].TokenIn != "query" || got[1].TokenIn != "header" {
		t.Fatalf("events %+v", got)
	}
}

func TestRejects(t *testing.T) {
	type mutate func(body map[string]any, ev map[string]any, ud map[string]any, cd map[string]any)
	cases := []struct {
		name    string
		mutate  mutate
		code    int
		subcode int
	}{
		{"missing token", func(b, _, _, _ map[string]any) { delete(b, "access_token") }, 190, 0},
		{"wrong token", func(b, _, _, _ map[string]any) { b["access_token"] = "EAAwrong" }, 190, 0},
		{"missing data", func(b, _, _, _ map[string]any) { delete(b, "data") }, 100, 0},
		{"empty data", func(b, _, _, _ map[string]any) { b["data"] = []any{} }, 100, 0},
		{"data not an array", func(b, _, _, _ map[string]any) { b["data"] = map[string]any{} }, 100, 0},
		{"too many events", func(b, ev, _, _ map[string]any) {
			many := make([]any, MaxEvents+1)
			for i := range many {
				many[i] = ev
			}
			b["data"] = many
		}, 100, 0},
		{"no event_name", func(_, ev, _, _ map[string]any) { delete(ev, "event_name") }, 100, 0},
		{"empty event_name", func(_, ev, _, _ map[string]any) { ev["event_name"] = "" }, 100, 0},
		{"event_time string", func(_, ev, _, _ map[string]any) { ev["event_time"] = "1732752000" }, 100, 0},
		{"event_time float", func(_, ev, _, _ map[string]any) { ev["event_time"] = 1732752000.5 }, 100, 0},
		{"event_time milliseconds", func(_, ev, _, _ map[string]any) { ev["event_time"] = testNow.UnixMilli() }, 100, 0},
		{"event_time 8 days old", func(_, ev, _, _ map[string]any) {
			ev["event_time"] = testNow.Add(-8 * 24 * time.Hour).Unix()
		}, 100, 2804003},
		{"physical_store 63 days old", func(_, ev, _, _ map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = testNow.Add(-63 * 24 * time.Hour).Unix()
		}, 100, 2804003},
		{"event_time in the future", func(_, ev, _, _ map[string]any) {
			ev["event_time"] = testNow.Add(time.Hour).Unix()
		}, 100, 0},
		{"no action_source", func(_, ev, _, _ map[string]any) { delete(ev, "action_source") }, 100, 0},
		{"unknown action_source", func(_, ev, _, _ map[string]any) { ev["action_source"] = "web" }, 100, 0},
		{"website without event_source_url", func(_, ev, _, _ map[string]any) { delete(ev, "event_source_url") }, 100, 0},
		{"event_source_url not http", func(_, ev, _, _ map[string]any) { ev["event_source_url"] = "shop.example/x" }, 100, 0},
		{"website without user agent", func(_, _, ud, _ map[string]any) { delete(ud, "client_user_agent") }, 100, 0},
		{"no user_data", func(_, ev, _, _ map[string]any) { delete(ev, "user_data") }, 100, 0},
		{"raw email", func(_, _, ud, _ map[string]any) { ud["em"] = "jane@example.com" }, 100, 0},
		{"raw phone in array", func(_, _, ud, _ map[string]any) { ud["ph"] = []any{sha("x"), "+16505551212"} }, 100, 0},
		{"uppercase hash", func(_, _, ud, _ map[string]any) { ud["fn"] = strings.ToUpper(sha("jane")) }, 100, 0},
		{"raw country", func(_, _, ud, _ map[string]any) { ud["country"] = "us" }, 100, 0},
		{"em not a string", func(_, _, ud, _ map[string]any) { ud["em"] = 42 }, 100, 0},
		{"hashed fbp", func(_, _, ud, _ map[string]any) { ud["fbp"] = sha("fb.1.1732752000000.482913756") }, 100, 0},
		{"fbc without payload", func(_, _, ud, _ map[string]any) { ud["fbc"] = "fb.1.1732752000000." }, 100, 0},
		{"fbp bad prefix", func(_, _, ud, _ map[string]any) { ud["fbp"] = "fp.1.1732752000000.1" }, 100, 0},
		{"bad ip", func(_, _, ud, _ map[string]any) { ud["client_ip_address"] = "1.2.3" }, 100, 0},
		{"only user agent", func(_, _, ud, _ map[string]any) {
			for k := range ud {
				if k != "client_user_agent" {
					delete(ud, k)
				}
			}
		}, 100, 2804050},
		{"empty user_data", func(_, ev, _, _ map[string]any) {
			ev["action_source"] = "system_generated"
			ev["user_data"] = map[string]any{}
		}, 100, 2804050},
		{"geo and user agent only", func(_, _, ud, _ map[string]any) {
			for k := range ud {
				if k != "client_user_agent" {
					delete(ud, k)
				}
			}
			ud["ct"], ud["country"], ud["zp"] = sha("paris"), sha("fr"), sha("75001")
		}, 100, 2804050},
		{"fn and ge only", func(_, ev, _, _ map[string]any) {
			ev["action_source"] = "phone_call"
			ev["user_data"] = map[string]any{"fn": sha("jane"), "ge": sha("f")}
		}, 100, 2804050},
		{"bad currency", func(_, _, _, cd map[string]any) { cd["currency"] = "EURO" }, 100, 0},
		{"value not numeric", func(_, _, _, cd map[string]any) { cd["value"] = "a lot" }, 100, 0},
		{"purchase without value", func(_, _, _, cd map[string]any) { delete(cd, "value") }, 100, 0},
		{"purchase without currency", func(_, _, _, cd map[string]any) { delete(cd, "currency") }, 100, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			ev := goodEvent()
			other := goodEvent()
			other["event_id"] = "other"
			body := map[string]any{"data": []any{other, ev}, "access_token": token}
			tc.mutate(body, ev, ev["user_data"].(map[string]any), ev["custom_data"].(map[string]any))
			status, resp := postJSON(t, eventsURL(s), body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, body %v", status, resp)
			}
			code, sub := errorCode(t, resp)
			if code != tc.code || sub != tc.subcode {
				t.Errorf("got %d/%d, want %d/%d: %v", code, sub, tc.code, tc.subcode, resp)
			}
			if n := len(s.Events(pixel)); n != 0 {
				t.Errorf("%d events recorded from a rejected batch", n)
			}
			if n := len(s.Rejections()); n != 1 {
				t.Errorf("%d rejections recorded", n)
			}
		})
	}
}

func TestAcceptsEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ev, ud, cd map[string]any)
	}{
		{"no event_id", func(ev, _, _ map[string]any) { delete(ev, "event_id") }},
		{"fbp alone", func(ev, _, _ map[string]any) {
			ev["action_source"] = "system_generated"
			ev["user_data"] = map[string]any{"fbp": "fb.1.1732752000000.482913756"}
		}},
		{"ip and user agent", func(_, ud, _ map[string]any) {
			for k := range ud {
				if k != "client_user_agent" {
					delete(ud, k)
				}
			}
			ud["client_ip_address"] = "203.0.113.7"
		}},
		{"physical_store 60 days old", func(ev, _, _ map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = testNow.Add(-60 * 24 * time.Hour).Unix()
		}},
		{"6 days old", func(ev, _, _ map[string]any) { ev["event_time"] = testNow.Add(-6 * 24 * time.Hour).Unix() }},
		{"value as numeric string", func(_, _, cd map[string]any) { cd["value"] = "142.52" }},
		{"lowercase currency", func(_, _, cd map[string]any) { cd["currency"] = "usd" }},
		{"hash with appendix", func(_, ud, _ map[string]any) { ud["em"] = sha("a@b.example") + ".AQQCAQMC" }},
		{"fbc with appendix", func(_, ud, _ map[string]any) { ud["fbc"] = "fb.1.1732752000000.IwAR2F4.AQQCAQMC" }},
		{"hashed external_id", func(_, ud, _ map[string]any) { ud["external_id"] = []string{sha("cust-9")} }},
		{"custom event without custom_data", func(ev, _, _ map[string]any) {
			ev["event_name"] = "QuizDone"
			delete(ev, "custom_data")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			ev := goodEvent()
			tc.mutate(ev, ev["user_data"].(map[string]any), ev["custom_data"].(map[string]any))
			status, resp := postJSON(t, eventsURL(s), map[string]any{"data": []any{ev}, "access_token": token})
			if status != http.StatusOK {
				t.Fatalf("status %d, body %v", status, resp)
			}
			if got := s.Events(pixel); len(got) != 1 {
				t.Fatalf("got %d events", len(got))
			}
		})
	}
}

func TestPathMethodAndPixel(t *testing.T) {
	s := newFake(t)
	s.AddPixel("555", "EAAother")
	body := map[string]any{"data": []any{goodEvent()}, "access_token": token}
	cases := []struct {
		name, method, path string
		code, subcode      int
	}{
		{"no version", http.MethodPost, "/" + pixel + "/events", 2500, 0},
		{"bad version", http.MethodPost, "/24.0/" + pixel + "/events", 2500, 0},
		{"wrong edge", http.MethodPost, "/v24.0/" + pixel + "/event", 2500, 0},
		{"GET", http.MethodGet, "/v24.0/" + pixel + "/events", 100, 33},
		{"unknown pixel", http.MethodPost, "/v24.0/999/events", 100, 33},
		{"another pixel's token", http.MethodPost, "/v24.0/555/events", 100, 33},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(body)
			status, resp := do(t, tc.method, s.URL()+tc.path, "application/json", bytes.NewReader(b))
			if status != http.StatusBadRequest {
				t.Fatalf("status %d", status)
			}
			if code, sub := errorCode(t, resp); code != tc.code || sub != tc.subcode {
				t.Errorf("got %d/%d, want %d/%d", code, sub, tc.code, tc.subcode)
			}
		})
	}
	if n := len(s.Events(pixel)) + len(s.Events("555")) + len(s.Events("999")); n != 0 {
		t.Errorf("%d events recorded", n)
	}
}

func TestFailNextAndWait(t *testing.T) {
	s := newFake(t)
	s.FailNext(2, http.StatusServiceUnavailable, GraphError{Code: 2, Message: "Service temporarily unavailable", IsTransient: true}.Body())
	body := map[string]any{"data": []any{goodEvent()}, "access_token": token}
	for i := range 2 {
		status, resp := postJSON(t, eventsURL(s), body)
		if status != http.StatusServiceUnavailable {
			t.Fatalf("request %d: status %d", i, status)
		}
		if code, _ := errorCode(t, resp); code != 2 {
			t.Fatalf("request %d: code %d", i, code)
		}
	}
	b, _ := json.Marshal(body)
	go func() {
		resp, err := http.Post(eventsURL(s), "application/json", bytes.NewReader(b))
		if err == nil {
			resp.Body.Close()
		}
	}()
	got := s.WaitEvents(pixel, 1, 5*time.Second)
	if len(got) != 1 || s.Requests() != 3 {
		t.Fatalf("got %d events after %d requests", len(got), s.Requests())
	}
	// Events returns a copy.
	got[0].EventName = "changed"
	if s.Events(pixel)[0].EventName != "Purchase" {
		t.Error("Events exposes internal state")
	}
}
