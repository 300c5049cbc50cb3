package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// TestMetaRulesAtIngest: what Meta would refuse is refused at the server
// ingest with a 400 naming the field, and what Meta accepts passes (the
// browser path keeps such events: TestMetaRulesOnBrowserEvents).
func TestMetaRulesAtIngest(t *testing.T) {
	tg := newTestGateway(t, nil)
	now := testNow.Unix()
	const (
		ua  = `"client_user_agent":"Mozilla/5.0"`
		ip  = `"client_ip_address":"203.0.113.7"`
		url = `"event_source_url":"https://shop.example/p"`
	)
	// server builds one /v1/events event from parts.
	server := func(name, source string, ts int64, extra, userData string) string {
		return fmt.Sprintf(`{"data":[{"event_name":%q,"event_time":%d,"action_source":%q%s,"user_data":{%s}}]}`,
			name, ts, source, extra, userData)
	}
	cases := []struct {
		name, path, body, field string // field "" = accepted
		hdr                     []string
	}{
		// event_time
		{"ms event_time", "/v1/events", server("Lead", "website", now*1000, ","+url, ua+","+ip), "data[0].event_time", nil},
		{"8 days old", "/v1/events", server("Lead", "website", now-8*86400, ","+url, ua+","+ip), "data[0].event_time", nil},
		{"6 days old", "/v1/events", server("Lead", "website", now-6*86400, ","+url, ua+","+ip), "", nil},
		{"physical_store 30 days old", "/v1/events", server("Purchase", "physical_store", now-30*86400,
			`,"custom_data":{"value":5,"currency":"USD"}`, `"em":"a@example.com"`), "", nil},
		{"physical_store 63 days old", "/v1/events", server("Purchase", "physical_store", now-63*86400,
			`,"custom_data":{"value":5,"currency":"USD"}`, `"em":"a@example.com"`), "data[0].event_time", nil},
		{"1 hour ahead", "/v1/events", server("Lead", "website", now+3600, ","+url, ua+","+ip), "data[0].event_time", nil},
		{"5 minutes ahead (clock skew)", "/v1/events", server("Lead", "website", now+300, ","+url, ua+","+ip), "", nil},
		// website requirements
		{"website without event_source_url", "/v1/events", server("Lead", "website", now, "", ua+","+ip), "data[0].event_source_url", nil},
		{"website without user agent", "/v1/events", server("Lead", "website", now, ","+url, ip+`,"em":"a@example.com"`), "data[0].user_data.client_user_agent", nil},
		{"email event needs no URL", "/v1/events", server("Lead", "email", now, "", `"em":"a@example.com"`), "", nil},
		// currency and value
		{"currency not ISO 4217", "/v1/events", server("Lead", "email", now, `,"custom_data":{"currency":"ABC","value":1}`, `"em":"a@example.com"`),
			"data[0].custom_data.currency", nil},
		{"currency lower case", "/v1/events", server("Lead", "email", now, `,"custom_data":{"currency":"eur","value":1}`, `"em":"a@example.com"`), "", nil},
		{"withdrawn currency Meta still takes", "/v1/events", server("Lead", "email", now, `,"custom_data":{"currency":"HRK","value":1}`, `"em":"a@example.com"`), "", nil},
		{"value not numeric", "/v1/events", server("Lead", "email", now, `,"custom_data":{"currency":"EUR","value":"abc"}`, `"em":"a@example.com"`),
			"data[0].custom_data.value", nil},
		{"value numeric string", "/v1/events", server("Lead", "email", now, `,"custom_data":{"currency":"EUR","value":"142.52"}`, `"em":"a@example.com"`), "", nil},
		// Purchase
		{"Purchase without value", "/v1/events", server("Purchase", "email", now, `,"custom_data":{"currency":"EUR"}`, `"em":"a@example.com"`),
			"data[0].custom_data.value", nil},
		{"Purchase without currency", "/v1/events", server("Purchase", "email", now, `,"custom_data":{"value":3}`, `"em":"a@example.com"`),
			"data[0].custom_data.currency", nil},
		{"Purchase without custom_data", "/v1/events", server("Purchase", "email", now, ``, `"em":"a@example.com"`), "data[0].custom_data.value", nil},
		// customer information (Meta's baseline)
		{"no customer information", "/v1/events", server("Lead", "email", now, "", ``), "data[0].user_data", nil},
		{"user agent alone", "/v1/events", server("Lead", "other", now, "", ua), "data[0].user_data", nil},
		{"fn and ge only", "/v1/events", server("Lead", "email", now, "", `"fn":"Jane","ge":"f"`), "data[0].user_data", nil},
		{"location and ua only", "/v1/events", server("Lead", "other", now, "", `"ct":"Paris","zp":"75001","country":"FR",`+ua), "data[0].user_data", nil},
		{"fbp alone", "/v1/events", server("Lead", "other", now, "", `"fbp":"fb.1.1700000000000.123"`), "", nil},
		{"ip and ua", "/v1/events", server("Lead", "other", now, "", ua+","+ip), "", nil},
		{"db and ua and ln", "/v1/events", server("Lead", "other", now, "", `"db":"1990-01-01","ln":"Doe",`+ua), "", nil},
		// Limited Data Use
		{"LDU country without state", "/v1/events", server("Lead", "email", now, `,"data_processing_options":["LDU"],"data_processing_options_country":1`, `"em":"a@example.com"`),
			"data[0].data_processing_options_state", nil},
		{"browser action_source", "/collect", `{"url":"https://shop.example/","events":[{"event_name":"Lead","action_source":"chat"}]}`, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := append([]string{"Authorization", "Bearer " + testIngestKey, "Origin", "https://shop.example"}, tc.hdr...)
			w := tg.do("POST", tc.path, tc.body, hdr...)
			if tc.field == "" {
				if want := map[string]int{"/collect": http.StatusNoContent, "/v1/events": http.StatusOK}[tc.path]; w.Code != want {
					t.Fatalf("status %d; want %d: %s", w.Code, want, w.Body)
				}
				return
			}
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d; want 400 naming %s: %s", w.Code, tc.field, w.Body)
			}
			if e := decodeError(t, w); e.Error.Field != tc.field {
				t.Errorf("error %+v; want field %s", e.Error, tc.field)
			}
		})
	}
}

