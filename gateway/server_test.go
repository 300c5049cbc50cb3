package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

func serverBody(events ...string) string {
	return `{"data":[` + strings.Join(events, ",") + `]}`
}

func TestServerEvents(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := fmt.Sprintf(`{"test_event_code":"TEST123","data":[{
		"event_name":"Purchase","event_time":%d,"event_id":"order-1001","action_source":"physical_store",
		"event_source_url":"https://shop.example/thanks","referrer_url":"https://shop.example/cart","opt_out":true,
		"user_data":{"em":["JANE@example.com"],"ph":"+44 20 7946 0958","fn":"%s",
			"client_ip_address":"2001:db8::5","client_user_agent":"Store/1.0","fbc":"fb.1.1.IwAR","fbp":"fb.1.2.3","lead_id":"77"},
		"custom_data":{"value":"ignored-type-check"}
	}]}`, testNow.Unix()-30*86400, sum("jane"))
	w := tg.do("POST", "/v1/events", body, "Authorization", "Bearer "+testIngestKey)
	if w.Code != 400 || decodeError(t, w).Error.Field != "data[0].custom_data.value" {
		t.Fatalf("string value: %d %s", w.Code, w.Body)
	}
	body = strings.Replace(body, `"ignored-type-check"`, `99.5,"currency":"GBP","tier":"gold"`, 1)
	body = strings.Replace(body, `"data":[{`, `"data":[{"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000,`, 1)
	w = tg.do("POST", "/v1/events", body, "Authorization", "Bearer "+testIngestKey)
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"events_received":1}` {
		t.Fatalf("POST /v1/events = %d %s", w.Code, w.Body)
	}
	ev := tg.q.all()[0]
	one := 1
	thousand := 1000
	checks := []struct {
		name      string
		got, want any
	}{
		{"site", tg.q.calls[0].Site, "shop"},
		{"event_id", ev.EventID, "order-1001"},
		{"action_source", ev.ActionSource, "physical_store"},
		{"opt_out", ev.OptOut, true},
		{"referrer_url", ev.ReferrerURL, "https://shop.example/cart"},
		{"em", ev.UserData.Em[0], sum("jane@example.com")},
		{"ph", ev.UserData.Ph[0], sum("442079460958")},
		{"fn prehashed", ev.UserData.Fn[0], sum("jane")},
		{"ip", ev.UserData.ClientIPAddress, "2001:db8::5"},
		{"ua", ev.UserData.ClientUserAgent, "Store/1.0"},
		{"fbc", ev.UserData.Fbc, "fb.1.1.IwAR"},
		{"fbp", ev.UserData.Fbp, "fb.1.2.3"},
		{"lead_id", ev.UserData.LeadID, "77"},
		{"value", *ev.CustomData.Value, 99.5},
		{"custom", string(ev.CustomData.Custom["tier"]), `"gold"`},
		{"ldu", strings.Join(ev.DataProcessingOptions, ","), "LDU"},
		{"ldu country", *ev.DataProcessingOptionsCountry, one},
		{"ldu state", *ev.DataProcessingOptionsState, thousand},
		{"context", ev.Context, destinations.Context{SiteID: "shop", ReceivedAt: testNow.UnixMilli(), Source: "server",
			TestEventCode: "TEST123", Consent: consent("granted", "granted", "granted", "granted")}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	b, _ := json.Marshal(ev)
	if strings.Contains(string(b), "JANE") || strings.Contains(string(b), "7946") {
		t.Errorf("raw PII enqueued: %s", b)
	}
}

func TestServerEventsAuth(t *testing.T) {
	tg := newTestGateway(t, nil)
	good := serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"website","event_source_url":"https://shop.example/p","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.7"}}`, testNow.Unix()))
	for _, auth := range []string{"", "Bearer", "Bearer wrong-key-wrong-key-00", "Basic " + testIngestKey, testIngestKey, "Bearer  "} {
		r := &countingReader{n: 1 << 20}
		req := newRequest("POST", "/v1/events", r)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := recorder()
		tg.h.ServeHTTP(w, req)
		if w.Code != 401 || decodeError(t, w).Error.Code != "unauthorized" || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q = %d %s", auth, w.Code, w.Body)
		}
		if r.read != 0 {
			t.Errorf("Authorization %q: read %d body bytes before authenticating", auth, r.read)
		}
		if strings.Contains(tg.log.String(), "wrong-key") {
			t.Errorf("log holds the presented key")
		}
	}
	if w := tg.do("POST", "/v1/events", good, "Authorization", "bearer "+testIngestKey); w.Code != 200 {
		t.Errorf("lowercase scheme = %d %s", w.Code, w.Body)
	}
}

