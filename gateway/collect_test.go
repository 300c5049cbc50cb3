package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/routing/model"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

const purchaseBody = `{
  "vid": "1772366400000.482913756104",
  "url": "https://shop.example/product/1?fbclid=IwAR0aBcD",
  "referrer": "https://www.google.com/",
  "consent": {"ad_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},
  "events": [
    {"event_name":"Purchase","event_id":"3f0c2f8e-0000-4000-8000-000000000001","event_time":1772366000,
     "event_source_url":"https://shop.example/thank-you",
     "custom_data":{"value":42.5,"currency":"EUR","content_ids":["sku-1"],"order_id":"1001","coupon":"SPRING"},
     "user_data":{"em":"Jane@Example.com","ph":"+1 (650) 555-1212","external_id":"cust-9","fbp":"fb.1.1.forged"}},
    {"event_name":"PageView"}
  ]
}`

func TestCollectPurchase(t *testing.T) {
	tg := newTestGateway(t, nil)
	w := tg.do("POST", "/collect", purchaseBody,
		"Content-Type", "text/plain;charset=UTF-8",
		"Origin", "https://shop.example",
		"User-Agent", "Mozilla/5.0 Test",
		"RemoteAddr", "10.1.2.3:4444",
		"X-Forwarded-For", "198.51.100.9, 10.9.9.9",
		"X-Forwarded-Proto", "https")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Fatalf("POST /collect = %d %s", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") != "https://shop.example" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("CORS headers: %v", h)
	}
	if len(tg.q.calls) != 1 || tg.q.calls[0].Site != "shop" {
		t.Fatalf("enqueued %+v", tg.q.calls)
	}
	evs := tg.q.calls[0].Events
	p, pv := evs[0], evs[1]

	wantFbp := "fb.1.1772366400000.482913756104"
	wantFbc := fmt.Sprintf("fb.1.%d.IwAR0aBcD", testNow.UnixMilli())
	checks := []struct {
		name      string
		got, want any
	}{
		{"event_name", p.EventName, "Purchase"},
		{"event_id", p.EventID, "3f0c2f8e-0000-4000-8000-000000000001"},
		{"event_time", p.EventTime, int64(1772366000)},
		{"event_source_url", p.EventSourceURL, "https://shop.example/thank-you"},
		{"referrer_url", p.ReferrerURL, "https://www.google.com/"},
		{"action_source", p.ActionSource, "website"},
		{"em", strings.Join(p.UserData.Em, ","), sum("jane@example.com")},
		{"ph", strings.Join(p.UserData.Ph, ","), sum("16505551212")},
		{"external_id", strings.Join(p.UserData.ExternalID, ","), sum("cust-9")},
		{"client_ip_address", p.UserData.ClientIPAddress, "198.51.100.9"},
		{"client_user_agent", p.UserData.ClientUserAgent, "Mozilla/5.0 Test"},
		{"fbp", p.UserData.Fbp, wantFbp},
		{"fbc", p.UserData.Fbc, wantFbc},
		{"pageview fbp", pv.UserData.Fbp, wantFbp},
		{"context", p.Context, destinations.Context{SiteID: "shop", ReceivedAt: testNow.UnixMilli(), Source: "browser",
			VisitorID: "1772366400000.482913756104", // the vid, kept in _tw_vid (clickids.go)
			Consent:   destinations.Consent{AdStorage: "granted", AdUserData: "granted", AdPersonalization: "granted", AnalyticsStorage: "granted"}}},
		{"value", *p.CustomData.Value, 42.5},
		{"custom property", string(p.CustomData.Custom["coupon"]), `"SPRING"`},
		{"pageview event_time", pv.EventTime, testNow.Unix()},
		{"pageview event_source_url", pv.EventSourceURL, "https://shop.example/product/1?fbclid=IwAR0aBcD"},
		{"pageview event_id is a UUID v4", len(pv.EventID) == 36 && pv.EventID[14] == '4', true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}

	// Raw PII never reaches the queue.
	b, _ := json.Marshal(evs)
	for _, raw := range []string{"Jane", "jane@", "Example.com", "650", "555-1212", "5551212", "cust-9", "forged"} {
		if strings.Contains(string(b), raw) {
			t.Errorf("enqueued events hold %q: %s", raw, b)
		}
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		cookies[c.Name] = c
	}
	if c := cookies["_fbp"]; c == nil || c.Value != wantFbp || c.Domain != "shop.example" || !c.Secure {
		t.Errorf("_fbp cookie = %+v", c)
	}
	if c := cookies["_fbc"]; c == nil || c.Value != wantFbc {
		t.Errorf("_fbc cookie = %+v", c)
	}
	// The log holds no PII.
	if strings.Contains(tg.log.String(), "jane") || strings.Contains(tg.log.String(), "650") {
		t.Errorf("log holds PII: %s", tg.log)
	}
}

func consent(ad, user, pers, analytics destinations.ConsentState) destinations.Consent {
	return destinations.Consent{AdStorage: ad, AdUserData: user, AdPersonalization: pers, AnalyticsStorage: analytics}
}

func TestCollectConsent(t *testing.T) {
	tests := []struct {
		name       string
		host, body string
		want       destinations.Consent
		cookies    bool
	}{
		{"site default granted", "t.shop.example", `{"events":[{"event_name":"PageView"}]}`,
			consent("granted", "granted", "granted", "granted"), true},
		{"ad_storage denied", "t.shop.example", `{"consent":{"ad_storage":"denied"},"events":[{"event_name":"PageView"}]}`,
			consent("denied", "granted", "granted", "granted"), false},
		{"site default denied", "t.private.example", `{"events":[{"event_name":"PageView"}]}`,
			consent("denied", "denied", "denied", "denied"), false},
		{"site default denied, visitor granted", "t.private.example",
			`{"consent":{"ad_storage":"granted","ad_user_data":"granted"},"events":[{"event_name":"PageView"}]}`,
			consent("granted", "granted", "denied", "denied"), true},
		{"wait counts as denied", "t.waiting.example", `{"events":[{"event_name":"PageView"}]}`,
			consent("denied", "denied", "denied", "denied"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			w := tg.do("POST", "/collect", tt.body, "Host", tt.host, "Cookie", "_fbp=fb.1.1700000000000.123456789")
			if w.Code != http.StatusNoContent {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			ev := tg.q.all()[0]
			if ev.Context.Consent != tt.want {
				t.Errorf("consent = %+v; want %+v", ev.Context.Consent, tt.want)
			}
			gotCookies := len(w.Result().Cookies()) > 0
			if gotCookies != tt.cookies || (ev.UserData.Fbp != "") != tt.cookies {
				t.Errorf("cookies set %v, fbp %q; want cookies %v", gotCookies, ev.UserData.Fbp, tt.cookies)
			}
			if !tt.cookies && (ev.UserData.Fbc != "" || ev.UserData.Fbp != "") {
				t.Errorf("fbp/fbc on an event without ad_storage: %+v", ev.UserData)
			}
		})
	}
}

// A consent word the gateway cannot read counts as denied, never as the
// site's default grant, and is reported on each event.
func TestCollectConsentWordUnknown(t *testing.T) {
	tg := newTestGateway(t, nil)
	w := tg.do("POST", "/collect", `{"consent":{"ad_storage":"yes","ad_user_data":5,"x":"granted"},"events":[{"event_name":"PageView"}]}`,
		"Origin", "https://shop.example")
	a := decodeAnswer(t, w)
	want := []fix{{"consent.ad_user_data", "invalid"}, {"consent.ad_storage", "invalid"}}
	if len(a.Events) != 1 || a.Events[0].Status != statusFixed {
		t.Fatalf("answer %+v", a)
	}
	for _, f := range append(want, fix{"consent.x", "unknown_field"}) {
		if !slices.Contains(a.Events[0].Fixes, f) {
			t.Errorf("fixes %+v lack %+v", a.Events[0].Fixes, f)
		}
	}
	ev := tg.q.all()[0]
	if ev.Context.Consent.AdStorage != destinations.Denied || ev.Context.Consent.AdUserData != destinations.Denied ||
		ev.Context.Consent.AnalyticsStorage != destinations.Granted || len(w.Result().Cookies()) != 0 {
		t.Errorf("consent %+v, cookies %v; want ad_storage and ad_user_data denied, no cookie", ev.Context.Consent, w.Result().Cookies())
	}
}

func TestCollectEnqueueFailure(t *testing.T) {
	tg := newTestGateway(t, nil)
	tg.q.err = errors.New("redis: connection refused")
	w := tg.do("POST", "/collect", purchaseBody, "Origin", "https://shop.example")
	if w.Code != 503 || w.Header().Get("Retry-After") != "5" || decodeError(t, w).Error.Code != "unavailable" {
		t.Fatalf("enqueue failure = %d %v %s", w.Code, w.Header(), w.Body)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Errorf("cookies set on a failed request")
	}
	if !strings.Contains(tg.log.String(), "connection refused") || strings.Contains(tg.log.String(), "Jane") {
		t.Errorf("log: %s", tg.log)
	}
}

func TestCollectCORS(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := `{"events":[{"event_name":"PageView"}]}`
	tests := []struct {
		name, origin, host string
		status             int
		acao               string
	}{
		{"site origin", "https://shop.example", "t.shop.example", 204, "https://shop.example"},
		{"subdomain origin", "https://www.shop.example", "t.shop.example", 204, "https://www.shop.example"},
		{"partner origin", "https://checkout.partner.example", "t.shop.example", 204, "https://checkout.partner.example"},
		{"partner origin, other host", "https://checkout.partner.example", "gateway.internal", 204, "https://checkout.partner.example"},
		{"foreign origin", "https://evil.example", "t.shop.example", 403, ""},
		{"look-alike origin", "https://evilshop.example", "t.shop.example", 403, ""},
		{"null origin", "null", "t.shop.example", 403, ""},
		{"origin of another site", "https://shop.co.uk", "t.shop.example", 204, "https://shop.co.uk"},
		{"no origin", "", "t.shop.example", 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{"Host", tt.host}
			if tt.origin != "" {
				hdr = append(hdr, "Origin", tt.origin)
			}
			w := tg.do("POST", "/collect", body, hdr...)
			if w.Code != tt.status || w.Header().Get("Access-Control-Allow-Origin") != tt.acao {
				t.Fatalf("= %d ACAO %q; want %d %q (%s)", w.Code, w.Header().Get("Access-Control-Allow-Origin"), tt.status, tt.acao, w.Body)
			}
			if tt.status == 403 && decodeError(t, w).Error.Code != "origin_not_allowed" {
				t.Errorf("code: %s", w.Body)
			}
			if tt.acao != "" && w.Header().Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("no Allow-Credentials")
			}
			if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
				t.Errorf("no Vary: Origin")
			}
		})
	}
	// Preflight.
	w := tg.do("OPTIONS", "/collect", "", "Origin", "https://shop.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight = %d %v", w.Code, w.Header())
	}
	w = tg.do("OPTIONS", "/collect", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of a foreign origin = %d %v", w.Code, w.Header())
	}
}

