package pinterest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/pinterest/pinteresttest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testAccount = "549755885175"
	testToken   = "pina_SECRETconversionTOKEN42"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

// settingsJSON builds settings for the adapter under test; a nil value in
// extra removes the key.
func settingsJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"ad_account_id": testAccount, "access_token": testToken, "api_url": apiURL}, extra)
}

// newAdapter builds an adapter logging into the returned buffer.
func newAdapter(t testing.TB, settings json.RawMessage, record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	return destinationstest.NewAdapter(t, New, settings, fixedNow, record)
}

// purchase is a website Purchase with every kind of field filled.
func purchase() destinations.Event {
	p := destinationstest.Purchase(testNow)
	p.UserData.Ge, p.UserData.Db = []string{sha("f")}, []string{sha("19900216")}
	p.UserData.Fbc = "fb.1.1764330000000.IwAR2F4-dbP0l7Mn1"
	p.CustomData.ContentName, p.CustomData.ContentCategory = "Running shoes", "Footwear"
	p.CustomData.Contents[0].Title = "Trail runner"
	p.Context.ClickIDs = map[string]destinations.ClickID{
		"epik": {Value: "dj0yJnU9b2JDcFFHekV4SHJNcmVrbFBkUEdqakh0akdUT1VjVVUmcD0yJm49cnNBQ3F2Q2dOVDBXWWhkWklrUGxBUSZ0PUFBQUFBR1BaY3Bv",
			At: testNow.Add(-48 * time.Hour).UnixMilli()},
		"gclid": {Value: "Cj0KCQ-not-for-pinterest", At: testNow.UnixMilli()},
	}
	p.Context.Cookies = map[string]string{"_epik": "older-cookie-epik", "_ttp": "not-for-pinterest"}
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
		UserData: destinations.UserData{
			ClientIPAddress: "203.0.113.9",
			ClientUserAgent: "Mozilla/5.0",
		},
		Context: destinations.Context{SiteID: "shop"},
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"ad_account_id":"549755885175","access_token":"tokSECRET"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{AdAccountID: "549755885175", AccessToken: "tokSECRET", APIURL: DefaultAPIURL,
		Timeout: destinations.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "tokSECRET") {
		t.Errorf("formatted settings show the token: %s", got)
	}
	s, err = ParseSettings(json.RawMessage(`{"ad_account_id":"1","test":true,"timeout":"800ms","dry_run":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Test || time.Duration(s.Timeout) != 800*time.Millisecond || !s.dryRun() {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"ad_account_id":"1","adaccount":"1"}`, []string{"adaccount"}},
		{"not an object", `[]`, []string{"pinterest settings"}},
		{"trailing data", `{"ad_account_id":"1"} {}`, []string{"trailing"}},
		{"missing account", `{}`, []string{"ad_account_id"}},
		{"account not digits", `{"ad_account_id":"12a"}`, []string{"ad_account_id"}},
		{"account too long", `{"ad_account_id":"1234567890123456789"}`, []string{"ad_account_id"}},
		{"bad timeout", `{"ad_account_id":"1","timeout":"soon"}`, []string{"timeout"}},
		{"negative timeout", `{"ad_account_id":"1","timeout":"-1s"}`, []string{"timeout"}},
		{"test not a bool", `{"ad_account_id":"1","test":"yes"}`, []string{"test"}},
		{"bad api url", `{"ad_account_id":"1","api_url":"ftp://x"}`, []string{"api_url"}},
		{"api url with query", `{"ad_account_id":"1","api_url":"https://x/?a=b"}`, []string{"api_url"}},
		{"several", `{"ad_account_id":"x","api_url":"nope","timeout":"-2s"}`, []string{"ad_account_id", "api_url", "timeout"}},
	}
	parse := func(raw json.RawMessage) error { _, err := ParseSettings(raw); return err }
	for _, tc := range bad {
		destinationstest.CheckRefused(t, tc.name, json.RawMessage(tc.json), tc.fields, parse, New)
	}
}

