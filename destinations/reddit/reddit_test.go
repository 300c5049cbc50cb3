package reddit

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
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/reddit/reddittest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testPixel = "a2_gfk3r8cjwm2q"
	testToken = "eyJhbGciOiJSUzI1NiJ9.SECRETconversionTOKEN42"
	testUUID  = "1764329000000.7c73f2ae-a433-4d7b-9838-f467da98f48e"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

func ptr[T any](v T) *T { return &v }

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
	p.UserData.Em = append(p.UserData.Em, sha("jane.doe@work.example"))
	p.UserData.Ln, p.UserData.St, p.UserData.Zp, p.UserData.Country = nil, nil, nil, nil
	p.CustomData.Value, p.CustomData.NumItems = ptr(129.5), nil
	p.CustomData.Contents = []destinations.Content{
		{ID: "sku-1", Quantity: ptr(2), ItemPrice: ptr(49.75), Title: "Trail runner"},
		{ID: "sku-2", Quantity: ptr(1), ItemPrice: ptr(30.0)},
	}
	p.Context.Country, p.Context.Region = "US", "CA"
	p.Context.ClickIDs = map[string]destinations.ClickID{
		"rdt_cid": {Value: "2712345678901234567_Zb3X", At: testNow.Add(-72 * time.Hour).UnixMilli()},
		"epik":    {Value: "not-for-reddit", At: testNow.UnixMilli()},
	}
	p.Context.Cookies = map[string]string{"_rdt_uuid": testUUID, "_epik": "not-for-reddit"}
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
	s, err := ParseSettings(json.RawMessage(`{"pixel_id":"a2_abc","access_token":"tokSECRET"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{PixelID: "a2_abc", AccessToken: "tokSECRET", APIURL: DefaultAPIURL, Timeout: destinations.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "tokSECRET") {
		t.Errorf("formatted settings show the token: %s", got)
	}
	s, err = ParseSettings(json.RawMessage(`{"pixel_id":"t2_x","test_id":"t2_test-123","timeout":"800ms","dry_run":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.TestID != "t2_test-123" || time.Duration(s.Timeout) != 800*time.Millisecond || !s.dryRun() {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"pixel_id":"a2_x","test_mode":true}`, []string{"test_mode"}},
		{"not an object", `[]`, []string{"reddit settings"}},
		{"trailing data", `{"pixel_id":"a2_x"} {}`, []string{"trailing"}},
		{"missing pixel", `{}`, []string{"pixel_id"}},
		{"pixel with a slash", `{"pixel_id":"a2_x/../y"}`, []string{"pixel_id"}},
		{"bad test id", `{"pixel_id":"a2_x","test_id":"a b"}`, []string{"test_id"}},
		{"bad timeout", `{"pixel_id":"a2_x","timeout":"soon"}`, []string{"timeout"}},
		{"bad api url", `{"pixel_id":"a2_x","api_url":"ftp://x"}`, []string{"api_url"}},
		{"api url with user", `{"pixel_id":"a2_x","api_url":"https://u:p@x/"}`, []string{"api_url"}},
		{"several", `{"pixel_id":"","api_url":"nope","timeout":"-1s"}`, []string{"pixel_id", "api_url", "timeout"}},
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
	if sp.Type != "reddit" || sp.New == nil || sp.Check == nil || sp.EventName == nil || sp.MaxAge == nil {
		t.Fatalf("incomplete spec %+v", sp)
	}
	if fmt.Sprint(sp.Secrets) != "[access_token]" {
		t.Errorf("secrets %v", sp.Secrets)
	}
	if len(sp.APIURLs) != 1 || sp.APIURLs["api_url"] != "TAGWAY_REDDIT_API_URL" {
		t.Errorf("API URLs %v", sp.APIURLs)
	}
	if !sp.AdPlatform || sp.Anonymous || sp.Hashes != destinations.HashPhoneE164 {
		t.Errorf("AdPlatform %v Anonymous %v Hashes %v", sp.AdPlatform, sp.Anonymous, sp.Hashes)
	}
	if got := sp.MaxAge(pageView("a")); got != 168*time.Hour {
		t.Errorf("MaxAge %s", got)
	}

	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, err := destinations.WithAPIURLs(sp.New, map[string]string{"api_url": fake.URL()})(
		json.RawMessage(`{"pixel_id":"`+testPixel+`","access_token":"`+testToken+`"}`), destinations.Deps{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("via-spec")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got := fake.Events(testPixel); len(got) != 1 || got[0].ConversionID != "via-spec" {
		t.Errorf("fake holds %+v", got)
	}
}

func TestEventName(t *testing.T) {
	cases := []struct {
		in, want   string
		ok         bool
		custom     bool
		customName string
	}{
		{"PageView", "PAGE_VISIT", true, false, ""},
		{"ViewContent", "VIEW_CONTENT", true, false, ""},
		{"Search", "SEARCH", true, false, ""},
		{"AddToCart", "ADD_TO_CART", true, false, ""},
		{"AddToWishlist", "ADD_TO_WISHLIST", true, false, ""},
		{"Purchase", "PURCHASE", true, false, ""},
		{"Lead", "LEAD", true, false, ""},
		{"CompleteRegistration", "SIGN_UP", true, false, ""},
		{"SIGN_UP", "SIGN_UP", true, false, ""},
		{"InitiateCheckout", "InitiateCheckout", true, true, "InitiateCheckout"},
		{"AddPaymentInfo", "AddPaymentInfo", true, true, "AddPaymentInfo"},
		{"newsletter_signup", "newsletter_signup", true, true, "newsletter_signup"},
		{"CUSTOM", "", false, false, ""},
		{"", "", false, false, ""},
	}
	for _, tc := range cases {
		got, ok := EventName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EventName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		typ := eventType(got)
		if (typ.TrackingType == "CUSTOM") != tc.custom || typ.CustomEventName != tc.customName {
			t.Errorf("%q goes out as %+v", tc.in, typ)
		}
		// Mapping a mapped name again changes nothing.
		if again, _ := EventName(got); again != got {
			t.Errorf("EventName(%q) = %q", got, again)
		}
	}
}

// newCaptureServer answers every request as Reddit does when it processes
// every event, and keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.NewCapture(t, func(w http.ResponseWriter, b []byte) {
		var body struct {
			Data struct{ Events []json.RawMessage }
		}
		_ = json.Unmarshal(b, &body)
		fmt.Fprintf(w, `{"message":"Successfully processed %d conversion events."}`, len(body.Data.Events))
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
	if uri := req.URL.RequestURI(); uri != "/api/v3/pixels/"+testPixel+"/conversion_events" {
		t.Errorf("request URI %q", uri)
	}
	if auth := req.Header.Get("Authorization"); auth != "Bearer "+testToken {
		t.Errorf("Authorization %q", auth)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), srv.Bodies()[0], *update)
}

// TestGoldenPayloadFields reads the mapping decisions back from the golden
// payload, then hands it, as it is, to the strict fake.
func TestGoldenPayloadFields(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "purchase.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Data struct {
			Events []map[string]any `json:"events"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Data.Events) != 1 {
		t.Fatalf("golden: %v", err)
	}
	ev := body.Data.Events[0]
	p := purchase()
	if ev["event_at"] != float64(p.EventTime*1000) || ev["action_source"] != "WEBSITE" ||
		ev["click_id"] != p.Context.ClickIDs["rdt_cid"].Value || ev["event_source_url"] != p.EventSourceURL {
		t.Errorf("event %v", ev)
	}
	if typ := ev["type"].(map[string]any); typ["tracking_type"] != "PURCHASE" || len(typ) != 1 {
		t.Errorf("type %v", typ)
	}
	md := ev["metadata"].(map[string]any)
	if md["conversion_id"] != p.EventID || md["currency"] != "EUR" || md["value"] != 129.5 || md["item_count"] != 3.0 {
		t.Errorf("metadata %v", md)
	}
	if prod := md["products"].([]any)[0].(map[string]any); prod["id"] != "sku-1" || prod["name"] != "Trail runner" ||
		prod["quantity"] != 2.0 || prod["item_price"] != 49.75 {
		t.Errorf("products[0] %v", prod)
	}
	u := ev["user"].(map[string]any)
	want := map[string]any{
		"email": sha("jane@example.com"), "phone_number": sha("+16505551212"), "external_id": sha("cust-9"),
		"ip_address": p.UserData.ClientIPAddress, "user_agent": p.UserData.ClientUserAgent, "uuid": testUUID,
	}
	for k, v := range want {
		if u[k] != v {
			t.Errorf("user.%s = %v, want %v", k, u[k], v)
		}
	}
	dpo := u["data_processing_options"].(map[string]any)
	if fmt.Sprint(dpo) != "map[country:US modes:[LDU] region:US-CA]" {
		t.Errorf("data_processing_options %v", dpo)
	}
	if len(u) != len(want)+1 {
		t.Errorf("user carries more than its match keys: %v", u)
	}
	if strings.Contains(string(raw), "coupon") || strings.Contains(string(raw), "fb.1.") || strings.Contains(string(raw), "not-for-reddit") {
		t.Error("the payload carries what Reddit has no field for")
	}

	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/api/v3/pixels/"+testPixel+"/conversion_events", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(fake.Events(testPixel)) != 1 {
		t.Errorf("the fake refuses the golden body: %d %s", resp.StatusCode, answer)
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake: the
// golden Purchase, custom events, a batch split by test id, and a batch
// bigger than one request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	p := purchase()
	checkout := pageView("checkout")
	checkout.EventName = "InitiateCheckout"
	b := pageView("b")
	b.Context.TestEventCode = "t2_testsession"
	for i, err := range d.Deliver(context.Background(), []destinations.Event{p, checkout, b, pageView("c")}) {
		if err != nil {
			t.Fatalf("event %d: %v (rejections %v)", i, err, fake.Rejections())
		}
	}
	if fake.Requests() != 2 {
		t.Errorf("%d requests, want one per test id", fake.Requests())
	}
	got := map[string]string{}
	for _, r := range fake.Events(testPixel) {
		got[r.ConversionID] = r.TrackingType + "/" + r.CustomEventName + "/" + r.TestID
	}
	want := map[string]string{p.EventID: "PURCHASE//", "checkout": "CUSTOM/InitiateCheckout/",
		"b": "PAGE_VISIT//t2_testsession", "c": "PAGE_VISIT//"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fake got %v, want %v", got, want)
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

	// The test_id setting sends everything to the testing session.
	dt, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"test_id": "t2_mine"}), nil)
	x := pageView("x")
	x.Context.TestEventCode = "TEST42"
	if errs := dt.Deliver(context.Background(), []destinations.Event{pageView("w"), x}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	all := fake.Events(testPixel)
	if last := all[len(all)-2:]; last[0].TestID != "t2_mine" || last[1].TestID != "t2_mine" {
		t.Errorf("with test_id set: %+v", last)
	}
}

