package ga4test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	stream = "G-FAKE1234"
	secret = "fakeSecret"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

// good is a request the validation server must accept.
func good() map[string]any {
	return map[string]any{
		"client_id":        "123.456",
		"user_id":          "u1",
		"timestamp_micros": testNow.Add(-time.Hour).UnixMicro(),
		"consent":          map[string]any{"ad_user_data": "GRANTED", "ad_personalization": "DENIED"},
		"user_data": map[string]any{
			"sha256_email_address": []any{sha("a@b.co")},
			"address":              []any{map[string]any{"sha256_first_name": sha("jane"), "city": "berlin"}},
		},
		"ip_override":   "203.0.113.9",
		"user_location": map[string]any{"country_id": "DE", "region_id": "DE-BE"},
		"events": []any{map[string]any{
			"name":             "purchase",
			"timestamp_micros": testNow.Add(-time.Minute).UnixMicro(),
			"params": map[string]any{
				"transaction_id": "1001", "currency": "EUR", "value": 12.5,
				"items": []any{map[string]any{"item_id": "sku", "price": 12.5, "quantity": 1}},
			},
		}},
	}
}

func event(req map[string]any) map[string]any {
	return req["events"].([]any)[0].(map[string]any)
}

func params(req map[string]any) map[string]any {
	return event(req)["params"].(map[string]any)
}

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(req map[string]any)
		code  string // "" valid
		event int
	}{
		{"valid", func(map[string]any) {}, "", 0},
		{"unknown top-level field", func(r map[string]any) { r["clientid"] = "x" }, ValueInvalid, -1},
		{"no client_id", func(r map[string]any) { delete(r, "client_id") }, ValueRequired, -1},
		{"user_id of 257", func(r map[string]any) { r["user_id"] = strings.Repeat("u", 257) }, ValueOutOfBounds, -1},
		{"milliseconds", func(r map[string]any) { r["timestamp_micros"] = testNow.UnixMilli() }, ValueInvalid, -1},
		{"73 hours old", func(r map[string]any) { r["timestamp_micros"] = testNow.Add(-73 * time.Hour).UnixMicro() }, ValueOutOfBounds, -1},
		{"event 73 hours old", func(r map[string]any) { event(r)["timestamp_micros"] = testNow.Add(-73 * time.Hour).UnixMicro() }, ValueOutOfBounds, 0},
		{"future", func(r map[string]any) { r["timestamp_micros"] = testNow.Add(time.Hour).UnixMicro() }, ValueOutOfBounds, -1},
		{"consent lower case", func(r map[string]any) { r["consent"] = map[string]any{"ad_user_data": "granted"} }, ValueInvalid, -1},
		{"unhashed e-mail", func(r map[string]any) {
			r["user_data"] = map[string]any{"sha256_email_address": []any{"a@b.co"}}
		}, ValueInvalid, -1},
		{"four phones", func(r map[string]any) {
			r["user_data"] = map[string]any{"sha256_phone_number": []any{sha("1"), sha("2"), sha("3"), sha("4")}}
		}, ExceededMaxEntities, -1},
		{"bad ip_override", func(r map[string]any) { r["ip_override"] = "localhost" }, ValueInvalid, -1},
		{"bad region", func(r map[string]any) { r["user_location"] = map[string]any{"region_id": "California"} }, ValueInvalid, -1},
		{"no events", func(r map[string]any) { r["events"] = []any{} }, ValueRequired, -1},
		{"26 events", func(r map[string]any) {
			var evs []any
			for range 26 {
				evs = append(evs, map[string]any{"name": "page_view"})
			}
			r["events"] = evs
		}, ExceededMaxEntities, -1},
		{"reserved name", func(r map[string]any) { event(r)["name"] = "session_start" }, NameReserved, 0},
		{"reserved prefix", func(r map[string]any) { event(r)["name"] = "ga_purchase" }, NameReserved, 0},
		{"invalid name", func(r map[string]any) { event(r)["name"] = "buy now" }, NameInvalid, 0},
		{"41 characters", func(r map[string]any) { event(r)["name"] = strings.Repeat("a", 41) }, NameInvalid, 0},
		{"unknown event field", func(r map[string]any) { event(r)["parameters"] = map[string]any{} }, ValueInvalid, 0},
		{"26 params", func(r map[string]any) {
			p := map[string]any{}
			for i := range 26 {
				p["p"+strings.Repeat("x", i)] = 1
			}
			event(r)["params"] = p
		}, ExceededMaxEntities, 0},
		{"reserved param", func(r map[string]any) { params(r)["firebase_conversion"] = 1 }, NameReserved, 0},
		{"long value", func(r map[string]any) { params(r)["coupon"] = strings.Repeat("c", 101) }, ValueOutOfBounds, 0},
		{"long page_location is fine", func(r map[string]any) { params(r)["page_location"] = strings.Repeat("c", 1000) }, "", 0},
		{"object param", func(r map[string]any) { params(r)["coupon"] = map[string]any{} }, ValueInvalid, 0},
		{"item without id", func(r map[string]any) { params(r)["items"] = []any{map[string]any{"price": 1}} }, ValueRequired, 0},
		{"201 items", func(r map[string]any) {
			var items []any
			for range 201 {
				items = append(items, map[string]any{"item_id": "x"})
			}
			params(r)["items"] = items
		}, ExceededMaxEntities, 0},
		{"value without currency, relaxed", func(r map[string]any) { delete(params(r), "currency") }, "", 0},
		{"value without currency, enforced", func(r map[string]any) {
			delete(params(r), "currency")
			r["validation_behavior"] = "ENFORCE_RECOMMENDATIONS"
		}, ValueRequired, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := good()
			tc.edit(req)
			body, _ := json.Marshal(req)
			msgs := Validate(body, testNow)
			if tc.code == "" {
				if len(msgs) != 0 {
					t.Fatalf("refused: %+v", msgs)
				}
				return
			}
			if len(msgs) == 0 || msgs[0].ValidationCode != tc.code || msgs[0].Event != tc.event {
				t.Fatalf("messages %+v, want %s for event %d", msgs, tc.code, tc.event)
			}
		})
	}
}