// TestSpec: the registry entry is complete, and New through it takes the
// operator's API URL from Deps.APIURLs.
func TestSpec(t *testing.T) {
	sp := Spec()
	if sp.Type != "pinterest" || sp.New == nil || sp.Check == nil || sp.EventName == nil || sp.MaxAge == nil {
		t.Fatalf("incomplete spec %+v", sp)
	}
	if fmt.Sprint(sp.Secrets) != "[access_token]" {
		t.Errorf("secrets %v", sp.Secrets)
	}
	if len(sp.APIURLs) != 1 || sp.APIURLs["api_url"] != "TAGWAY_PINTEREST_API_URL" {
		t.Errorf("API URLs %v", sp.APIURLs)
	}
	if !sp.AdPlatform || sp.Anonymous || sp.Hashes != 0 {
		t.Errorf("AdPlatform %v Anonymous %v Hashes %v", sp.AdPlatform, sp.Anonymous, sp.Hashes)
	}
	if got := sp.MaxAge(pageView("a")); got != 7*24*time.Hour {
		t.Errorf("MaxAge %s", got)
	}

	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	d, err := destinations.WithAPIURLs(sp.New, map[string]string{"api_url": fake.URL()})(
		json.RawMessage(`{"ad_account_id":"`+testAccount+`","access_token":"`+testToken+`"}`),
		destinations.Deps{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("via-spec")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got := fake.Events(testAccount); len(got) != 1 || got[0].EventID != "via-spec" {
		t.Errorf("fake holds %+v", got)
	}
}

func TestEventName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"PageView", "page_visit", true},
		{"ViewContent", "view_content", true},
		{"AddToCart", "add_to_cart", true},
		{"AddToWishlist", "add_to_wishlist", true},
		{"InitiateCheckout", "initiate_checkout", true},
		{"AddPaymentInfo", "add_payment_info", true},
		{"Purchase", "checkout", true},
		{"Lead", "lead", true},
		{"CompleteRegistration", "signup", true},
		{"Search", "search", true},
		{"Subscribe", "subscribe", true},
		{"Contact", "contact", true},
		{"StartTrial", "start_trial", true},
		{"checkout", "checkout", true},
		{"watch_video", "watch_video", true},
		{"view_category", "view_category", true},
		{"custom", "custom", true},
		{"Donate", "", false},
		{"newsletter_click", "", false},
		{"Checkout", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := EventName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EventName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	// Every name EventName gives is one the strict fake accepts.
	for canonical := range eventNames {
		name, _ := EventName(canonical)
		if !slices.Contains(pinteresttest.EventNames, name) {
			t.Errorf("%s maps to %s, which the fake refuses", canonical, name)
		}
	}
}

// newCaptureServer answers every request as Pinterest does when it
// processes every event, and keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.NewCapture(t, func(w http.ResponseWriter, b []byte) {
		var body struct{ Data []json.RawMessage }
		_ = json.Unmarshal(b, &body)
		statuses := make([]string, len(body.Data))
		for i := range statuses {
			statuses[i] = `{"status":"processed"}`
		}
		fmt.Fprintf(w, `{"num_events_received":%d,"num_events_processed":%d,"events":[%s]}`,
			len(body.Data), len(body.Data), strings.Join(statuses, ","))
	})
}

func TestGoldenCheckout(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	if errs := d.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(srv.Bodies()) != 1 {
		t.Fatalf("%d requests", len(srv.Bodies()))
	}
	req := srv.Requests()[0]
	if uri := req.URL.RequestURI(); uri != "/v5/ad_accounts/"+testAccount+"/events" {
		t.Errorf("request URI %q", uri)
	}
	if auth := req.Header.Get("Authorization"); auth != "Bearer "+testToken {
		t.Errorf("Authorization %q", auth)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "checkout.golden.json"), srv.Bodies()[0], *update)
}