// TestValidRestOfARefusedRequest: Reddit refuses a request whole for one
// invalid event and processes none; the event it names fails for good,
// the others are retryable at once and go through when sent again.
func TestValidRestOfARefusedRequest(t *testing.T) {
	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	raw := pageView("raw")
	raw.UserData.Em = []string{"jane@example.com"} // a sender's bug ingest would have caught
	batch := []destinations.Event{pageView("a"), raw, pageView("c")}
	errs := d.Deliver(context.Background(), batch)
	wantKinds := []destinations.Kind{destinations.Retryable, destinations.Permanent, destinations.Retryable}
	var retry []destinations.Event
	for i, err := range errs {
		kind, de := destinations.Classify(err)
		if kind != wantKinds[i] {
			t.Fatalf("event %d: %v, want %v", i, err, wantKinds[i])
		}
		if de.WholeBatch || de.Status != 400 {
			t.Errorf("event %d: %+v", i, de)
		}
		if kind == destinations.Retryable {
			if de.RetryAfter != 0 {
				t.Errorf("event %d: the valid rest waits %s", i, de.RetryAfter)
			}
			retry = append(retry, batch[i])
		}
	}
	if !strings.Contains(errs[1].Error(), "user.email") {
		t.Errorf("the refused event's message: %v", errs[1])
	}
	if len(fake.Events(testPixel)) != 0 {
		t.Fatal("the fake processed part of a refused request")
	}
	for i, err := range d.Deliver(context.Background(), retry) {
		if err != nil {
			t.Fatalf("resent event %d: %v", i, err)
		}
	}
	if got := fake.Events(testPixel); len(got) != 2 || got[0].ConversionID != "a" || got[1].ConversionID != "c" {
		t.Errorf("fake holds %+v", got)
	}
}