func TestServerEventsBadInput(t *testing.T) {
	tg := newTestGateway(t, nil)
	ts := testNow.Unix()
	ev := func(extra string) string {
		return serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"website","event_source_url":"https://shop.example/p","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.7"}%s}`, ts, extra))
	}
	many := serverBody(strings.Repeat(`{"event_name":"A"},`, 9999) + `{"event_name":"A"}`)
	tests := []struct {
		name, body, code, field string
		status                  int
	}{
		{"malformed", `{"data":`, "invalid_json", "", 400},
		{"unknown top field", `{"data":[],"access_token":"x"}`, "invalid_json", "access_token", 400},
		{"unknown event field", ev(`,"app_data":{}`), "invalid_json", "data[0].app_data", 400},
		{"no events", `{"data":[]}`, "invalid_field", "data", 400},
		{"10,000 events", many, "too_many_events", "data", 413},
		{"3 MB body", `{"data":[{"event_name":"` + strings.Repeat("a", 3<<20) + `"}]}`, "body_too_large", "", 413},
		{"missing action_source", serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d}`, ts)), "invalid_field", "data[0].action_source", 400},
		{"bad action_source", serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"Website"}`, ts)), "invalid_field", "data[0].action_source", 400},
		{"missing event_time", serverBody(`{"event_name":"Lead","action_source":"website"}`), "invalid_field", "data[0].event_time", 400},
		{"old event_time", serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"website","event_source_url":"https://shop.example/p","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.7"}}`, ts-8*86400)), "invalid_field", "data[0].event_time", 400},
		{"bad LDU", ev(`,"data_processing_options":["XYZ"]`), "invalid_field", "data[0].data_processing_options", 400},
		{"bad LDU state", ev(`,"data_processing_options_state":5`), "invalid_field", "data[0].data_processing_options_state", 400},
		{"a bad email and nothing else", serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"other","user_data":{"em":"nope"}}`, ts)),
			"invalid_field", "data[0].user_data", 400},
		{"content_ids a string", ev(`,"custom_data":{"content_ids":"[\"a\"]"}`), "invalid_json", "data[0].custom_data.content_ids", 400},
		{"contents a string", ev(`,"custom_data":{"contents":"[{\"id\":\"a\"}]"}`), "invalid_json", "data[0].custom_data.contents", 400},
		{"value with a decimal comma", ev(`,"custom_data":{"value":"19,90","currency":"EUR"}`), "invalid_json", "data[0].custom_data.value", 400},
		{"quantity a fraction", ev(`,"custom_data":{"contents":[{"id":"a","quantity":1.5}]}`), "invalid_json", "data[0].custom_data.contents.quantity", 400},
		{"user_data key unknown", ev(`,"user_data":{"email":"a@b.co","client_user_agent":"UA/1"}`), "invalid_field", "data[0].user_data.email", 400},
		{"too long test_event_code", `{"test_event_code":"` + strings.Repeat("T", 65) + `","data":[{}]}`, "invalid_field", "test_event_code", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tg.do("POST", "/v1/events", tt.body, "Authorization", "Bearer "+testIngestKey)
			if w.Code != tt.status {
				t.Fatalf("status %d; want %d: %s", w.Code, tt.status, w.Body)
			}
			if e := decodeError(t, w); e.Error.Code != tt.code || e.Error.Field != tt.field {
				t.Errorf("error %+v; want %s %q", e.Error, tt.code, tt.field)
			}
		})
	}
	if w := tg.do("POST", "/v1/events", ev(""), "Authorization", "Bearer "+testIngestKey); w.Code != 200 {
		t.Fatalf("after bad input: %d %s", w.Code, w.Body)
	}
}

func TestServerEventsEnqueueFailure(t *testing.T) {
	tg := newTestGateway(t, nil)
	tg.q.err = errors.New("queue down")
	w := tg.do("POST", "/v1/events", serverBody(fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"website","event_source_url":"https://shop.example/p","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.7"}}`, testNow.Unix())),
		"Authorization", "Bearer "+testIngestKey)
	if w.Code != 503 || w.Header().Get("Retry-After") != "5" || decodeError(t, w).Error.Code != "unavailable" {
		t.Fatalf("= %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// Graph's own leniencies, on both server paths: numbers where Meta wants
// strings (content_ids, contents[].id, order_id, event_id, user_data
// values) and plain numeric strings where it wants numbers.
func TestServerEventsGraphCoercions(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := serverBody(fmt.Sprintf(`{"event_name":"Purchase","event_time":"%d","event_id":1001,"action_source":"website",
		"event_source_url":"https://shop.example/thanks",
		"user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.7","zp":12345,"external_id":[42,"c-9"],"ph":4915112345678},
		"custom_data":{"value":"19.90","currency":"EUR","order_id":1001,"content_ids":[123,456],
			"contents":[{"id":7,"quantity":"2","item_price":"9.95"}],"num_items":"2","predicted_ltv":"100"}}`, testNow.Unix()))
	w := tg.do("POST", "/v1/events", body, "Authorization", "Bearer "+testIngestKey)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ev := tg.q.all()[0]
	cd := ev.CustomData
	got := fmt.Sprintf("%d %s %v %s %v %s %d %v %d %v", ev.EventTime, ev.EventID, *cd.Value, cd.OrderID, cd.ContentIDs,
		cd.Contents[0].ID, *cd.Contents[0].Quantity, *cd.Contents[0].ItemPrice, *cd.NumItems, *cd.PredictedLTV)
	want := fmt.Sprintf("%d 1001 19.9 1001 [123 456] 7 2 9.95 2 100", testNow.Unix())
	if got != want {
		t.Errorf("coerced event %s; want %s", got, want)
	}
	if ev.UserData.Zp[0] != sum("12345") || ev.UserData.ExternalID[0] != sum("42") || ev.UserData.Ph[0] != sum("4915112345678") {
		t.Errorf("user_data %+v", ev.UserData)
	}
}

// One customer-information value that cannot be used is dropped, said in
// messages and counted; the event is refused only when what remains fails
// Meta's baseline.
func TestServerEventsDropUnusableCustomerInfo(t *testing.T) {
	ts := testNow.Unix()
	purchase := func(userData string) string {
		return serverBody(fmt.Sprintf(`{"event_name":"Purchase","event_time":%d,"action_source":"email",
			"user_data":{%s},"custom_data":{"value":5,"currency":"EUR"}}`, ts, userData))
	}
	for _, tc := range []struct {
		name, userData, field, reason string
		status                        int
	}{
		{"emoji first name", `"fn":"🙂","em":"jane@example.com"`, "fn", "unusable", 200},
		{"first name of 300 letters", `"fn":"` + strings.Repeat("a", 300) + `","em":"jane@example.com"`, "fn", "too_long", 200},
		{"one bad email of two", `"em":["nope","jane@example.com"]`, "em", "unusable", 200},
		{"md5 email beside a phone", `"em":"5d41402abc4b2a76b9719d911017c592","ph":"+1 650 555 1212"`, "em", "unusable", 200},
		{"emoji first name, nothing else", `"fn":"🙂"`, "", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			w := tg.do("POST", "/v1/events", purchase(tc.userData), "Authorization", "Bearer "+testIngestKey)
			if w.Code != tc.status {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if tc.status == 400 {
				if e := decodeError(t, w); e.Error.Field != "data[0].user_data" {
					t.Errorf("error %+v; want the baseline rule on data[0].user_data", e.Error)
				}
				return
			}
			var a struct {
				EventsReceived int      `json:"events_received"`
				Messages       []string `json:"messages"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.EventsReceived != 1 || len(a.Messages) != 1 ||
				!strings.HasPrefix(a.Messages[0], "data[0].user_data."+tc.field+":") {
				t.Errorf("answer %s", w.Body)
			}
			ev := tg.q.all()[0]
			if len(ev.UserData.Em)+len(ev.UserData.Ph) == 0 || (tc.field == "fn" && len(ev.UserData.Fn) != 0) {
				t.Errorf("user_data %+v", ev.UserData)
			}
			if got := counter(t, tg.reg, "tagway_events_fixed_total", map[string]string{"field": "user_data." + tc.field, "reason": tc.reason}); got != 1 {
				t.Errorf("counted %v; want 1", got)
			}
		})
	}
}
