package tiktok

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/destinations/tiktok/tiktoktest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testPixel = "C4ABCDEFGHIJKLMNOPQR"
	testToken = "ttSECRETtoken0123456789abcdef"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

// settingsJSON builds settings for the adapter under test; a nil value in
// extra removes the key.
func settingsJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"pixel_code": testPixel, "access_token": testToken, "api_url": apiURL}, extra)
}

// newAdapter builds an adapter logging into the returned buffer.
func newAdapter(t testing.TB, settings json.RawMessage, record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	return destinationstest.NewAdapter(t, New, settings, fixedNow, record)
}

// purchase is a website Purchase with every kind of field filled.
func purchase() destinations.Event {
	p := destinationstest.Purchase(testNow)
	p.DataProcessingOptionsCountry, p.DataProcessingOptionsState = nil, nil
	p.Context.VisitorID = "tw.1.1764300000000.abcdef"
	p.Context.ClickIDs = map[string]destinations.ClickID{
		"ttclid": {Value: "E.C.P.CsIBhOxZ0aTq", At: testNow.Add(-2 * 24 * time.Hour).UnixMilli()},
		"gclid":  {Value: "Cj0KCQiA", At: testNow.Add(-time.Hour).UnixMilli()},
	}
	p.Context.Cookies = map[string]string{"_ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "_scid": "not-for-tiktok"}
	return p
}

// pageView is a small valid website event.
func pageView(id string) destinations.Event {
	return destinations.Event{
		EventName:      "PageView",
		EventTime:      testNow.Add(-time.Minute).Unix(),
		EventID:        id,
		EventSourceURL: "https://shop.example/",
		ActionSource:   "website",
		UserData:       destinations.UserData{ClientIPAddress: "203.0.113.9", ClientUserAgent: "Mozilla/5.0"},
		Context:        destinations.Context{SiteID: "shop", Cookies: map[string]string{"_ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH"}},
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"pixel_code":"C4ABC","access_token":"tokSECRET"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{PixelCode: "C4ABC", AccessToken: "tokSECRET", APIURL: DefaultAPIURL, Timeout: destinations.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "tokSECRET") {
		t.Errorf("formatted settings show the token: %s", got)
	}
	s, err = ParseSettings(json.RawMessage(`{"pixel_code":"C4ABC","timeout":"800ms","test_event_code":"TEST123","dry_run":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.Timeout) != 800*time.Millisecond || s.TestEventCode != "TEST123" || !s.dryRun() {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"pixel_code":"C4ABC","pixel_id":"1"}`, []string{"pixel_id"}},
		{"not an object", `[]`, []string{"tiktok settings"}},
		{"trailing data", `{"pixel_code":"C4ABC"} {}`, []string{"trailing"}},
		{"missing pixel", `{}`, []string{"pixel_code"}},
		{"pixel with symbols", `{"pixel_code":"C4-ABC"}`, []string{"pixel_code"}},
		{"bad test code", `{"pixel_code":"C4ABC","test_event_code":"a b"}`, []string{"test_event_code"}},
		{"bad timeout", `{"pixel_code":"C4ABC","timeout":"soon"}`, []string{"timeout"}},
		{"negative timeout", `{"pixel_code":"C4ABC","timeout":"-1s"}`, []string{"timeout"}},
		{"bad api url", `{"pixel_code":"C4ABC","api_url":"ftp://x"}`, []string{"api_url"}},
		{"api url with query", `{"pixel_code":"C4ABC","api_url":"https://x/?a=b"}`, []string{"api_url"}},
		{"several", `{"pixel_code":"-","timeout":"-1s","api_url":"nope"}`, []string{"pixel_code", "timeout", "api_url"}},
	}
	parse := func(raw json.RawMessage) error { _, err := ParseSettings(raw); return err }
	for _, tc := range bad {
		destinationstest.CheckRefused(t, tc.name, json.RawMessage(tc.json), tc.fields, parse, New)
	}
}

// TestAPIURLFromDeps: an empty api_url takes the operator's URL from
// Deps.APIURLs, then the real host.
func TestAPIURLFromDeps(t *testing.T) {
	srv := newCaptureServer(t)
	settings := json.RawMessage(`{"pixel_code":"` + testPixel + `","access_token":"` + testToken + `"}`)
	d, err := New(settings, destinations.Deps{APIURLs: map[string]string{APIURLSetting: srv.URL}, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(srv.Bodies()) != 1 {
		t.Fatalf("the operator's URL got %d requests", len(srv.Bodies()))
	}
	d, err = New(settings, destinations.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.(*Adapter).endpoint; got != "https://business-api.tiktok.com/open_api/v1.3/event/track/" {
		t.Errorf("default endpoint %q", got)
	}
}

func TestSpec(t *testing.T) {
	s := Spec()
	if s.Type != "tiktok" || !slices.Equal(s.Secrets, []string{"access_token"}) ||
		s.APIURLs["api_url"] != "TAGWAY_TIKTOK_API_URL" || len(s.APIURLs) != 1 ||
		!s.AdPlatform || !s.Anonymous || s.Hashes != destinations.HashPhoneE164 || s.Check != nil {
		t.Errorf("spec %+v", s)
	}
	if got := s.MaxAge(purchase()); got != 28*24*time.Hour {
		t.Errorf("MaxAge %s", got)
	}
	d, err := s.New(settingsJSON(t, "http://127.0.0.1:1", nil), destinations.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxBatch() != 1000 || d.(destinations.AgeLimiter).MaxEventAge(pageView("a")) != 28*24*time.Hour ||
		!d.(destinations.AnonymousAcceptor).AcceptsAnonymous() {
		t.Errorf("adapter limits disagree with the spec")
	}
}

func TestEventName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"PageView", "Pageview", true},
		{"ViewContent", "ViewContent", true},
		{"AddToCart", "AddToCart", true},
		{"AddToWishlist", "AddToWishlist", true},
		{"InitiateCheckout", "InitiateCheckout", true},
		{"AddPaymentInfo", "AddPaymentInfo", true},
		{"Purchase", "Purchase", true},
		{"Lead", "Lead", true},
		{"CompleteRegistration", "CompleteRegistration", true},
		{"Search", "Search", true},
		{"Contact", "Contact", true},
		{"Subscribe", "Subscribe", true},
		{"StartTrial", "StartTrial", true},
		{"CompletePayment", "CompletePayment", true}, // TikTok's older name, from an event_map
		{"PlaceAnOrder", "PlaceAnOrder", true},
		{"Pageview", "Pageview", true},
		{"Donate", "Donate", true}, // a custom event
		{"newsletter_signup", "newsletter_signup", true},
		{"add to cart", "", false},
		{"checkout.step", "", false},
		{"1stVisit", "", false},
		{"", "", false},
		{strings.Repeat("a", 51), "", false},
	}
	for _, tc := range cases {
		got, ok := EventName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EventName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// newCaptureServer answers every request with TikTok's success reply and
// keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.NewCapture(t, func(w http.ResponseWriter, _ []byte) {
		_, _ = io.WriteString(w, `{"code":0,"message":"OK","request_id":"R1","data":{}}`)
	})
}

func TestGoldenPurchase(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, map[string]any{"test_event_code": "TEST42"}), nil)
	if errs := d.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(srv.Bodies()) != 1 {
		t.Fatalf("%d requests", len(srv.Bodies()))
	}
	req := srv.Requests()[0]
	h := req.Header
	if req.URL.RequestURI() != "/open_api/v1.3/event/track/" || h.Get("Access-Token") != testToken ||
		h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "" {
		t.Errorf("path %q, headers %v", req.URL.RequestURI(), h)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), req.Body, *update)
}

