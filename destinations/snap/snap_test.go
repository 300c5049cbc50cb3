package snap

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/destinations/snap/snaptest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testPixel = "1ec32188-754e-4be2-8e55-c949a984a39f"
	// testToken has characters a query string escapes, so that both of
	// its forms are checked for leaks.
	testToken = "snapSECRET/tok+en=0123456789"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

// settingsJSON builds settings for the adapter under test; a nil value in
// extra removes the key.
func settingsJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"pixel_id": testPixel, "access_token": testToken, "api_url": apiURL}, extra)
}

// newAdapter builds an adapter logging into the returned buffer.
func newAdapter(t testing.TB, settings json.RawMessage, record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	return destinationstest.NewAdapter(t, New, settings, fixedNow, record)
}

// purchase is a website Purchase with every kind of field filled.
func purchase() destinations.Event {
	p := destinationstest.Purchase(testNow)
	p.UserData.Ge, p.UserData.Db = []string{sha("f")}, []string{sha("19900214")}
	p.CustomData.ContentCategory = "shoes"
	p.Context.ClickIDs = map[string]destinations.ClickID{
		"ScCid":  {Value: "a3f4b5c6-d7e8-9012-3456-7890abcdef12", At: testNow.Add(-3 * 24 * time.Hour).UnixMilli()},
		"ttclid": {Value: "E.C.P.not-for-snap", At: testNow.Add(-time.Hour).UnixMilli()},
	}
	p.Context.Cookies = map[string]string{"_scid": "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11", "_ttp": "not-for-snap"}
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
		Context:        destinations.Context{SiteID: "shop", Cookies: map[string]string{"_scid": "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11"}},
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"pixel_id":"` + testPixel + `","access_token":"tokSECRET"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{PixelID: testPixel, AccessToken: "tokSECRET", APIURL: DefaultAPIURL, Timeout: destinations.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "tokSECRET") {
		t.Errorf("formatted settings show the token: %s", got)
	}
	s, err = ParseSettings(json.RawMessage(`{"pixel_id":"abc","timeout":"800ms","test_mode":true,"dry_run":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.Timeout) != 800*time.Millisecond || !s.TestMode || !s.dryRun() {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"pixel_id":"abc","pixel_code":"1"}`, []string{"pixel_code"}},
		{"not an object", `[]`, []string{"snap settings"}},
		{"trailing data", `{"pixel_id":"abc"} {}`, []string{"trailing"}},
		{"missing pixel", `{}`, []string{"pixel_id"}},
		{"pixel with a slash", `{"pixel_id":"abc/../x"}`, []string{"pixel_id"}},
		{"pixel with a query", `{"pixel_id":"abc?x=1"}`, []string{"pixel_id"}},
		{"bad timeout", `{"pixel_id":"abc","timeout":"soon"}`, []string{"timeout"}},
		{"negative timeout", `{"pixel_id":"abc","timeout":"-1s"}`, []string{"timeout"}},
		{"bad api url", `{"pixel_id":"abc","api_url":"ftp://x"}`, []string{"api_url"}},
		{"api url with query", `{"pixel_id":"abc","api_url":"https://x/?a=b"}`, []string{"api_url"}},
		{"several", `{"pixel_id":"a b","timeout":"-1s","api_url":"nope"}`, []string{"pixel_id", "timeout", "api_url"}},
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
	settings := json.RawMessage(`{"pixel_id":"` + testPixel + `","access_token":"` + testToken + `"}`)
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
	if got, _, _ := strings.Cut(d.(*Adapter).events, "?"); got != "https://tr.snapchat.com/v3/"+testPixel+"/events" {
		t.Errorf("default endpoint %q", got)
	}
}

func TestSpec(t *testing.T) {
	s := Spec()
	if s.Type != "snap" || !slices.Equal(s.Secrets, []string{"access_token"}) ||
		s.APIURLs["api_url"] != "TAGWAY_SNAP_API_URL" || len(s.APIURLs) != 1 ||
		!s.AdPlatform || s.Anonymous || s.Hashes != 0 || s.Check == nil || s.EventName == nil {
		t.Errorf("spec %+v", s)
	}
	if got := s.MaxAge(purchase()); got != 37*24*time.Hour {
		t.Errorf("MaxAge %s", got)
	}
	d, err := s.New(settingsJSON(t, "http://127.0.0.1:1", nil), destinations.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxBatch() != 2000 || d.(destinations.AgeLimiter).MaxEventAge(pageView("a")) != 37*24*time.Hour ||
		d.(destinations.AnonymousAcceptor).AcceptsAnonymous() {
		t.Errorf("adapter limits disagree with the spec")
	}
}

func TestEventName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"PageView", "PAGE_VIEW", true},
		{"ViewContent", "VIEW_CONTENT", true},
		{"AddToCart", "ADD_CART", true},
		{"AddToWishlist", "ADD_TO_WISHLIST", true},
		{"InitiateCheckout", "START_CHECKOUT", true},
		{"AddPaymentInfo", "ADD_BILLING", true},
		{"Purchase", "PURCHASE", true},
		{"CompleteRegistration", "SIGN_UP", true},
		{"Search", "SEARCH", true},
		{"Subscribe", "SUBSCRIBE", true},
		{"StartTrial", "START_TRIAL", true},
		{"LIST_VIEW", "LIST_VIEW", true}, // Snap's own, from an event_map
		{"CUSTOM_EVENT_3", "CUSTOM_EVENT_3", true},
		{"SIGN_UP", "SIGN_UP", true},
		{"Lead", "", false},
		{"Contact", "", false},
		{"Donate", "", false},
		{"CUSTOM_EVENT_6", "", false},
		{"purchase", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := EventName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EventName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCheck(t *testing.T) {
	mod := func(f func(e *destinations.Event)) destinations.Event {
		e := purchase()
		f(&e)
		return e
	}
	cases := []struct {
		name  string
		event destinations.Event
		field string
	}{
		{"complete purchase", purchase(), ""},
		{"page view with ip and ua", pageView("a"), ""},
		{"no page url", mod(func(e *destinations.Event) { e.EventSourceURL = "" }), "event_source_url"},
		{"offline without url", mod(func(e *destinations.Event) { e.EventSourceURL, e.ActionSource = "", "physical_store" }), ""},
		{"app event", mod(func(e *destinations.Event) { e.ActionSource = "app" }), "action_source"},
		{"purchase without value", mod(func(e *destinations.Event) { e.CustomData.Value = nil }), "custom_data.value"},
		{"purchase without custom data", mod(func(e *destinations.Event) { e.CustomData = nil }), "custom_data.value"},
		{"purchase without currency", mod(func(e *destinations.Event) { e.CustomData.Currency = "" }), "custom_data.currency"},
		{"add to cart without value", mod(func(e *destinations.Event) { e.EventName, e.CustomData = "AddToCart", nil }), ""},
		{"only a user agent", mod(func(e *destinations.Event) {
			e.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0", Fn: []string{sha("jane")}}
		}), "user_data"},
		{"only a phone", mod(func(e *destinations.Event) { e.UserData = destinations.UserData{Ph: []string{sha("16505551212")}} }), ""},
		{"anonymous, routing withholds it", mod(func(e *destinations.Event) {
			e.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0"}
			e.Context.Anonymous = true
		}), ""},
		{"no Snap name: routing skips it", mod(func(e *destinations.Event) { e.EventName, e.EventSourceURL = "Lead", "" }), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(&tc.event)
			switch {
			case tc.field == "" && v != nil:
				t.Errorf("refused: %v", v)
			case tc.field != "" && (v == nil || v.Field != tc.field || v.Reason == ""):
				t.Errorf("got %v, want a violation of %s", v, tc.field)
			}
		})
	}
	// What Check lets through, the strict fake takes.
	fake := snaptest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	for _, tc := range cases {
		if tc.field != "" || tc.event.Context.Anonymous || tc.event.EventName == "Lead" {
			continue
		}
		if err := d.Deliver(context.Background(), []destinations.Event{tc.event})[0]; err != nil {
			t.Errorf("%s: passed Check, refused by the fake: %v", tc.name, err)
		}
	}
}

// newCaptureServer answers every request as Snap does when it takes the
// events, and keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.NewCapture(t, func(w http.ResponseWriter, _ []byte) {
		_, _ = io.WriteString(w, `{"status":"VALID","reason":"ok"}`)
	})
}

