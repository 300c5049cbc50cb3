package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
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

func TestCollectBadInput(t *testing.T) {
	tg := newTestGateway(t, nil)
	ev := func(fields string) string { return `{"events":[{"event_name":"PageView"` + fields + `}]}` }
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
		{"malformed", `{"events":[`, origin, 400, "invalid_json", ""},
		{"not an object", `[1,2]`, origin, 400, "invalid_json", ""},
		{"trailing data", `{"events":[{"event_name":"A"}]} {}`, origin, 400, "invalid_json", ""},
		{"unknown top field", `{"evnts":[]}`, origin, 400, "invalid_json", "evnts"},
		{"unknown event field", ev(`,"value":1`), origin, 400, "invalid_json", "events[0].value"},
		{"wrong type event_name", `{"events":[{"event_name":5}]}`, origin, 400, "invalid_json", "events[0].event_name"},
		{"wrong type event_time", ev(`,"event_time":"now"`), origin, 400, "invalid_json", "events[0].event_time"},
		{"float event_time", ev(`,"event_time":1772366000.5`), origin, 400, "invalid_json", "events[0].event_time"},
		{"wrong type events", `{"events":{}}`, origin, 400, "invalid_json", "events"},
		{"wrong type consent", `{"consent":"yes","events":[{"event_name":"A"}]}`, origin, 400, "invalid_json", "consent"},
		{"wrong type user_data value", ev(`,"user_data":{"em":5}`), origin, 400, "invalid_json", "events[0].user_data.em"},
		{"wrong type custom_data.value", ev(`,"custom_data":{"value":"x"}`), origin, 400, "invalid_json", "events[0].custom_data.value"},
		{"custom_data not an object", ev(`,"custom_data":[1]`), origin, 400, "invalid_json", "events[0].custom_data"},
		{"3 MB body", huge, origin, 413, "body_too_large", ""},
		{"10,000 events", manyEvents, origin, 413, "body_too_large", ""},
		{"51 events", fiftyOne, origin, 413, "too_many_events", "events"},
		{"no events", `{"events":[]}`, origin, 400, "invalid_field", "events"},
		{"unknown site", ev(``), []string{"Host", "t.nowhere.example"}, 404, "unknown_site", ""},
		{"unknown site, foreign url", `{"url":"https://nowhere.example/","events":[{"event_name":"A"}]}`, []string{"Host", "gw.internal"}, 404, "unknown_site", ""},
		{"disallowed origin", ev(``), []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed", ""},
		{"event_time in ms", ev(`,"event_time":1772366000000`), origin, 400, "invalid_field", "events[0].event_time"},
		{"event_time 8 days old", ev(fmt.Sprintf(`,"event_time":%d`, testNow.Unix()-8*86400)), origin, 400, "invalid_field", "events[0].event_time"},
		{"event_time 11 minutes ahead", ev(fmt.Sprintf(`,"event_time":%d`, testNow.Unix()+660)), origin, 400, "invalid_field", "events[0].event_time"},
		{"event_time zero", ev(`,"event_time":0`), origin, 400, "invalid_field", "events[0].event_time"},
		{"missing event_name", `{"events":[{"event_id":"x"}]}`, origin, 400, "invalid_field", "events[0].event_name"},
		{"event_name too long", `{"events":[{"event_name":"` + strings.Repeat("a", 101) + `"}]}`, origin, 400, "invalid_field", "events[0].event_name"},
		{"event_name bad chars", `{"events":[{"event_name":"<script>"}]}`, origin, 400, "invalid_field", "events[0].event_name"},
		{"event_id too long", ev(`,"event_id":"` + strings.Repeat("a", 129) + `"`), origin, 400, "invalid_field", "events[0].event_id"},
		{"event_id control char", ev(`,"event_id":"a\nb"`), origin, 400, "invalid_field", "events[0].event_id"},
		{"url too long", `{"url":"https://shop.example/` + strings.Repeat("a", 2048) + `","events":[{"event_name":"A"}]}`, origin, 400, "invalid_field", "url"},
		{"url not http", `{"url":"javascript:alert(1)","events":[{"event_name":"A"}]}`, origin, 400, "invalid_field", "url"},
		{"event_source_url relative", ev(`,"event_source_url":"/thanks"`), origin, 400, "invalid_field", "events[0].event_source_url"},
		{"user_data value too long", ev(`,"user_data":{"fn":"` + strings.Repeat("a", 257) + `"}`), origin, 400, "invalid_field", "events[0].user_data.fn"},
		{"user_data bad email", ev(`,"user_data":{"em":"not-an-email"}`), origin, 400, "invalid_field", "events[0].user_data.em"},
		{"user_data md5", ev(`,"user_data":{"em":"5d41402abc4b2a76b9719d911017c592"}`), origin, 400, "invalid_field", "events[0].user_data.em"},
		{"user_data unknown key", ev(`,"user_data":{"email":"a@b.co"}`), origin, 400, "invalid_field", "events[0].user_data.email"},
		{"custom_data too large", ev(`,"custom_data":{"x":"` + strings.Repeat("a", 16<<10) + `"}`), origin, 400, "invalid_field", "events[0].custom_data"},
		{"bad currency", ev(`,"custom_data":{"currency":"euro"}`), origin, 400, "invalid_field", "events[0].custom_data.currency"},
		{"bad consent value", `{"consent":{"ad_storage":"yes"},"events":[{"event_name":"A"}]}`, origin, 400, "invalid_field", "consent.ad_storage"},
		{"second event bad", `{"events":[{"event_name":"A"},{"event_name":""}]}`, origin, 400, "invalid_field", "events[1].event_name"},
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