// documented lists every field the adapter may send, as a path in the
// request body, with what TikTok's Events API 2.0 documentation says of it
// ("hex64": a lowercase hex SHA-256 digest; "string", "number",
// "integer", "bool").
var documented = map[string]string{
	"event_source":                              "string",  // "web" for pixel events
	"event_source_id":                           "string",  // the pixel code
	"test_event_code":                           "string",  // Events Manager → Test Events
	"data[].event":                              "string",  // standard or custom event name
	"data[].event_time":                         "integer", // Unix seconds
	"data[].event_id":                           "string",  // deduplicated against ttq.track's event_id
	"data[].limited_data_use":                   "bool",    // US state privacy laws
	"data[].user.email[]":                       "hex64",   // trimmed, lowercased, SHA-256
	"data[].user.phone[]":                       "hex64",   // E.164 with "+", SHA-256
	"data[].user.external_id[]":                 "hex64",   // SHA-256
	"data[].user.first_name":                    "hex64",   // lowercased, SHA-256
	"data[].user.last_name":                     "hex64",   // lowercased, SHA-256
	"data[].user.zip_code":                      "hex64",   // SHA-256
	"data[].user.ttclid":                        "string",  // the ad click's ttclid, not hashed
	"data[].user.ttp":                           "string",  // the _ttp cookie, not hashed
	"data[].user.ip":                            "string",  // not hashed
	"data[].user.user_agent":                    "string",  // not hashed
	"data[].page.url":                           "string",  // the page of the event
	"data[].page.referrer":                      "string",  // its referrer
	"data[].properties.currency":                "string",  // ISO 4217
	"data[].properties.value":                   "number",  // the event's value
	"data[].properties.content_type":            "string",  // product or product_group
	"data[].properties.content_ids[]":           "string",
	"data[].properties.contents[].content_id":   "string",
	"data[].properties.contents[].content_name": "string",
	"data[].properties.contents[].price":        "number",
	"data[].properties.contents[].quantity":     "integer",
	"data[].properties.num_items":               "integer",
	"data[].properties.order_id":                "string",
	"data[].properties.search_string":           "string",
	"data[].properties.predicted_ltv":           "number",
	"data[].properties.delivery_category":       "string",
}