// TestGoldenPayloadFields reads the mapping decisions back from the golden
// payload: the shared event_id, Pinterest's names and sources, the epik,
// LDU as opt_out_type, amounts as strings, and nothing Pinterest's schema
// does not list (Meta's fbc/fbp, the E.164 variant, custom properties).
func TestGoldenPayloadFields(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "checkout.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Data) != 1 {
		t.Fatalf("golden: %v (%d events)", err, len(body.Data))
	}
	ev := body.Data[0]
	p := purchase()
	checks := map[string]any{
		"event_name": "checkout", "action_source": "web", "event_id": p.EventID,
		"event_time": float64(p.EventTime), "partner_name": "ss-tagway", "event_source_url": p.EventSourceURL,
	}
	for k, want := range checks {
		if ev[k] != want {
			t.Errorf("%s = %v, want %v", k, ev[k], want)
		}
	}
	ud := ev["user_data"].(map[string]any)
	if ud["click_id"] != p.Context.ClickIDs["epik"].Value {
		t.Errorf("click_id %v, want the captured epik", ud["click_id"])
	}
	if ph := ud["ph"].([]any); len(ph) != 1 || ph[0] != sha("16505551212") {
		t.Errorf("ph %v, want the digest of the digits without +", ph)
	}
	for _, k := range []string{"fbc", "fbp", "ph_e164", "em_google", "subscription_id"} {
		if _, ok := ud[k]; ok {
			t.Errorf("user_data carries %s", k)
		}
	}
	cd := ev["custom_data"].(map[string]any)
	if cd["value"] != "129" || cd["opt_out_type"] != "LDP" || cd["currency"] != "EUR" {
		t.Errorf("custom_data %v", cd)
	}
	items := cd["contents"].([]any)
	if it := items[0].(map[string]any); it["item_price"] != "49.5" || it["item_name"] != "Trail runner" {
		t.Errorf("contents[0] %v", it)
	}
	for _, k := range []string{"coupon", "content_type", "delivery_category"} {
		if _, ok := cd[k]; ok {
			t.Errorf("custom_data carries %s, which Pinterest's schema refuses", k)
		}
	}
	if _, ok := ev["tw"]; ok {
		t.Error("the event carries tagway's context")
	}

	// The fake holds Pinterest's documented schema (every object refuses
	// unknown properties) and per-event rules: the golden body, as it is,
	// must pass all of them.
	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/v5/ad_accounts/"+testAccount+"/events", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(fake.Events(testAccount)) != 1 {
		t.Errorf("the fake refuses the golden body: %d %s", resp.StatusCode, answer)
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake: the
// golden Purchase, a batch split into live and test requests, and a batch
// bigger than one request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	p := purchase()
	a, b, c := pageView("a"), pageView("b"), pageView("c")
	b.Context.TestEventCode = "TEST42"
	for i, err := range d.Deliver(context.Background(), []destinations.Event{p, a, b, c}) {
		if err != nil {
			t.Fatalf("event %d: %v (rejections %v)", i, err, fake.Rejections())
		}
	}
	if fake.Requests() != 2 {
		t.Errorf("%d requests, want a live one and a test one", fake.Requests())
	}
	tests := map[string]bool{}
	for _, r := range fake.Events(testAccount) {
		tests[r.EventID] = r.Test
	}
	want := map[string]bool{p.EventID: false, "a": false, "b": true, "c": false}
	if fmt.Sprint(tests) != fmt.Sprint(want) {
		t.Errorf("test marks %v, want %v", tests, want)
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
	if n := len(fake.Events(testAccount)); n != 4+1001 {
		t.Errorf("fake holds %d events", n)
	}

	// The test setting marks every request.
	dt, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"test": true}), nil)
	if errs := dt.Deliver(context.Background(), []destinations.Event{pageView("t1")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	all := fake.Events(testAccount)
	if last := all[len(all)-1]; last.EventID != "t1" || !last.Test {
		t.Errorf("with test set: %+v", last)
	}
}

// TestPrecheck: an event Pinterest would refuse fails alone, permanently;
// the rest is sent.
func TestPrecheck(t *testing.T) {
	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	old := pageView("old")
	old.EventTime = testNow.Add(-7*24*time.Hour - time.Minute).Unix()
	noName := pageView("donate")
	noName.EventName = "Donate"
	noTime := pageView("notime")
	noTime.EventTime = 0
	noID := pageView("")
	thin := pageView("thin")
	thin.UserData.ClientIPAddress = ""
	emailOnly := pageView("email-only")
	emailOnly.UserData = destinations.UserData{Em: []string{sha("jane@example.com")}}
	app := pageView("app-unknown")
	app.ActionSource = "app"
	android := pageView("app-android")
	android.ActionSource = "app"
	android.UserData.ClientUserAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8)"
	store := pageView("store")
	store.ActionSource = "physical_store"
	badCurrency := pageView("bad-currency")
	badCurrency.CustomData = &destinations.CustomData{Currency: "EURO"}

	batch := []destinations.Event{pageView("ok"), old, noName, noTime, noID, thin, emailOnly, app, android, store, badCurrency}
	wantKinds := []destinations.Kind{0, destinations.Permanent, destinations.Permanent, destinations.Permanent,
		destinations.Permanent, destinations.Permanent, 0, destinations.Permanent, 0, 0, destinations.Permanent}
	errs := d.Deliver(context.Background(), batch)
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k != wantKinds[i] {
			t.Errorf("event %d (%s): %v, want kind %v", i, batch[i].EventID, err, wantKinds[i])
		}
	}
	sources := map[string]string{}
	for _, r := range fake.Events(testAccount) {
		sources[r.EventID] = r.ActionSource
	}
	want := map[string]string{"ok": "web", "email-only": "web", "app-android": "app_android", "store": "offline"}
	if fmt.Sprint(sources) != fmt.Sprint(want) {
		t.Errorf("fake got %v, want %v", sources, want)
	}
	if !strings.Contains(errs[2].Error(), "event_map") {
		t.Errorf("unknown name: %v", errs[2])
	}
}