func TestGoldenPurchase(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	if errs := d.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(srv.Bodies()) != 1 {
		t.Fatalf("%d requests", len(srv.Bodies()))
	}
	req := srv.Requests()[0]
	if u := req.URL; u.Path != "/v3/"+testPixel+"/events" || u.Query().Get("access_token") != testToken || len(u.Query()) != 1 ||
		req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Authorization") != "" {
		t.Errorf("request %s %v", req.URL, req.Header)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), srv.Bodies()[0], *update)
}

// documented lists every field the adapter may send, as a path in the
// request body, with what Snap's Conversions API v3 documentation (the
// Parameters page and the v3 OpenAPI schema of Snap's Business SDK) says of
// it ("hex64": a lowercase hex SHA-256 digest; "string", "numstring": a
// string holding a number, "number", "integer", "bool").
var documented = map[string]string{
	"data[].event_name":                               "string",  // PAGE_VIEW, PURCHASE...
	"data[].event_time":                               "integer", // Unix seconds
	"data[].event_id":                                 "string",  // deduplicated against snaptr's client_dedup_id
	"data[].action_source":                            "string",  // WEB, MOBILE_APP, OFFLINE
	"data[].event_source_url":                         "string",  // required for WEB
	"data[].opt_out":                                  "bool",    //
	"data[].user_data.em[]":                           "hex64",   // trimmed, lowercased
	"data[].user_data.ph[]":                           "hex64",   // digits with country code, no "+", no leading 00
	"data[].user_data.fn[]":                           "hex64",   // lowercase, no punctuation
	"data[].user_data.ln[]":                           "hex64",   //
	"data[].user_data.ge[]":                           "hex64",   // f or m
	"data[].user_data.ct[]":                           "hex64",   //
	"data[].user_data.st[]":                           "hex64",   // two-letter code
	"data[].user_data.zp[]":                           "hex64",   //
	"data[].user_data.country[]":                      "hex64",   // two-letter lowercase code
	"data[].user_data.external_id[]":                  "hex64",   //
	"data[].user_data.client_ip_address":              "string",  // not hashed
	"data[].user_data.client_user_agent":              "string",  // not hashed
	"data[].user_data.sc_click_id":                    "string",  // the ad click's ScCid
	"data[].user_data.sc_cookie1":                     "string",  // the _scid cookie
	"data[].custom_data.currency":                     "string",  // ISO 4217; required on PURCHASE
	"data[].custom_data.value":                        "number",  // required on PURCHASE
	"data[].custom_data.content_ids[]":                "string",  //
	"data[].custom_data.content_category":             "string",  //
	"data[].custom_data.content_type":                 "string",  //
	"data[].custom_data.contents[].id":                "string",  //
	"data[].custom_data.contents[].quantity":          "numstring",
	"data[].custom_data.contents[].item_price":        "numstring",
	"data[].custom_data.contents[].delivery_category": "string",
	"data[].custom_data.num_items":                    "integer",
	"data[].custom_data.order_id":                     "string",
	"data[].custom_data.search_string":                "string",
	"data[].custom_data.status":                       "string",
	"data[].custom_data.delivery_category":            "string",
	"data[].data_processing_options[]":                "string", // LDU
	"data[].data_processing_options_country":          "integer",
	"data[].data_processing_options_state":            "integer",
}