// TestGoldenFieldsDocumented checks the golden payload field by field: each
// leaf is a documented field of the documented type, and the golden file
// carries every documented field the canonical Purchase can fill.
func TestGoldenFieldsDocumented(t *testing.T) {
	destinationstest.CheckDocumented(t, filepath.Join("testdata", "purchase.golden.json"), documented,
		"data[].properties.predicted_ltv", "data[].properties.delivery_category", "data[].properties.search_string")
}

// TestHashing: only digests leave, in TikTok's normalization (phone in
// E.164 with "+", from ingest's variant), with Meta's phone digest as the
// fallback when the sender gave digests; the other platforms' identifiers
// stay home.
func TestHashing(t *testing.T) {
	raw := pii.RawUserData{pii.Phone: {"+1 (650) 555-1212"}, pii.Email: {"  Jane@Example.com "}}
	var ud destinations.UserData
	for field, vals := range raw {
		for _, v := range vals {
			h, err := pii.Hash(field, v)
			if err != nil {
				t.Fatal(err)
			}
			if field == pii.Phone {
				ud.Ph = append(ud.Ph, h)
			} else {
				ud.Em = append(ud.Em, h)
			}
		}
	}
	pii.AddVariants(&ud, raw, Spec().Hashes)

	withVariant := pageView("v")
	withVariant.UserData.Ph, withVariant.UserData.PhE164, withVariant.UserData.Em = ud.Ph, ud.PhE164, ud.Em
	digestsOnly := pageView("d")
	digestsOnly.UserData.Ph = []string{sha("16505551212")}

	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	if errs := d.Deliver(context.Background(), []destinations.Event{withVariant, digestsOnly}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	var req struct {
		Data []struct {
			User struct {
				Email []string `json:"email"`
				Phone []string `json:"phone"`
			} `json:"user"`
		} `json:"data"`
	}
	if err := json.Unmarshal(srv.Bodies()[0], &req); err != nil {
		t.Fatal(err)
	}
	if got := req.Data[0].User.Phone; !slices.Equal(got, []string{sha("+16505551212")}) {
		t.Errorf("phone %v, want the digest of +16505551212", got)
	}
	if got := req.Data[0].User.Email; !slices.Equal(got, []string{sha("jane@example.com")}) {
		t.Errorf("email %v", got)
	}
	if got := req.Data[1].User.Phone; !slices.Equal(got, []string{sha("16505551212")}) {
		t.Errorf("fallback phone %v", got)
	}
	for _, leak := range []string{"Jane@Example.com", "jane@example.com", "555-1212", "16505551212\"", "not-for-tiktok", "fbp", "Cj0KCQiA"} {
		if bytes.Contains(srv.Bodies()[0], []byte(leak)) {
			t.Errorf("the request carries %q", leak)
		}
	}
	p := purchase()
	srv2 := newCaptureServer(t)
	d2, _ := newAdapter(t, settingsJSON(t, srv2.URL, nil), nil)
	if errs := d2.Deliver(context.Background(), []destinations.Event{p}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for _, leak := range []string{p.UserData.Ph[0], p.UserData.Ct[0], p.UserData.St[0], p.UserData.Country[0], "not-for-tiktok", "Cj0KCQiA", p.UserData.Fbp} {
		if bytes.Contains(srv2.Bodies()[0], []byte(leak)) {
			t.Errorf("the Purchase carries %q, which TikTok does not take in that form", leak)
		}
	}
}

// TestClickAndCookie: ttclid from Context within TikTok's 28-day click
// window, _ttp as ttp; LDU as limited_data_use.
func TestClickAndCookie(t *testing.T) {
	fresh, stale, unknown, none := pageView("fresh"), pageView("stale"), pageView("unknown"), pageView("none")
	fresh.Context.ClickIDs = map[string]destinations.ClickID{"ttclid": {Value: "E.C.P.fresh", At: testNow.Add(-27 * 24 * time.Hour).UnixMilli()}}
	stale.Context.ClickIDs = map[string]destinations.ClickID{"ttclid": {Value: "E.C.P.stale", At: testNow.Add(-29 * 24 * time.Hour).UnixMilli()}}
	unknown.Context.ClickIDs = map[string]destinations.ClickID{"ttclid": {Value: "E.C.P.unknown"}}
	none.Context.Cookies = nil
	none.DataProcessingOptions = []string{"LDU"}
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	for i, err := range d.Deliver(context.Background(), []destinations.Event{fresh, stale, unknown, none}) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	var req struct {
		Data []struct {
			User struct {
				TTCLID string `json:"ttclid"`
				TTP    string `json:"ttp"`
			} `json:"user"`
			LDU *bool `json:"limited_data_use"`
		} `json:"data"`
	}
	if err := json.Unmarshal(srv.Bodies()[0], &req); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ttclid, ttp string
		ldu         bool
	}{
		{"E.C.P.fresh", "2F7h37YkS1j57AYSKTI7IHhJPYH", false},
		{"", "2F7h37YkS1j57AYSKTI7IHhJPYH", false},
		{"E.C.P.unknown", "2F7h37YkS1j57AYSKTI7IHhJPYH", false},
		{"", "", true},
	}
	for i, w := range want {
		got := req.Data[i]
		if got.User.TTCLID != w.ttclid || got.User.TTP != w.ttp || (got.LDU != nil) != w.ldu {
			t.Errorf("event %d: %+v, want %+v", i, got, w)
		}
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake: the
// golden Purchase, a batch split by test event code, and a batch bigger
// than one request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := tiktoktest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"test_event_code": "TESTDEFAULT"}), nil)

	p := purchase()
	a, b, c := pageView("a"), pageView("b"), pageView("c")
	b.Context.TestEventCode = "TESTB"
	for i, err := range d.Deliver(context.Background(), []destinations.Event{p, a, b, c}) {
		if err != nil {
			t.Fatalf("event %d: %v (%v)", i, err, fake.Rejections())
		}
	}
	if fake.Requests() != 2 {
		t.Errorf("%d requests, want one per test event code", fake.Requests())
	}
	codes := map[string]string{}
	for _, r := range fake.Events(testPixel) {
		codes[r.EventID] = r.TestEventCode
	}
	want := map[string]string{p.EventID: "TESTDEFAULT", "a": "TESTDEFAULT", "b": "TESTB", "c": "TESTDEFAULT"}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("test codes %v, want %v", codes, want)
	}
	got := fake.Events(testPixel)[0]
	if got.EventName != "Purchase" || got.User["ttclid"] != "E.C.P.CsIBhOxZ0aTq" || got.Properties["order_id"] != "1001" {
		t.Errorf("purchase as received: %+v", got)
	}

	many := make([]destinations.Event, 1001)
	for i := range many {
		many[i] = pageView(fmt.Sprintf("m%d", i))
	}
	before := fake.Requests()
	for i, err := range d.Deliver(context.Background(), many) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := fake.Requests() - before; n != 2 {
		t.Errorf("1001 events took %d requests, want 2", n)
	}
	if n := len(fake.Events(testPixel)); n != 4+1001 {
		t.Errorf("fake holds %d events", n)
	}
	if got := fake.Events(testPixel)[1]; got.EventName != "Pageview" {
		t.Errorf("PageView went out as %q", got.EventName)
	}
}

// TestPrecheck: an event TikTok would refuse fails alone; the rest is sent.
func TestPrecheck(t *testing.T) {
	fake := tiktoktest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	old := pageView("old")
	old.EventTime = testNow.Add(-28*24*time.Hour - time.Minute).Unix()
	almost := pageView("almost")
	almost.EventTime = testNow.Add(-27 * 24 * time.Hour).Unix()
	badName := pageView("badname")
	badName.EventName = "add to cart"
	noTime := pageView("notime")
	noTime.EventTime = 0

	errs := d.Deliver(context.Background(), []destinations.Event{pageView("ok"), old, almost, badName, noTime})
	wantKinds := []destinations.Kind{0, destinations.Permanent, 0, destinations.Permanent, destinations.Permanent}
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k != wantKinds[i] {
			t.Errorf("event %d: %v, want kind %v", i, err, wantKinds[i])
		}
	}
	if n := len(fake.Events(testPixel)); n != 2 {
		t.Errorf("fake got %d events, want 2", n)
	}
}