func TestCheck(t *testing.T) {
	ios := pageView("ios")
	ios.ActionSource = "app"
	ios.UserData.ClientUserAgent = "MyApp/3.1 (iPhone; iOS 18.1)"
	if v := Check(&ios); v != nil {
		t.Errorf("iOS app event: %v", v)
	}
	if got, _ := actionSource(&ios); got != "app_ios" {
		t.Errorf("iOS app source %q", got)
	}
	noUA := pageView("x")
	noUA.UserData.ClientUserAgent = ""
	if v := Check(&noUA); v == nil || v.Field != "user_data" {
		t.Errorf("IP without user agent: %v", v)
	}
	lower := pageView("lower")
	lower.CustomData = &destinations.CustomData{Currency: "eur"}
	if v := Check(&lower); v != nil {
		t.Errorf("lowercase currency: %v", v)
	}
	noID := pageView("")
	if v := Check(&noID); v == nil || v.Field != "event_id" {
		t.Errorf("no event_id: %v", v)
	}
}

// TestClickID: the captured epik while it can attribute the event (60
// days), else the Pinterest tag's _epik cookie.
func TestClickID(t *testing.T) {
	fresh := pageView("fresh")
	fresh.Context.ClickIDs = map[string]destinations.ClickID{"epik": {Value: "EPIK-NEW", At: testNow.Add(-59 * 24 * time.Hour).UnixMilli()}}
	fresh.Context.Cookies = map[string]string{"_epik": "EPIK-COOKIE"}
	stale := fresh
	stale.Context.ClickIDs = map[string]destinations.ClickID{"epik": {Value: "EPIK-OLD", At: testNow.Add(-61 * 24 * time.Hour).UnixMilli()}}
	cookieOnly := pageView("cookie")
	cookieOnly.Context.Cookies = map[string]string{"_epik": "EPIK-COOKIE"}
	none := pageView("none")
	none.Context.ClickIDs = map[string]destinations.ClickID{"gclid": {Value: "G", At: testNow.UnixMilli()}}
	for _, tc := range []struct {
		e    destinations.Event
		want string
	}{{fresh, "EPIK-NEW"}, {stale, "EPIK-COOKIE"}, {cookieOnly, "EPIK-COOKIE"}, {none, ""}} {
		if got := clickID(&tc.e); got != tc.want {
			t.Errorf("%s: click_id %q, want %q", tc.e.EventID, got, tc.want)
		}
	}
}

func pinErr(code int, msg string) string {
	return fmt.Sprintf(`{"code":%d,"message":%q}`, code, msg)
}