// TestGoldenFieldsDocumented checks the golden payload field by field: each
// leaf is a documented field of the documented type, and the golden file
// carries every documented field the canonical Purchase fills.
func TestGoldenFieldsDocumented(t *testing.T) {
	destinationstest.CheckDocumented(t, filepath.Join("testdata", "purchase.golden.json"), documented,
		"data[].opt_out", "data[].custom_data.search_string", "data[].custom_data.status", "data[].custom_data.delivery_category")
}

// TestSnapHashingExamples: the digests ingest computes (Meta's
// normalization) equal the outputs Snap's Parameters page documents for its
// own examples, so the adapter sends them as they are.
func TestSnapHashingExamples(t *testing.T) {
	examples := []struct{ field, input, want string }{
		{pii.Email, "Person@Example.com", "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"},
		{pii.Phone, "+44 844 412 4653", "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"},
		{pii.Phone, "0044 844 412 4653", "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"},
		{pii.FirstName, "John", "96d9632f363564cc3032521409cf22a852f2032eec099ed5967c0d000cec607a"},
		{pii.FirstName, "Raphaël", "e74bb89e718fe1e19c422a48382870399f8bf7ca8dfa008739e75b0be76627b7"},
	}
	for _, ex := range examples {
		got, err := pii.Hash(ex.field, ex.input)
		if err != nil || got != ex.want {
			t.Errorf("%s %q: %s, %v; Snap documents %s", ex.field, ex.input, got, err, ex.want)
		}
	}
	ph, _ := pii.Hash(pii.Phone, "+44 844 412 4653")
	e := pageView("ph")
	e.UserData.Ph = []string{ph}
	e.UserData.PhE164 = []string{sha("+448444124653")} // another platform's variant
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	if err := d.Deliver(context.Background(), []destinations.Event{e})[0]; err != nil {
		t.Fatal(err)
	}
	var req struct {
		Data []struct {
			UserData struct {
				Ph []string `json:"ph"`
			} `json:"user_data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(srv.Bodies()[0], &req); err != nil {
		t.Fatal(err)
	}
	if got := req.Data[0].UserData.Ph; !slices.Equal(got, []string{examples[1].want}) {
		t.Errorf("ph %v, want Snap's documented digest", got)
	}
	if bytes.Contains(srv.Bodies()[0], []byte(sha("+448444124653"))) {
		t.Error("the E.164 variant reached Snap")
	}
}

// TestNothingForeign: only Snap's identifiers leave; other platforms' click
// ids and cookies, Meta's fbp/fbc and the digests Snap has no field for
// stay home.
func TestNothingForeign(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	p := purchase()
	p.UserData.Fbc = "fb.1.1764330000000.IwAR2F4"
	if err := d.Deliver(context.Background(), []destinations.Event{p})[0]; err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"not-for-snap", p.UserData.Fbp, p.UserData.Fbc, p.UserData.PhE164[0], p.UserData.Db[0], "WELCOME10", "referrer"} {
		if bytes.Contains(srv.Bodies()[0], []byte(leak)) {
			t.Errorf("the request carries %q", leak)
		}
	}
}

// TestClickAndCookie: ScCid from Context within Snap's 28-day swipe window,
// _scid as sc_cookie1.
func TestClickAndCookie(t *testing.T) {
	fresh, stale, unknown, none := pageView("fresh"), pageView("stale"), pageView("unknown"), pageView("none")
	fresh.Context.ClickIDs = map[string]destinations.ClickID{"ScCid": {Value: "fresh", At: testNow.Add(-27 * 24 * time.Hour).UnixMilli()}}
	stale.Context.ClickIDs = map[string]destinations.ClickID{"ScCid": {Value: "stale", At: testNow.Add(-29 * 24 * time.Hour).UnixMilli()}}
	unknown.Context.ClickIDs = map[string]destinations.ClickID{"ScCid": {Value: "unknown"}}
	none.Context.Cookies = nil
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	for i, err := range d.Deliver(context.Background(), []destinations.Event{fresh, stale, unknown, none}) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	var req struct {
		Data []struct {
			UserData struct {
				Click  string `json:"sc_click_id"`
				Cookie string `json:"sc_cookie1"`
			} `json:"user_data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(srv.Bodies()[0], &req); err != nil {
		t.Fatal(err)
	}
	const scid = "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11"
	want := [][2]string{{"fresh", scid}, {"", scid}, {"unknown", scid}, {"", ""}}
	for i, w := range want {
		if got := req.Data[i].UserData; got.Click != w[0] || got.Cookie != w[1] {
			t.Errorf("event %d: %+v, want %v", i, got, w)
		}
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake: the
// golden Purchase, offline and test events, and a batch bigger than one
// request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := snaptest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	p := purchase()
	store := purchase()
	store.EventID, store.ActionSource, store.EventSourceURL = "store", "physical_store", ""
	test := pageView("test")
	test.Context.TestEventCode = "TEST1"
	for i, err := range d.Deliver(context.Background(), []destinations.Event{p, pageView("a"), test, store}) {
		if err != nil {
			t.Fatalf("event %d: %v (%v)", i, err, fake.Rejections())
		}
	}
	got := fake.Events(testPixel)
	if fake.Requests() != 2 || len(got) != 3 || len(fake.Validated(testPixel)) != 1 || fake.Validated(testPixel)[0].EventID != "test" {
		t.Fatalf("%d requests, kept %+v, validated %+v", fake.Requests(), got, fake.Validated(testPixel))
	}
	if got[0].EventName != "PURCHASE" || got[0].EventID != p.EventID || got[0].TokenIn != "query" ||
		got[1].EventName != "PAGE_VIEW" || got[2].ActionSource != "OFFLINE" {
		t.Errorf("kept %+v", got)
	}

	many := make([]destinations.Event, 2001)
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
		t.Errorf("2001 events took %d requests, want 2", n)
	}
	if n := len(fake.Events(testPixel)); n != 3+2001 {
		t.Errorf("fake holds %d events", n)
	}
}

// TestTestMode: test events go to the validation endpoint, which judges
// each event: an invalid one fails alone, the others pass; none is kept.
func TestTestMode(t *testing.T) {
	fake := snaptest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, logs := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"test_mode": true}), nil)
	bad := purchase()
	bad.EventID = "bad"
	bad.CustomData.Currency = "" // Snap requires it on PURCHASE
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a"), bad, purchase()})
	kinds := []destinations.Kind{0, destinations.Permanent, 0}
	for i, err := range errs {
		if k, de := destinations.Classify(err); k != kinds[i] || (de != nil && (de.WholeBatch || !strings.Contains(de.Message, "currency"))) {
			t.Errorf("event %d: %v, want kind %v", i, err, kinds[i])
		}
	}
	if len(fake.Events(testPixel)) != 0 || len(fake.Validated(testPixel)) != 2 {
		t.Errorf("kept %d, validated %d", len(fake.Events(testPixel)), len(fake.Validated(testPixel)))
	}
	checkNoToken(t, logs.String(), errs)
}