func post(t *testing.T, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	return destinationstest.Post(t, url, http.Header{"Content-Type": {contentType}}, body)
}

func newFake(t *testing.T) *Server {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	s.AddStream(stream, secret)
	return s
}

// TestCollectAnswers204AndDropsSilently: the collection endpoint records
// valid events, answers 204 to everything and notes what it dropped.
func TestCollectAnswers204AndDropsSilently(t *testing.T) {
	s := newFake(t)
	collect := s.URL() + "/mp/collect?measurement_id=" + stream + "&api_secret=" + secret
	req := good()
	bad := map[string]any{"name": "first_visit"}
	req["events"] = append(req["events"].([]any), bad)
	body, _ := json.Marshal(req)
	if code, _ := post(t, collect, "application/json", body); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	got := s.Events(stream)
	if len(got) != 1 || got[0].Name != "purchase" || got[0].ClientID != "123.456" || got[0].UserID != "u1" ||
		got[0].TimestampMicros != testNow.Add(-time.Minute).UnixMicro() || got[0].Params["transaction_id"] != "1001" {
		t.Fatalf("recorded %+v", got)
	}
	if d := s.Dropped(); len(d) != 1 || d[0].Event != 1 || !strings.Contains(d[0].Reason, NameReserved) {
		t.Fatalf("dropped %+v", d)
	}

	// A wrong secret, a request-level problem, a form body: 204, nothing kept.
	wrong := s.URL() + "/mp/collect?measurement_id=" + stream + "&api_secret=nope"
	good, _ := json.Marshal(good())
	for _, c := range []struct {
		url, ct string
		body    []byte
	}{
		{wrong, "application/json", good},
		{collect, "application/json", []byte(`{"events":[{"name":"page_view"}]}`)},
		{collect, "application/x-www-form-urlencoded", good},
	} {
		if code, _ := post(t, c.url, c.ct, c.body); code != http.StatusNoContent {
			t.Errorf("status %d", code)
		}
	}
	if n := len(s.Events(stream)); n != 1 {
		t.Errorf("recorded %d events", n)
	}
	if d := s.Dropped(); len(d) != 4 {
		t.Errorf("dropped %+v", d)
	}
}

// TestDebugEndpoint answers GA4's validationMessages shape and records
// nothing.
func TestDebugEndpoint(t *testing.T) {
	s := newFake(t)
	debug := s.URL() + "/debug/mp/collect?measurement_id=" + stream + "&api_secret=whatever"
	req := good()
	event(req)["name"] = "_private"
	body, _ := json.Marshal(req)
	code, out := post(t, debug, "application/json", body)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var got map[string][]map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	msgs := got["validationMessages"]
	if len(got) != 1 || len(msgs) != 1 || msgs[0]["validationCode"] != NameReserved || msgs[0]["fieldPath"] != "events" ||
		!strings.Contains(msgs[0]["description"], "index: [0]") || len(msgs[0]) != 3 {
		t.Fatalf("answer %s", out)
	}
	clean, _ := json.Marshal(good())
	if _, out := post(t, debug, "application/json", clean); strings.TrimSpace(string(out)) != `{"validationMessages":[]}` {
		t.Errorf("clean answer %s", out)
	}
	if len(s.Events(stream)) != 0 {
		t.Error("the validation server recorded events")
	}
}

func TestMethodPathAndFailNext(t *testing.T) {
	s := newFake(t)
	resp, err := http.Get(s.URL() + "/mp/collect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if code, _ := post(t, s.URL()+"/collect", "application/json", []byte(`{}`)); code != http.StatusNotFound {
		t.Errorf("wrong path: %d", code)
	}
	s.FailNext(1, http.StatusBadGateway, "bad gateway")
	body, _ := json.Marshal(good())
	url := s.URL() + "/mp/collect?measurement_id=" + stream + "&api_secret=" + secret
	if code, out := post(t, url, "application/json", body); code != http.StatusBadGateway || string(out) != "bad gateway" {
		t.Errorf("FailNext: %d %s", code, out)
	}
	if code, _ := post(t, url, "application/json", body); code != http.StatusNoContent || len(s.Events(stream)) != 1 {
		t.Errorf("after FailNext: %d, %d events", code, len(s.Events(stream)))
	}
	if s.Requests() != 4 {
		t.Errorf("%d requests", s.Requests())
	}
	if got := s.WaitEvents(stream, 1, time.Second); len(got) != 1 {
		t.Errorf("WaitEvents %d", len(got))
	}
}