// TestClassification: every status and Pinterest error code a whole
// request can get, and the outcome of its events.
func TestClassification(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		kind     destinations.Kind
		code     string
		whole    bool
		minDelay time.Duration
		maxDelay time.Duration // 0: no upper bound checked
		message  string
	}{
		{name: "400 4196 invalid", status: 400, body: pinErr(4196, "Invalid request: Additional properties are not allowed ('category_name' was unexpected)"),
			kind: destinations.Permanent, code: "4196", whole: true, message: "category_name"},
		{name: "400 code 1", status: 400, body: pinErr(1, "Invalid parameters."), kind: destinations.Permanent, code: "1", whole: true},
		{name: "400 plain", status: 400, body: "bad", kind: destinations.Permanent, whole: true, message: "HTTP 400: bad"},
		{name: "401 code 2", status: 401, body: pinErr(2, "Authentication failed."), kind: destinations.Paused, code: "2"},
		{name: "403 code 29", status: 403, body: pinErr(29, "You are not permitted to access that resource."), kind: destinations.Paused, code: "29"},
		{name: "403 code 3 scope", status: 403, body: pinErr(3, "Your token does not have sufficient permissions"), kind: destinations.Paused, code: "3"},
		{name: "400 code 2625 disapproved", status: 400, body: pinErr(2625, "your account has been disapproved"), kind: destinations.Paused, code: "2625"},
		{name: "400 code 2626 under review", status: 400, body: pinErr(2626, "We are reviewing your account."), kind: destinations.Paused, code: "2626"},
		{name: "404 account not found", status: 404, body: pinErr(2, "AdAccount not found."), kind: destinations.Paused, code: "2"},
		{name: "404 plain", status: 404, body: "", kind: destinations.Paused},
		{name: "429 code 8", status: 429, body: pinErr(8, "This request exceeded a rate limit."), kind: destinations.Retryable, code: "8", minDelay: time.Minute},
		{name: "429 Retry-After", status: 429, header: map[string]string{"Retry-After": "300"}, body: pinErr(8, "rate"),
			kind: destinations.Retryable, code: "8", minDelay: 5 * time.Minute, maxDelay: 5 * time.Minute},
		{name: "429 plain", status: 429, body: "slow down", kind: destinations.Retryable, minDelay: time.Minute},
		{name: "503 4197 ramped down", status: 503, body: pinErr(4197, "The endpoint has been ramped down"), kind: destinations.Retryable, code: "4197", minDelay: 5 * time.Minute},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, body: "", kind: destinations.Retryable,
			minDelay: 7 * time.Second, maxDelay: 7 * time.Second},
		{name: "500", status: 500, body: pinErr(500, "Internal error"), kind: destinations.Retryable, code: "500"},
		{name: "502 html", status: 502, body: "<html>bad gateway</html>", kind: destinations.Retryable, message: "bad gateway"},
		{name: "409 other 4xx", status: 409, body: pinErr(409, "conflict"), kind: destinations.Permanent, code: "409"},
		{name: "422 without details", status: 422, body: pinErr(4196, "Not all events were successfully processed."),
			kind: destinations.Permanent, code: "4196", whole: true},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"}, kind: destinations.Permanent},
		{name: "200 unreadable", status: 200, body: `<html>ok</html>`, kind: destinations.Retryable},
		{name: "200 counts without statuses", status: 200, body: `{"num_events_received":2,"num_events_processed":2,"events":[]}`},
		{name: "200 fewer processed without statuses", status: 200, body: `{"num_events_received":2,"num_events_processed":1,"events":[]}`,
			kind: destinations.Retryable, message: "processed 1 of 2"},
		{name: "200 success", status: 200, body: `{"num_events_received":2,"num_events_processed":2,"events":[{"status":"processed"},{"status":"processed"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.Answering(t, tc.status, tc.header, tc.body)
			d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a"), pageView("b")})
			destinationstest.CheckShared(t, errs, 2)
			destinationstest.CheckOutcome(t, errs[0], destinationstest.Outcome{Kind: tc.kind, Code: tc.code, Status: tc.status,
				WholeBatch: tc.whole, MinRetryAfter: tc.minDelay, MaxRetryAfter: tc.maxDelay, Message: tc.message})
		})
	}
	t.Run("one event is not a whole batch", func(t *testing.T) {
		srv := destinationstest.Answering(t, 400, nil, pinErr(4196, "The request was invalid."))
		d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
		_, de := destinations.Classify(d.Deliver(context.Background(), []destinations.Event{pageView("a")})[0])
		if de.Kind != destinations.Permanent || de.WholeBatch {
			t.Errorf("%+v", de)
		}
	})
}

// TestPerEventOutcomes: Pinterest's per-event statuses, in a 200 or in the
// details of a 422, give each event its own outcome.
func TestPerEventOutcomes(t *testing.T) {
	statuses := `{"num_events_received":3,"num_events_processed":1,"events":[` +
		`{"status":"failed","error_message":"event_name foo is not valid"},` +
		`{"status":"processed","warning_message":"content_ids is not standard"},` +
		`{"status":"failed","error_message":"event_time is too old"}]}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"200", 200, statuses},
		{"422", 422, `{"code":4196,"message":"Not all events were successfully processed.","details":` + statuses + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.Answering(t, tc.status, nil, tc.body)
			d, logs := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a"), pageView("b"), pageView("c")})
			wantKinds := []destinations.Kind{destinations.Permanent, 0, destinations.Permanent}
			for i, err := range errs {
				k, de := destinations.Classify(err)
				if k != wantKinds[i] {
					t.Errorf("event %d: %v, want %v", i, err, wantKinds[i])
				}
				if de != nil && de.WholeBatch {
					t.Errorf("event %d marked WholeBatch", i)
				}
			}
			if !strings.Contains(errs[0].Error(), "event_name foo") || !strings.Contains(errs[2].Error(), "too old") {
				t.Errorf("messages: %v / %v", errs[0], errs[2])
			}
			if !strings.Contains(logs.String(), "content_ids is not standard") {
				t.Errorf("the warning is not logged:\n%s", logs)
			}
		})
	}

	// Against the strict fake: one event with an unhashed e-mail fails on
	// its own, the other is recorded.
	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	raw := pageView("raw")
	raw.UserData.Em = []string{"jane@example.com"}
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("good"), raw})
	if errs[0] != nil {
		t.Errorf("good event: %v", errs[0])
	}
	if k, de := destinations.Classify(errs[1]); k != destinations.Permanent || de.Status != 422 || !strings.Contains(de.Message, "user_data.em") {
		t.Errorf("unhashed e-mail: %v", errs[1])
	}
	if got := fake.Events(testAccount); len(got) != 1 || got[0].EventID != "good" {
		t.Errorf("fake holds %+v", got)
	}
}