// TestPrecheck: an event Reddit would refuse fails alone, so that it never
// makes Reddit refuse the request; the rest is sent.
func TestPrecheck(t *testing.T) {
	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	old := pageView("old")
	old.EventTime = testNow.Add(-168*time.Hour - time.Minute).Unix()
	ahead := pageView("ahead")
	ahead.EventTime = testNow.Add(20 * time.Minute).Unix()
	nearFuture := pageView("near-future")
	nearFuture.EventTime = testNow.Add(4 * time.Minute).Unix()
	noName := pageView("custom-nameless")
	noName.EventName = "CUSTOM"
	noTime := pageView("notime")
	noTime.EventTime = 0
	noKey := pageView("nokey")
	noKey.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0"}
	cookieKey := noKey
	cookieKey.EventID = "cookie-key"
	cookieKey.Context.Cookies = map[string]string{"_rdt_uuid": testUUID}
	badCookie := pageView("bad-cookie")
	badCookie.Context.Cookies = map[string]string{"_rdt_uuid": "1700000000.abcd-uuid"}
	badCurrency := pageView("bad-currency")
	badCurrency.CustomData = &destinations.CustomData{Currency: "EURO"}
	store := pageView("store")
	store.ActionSource = "physical_store"
	phone := pageView("phone")
	phone.ActionSource = "phone_call"

	batch := []destinations.Event{pageView("ok"), old, ahead, nearFuture, noName, noTime, noKey, cookieKey, badCookie, badCurrency, store, phone}
	wantKinds := []destinations.Kind{0, destinations.Permanent, destinations.Retryable, 0, destinations.Permanent,
		destinations.Permanent, destinations.Permanent, 0, 0, destinations.Permanent, 0, 0}
	errs := d.Deliver(context.Background(), batch)
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k != wantKinds[i] {
			t.Errorf("event %d (%s): %v, want kind %v", i, batch[i].EventID, err, wantKinds[i])
		}
	}
	if _, de := destinations.Classify(errs[2]); de.RetryAfter < 15*time.Minute || de.RetryAfter > 16*time.Minute {
		t.Errorf("an event 20 minutes ahead waits %s", de.RetryAfter)
	}
	got := map[string]string{}
	for _, r := range fake.Events(testPixel) {
		uuid, _ := r.User["uuid"].(string)
		got[r.ConversionID] = r.ActionSource + "/" + uuid
	}
	want := map[string]string{"ok": "WEBSITE/", "near-future": "WEBSITE/", "cookie-key": "WEBSITE/" + testUUID,
		"bad-cookie": "WEBSITE/", "store": "PHYSICAL_STORE/", "phone": "OTHER/"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fake got %v, want %v", got, want)
	}
}