func replyBody(code int, msg string) string {
	return fmt.Sprintf(`{"code":%d,"message":%q,"request_id":"202611281200000A","data":{}}`, code, msg)
}

// TestClassification is the table of TikTok's answers and the outcome each
// gives every event of a two-event request.
func TestClassification(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		kind     destinations.Kind
		code     string
		minDelay time.Duration
		maxDelay time.Duration // 0: no upper bound checked
		whole    bool
		message  string
	}{
		{name: "0 OK", status: 200, body: replyBody(0, "OK")},
		{name: "20001 partial", status: 200, body: replyBody(20001, "Partial events failed")},
		{name: "40100 rate limit", status: 200, body: replyBody(40100, "Too many requests"), kind: destinations.Retryable, code: "40100", minDelay: time.Minute, message: "Too many requests"},
		{name: "40100 with Retry-After", status: 200, header: map[string]string{"Retry-After": "300"}, body: replyBody(40100, "Too many requests"),
			kind: destinations.Retryable, code: "40100", minDelay: 5 * time.Minute, maxDelay: 5 * time.Minute},
		{name: "40100 on 429", status: 429, body: replyBody(40100, "Too many requests"), kind: destinations.Retryable, code: "40100", minDelay: time.Minute},
		{name: "40001 no permission", status: 200, body: replyBody(40001, "No permission to operate pixel code"), kind: destinations.Paused, code: "40001"},
		{name: "40102 token expired", status: 200, body: replyBody(40102, "Access token has expired"), kind: destinations.Paused, code: "40102"},
		{name: "40104 token empty", status: 200, body: replyBody(40104, "Access token is null"), kind: destinations.Paused, code: "40104"},
		{name: "40105 token revoked", status: 200, body: replyBody(40105, "Access token is incorrect or has been revoked"), kind: destinations.Paused, code: "40105"},
		{name: "40105 on 401", status: 401, body: replyBody(40105, "Access token is incorrect"), kind: destinations.Paused, code: "40105"},
		{name: "40002 parameter", status: 200, body: replyBody(40002, "data[1].properties.currency: invalid"), kind: destinations.Permanent, code: "40002", whole: true, message: "currency"},
		{name: "40006 other client error", status: 200, body: replyBody(40006, "Invalid request"), kind: destinations.Permanent, code: "40006", whole: true},
		{name: "40700 transient", status: 200, body: replyBody(40700, "Internal timeout, please retry"), kind: destinations.Retryable, code: "40700"},
		{name: "50000 system error", status: 200, body: replyBody(50000, "System error"), kind: destinations.Retryable, code: "50000"},
		{name: "51021 system busy with Retry-After", status: 200, header: map[string]string{"Retry-After": "7"}, body: replyBody(51021, "System busy"),
			kind: destinations.Retryable, code: "51021", minDelay: 7 * time.Second, maxDelay: 7 * time.Second},
		{name: "unknown code on 200", status: 200, body: replyBody(61000, "Unexpected"), kind: destinations.Retryable, code: "61000"},
		{name: "unknown code on 400", status: 400, body: replyBody(61000, "Unexpected"), kind: destinations.Permanent, code: "61000"},
		{name: "200 without code", status: 200, body: `<html>ok</html>`, kind: destinations.Retryable},
		{name: "200 empty", status: 200, body: ``, kind: destinations.Retryable},
		{name: "500 html", status: 500, body: "<html>oops</html>", kind: destinations.Retryable, message: "oops"},
		{name: "502 code 0", status: 502, body: replyBody(0, "OK"), kind: destinations.Retryable},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "9"}, kind: destinations.Retryable,
			minDelay: 9 * time.Second, maxDelay: 9 * time.Second},
		{name: "429 plain", status: 429, body: "slow down", kind: destinations.Retryable},
		{name: "404 plain", status: 404, body: "not found", kind: destinations.Permanent},
		{name: "403 plain", status: 403, kind: destinations.Paused},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"}, kind: destinations.Permanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.Answering(t, tc.status, tc.header, tc.body)
			d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a"), pageView("b")})
			destinationstest.CheckShared(t, errs, 2)
			destinationstest.CheckOutcome(t, errs[0], destinationstest.Outcome{Kind: tc.kind, Code: tc.code, Status: tc.status,
				WholeBatch: tc.whole, MinRetryAfter: tc.minDelay, MaxRetryAfter: tc.maxDelay, Message: tc.message})
			if _, de := destinations.Classify(errs[0]); de != nil && !strings.HasPrefix(de.Message, "tiktok") {
				t.Errorf("message %q does not name tiktok", de.Message)
			}
		})
	}
}