// TestFakeRejections runs the adapter against the strict fake's own
// refusals of a whole request.
func TestFakeRejections(t *testing.T) {
	fake := pinteresttest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddAccount(testAccount, testToken)
	fake.AddAccount("777", "pina_OTHERtoken")

	cases := []struct {
		name     string
		settings map[string]any
		kind     destinations.Kind
		code     string
	}{
		{"wrong token", map[string]any{"access_token": "pina_WRONG"}, destinations.Paused, "2"},
		{"account of another token", map[string]any{"ad_account_id": "777"}, destinations.Paused, "29"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := newAdapter(t, settingsJSON(t, fake.URL(), tc.settings), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
			kind, de := destinations.Classify(errs[0])
			if kind != tc.kind || de.Code != tc.code {
				t.Errorf("got %v, want %v code %s", errs[0], tc.kind, tc.code)
			}
			checkNoToken(t, logs.String(), errs)
		})
	}

	fake.FailNext(1, http.StatusTooManyRequests, pinteresttest.Error{Code: pinteresttest.CodeRateLimited,
		Message: "This request exceeded a rate limit."}.Body())
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
	if kind, de := destinations.Classify(errs[0]); kind != destinations.Retryable || de.RetryAfter < time.Minute || de.Code != "8" {
		t.Errorf("throttled: %v (delay %s)", errs[0], de.RetryAfter)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")}); errs[0] != nil {
		t.Errorf("after the throttle: %v", errs[0])
	}
	if got := fake.Events(testAccount); len(got) != 1 || got[0].EventID != "a" {
		t.Errorf("fake holds %+v", got)
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
				t.Fatalf("recorded %d bodies, want 2 (live and test)", len(recorded))
			}
			var body struct{ Data []map[string]any }
			if err := json.Unmarshal(recorded[0], &body); err != nil || len(body.Data) != 2 {
				t.Fatalf("recorded body %s (%v)", recorded[0], err)
			}
			if strings.Contains(string(recorded[0])+string(recorded[1]), testToken) {
				t.Error("a recorded body holds the token")
			}
			out := logs.String()
			if strings.Count(out, "pinterest dry run: request not sent") != 2 || !strings.Contains(out, "level=INFO") ||
				!strings.Contains(out, `\"event_name\":\"checkout\"`) {
				t.Errorf("dry-run log:\n%s", out)
			}
		})
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: the dry run logs counts and ids at
// info level; the body (IP addresses, user agents, click ids, digests) only
// at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	p := purchase()
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"ad_account_id":"123"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{p, pageView("pv-1")},
		p.UserData.ClientIPAddress, "Chrome/131.0", p.Context.ClickIDs["epik"].Value, sha("jane@example.com"))
}