// Problems of the whole request answer a 4xx JSON error and store nothing.
func TestCollectBadRequest(t *testing.T) {
	tg := newTestGateway(t, nil)
	ev := `{"events":[{"event_name":"PageView"}]}`
	manyEvents := `{"events":[` + strings.Repeat(`{"event_name":"A"},`, 9999) + `{"event_name":"A"}]}`
	fiftyOne := `{"events":[` + strings.Repeat(`{"event_name":"A"},`, 50) + `{"event_name":"A"}]}`
	huge := `{"events":[{"event_name":"A","event_id":"` + strings.Repeat("x", 3<<20) + `"}]}`
	origin := []string{"Origin", "https://shop.example"}
	tests := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
		field  string
	}{
		{"empty body", ``, origin, 400, "invalid_json", ""},
		{"malformed", `{"events":[`, origin, 400, "invalid_json", "events"},
		{"not an object", `[1,2]`, origin, 400, "invalid_json", ""},
		{"a string", `"{\"events\":[]}"`, origin, 400, "invalid_json", ""},
		{"trailing data", `{"events":[{"event_name":"A"}]} {}`, origin, 400, "invalid_json", ""},
		{"no events, a key misspelt", `{"evnts":[{"event_name":"A"}]}`, origin, 400, "invalid_field", "events"},
		{"events an object", `{"events":{}}`, origin, 400, "invalid_json", "events"},
		{"events a string that is no list", `{"events":"PageView"}`, origin, 400, "invalid_json", "events"},
		{"events null", `{"events":null}`, origin, 400, "invalid_field", "events"},
		{"3 MB body", huge, origin, 413, "body_too_large", ""},
		{"10,000 events", manyEvents, origin, 413, "body_too_large", ""},
		{"51 events", fiftyOne, origin, 413, "too_many_events", "events"},
		{"51 events, stringified", `{"events":` + strconv.Quote(fiftyOne[len(`{"events":`):len(fiftyOne)-1]) + `}`, origin, 413, "too_many_events", "events"},
		{"no events", `{"events":[]}`, origin, 400, "invalid_field", "events"},
		{"unknown site", ev, []string{"Host", "t.nowhere.example"}, 404, "unknown_site", ""},
		{"unknown site, foreign url", `{"url":"https://nowhere.example/","events":[{"event_name":"A"}]}`, []string{"Host", "gw.internal"}, 404, "unknown_site", ""},
		{"disallowed origin", ev, []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tg.do("POST", "/collect", tt.body, tt.hdr...)
			if w.Code != tt.status {
				t.Fatalf("status %d; want %d: %s", w.Code, tt.status, w.Body)
			}
			e := decodeError(t, w)
			if e.Error.Code != tt.code || e.Error.Field != tt.field {
				t.Errorf("error = %+v; want code %s field %q", e.Error, tt.code, tt.field)
			}
		})
	}
	if n := len(tg.q.all()); n != 0 {
		t.Errorf("%d events enqueued from bad requests", n)
	}
	// The gateway keeps serving.
	if w := tg.do("POST", "/collect", purchaseBody, origin...); w.Code != http.StatusNoContent {
		t.Fatalf("after bad input: %d %s", w.Code, w.Body)
	}
}