// TestPrecheck: an event Snap would refuse fails alone; the rest is sent.
func TestPrecheck(t *testing.T) {
	fake := snaptest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	old := pageView("old")
	old.EventTime = testNow.Add(-37*24*time.Hour - time.Minute).Unix()
	almost := pageView("almost")
	almost.EventTime = testNow.Add(-36 * 24 * time.Hour).Unix()
	lead := pageView("lead")
	lead.EventName = "Lead"
	app := pageView("app")
	app.ActionSource = "app"
	noTime := pageView("notime")
	noTime.EventTime = 0

	errs := d.Deliver(context.Background(), []destinations.Event{pageView("ok"), old, almost, lead, app, noTime})
	wantKinds := []destinations.Kind{0, destinations.Permanent, 0, destinations.Permanent, destinations.Permanent, destinations.Permanent}
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k != wantKinds[i] {
			t.Errorf("event %d: %v, want kind %v", i, err, wantKinds[i])
		}
	}
	if n := len(fake.Events(testPixel)); n != 2 {
		t.Errorf("fake got %d events, want 2", n)
	}
}

func invalidBody(event int, msg string) string {
	return snaptest.Invalid(event, "Invalid event", msg).Body()
}

// TestClassification is the table of Snap's answers and the outcome each
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
		{name: "200 VALID", status: 200, body: `{"status":"VALID","reason":"ok"}`},
		{name: "200 SUCCESS", status: 200, body: `{"status":"SUCCESS","reason":"SUCCESS"}`},
		{name: "400 INVALID event", status: 400, body: invalidBody(1, "event_time: timestamp out of range"),
			kind: destinations.Permanent, whole: true, message: "event 1: event_time"},
		{name: "400 INVALID with codes", status: 400, body: `{"status":"INVALID","reason":"Invalid","errors":{"codes":["E1001"],"error_msgs":["Unhashed PII"]}}`,
			kind: destinations.Permanent, code: "E1001", whole: true, message: "Unhashed PII"},
		{name: "200 INVALID", status: 200, body: `{"status":"INVALID","reason":"Insufficient PII"}`, kind: destinations.Permanent, whole: true, message: "Insufficient PII"},
		{name: "422 INVALID", status: 422, body: `{"status":"INVALID","reason":"bad"}`, kind: destinations.Permanent, whole: true},
		{name: "401 bad token", status: 401, body: `{"status":"INVALID","reason":"Unauthorized"}`, kind: destinations.Paused, message: "Unauthorized"},
		{name: "403 other organisation", status: 403, body: `{"status":"INVALID","reason":"Forbidden"}`, kind: destinations.Paused},
		{name: "404 no such pixel", status: 404, body: `not found`, kind: destinations.Paused},
		{name: "429", status: 429, body: `{"status":"INVALID","reason":"Too many requests"}`, kind: destinations.Retryable, minDelay: 10 * time.Second},
		{name: "429 Retry-After", status: 429, header: map[string]string{"Retry-After": "120"}, kind: destinations.Retryable,
			minDelay: 2 * time.Minute, maxDelay: 2 * time.Minute},
		{name: "500 INVALID", status: 500, body: `{"status":"INVALID","reason":"Internal error"}`, kind: destinations.Retryable, message: "Internal error"},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "9"}, body: "<html>busy</html>", kind: destinations.Retryable,
			minDelay: 9 * time.Second, maxDelay: 9 * time.Second, message: "busy"},
		{name: "408", status: 408, kind: destinations.Retryable},
		{name: "200 unreadable", status: 200, body: `<html>ok</html>`, kind: destinations.Retryable},
		{name: "200 unknown status", status: 200, body: `{"status":"PENDING"}`, kind: destinations.Retryable},
		{name: "400 unreadable", status: 400, body: `bad request`, kind: destinations.Permanent, message: "bad request"},
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
			if _, de := destinations.Classify(errs[0]); de != nil && !strings.HasPrefix(de.Message, "snap") {
				t.Errorf("message %q does not name snap", de.Message)
			}
		})
	}
}