// TestUser: one value a match key, the E.164 digest of the phone (the
// sender's digest when ingest had no raw phone), and Limited Data Use.
func TestUser(t *testing.T) {
	e := pageView("u")
	e.UserData.Ph = []string{sha("16505551212")}
	if u := toUser(&e); u.PhoneNumber != sha("16505551212") {
		t.Errorf("without the E.164 variant: %q", u.PhoneNumber)
	}
	e.UserData.PhE164 = []string{sha("+16505551212")}
	if u := toUser(&e); u.PhoneNumber != sha("+16505551212") {
		t.Errorf("with the E.164 variant: %q", u.PhoneNumber)
	}
	if u := toUser(&destinations.Event{}); u != nil {
		t.Errorf("no user data: %+v", u)
	}
	for _, tc := range []struct {
		name             string
		opts             []string
		country, state   *int
		ctxCountry, ctxR string
		want             string
	}{
		{"no LDU", nil, nil, nil, "US", "CA", "<nil>"},
		{"explicitly none", []string{}, ptr(0), ptr(0), "", "", "<nil>"},
		{"geolocated by the gateway", []string{"LDU"}, ptr(0), ptr(0), "us", "co", "&{[LDU] US US-CO}"},
		{"Meta's California codes", []string{"LDU"}, ptr(1), ptr(1000), "", "", "&{[LDU] US US-CA}"},
		{"Meta's geolocate codes", []string{"LDU"}, ptr(0), ptr(0), "", "", "&{[LDU]  }"},
		{"country only", []string{"LDU"}, nil, nil, "DE", "", "&{[LDU] DE }"},
	} {
		e := pageView("dpo")
		e.DataProcessingOptions = tc.opts
		e.DataProcessingOptionsCountry, e.DataProcessingOptionsState = tc.country, tc.state
		e.Context.Country, e.Context.Region = tc.ctxCountry, tc.ctxR
		if got := fmt.Sprint(dataProcessing(&e)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestClickID: the captured rdt_cid while it can attribute the event (28
// days), else the pixel's _rdt_cid cookie.
func TestClickID(t *testing.T) {
	fresh := pageView("fresh")
	fresh.Context.ClickIDs = map[string]destinations.ClickID{"rdt_cid": {Value: "CID-NEW", At: testNow.Add(-27 * 24 * time.Hour).UnixMilli()}}
	stale := pageView("stale")
	stale.Context.ClickIDs = map[string]destinations.ClickID{"rdt_cid": {Value: "CID-OLD", At: testNow.Add(-29 * 24 * time.Hour).UnixMilli()}}
	cookie := stale
	cookie.Context.Cookies = map[string]string{"_rdt_cid": "CID-COOKIE"}
	for _, tc := range []struct {
		e    destinations.Event
		want string
	}{{fresh, "CID-NEW"}, {stale, ""}, {cookie, "CID-COOKIE"}, {pageView("none"), ""}} {
		if got := clickID(&tc.e); got != tc.want {
			t.Errorf("%s: click_id %q, want %q", tc.e.EventID, got, tc.want)
		}
	}
}

func redditErr(code int, msg string, fields ...string) string {
	fs := make([]reddittest.FieldError, len(fields))
	for i, f := range fields {
		fs[i] = reddittest.FieldError{Field: f, Message: "bad " + f}
	}
	return reddittest.ErrorBody{Code: code, Message: msg, Fields: fs}.Body()
}

// TestClassification: every answer a request of two events can get, and
// the outcome of each event.
func TestClassification(t *testing.T) {
	const refused = "There were 1 invalid conversion events. None were processed."
	cases := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		kinds    [2]destinations.Kind
		code     string
		whole    bool
		minDelay time.Duration
		maxDelay time.Duration // 0: no upper bound checked
		message  string
	}{
		{name: "200", status: 200, body: `{"message":"Successfully processed 2 conversion events."}`},
		{name: "200 other wording", status: 200, body: `{"ok":true}`},
		{name: "200 fewer processed", status: 200, body: `{"message":"Successfully processed 1 conversion events."}`,
			kinds: [2]destinations.Kind{destinations.Retryable, destinations.Retryable}, message: "processed 1 of 2"},
		{name: "400 names event 1", status: 400, body: redditErr(400, refused, "$.data.events[1].user.UUID"),
			kinds: [2]destinations.Kind{destinations.Retryable, destinations.Permanent}, code: "400", message: "not processed"},
		{name: "400 names both", status: 400, body: redditErr(400, refused, "$.data.events[0].action_source", "$.data.events[1].event_at"),
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "400", message: "action_source"},
		{name: "400 names the request", status: 400, body: redditErr(400, "invalid", "$.data.test_id"),
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "400", whole: true},
		{name: "400 names an event out of range", status: 400, body: redditErr(400, refused, "$.data.events[7].type"),
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "400", whole: true},
		{name: "400 without fields", status: 400, body: redditErr(400, "bad request"),
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "400", whole: true, message: "bad request"},
		{name: "400 invalid_events by conversion id", status: 400,
			body:  `{"message":"There were 1 invalid conversion events. None were processed.","invalid_events":[{"error_message":"event_at timestamp must be less than 168h0m0s old","event":{"metadata":{"conversion_id":"a"}}}]}`,
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Retryable}, message: "168h"},
		{name: "400 invalid_events unmatched", status: 400,
			body:  `{"message":"There were 1 invalid conversion events.","invalid_events":[{"error_message":"x","event":{"metadata":{"conversion_id":"zz"}}}]}`,
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, whole: true},
		{name: "400 plain", status: 400, body: "bad", kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, whole: true, message: "HTTP 400: bad"},
		{name: "413", status: 413, body: redditErr(413, "request body too large"),
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "413", whole: true},
		{name: "401", status: 401, body: redditErr(401, "Unauthorized"), kinds: [2]destinations.Kind{destinations.Paused, destinations.Paused}, code: "401"},
		{name: "401 reason", status: 401, body: `{"error":{"reason":"UNAUTHORIZED","explanation":"invalid token"}}`,
			kinds: [2]destinations.Kind{destinations.Paused, destinations.Paused}, code: "UNAUTHORIZED", message: "invalid token"},
		{name: "401 text", status: 401, body: "Authorization Required", kinds: [2]destinations.Kind{destinations.Paused, destinations.Paused}, message: "Authorization Required"},
		{name: "403", status: 403, body: redditErr(403, "Forbidden"), kinds: [2]destinations.Kind{destinations.Paused, destinations.Paused}, code: "403"},
		{name: "404 pixel", status: 404, body: redditErr(404, "pixel not found"), kinds: [2]destinations.Kind{destinations.Paused, destinations.Paused}, code: "404"},
		{name: "429", status: 429, body: redditErr(429, "Too Many Requests"),
			kinds: [2]destinations.Kind{destinations.Retryable, destinations.Retryable}, code: "429", minDelay: time.Minute},
		{name: "429 Retry-After", status: 429, header: map[string]string{"Retry-After": "300"}, body: "",
			kinds: [2]destinations.Kind{destinations.Retryable, destinations.Retryable}, minDelay: 5 * time.Minute, maxDelay: 5 * time.Minute},
		{name: "500", status: 500, body: redditErr(500, "Internal Server Error"), kinds: [2]destinations.Kind{destinations.Retryable, destinations.Retryable}, code: "500"},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, body: "<html>down</html>",
			kinds: [2]destinations.Kind{destinations.Retryable, destinations.Retryable}, minDelay: 7 * time.Second, maxDelay: 7 * time.Second, message: "down"},
		{name: "409 other 4xx", status: 409, body: redditErr(409, "conflict"), kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}, code: "409"},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"},
			kinds: [2]destinations.Kind{destinations.Permanent, destinations.Permanent}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.Answering(t, tc.status, tc.header, tc.body)
			d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a"), pageView("b")})
			if len(errs) != 2 {
				t.Fatalf("%d outcomes", len(errs))
			}
			for i, err := range errs {
				destinationstest.CheckOutcome(t, err, destinationstest.Outcome{Kind: tc.kinds[i], Code: tc.code, Status: tc.status,
					WholeBatch: tc.whole, MinRetryAfter: tc.minDelay, MaxRetryAfter: tc.maxDelay})
			}
			if tc.message != "" && !strings.Contains(fmt.Sprint(errs), tc.message) {
				t.Errorf("messages %v lack %q", errs, tc.message)
			}
		})
	}
	t.Run("one event is not a whole batch", func(t *testing.T) {
		srv := destinationstest.Answering(t, 400, nil, redditErr(400, "bad"))
		d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
		_, de := destinations.Classify(d.Deliver(context.Background(), []destinations.Event{pageView("a")})[0])
		if de.Kind != destinations.Permanent || de.WholeBatch {
			t.Errorf("%+v", de)
		}
	})
}