// decodeAnswer reads /collect's 200 answer strictly.
func decodeAnswer(t testing.TB, w *httptest.ResponseRecorder) collectAnswer {
	t.Helper()
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var a collectAnswer
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("not the answer's shape (%v): %s", err, w.Body)
	}
	return a
}

// One bad event never sinks its neighbour: each row sends an event with a
// problem beside a clean PageView; the problem event is fixed or refused
// on its own, with the field and reason, and the PageView is stored.
func TestCollectEventOutcomes(t *testing.T) {
	ts := testNow.Unix()
	tests := []struct {
		name   string
		event  string // the first event's fields after event_name, or a whole event when it starts with '!'
		status string
		field  string // of the fix or refusal expected
		reason string
	}{
		{"unknown event field", `,"value":1`, "fixed", "value", "unknown_field"},
		{"event_name a number", `!{"event_name":5}`, "rejected", "event_name", "invalid"},
		{"event_name missing", `!{"event_id":"x"}`, "rejected", "event_name", "missing"},
		{"event_name empty", `!{"event_name":""}`, "rejected", "event_name", "missing"},
		{"event_name too long", `!{"event_name":"` + strings.Repeat("a", 101) + `"}`, "rejected", "event_name", "invalid"},
		{"event_name bad characters", `!{"event_name":"<script>"}`, "rejected", "event_name", "invalid"},
		{"event_name padded", `!{"event_name":" AddToCart "}`, "fixed", "event_name", "trimmed"},
		{"event not an object", `!"PageView"`, "rejected", "", "not_object"},
		{"event null", `!null`, "rejected", "", "not_object"},
		{"event stringified", `!"{\"event_name\":\"ViewContent\"}"`, "fixed", "event", "stringified_object"},
		{"event_time a word", `,"event_time":"now"`, "fixed", "event_time", "invalid"},
		{"event_time a numeric string", fmt.Sprintf(`,"event_time":"%d"`, ts), "fixed", "event_time", "numeric_string"},
		{"event_time with a fraction", fmt.Sprintf(`,"event_time":%d.5`, ts), "fixed", "event_time", "float_to_integer"},
		{"event_time in ms", fmt.Sprintf(`,"event_time":%d000`, ts), "fixed", "event_time", "milliseconds"},
		{"event_time zero", `,"event_time":0`, "fixed", "event_time", "invalid"},
		{"event_time 8 days old", fmt.Sprintf(`,"event_time":%d`, ts-8*86400), "rejected", "event_time", "too_old"},
		{"event_time 11 minutes ahead", fmt.Sprintf(`,"event_time":%d`, ts+660), "fixed", "event_time", "clock_ahead"},
		{"event_id too long", `,"event_id":"` + strings.Repeat("a", 129) + `"`, "fixed", "event_id", "too_long"},
		{"event_id control char", `,"event_id":"a\nb"`, "fixed", "event_id", "invalid"},
		{"event_id a number", `,"event_id":12345`, "fixed", "event_id", "number_to_string"},
		{"event_source_url relative", `,"event_source_url":"/thanks"`, "fixed", "event_source_url", "invalid"},
		{"event_source_url too long", `,"event_source_url":"https://shop.example/` + strings.Repeat("a", 2100) + `"`, "fixed", "event_source_url", "truncated"},
		{"action_source upper case", `,"action_source":"Website"`, "fixed", "action_source", "lowercase"},
		{"action_source unknown", `,"action_source":"kiosk"`, "fixed", "action_source", "invalid"},
		{"opt_out a string", `,"opt_out":"yes"`, "fixed", "opt_out", "invalid"},
		{"ldu lower case", `,"data_processing_options":["ldu"],"data_processing_options_country":1,"data_processing_options_state":1000`, "fixed", "data_processing_options", "lowercase"},
		{"ldu bad country", `,"data_processing_options":["LDU"],"data_processing_options_country":7`, "fixed", "data_processing_options_country", "geolocate"},
		{"user_data value a number", `,"user_data":{"zp":12345}`, "fixed", "user_data.zp", "number_to_string"},
		{"user_data value too long", `,"user_data":{"fn":"` + strings.Repeat("a", 257) + `"}`, "fixed", "user_data.fn", "too_long"},
		{"user_data emoji name", `,"user_data":{"fn":"🙂","em":"jane@example.com"}`, "fixed", "user_data.fn", "unusable"},
		{"user_data bad email", `,"user_data":{"em":"not-an-email"}`, "fixed", "user_data.em", "unusable"},
		{"user_data md5", `,"user_data":{"em":"5d41402abc4b2a76b9719d911017c592"}`, "fixed", "user_data.em", "unusable"},
		{"user_data unknown key", `,"user_data":{"email":"a@b.co"}`, "fixed", "user_data.email", "unknown_field"},
		{"user_data an object value", `,"user_data":{"em":{"a":1}}`, "fixed", "user_data.em", "invalid"},
		{"custom_data a list", `,"custom_data":[1]`, "fixed", "custom_data", "invalid"},
		{"custom_data stringified", `,"custom_data":"{\"value\":5,\"currency\":\"EUR\"}"`, "fixed", "custom_data", "stringified_object"},
		{"custom_data too large", `,"custom_data":{"x":"` + strings.Repeat("a", 16<<10) + `"}`, "fixed", "custom_data", "too_large"},
		{"value a word", `,"custom_data":{"value":"x"}`, "fixed", "custom_data.value", "invalid"},
		{"value an object", `,"custom_data":{"value":{}}`, "fixed", "custom_data.value", "invalid"},
		{"value 1e400", `,"custom_data":{"value":1e400}`, "fixed", "custom_data.value", "invalid"},
		{"value a decimal comma", `,"custom_data":{"value":"19,90","currency":"EUR"}`, "fixed", "custom_data.value", "decimal_comma"},
		{"value a numeric string", `,"custom_data":{"value":"19.90","currency":"EUR"}`, "fixed", "custom_data.value", "numeric_string"},
		{"currency a word", `,"custom_data":{"currency":"euro"}`, "fixed", "custom_data.currency", "invalid"},
		{"currency lower case", `,"custom_data":{"value":1,"currency":"eur"}`, "fixed", "custom_data.currency", "lowercase"},
		{"currency a symbol", `,"custom_data":{"value":1,"currency":"€"}`, "fixed", "custom_data.currency", "currency_symbol"},
		{"currency a dollar sign", `,"custom_data":{"value":1,"currency":"$"}`, "fixed", "custom_data.currency", "ambiguous_currency"},
		{"content_ids numbers", `,"custom_data":{"content_ids":[123,456]}`, "fixed", "custom_data.content_ids", "number_to_string"},
		{"contents id a number", `,"custom_data":{"contents":[{"id":7,"quantity":"2"}]}`, "fixed", "custom_data.contents[0].id", "number_to_string"},
		{"num_items a fraction", `,"custom_data":{"num_items":2.5}`, "fixed", "custom_data.num_items", "not_integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			first := `{"event_name":"AddToCart"` + tt.event + `}`
			if strings.HasPrefix(tt.event, "!") {
				first = tt.event[1:]
			}
			body := `{"events":[` + first + `,{"event_name":"PageView","event_id":"neighbour"}]}`
			w := tg.do("POST", "/collect", body, "Origin", "https://shop.example")
			a := decodeAnswer(t, w)
			if len(a.Events) != 2 {
				t.Fatalf("answer %+v; want two outcomes", a)
			}
			got, next := a.Events[0], a.Events[1]
			if next.Status != statusAccepted || next.EventID != "neighbour" {
				t.Errorf("the neighbour: %+v; want it accepted", next)
			}
			if got.Status != tt.status {
				t.Fatalf("first event %+v; want status %s", got, tt.status)
			}
			stored := tg.q.all()
			if tt.status == statusRejected {
				if got.Error == nil || got.Error.Field != tt.field || got.Error.Reason != tt.reason || got.Error.Message == "" {
					t.Errorf("refusal %+v; want %s %s", got.Error, tt.field, tt.reason)
				}
				if a.Accepted != 1 || a.Rejected != 1 || len(stored) != 1 || stored[0].EventID != "neighbour" {
					t.Errorf("answer %+v, stored %d; want only the neighbour", a, len(stored))
				}
				return
			}
			if !slices.Contains(got.Fixes, fix{tt.field, tt.reason}) {
				t.Errorf("fixes %+v; want %s %s", got.Fixes, tt.field, tt.reason)
			}
			if a.Accepted != 2 || len(stored) != 2 || got.EventID == "" || got.EventID != stored[0].EventID {
				t.Errorf("answer %+v, stored %d events", a, len(stored))
			}
		})
	}
}