// TestWholeBatchOnlyForSeveral: a parameter error on one event alone is not
// marked for splitting.
func TestWholeBatchOnlyForSeveral(t *testing.T) {
	srv := destinationstest.Answering(t, http.StatusOK, nil, replyBody(40002, "Invalid param"))
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	_, de := destinations.Classify(d.Deliver(context.Background(), []destinations.Event{pageView("a")})[0])
	if de == nil || de.Kind != destinations.Permanent || de.WholeBatch {
		t.Errorf("got %+v", de)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	d, _ := newAdapter(t, settingsJSON(t, destinationstest.Hanging(t).URL, map[string]any{"timeout": "50ms"}), nil)
	destinationstest.CheckTimeout(t, d, pageView("a"))
}

func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
	}{
		{"no token", map[string]any{"access_token": nil}},
		{"dry_run flag", map[string]any{"dry_run": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCaptureServer(t)
			var recorded [][]byte
			d, logs := newAdapter(t, settingsJSON(t, srv.URL, tc.extra), func(b []byte) { recorded = append(recorded, b) })
			b := pageView("b")
			b.Context.TestEventCode = "TESTB"
			destinationstest.CheckDryRun(t, d, srv, []destinations.Event{purchase(), pageView("a"), b})
			if len(recorded) != 2 {
				t.Fatalf("recorded %d bodies, want 2 (one per test event code)", len(recorded))
			}
			var body struct {
				EventSourceID string            `json:"event_source_id"`
				Data          []json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(recorded[0], &body); err != nil {
				t.Fatal(err)
			}
			if body.EventSourceID != testPixel || len(body.Data) != 2 || bytes.Contains(recorded[0], []byte(testToken)) {
				t.Errorf("recorded body %s", recorded[0])
			}
			if n := strings.Count(logs.String(), "tiktok dry run: request not sent"); n != 2 || strings.Contains(logs.String(), testToken) {
				t.Errorf("dry-run log:\n%s", logs)
			}
		})
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: the quick start's dry run logs how
// many events it held back and their ids at info level; the request body
// (IP addresses, user agents, cookies, hashed e-mails) only at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	p := purchase()
	p.UserData.ClientIPAddress, p.UserData.ClientUserAgent = "203.0.113.99", "Mozilla/5.0 (Secret UA)"
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"pixel_code":"C4ABC"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{p, pageView("pv-1")}, "203.0.113.99", "Secret UA", "2F7h37YkS1j57AYSKTI7IHhJPYH", sha("jane@example.com"))
}