// TestFakeRejections runs the adapter against the strict fake's refusals of
// a whole request.
func TestFakeRejections(t *testing.T) {
	fake := reddittest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	fake.AddPixel("a2_other", "other-token")
	cases := []struct {
		name     string
		settings map[string]any
		code     string
	}{
		{"wrong token", map[string]any{"access_token": "wrong-token"}, "401"},
		{"pixel of another token", map[string]any{"pixel_id": "a2_other"}, "403"},
		{"unknown pixel", map[string]any{"pixel_id": "a2_nope"}, "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := newAdapter(t, settingsJSON(t, fake.URL(), tc.settings), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
			kind, de := destinations.Classify(errs[0])
			if kind != destinations.Paused || de.Code != tc.code {
				t.Errorf("got %v, want paused code %s", errs[0], tc.code)
			}
			checkNoToken(t, logs.String(), errs)
		})
	}

	fake.FailNext(1, http.StatusTooManyRequests, reddittest.ErrorBody{Code: 429, Message: "Too Many Requests"}.Body())
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
	if kind, de := destinations.Classify(errs[0]); kind != destinations.Retryable || de.RetryAfter < time.Minute {
		t.Errorf("throttled: %v (delay %s)", errs[0], de.RetryAfter)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")}); errs[0] != nil {
		t.Errorf("after the throttle: %v", errs[0])
	}
	if got := fake.Events(testPixel); len(got) != 1 || got[0].ConversionID != "a" {
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
				t.Fatalf("recorded %d bodies, want 2 (one per test id)", len(recorded))
			}
			var body struct{ Data requestData }
			if err := json.Unmarshal(recorded[1], &body); err != nil || len(body.Data.Events) != 1 || body.Data.TestID != "TESTB" {
				t.Fatalf("recorded body %s (%v)", recorded[1], err)
			}
			if strings.Contains(string(recorded[0])+string(recorded[1]), testToken) {
				t.Error("a recorded body holds the token")
			}
			out := logs.String()
			if strings.Count(out, "reddit dry run: request not sent") != 2 || !strings.Contains(out, "level=INFO") ||
				!strings.Contains(out, `\"tracking_type\":\"PURCHASE\"`) {
				t.Errorf("dry-run log:\n%s", out)
			}
		})
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: the dry run logs counts and ids at
// info level; the body only at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	p := purchase()
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"pixel_id":"a2_x"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{p, pageView("pv-1")},
		p.UserData.ClientIPAddress, "Chrome/131.0", p.Context.ClickIDs["rdt_cid"].Value, testUUID, sha("jane@example.com"))
}