// TestTokenNeverLeaks scans logs and errors for the token in every path,
// including error bodies and redirects that echo it back.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":2,"message":"bad token %s"}`, r.Header.Get("Authorization"))
		}
	}
	handlers := map[string]http.Handler{
		"success": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"num_events_received":1,"num_events_processed":1,"events":[{"status":"processed"}]}`)
		}),
		"per-event echo": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"num_events_received":1,"num_events_processed":0,"events":[{"status":"failed","error_message":"%s"}]}`,
				r.Header.Get("Authorization"))
		}),
		"401 echo":       echo(401),
		"permanent echo": echo(400),
		"5xx echo":       echo(502),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?access_token="+testToken, http.StatusTemporaryRedirect)
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

// BenchmarkDeliver measures mapping, encoding and one round trip for a full
// batch of Purchases.
func BenchmarkDeliver(b *testing.B) {
	ok := `{"num_events_received":1000,"num_events_processed":1000,"events":[` +
		strings.TrimSuffix(strings.Repeat(`{"status":"processed"},`, 1000), ",") + `]}`
	srv := destinationstest.Answering(b, http.StatusOK, nil, ok)
	d, _ := newAdapter(b, settingsJSON(b, srv.URL, nil), nil)
	batch := make([]destinations.Event, 1000)
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

// FuzzClassify feeds arbitrary answers to the response reader: one outcome
// per event, every failure typed, never the token, never a panic.
func FuzzClassify(f *testing.F) {
	f.Add(200, `{"num_events_received":2,"num_events_processed":1,"events":[{"status":"processed"},{"status":"failed","error_message":"x"}]}`, 2)
	f.Add(422, `{"code":4196,"message":"m","details":{"num_events_received":1,"num_events_processed":0,"events":[{"status":"failed"}]}}`, 1)
	f.Add(429, `{"code":8,"message":"rate"}`, 3)
	f.Add(400, "pina_SECRETconversionTOKEN42", 1)
	f.Add(200, `{"num_events_received":null,"events":[{"status":7}]}`, 2)
	d, err := New(settingsJSON(f, "http://127.0.0.1:1", nil), destinations.Deps{Now: fixedNow})
	if err != nil {
		f.Fatal(err)
	}
	a := d.(*Adapter)
	f.Fuzz(func(t *testing.T, status int, body string, n int) {
		if n < 1 || n > 50 || status < 100 || status > 999 {
			return
		}
		errs := a.classify(status, http.Header{}, []byte(body), n)
		if len(errs) != n {
			t.Fatalf("%d outcomes for %d events", len(errs), n)
		}
		for _, err := range errs {
			if err == nil {
				continue
			}
			var de *destinations.Error
			if !errors.As(err, &de) || de.Kind == 0 {
				t.Fatalf("untyped outcome %v", err)
			}
			if strings.Contains(de.Error(), testToken) {
				t.Fatalf("the token in %v", de)
			}
		}
	})
}