func TestCollectNeverReadsPastLimit(t *testing.T) {
	tg := newTestGateway(t, nil)
	r := &countingReader{n: 10 << 20}
	req := newRequest("POST", "/collect", r)
	req.Header.Set("Origin", "https://shop.example")
	w := recorder()
	tg.h.ServeHTTP(w, req)
	if w.Code != 413 {
		t.Fatalf("status %d", w.Code)
	}
	if r.read > DefaultMaxBodyBytes+1 {
		t.Errorf("read %d bytes of an unbounded body; limit %d", r.read, DefaultMaxBodyBytes)
	}
}

// user_data bounds: the first offending key in sorted order is named, with
// what is wrong with it; within bounds passes.
func TestCheckUserDataBounds(t *testing.T) {
	long := strings.Repeat("a", maxPlainUserDataLen+1)
	many := make(pii.StringList, maxUserDataValues+1)
	for i := range many {
		many[i] = "x"
	}
	for _, tc := range []struct {
		raw         pii.RawUserData
		field, want string
	}{
		{pii.RawUserData{"em": {"jane@example.com"}, "fn": {"Jane"}}, "", ""},
		{pii.RawUserData{"zp": {long}, "fn": many, "em": {"ok@example.com"}}, "events[0].user_data.fn", "at most"},
		{pii.RawUserData{"zp": {long}, "ln": {"ok"}}, "events[0].user_data.zp", "longer than"},
		{pii.RawUserData{"ct": {"\xff"}, "zp": {long}}, "events[0].user_data.ct", "UTF-8"},
	} {
		e := checkUserDataBounds("events[0].", tc.raw)
		switch {
		case tc.field == "" && e != nil:
			t.Errorf("%v: refused: %+v", tc.raw, e)
		case tc.field != "" && (e == nil || e.Field != tc.field || !strings.Contains(e.Message, tc.want)):
			t.Errorf("refusal %+v; want field %s, message with %q", e, tc.field, tc.want)
		}
	}
}