// TestTokenNeverLeaks scans logs and errors for the token in every path,
// including error bodies and redirects that echo it back.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":"bad token %s","fields":[{"field":"$.data.events[0].user","message":"%s"}]}}`,
				status, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
		}
	}
	handlers := map[string]http.Handler{
		"success": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"message":"Successfully processed 1 conversion events."}`)
		}),
		"401 echo":       echo(401),
		"per-event echo": echo(400),
		"5xx echo":       echo(502),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?token="+testToken, http.StatusTemporaryRedirect)
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

// FuzzClassify feeds arbitrary answers to the response reader: one outcome
// per event, every failure typed, never the token, never a panic.
func FuzzClassify(f *testing.F) {
	f.Add(400, redditErr(400, "There were 1 invalid conversion events.", "$.data.events[1].user.uuid"), 3)
	f.Add(400, `{"message":"m","invalid_events":[{"error_message":"x","event":{"metadata":{"conversion_id":"e1"}}}]}`, 2)
	f.Add(200, `{"message":"Successfully processed 9 conversion events."}`, 2)
	f.Add(401, `{"error":{"code":"UNAUTHORIZED","reason":"r","explanation":"`+testToken+`"}}`, 1)
	f.Add(400, `{"error":{"fields":[{"field":"$.data.events[99999]"}]}}`, 1)
	d, err := New(settingsJSON(f, "http://127.0.0.1:1", nil), destinations.Deps{Now: fixedNow})
	if err != nil {
		f.Fatal(err)
	}
	a := d.(*Adapter)
	f.Fuzz(func(t *testing.T, status int, body string, n int) {
		if n < 1 || n > 50 || status < 100 || status > 999 {
			return
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprint("e", i)
		}
		errs := a.classify(status, http.Header{}, []byte(body), ids)
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

// BenchmarkDeliver measures mapping, encoding and one round trip for a full
// batch of Purchases.
func BenchmarkDeliver(b *testing.B) {
	srv := destinationstest.Answering(b, http.StatusOK, nil, `{"message":"Successfully processed 1000 conversion events."}`)
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