// TestMetaRulesOnBrowserEvents: a browser event Meta would refuse is kept,
// as sent, and marked with what it lacks, so that routing withholds it
// from Meta only; an event Meta takes is not marked.
func TestMetaRulesOnBrowserEvents(t *testing.T) {
	for _, tc := range []struct {
		name, event, incomplete string
		hdr                     []string
	}{
		{"complete Purchase", `{"event_name":"Purchase","custom_data":{"value":3,"currency":"EUR"}}`, "", nil},
		{"Purchase without currency", `{"event_name":"Purchase","custom_data":{"value":3}}`, destinations.IncompleteCurrency, nil},
		{"Purchase with an ambiguous currency", `{"event_name":"Purchase","custom_data":{"value":3,"currency":"$"}}`, destinations.IncompleteCurrency, nil},
		{"Purchase without value", `{"event_name":"Purchase","custom_data":{"currency":"EUR"}}`, destinations.IncompleteValue, nil},
		{"Purchase with garbage for a value", `{"event_name":"Purchase","custom_data":{"value":{},"currency":"EUR"}}`, destinations.IncompleteValue, nil},
		{"no User-Agent", `{"event_name":"Lead"}`, destinations.IncompleteUserAgent, []string{"User-Agent", ""}},
		{"a chat event needs no User-Agent", `{"event_name":"Lead","action_source":"chat"}`, "", []string{"User-Agent", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			w := tg.do("POST", "/collect", `{"url":"https://shop.example/","events":[`+tc.event+`]}`,
				append([]string{"Origin", "https://shop.example"}, tc.hdr...)...)
			if w.Code != http.StatusNoContent && w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			evs := tg.q.all()
			if len(evs) != 1 || evs[0].Context.Incomplete != tc.incomplete {
				t.Fatalf("stored %+v; want one event marked %q", evs, tc.incomplete)
			}
		})
	}
}

func TestIsCurrency(t *testing.T) {
	for _, c := range []string{"USD", "eur", "JPY", "CHF", "XAU", "VES", "ZWG", "XCG", "SLE", "HRK"} {
		if !isCurrency(c) {
			t.Errorf("%s refused", c)
		}
	}
	for _, c := range []string{"", "US", "USDD", "ABC", "EURO", "D E", "SDE", "R$ ", "ÉUR", "QQQ"} {
		if isCurrency(c) {
			t.Errorf("%q accepted", c)
		}
	}
}