// resolveConsent fills unstated keys with the site's default and names the
// first bad key.
func TestResolveConsent(t *testing.T) {
	g, d := destinations.Granted, destinations.Denied
	for _, c := range []struct {
		in      *wireConsent
		def     string
		want    destinations.Consent
		wantErr string
	}{
		{nil, "", destinations.Consent{AdStorage: g, AdUserData: g, AdPersonalization: g, AnalyticsStorage: g}, ""},
		{nil, model.ConsentDenied, destinations.Consent{AdStorage: d, AdUserData: d, AdPersonalization: d, AnalyticsStorage: d}, ""},
		{&wireConsent{AdUserData: "denied", AnalyticsStorage: "granted"}, model.ConsentDenied,
			destinations.Consent{AdStorage: d, AdUserData: d, AdPersonalization: d, AnalyticsStorage: g}, ""},
		{&wireConsent{AdPersonalization: "maybe", AnalyticsStorage: "yes"}, "", destinations.Consent{}, "consent.ad_personalization"},
		{&wireConsent{AnalyticsStorage: "GRANTED"}, "", destinations.Consent{}, "consent.analytics_storage"},
	} {
		got, e := resolveConsent(c.in, c.def)
		switch {
		case c.wantErr != "":
			if e == nil || e.Field != c.wantErr {
				t.Errorf("%+v: error %+v; want one naming %s", c.in, e, c.wantErr)
			}
		case e != nil || got != c.want:
			t.Errorf("%+v, default %q: %+v, %+v; want %+v", c.in, c.def, got, e, c.want)
		}
	}
}