// TestWholeBatchOnlyForSeveral: a refusal of one event alone is not marked
// for splitting.
func TestWholeBatchOnlyForSeveral(t *testing.T) {
	srv := destinationstest.Answering(t, 400, nil, invalidBody(0, "bad"))
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	_, de := destinations.Classify(d.Deliver(context.Background(), []destinations.Event{pageView("a")})[0])
	if de == nil || de.Kind != destinations.Permanent || de.WholeBatch {
		t.Errorf("got %+v", de)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	d, logs := newAdapter(t, settingsJSON(t, destinationstest.Hanging(t).URL, map[string]any{"timeout": "50ms"}), nil)
	err := destinationstest.CheckTimeout(t, d, pageView("a"))
	checkNoToken(t, logs.String(), []error{err})
	if err == nil || !strings.Contains(err.Error(), "/v3/"+testPixel+"/events") {
		t.Errorf("the message lost the endpoint: %v", err)
	}
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
				t.Fatalf("recorded %d bodies, want 2 (live and test)", len(recorded))
			}
			var body struct {
				Data []json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(recorded[0], &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Data) != 2 || bytes.Contains(recorded[0], []byte("SECRET")) {
				t.Errorf("recorded body %s", recorded[0])
			}
			if n := strings.Count(logs.String(), "snap dry run: request not sent"); n != 2 || strings.Contains(logs.String(), "SECRET") {
				t.Errorf("dry-run log:\n%s", logs)
			}
		})
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: the dry run logs how many events it
// held back and their ids at info level; the body only at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	p := purchase()
	p.UserData.ClientIPAddress, p.UserData.ClientUserAgent = "203.0.113.99", "Mozilla/5.0 (Secret UA)"
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"pixel_id":"abc"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{p, pageView("pv-1")}, "203.0.113.99", "Secret UA", "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11", sha("jane@example.com"))
}