// TestTokenNeverLeaks scans logs and errors for the token in every path,
// including error bodies and redirects that echo it back.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int, code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, replyBody(code, "bad token "+r.Header.Get("Access-Token")))
		}
	}
	handlers := map[string]http.Handler{
		"success":        echo(200, 0),
		"paused echo":    echo(200, 40105),
		"permanent echo": echo(200, 40002),
		"retryable echo": echo(200, 50000),
		"5xx raw echo": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "upstream said "+r.Header.Get("Access-Token"))
		}),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?token="+r.Header.Get("Access-Token"), http.StatusTemporaryRedirect)
		}),
	}
	destinationstest.CheckLeaks(t, handlers, pageView("a"), func(t *testing.T, url string) (destinations.Destination, *testlog.Buffer) {
		return newAdapter(t, settingsJSON(t, url, map[string]any{"timeout": "50ms"}), nil)
	}, testToken)
}

func checkNoToken(t *testing.T, logs string, errs []error) {
	t.Helper()
	destinationstest.CheckNoSecret(t, logs, errs, testToken)
}

// TestFakeRejections runs the adapter against the strict fake's own errors.
func TestFakeRejections(t *testing.T) {
	fake := tiktoktest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	fake.AddPixel("C4OTHER", "other-token")

	raw := pageView("raw")
	raw.UserData.Em = []string{"jane@example.com"}
	cases := []struct {
		name     string
		settings map[string]any
		event    destinations.Event
		kind     destinations.Kind
		code     string
	}{
		{"wrong token", map[string]any{"access_token": "wrong"}, pageView("a"), destinations.Paused, "40105"},
		{"pixel of another token", map[string]any{"pixel_code": "C4OTHER"}, pageView("a"), destinations.Paused, "40001"},
		{"unhashed email", nil, raw, destinations.Permanent, "40002"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := newAdapter(t, settingsJSON(t, fake.URL(), tc.settings), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{tc.event})
			kind, de := destinations.Classify(errs[0])
			if kind != tc.kind || de.Code != tc.code {
				t.Errorf("got %v, want %v code %s", errs[0], tc.kind, tc.code)
			}
			checkNoToken(t, logs.String(), errs)
		})
	}

	fake.FailNext(1, http.StatusOK, tiktoktest.Reply{Code: tiktoktest.CodeRateLimited, Message: "Too many requests"}.Body())
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
	if kind, de := destinations.Classify(errs[0]); kind != destinations.Retryable || de.RetryAfter < time.Minute {
		t.Errorf("throttled: %v", errs[0])
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")}); errs[0] != nil {
		t.Errorf("after the throttle: %v", errs[0])
	}
	if got := fake.Events(testPixel); len(got) != 1 || got[0].EventID != "a" {
		t.Errorf("fake holds %+v", got)
	}
}

// BenchmarkDeliver measures mapping, encoding and one round trip for a full
// batch of Purchases.
func BenchmarkDeliver(b *testing.B) {
	srv := destinationstest.Answering(b, http.StatusOK, nil, replyBody(0, "OK"))
	d, _ := newAdapter(b, settingsJSON(b, srv.URL, nil), nil)
	batch := make([]destinations.Event, MaxEvents)
	for i := range batch {
		batch[i] = purchase()
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs := d.Deliver(context.Background(), batch); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}