// TestTokenNeverLeaks scans logs and errors for the token, raw and
// query-escaped, in every path: the token travels in the URL, which
// net/http's errors quote, and servers echo URLs back.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status":"INVALID","reason":"bad request to %s with %s","errors":{"error_msgs":["token %s"]}}`,
				r.URL.RequestURI(), r.URL.Query().Get("access_token"), r.URL.RawQuery)
		}
	}
	handlers := map[string]http.Handler{
		"success":        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"status":"VALID"}`) }),
		"paused echo":    echo(401),
		"permanent echo": echo(400),
		"retryable echo": echo(503),
		"raw echo": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "upstream saw "+r.URL.String())
		}),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
		}),
		"reset": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}),
	}
	destinationstest.CheckLeaks(t, handlers, pageView("a"), func(t *testing.T, url string) (destinations.Destination, *testlog.Buffer) {
		return newAdapter(t, settingsJSON(t, url, map[string]any{"timeout": "50ms"}), nil)
	}, testToken, url.QueryEscape(testToken), "snapSECRET")
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		d, logs := newAdapter(t, settingsJSON(t, "http://"+addr, nil), nil)
		errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
		if k, _ := destinations.Classify(errs[0]); k != destinations.Retryable {
			t.Errorf("connection refused: %v", errs[0])
		}
		checkNoToken(t, logs.String(), errs)
	})
}

func checkNoToken(t *testing.T, logs string, errs []error) {
	t.Helper()
	destinationstest.CheckNoSecret(t, logs, errs, testToken, url.QueryEscape(testToken), "snapSECRET")
}

// TestFakeRejections runs the adapter against the strict fake's own errors.
func TestFakeRejections(t *testing.T) {
	fake := snaptest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	fake.AddPixel("other-pixel", "other-token")

	raw := pageView("raw")
	raw.UserData.Em = []string{"jane@example.com"}
	cases := []struct {
		name     string
		settings map[string]any
		events   []destinations.Event
		kind     destinations.Kind
		whole    bool
	}{
		{"wrong token", map[string]any{"access_token": "wrong"}, []destinations.Event{pageView("a")}, destinations.Paused, false},
		{"pixel of another token", map[string]any{"pixel_id": "other-pixel"}, []destinations.Event{pageView("a")}, destinations.Paused, false},
		{"unhashed email", nil, []destinations.Event{raw}, destinations.Permanent, false},
		{"unhashed email in a batch", nil, []destinations.Event{pageView("a"), raw}, destinations.Permanent, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := newAdapter(t, settingsJSON(t, fake.URL(), tc.settings), nil)
			errs := d.Deliver(context.Background(), tc.events)
			for _, err := range errs {
				if kind, de := destinations.Classify(err); kind != tc.kind || de.WholeBatch != tc.whole {
					t.Errorf("got %v (whole %v), want %v whole %v", err, de.WholeBatch, tc.kind, tc.whole)
				}
			}
			checkNoToken(t, logs.String(), errs)
		})
	}

	fake.FailNext(1, http.StatusTooManyRequests, snaptest.Reply{Status: "INVALID", Reason: "Too many requests"}.Body())
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
	if kind, de := destinations.Classify(errs[0]); kind != destinations.Retryable || de.RetryAfter < 10*time.Second {
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
	srv := destinationstest.Answering(b, http.StatusOK, nil, `{"status":"VALID"}`)
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
