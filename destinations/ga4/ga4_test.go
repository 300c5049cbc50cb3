package ga4

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/ga4/ga4test"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testStream = "G-TEST12345"
	// testSecret holds characters the query escapes, so redaction is
	// tested in both forms.
	testSecret = "mpS3cr3t+val/ue=="
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

func ptr[T any](v T) *T { return &v }

func settingsJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"measurement_id": testStream, "api_secret": testSecret, "api_url": apiURL}, extra)
}

func newAdapter(t testing.TB, settings json.RawMessage, record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	return destinationstest.NewAdapter(t, New, settings, fixedNow, record)
}

func newFake(t testing.TB) *ga4test.Server {
	f := ga4test.NewServer(t)
	f.SetNow(fixedNow)
	f.AddStream(testStream, testSecret)
	return f
}

// purchase is a browser Purchase with every kind of field filled.
func purchase() destinations.Event {
	return destinations.Event{
		EventName:      "Purchase",
		EventTime:      testNow.Add(-90 * time.Second).Unix(),
		EventID:        "3f0c6a52-9b1e-4c7e-8d2a-5b7f1e0c9a11",
		EventSourceURL: "https://shop.example/checkout/thank-you?order=1001",
		ReferrerURL:    "https://shop.example/checkout",
		ActionSource:   "website",
		UserData: destinations.UserData{
			Em:              []string{sha("jane.doe@gmail.com")},
			EmGoogle:        []string{sha("janedoe@gmail.com")},
			Ph:              []string{sha("16505551212")},
			PhE164:          []string{sha("+16505551212")},
			Fn:              []string{sha("jane")},
			Ln:              []string{sha("doe")},
			Ct:              []string{sha("menlopark")},
			ExternalID:      []string{sha("cust-9")},
			ClientIPAddress: "2001:db8::7",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		},
		CustomData: &destinations.CustomData{
			Value:           ptr(129.0),
			Currency:        "eur",
			ContentCategory: "shoes",
			Contents: []destinations.Content{
				{ID: "sku-1", Title: "Trail shoe", Quantity: ptr(2), ItemPrice: ptr(49.5)},
				{ID: "sku-2", Quantity: ptr(1), ItemPrice: ptr(30.0)},
			},
			OrderID: "1001",
			Custom: map[string]json.RawMessage{
				"coupon":       json.RawMessage(`"WELCOME10"`),
				"shipping":     json.RawMessage(`4.9`),
				"ga_reserved":  json.RawMessage(`"dropped: reserved prefix"`),
				"nested":       json.RawMessage(`{"a":1}`),
				"bad-name":     json.RawMessage(`"dropped: not a GA4 name"`),
				"gift_wrapped": json.RawMessage(`true`),
			},
		},
		Context: destinations.Context{
			SiteID:     "shop",
			ReceivedAt: testNow.UnixMilli(),
			Source:     "browser",
			Consent:    destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted, AdPersonalization: destinations.Denied},
			Country:    "US",
			Region:     "CA",
			VisitorID:  "1764330000000.482913756104",
			Cookies:    map[string]string{"_ga": "GA1.1.1234567890.1700000000"},
		},
	}
}

// pageView is a small valid browser event of visitor vid.
func pageView(id, vid string) destinations.Event {
	return destinations.Event{
		EventName:      "PageView",
		EventTime:      testNow.Add(-time.Minute).Unix(),
		EventID:        id,
		EventSourceURL: "https://shop.example/",
		ActionSource:   "website",
		UserData:       destinations.UserData{ClientIPAddress: "203.0.113.9", ClientUserAgent: "Mozilla/5.0"},
		Context:        destinations.Context{SiteID: "shop", Source: "browser", VisitorID: vid},
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"measurement_id":"G-ABC123XYZ","api_secret":"sekret"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{MeasurementID: "G-ABC123XYZ", APISecret: "sekret", APIURL: DefaultAPIURL, Timeout: destinations.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "sekret") {
		t.Errorf("formatted settings show the secret: %s", got)
	}
	if s.dryRun() {
		t.Error("dry run with a secret")
	}
	s, err = ParseSettings(json.RawMessage(`{"measurement_id":"G-ABC123XYZ","timeout":"800ms"}`))
	if err != nil || time.Duration(s.Timeout) != 800*time.Millisecond || !s.dryRun() {
		t.Errorf("got %+v, %v", s, err)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"measurement_id":"G-ABC123XYZ","measurementid":"1"}`, []string{"measurementid"}},
		{"not an object", `[]`, []string{"ga4 settings"}},
		{"trailing data", `{"measurement_id":"G-ABC123XYZ"} {}`, []string{"trailing"}},
		{"missing id", `{}`, []string{"measurement_id"}},
		{"UA property", `{"measurement_id":"UA-1234-1"}`, []string{"measurement_id"}},
		{"lowercase id", `{"measurement_id":"g-abc123xyz"}`, []string{"measurement_id"}},
		{"bad timeout", `{"measurement_id":"G-ABC123XYZ","timeout":"soon"}`, []string{"timeout"}},
		{"negative timeout", `{"measurement_id":"G-ABC123XYZ","timeout":"-1s"}`, []string{"timeout"}},
		{"bad api url", `{"measurement_id":"G-ABC123XYZ","api_url":"ftp://x"}`, []string{"api_url"}},
		{"api url with query", `{"measurement_id":"G-ABC123XYZ","api_url":"https://x/?api_secret=a"}`, []string{"api_url"}},
		{"several", `{"measurement_id":"x","api_url":"nope","timeout":"-2s"}`, []string{"measurement_id", "api_url", "timeout"}},
	}
	parse := func(raw json.RawMessage) error { _, err := ParseSettings(raw); return err }
	for _, tc := range bad {
		destinationstest.CheckRefused(t, tc.name, json.RawMessage(tc.json), tc.fields, parse, New)
	}
}

// TestSpec: the registry entry is complete, and New takes its API URL
// from the operator's environment.
func TestSpec(t *testing.T) {
	s := Spec()
	if s.Type != "ga4" || s.New == nil || s.Check == nil || s.EventName == nil || s.MaxAge == nil {
		t.Fatalf("incomplete spec %+v", s)
	}
	if fmt.Sprint(s.Secrets) != "[api_secret]" || s.APIURLs["api_url"] != "TAGWAY_GA4_API_URL" || len(s.APIURLs) != 1 {
		t.Errorf("secrets %v, API URLs %v", s.Secrets, s.APIURLs)
	}
	if !s.AdPlatform || s.Anonymous {
		t.Errorf("AdPlatform %v, Anonymous %v", s.AdPlatform, s.Anonymous)
	}
	if s.Hashes != destinations.HashPhoneE164|destinations.HashEmailGoogle {
		t.Errorf("hashes %b", s.Hashes)
	}
	if got := s.MaxAge(pageView("a", "")); got != 72*time.Hour {
		t.Errorf("MaxAge %s", got)
	}

	fake := newFake(t)
	d, err := destinations.WithAPIURLs(s.New, map[string]string{"api_url": fake.URL()})(
		json.RawMessage(`{"measurement_id":"`+testStream+`","api_secret":"`+testSecret+`"}`),
		destinations.Deps{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a", "1764330000000.1")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if n := len(fake.Events(testStream)); n != 1 {
		t.Errorf("the operator's URL got %d events", n)
	}
	if _, ok := d.(destinations.AnonymousAcceptor); !ok {
		t.Error("no AnonymousAcceptor")
	}
}

func TestEventName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"PageView", "page_view", true},
		{"ViewContent", "view_item", true},
		{"AddToCart", "add_to_cart", true},
		{"InitiateCheckout", "begin_checkout", true},
		{"AddPaymentInfo", "add_payment_info", true},
		{"Purchase", "purchase", true},
		{"Lead", "generate_lead", true},
		{"CompleteRegistration", "sign_up", true},
		{"Search", "search", true},
		{"purchase", "purchase", true},
		{"newsletter_signup", "newsletter_signup", true},
		{"Subscribe", "Subscribe", true},
		{strings.Repeat("a", 40), strings.Repeat("a", 40), true},
		{strings.Repeat("a", 41), "", false},
		{"", "", false},
		{"9lives", "", false},
		{"add-to-cart", "", false},
		{"café", "", false},
		{"with space", "", false},
		{"session_start", "", false},
		{"first_visit", "", false},
		{"user_engagement", "", false},
		{"_private", "", false},
		{"ga_custom", "", false},
		{"google_thing", "", false},
		{"firebase_x", "", false},
	}
	for _, tc := range cases {
		got, ok := EventName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EventName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if spec := Spec().EventName; spec != nil {
			if g2, ok2 := spec(tc.in); g2 != got || ok2 != ok {
				t.Errorf("Spec().EventName(%q) differs", tc.in)
			}
		}
	}
}

func TestClientIDFromCookie(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"GA1.1.1234567890.1700000000", "1234567890.1700000000", true},
		{"GA1.2.987654321.1690000000", "987654321.1690000000", true},
		{"GA1.3.1.2", "1.2", true},
		{"", "", false},
		{"GA1.1.1234567890", "", false},
		{"GA1.1.1234567890.1700000000.5", "", false},
		{"GA1.1.abc.1700000000", "", false},
		{"GA1.1.amp-XYZ.1700000000", "", false},
		{"GS1.1.1234567890.1700000000", "", false},
		{"1234567890.1700000000", "", false},
		{"GA1.1..1700000000", "", false},
		{"GA1.1.1234567890." + strings.Repeat("9", 80), "", false},
	}
	for _, tc := range cases {
		got, ok := ClientIDFromCookie(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ClientIDFromCookie(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

var clientIDPattern = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

func FuzzClientIDFromCookie(f *testing.F) {
	for _, s := range []string{"GA1.1.1234567890.1700000000", "GA1.2.1.2", "", "GA1..", "GA1.1.1.1.1", "GA\xff.1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := ClientIDFromCookie(v)
		if !ok {
			if id != "" {
				t.Fatalf("%q: refused but gave %q", v, id)
			}
			return
		}
		if !clientIDPattern.MatchString(id) || !strings.HasSuffix(v, "."+id) || len(id) > maxClientIDLen {
			t.Fatalf("%q gave %q", v, id)
		}
	})
}

func TestDerivedClientID(t *testing.T) {
	a := DerivedClientID("1764330000000.482913756104")
	if a != DerivedClientID("1764330000000.482913756104") {
		t.Error("not stable")
	}
	if !clientIDPattern.MatchString(a) || !strings.HasSuffix(a, ".1764330000") {
		t.Errorf("derived %q: want <digits>.<the visitor id's seconds>", a)
	}
	if b := DerivedClientID("1764330000000.482913756105"); b == a {
		t.Error("two visitors share a client id")
	}
	if strings.Contains(a, "482913756104") {
		t.Errorf("%q shows the visitor id", a)
	}
	if c := DerivedClientID("not-a-vid"); !clientIDPattern.MatchString(c) {
		t.Errorf("derived %q", c)
	}

	// The order of preference: _ga, the visitor id, the external id, the event id.
	e := purchase()
	if got := clientID(&e); got != "1234567890.1700000000" {
		t.Errorf("with _ga: %q", got)
	}
	e.Context.Cookies = map[string]string{"_ga": "garbage"}
	if got := clientID(&e); got != DerivedClientID(e.Context.VisitorID) {
		t.Errorf("bad _ga: %q", got)
	}
	e.Context.VisitorID = ""
	if got := clientID(&e); got != DerivedClientID("external:"+e.UserData.ExternalID[0]) {
		t.Errorf("no visitor: %q", got)
	}
	e.UserData.ExternalID = nil
	if got := clientID(&e); got != DerivedClientID("event:"+e.EventID) {
		t.Errorf("nothing: %q", got)
	}
}

// newCaptureServer answers 204 and keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.CaptureAnswering(t, http.StatusNoContent, nil, "")
}

func TestGoldenPurchase(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	if errs := d.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(srv.Requests()) != 1 {
		t.Fatalf("%d requests", len(srv.Requests()))
	}
	u := srv.Requests()[0].URL
	if u.Path != "/mp/collect" || u.Query().Get("measurement_id") != testStream || u.Query().Get("api_secret") != testSecret {
		t.Errorf("URL %s", u)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), srv.Bodies()[0], *update)
}

// TestGoldenMatchesDocumentation reads the golden Purchase field by field
// against the Measurement Protocol reference, the user-provided data guide
// and the recommended purchase event.
func TestGoldenMatchesDocumentation(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "purchase.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		ClientID        string `json:"client_id"`
		UserID          string `json:"user_id"`
		TimestampMicros int64  `json:"timestamp_micros"`
		UserData        struct {
			Emails    []string            `json:"sha256_email_address"`
			Phones    []string            `json:"sha256_phone_number"`
			Addresses []map[string]string `json:"address"`
		} `json:"user_data"`
		Consent      map[string]string `json:"consent"`
		IPOverride   string            `json:"ip_override"`
		UserLocation map[string]string `json:"user_location"`
		Events       []struct {
			Name            string         `json:"name"`
			TimestampMicros int64          `json:"timestamp_micros"`
			Params          map[string]any `json:"params"`
		} `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("the golden body has a field the reference does not list: %v", err)
	}
	p := purchase()
	micros := time.Unix(p.EventTime, 0).UnixMicro()
	checks := []struct {
		field string
		ok    bool
	}{
		{"client_id is the _ga cookie's last two fields", body.ClientID == "1234567890.1700000000"},
		{"user_id is the external id digest", body.UserID == sha("cust-9")},
		{"timestamp_micros is Unix microseconds (16 digits)", body.TimestampMicros == micros && len(fmt.Sprint(micros)) == 16},
		{"sha256_email_address: Gmail dots removed", len(body.UserData.Emails) == 1 && body.UserData.Emails[0] == sha("janedoe@gmail.com")},
		{"sha256_phone_number: E.164 with +", len(body.UserData.Phones) == 1 && body.UserData.Phones[0] == sha("+16505551212")},
		{"address: hashed names only", len(body.UserData.Addresses) == 1 && body.UserData.Addresses[0]["sha256_first_name"] == sha("jane") &&
			body.UserData.Addresses[0]["sha256_last_name"] == sha("doe") && len(body.UserData.Addresses[0]) == 2},
		{"consent: GRANTED/DENIED words", body.Consent["ad_user_data"] == "GRANTED" && body.Consent["ad_personalization"] == "DENIED"},
		{"ip_override", body.IPOverride == "2001:db8::7"},
		{"user_location: ISO 3166 codes", body.UserLocation["country_id"] == "US" && body.UserLocation["region_id"] == "US-CA"},
		{"one event named purchase", len(body.Events) == 1 && body.Events[0].Name == "purchase"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %s", c.field, raw)
		}
	}
	if len(body.Events) != 1 {
		return
	}
	ev := body.Events[0]
	if ev.TimestampMicros != micros {
		t.Errorf("event timestamp_micros %d", ev.TimestampMicros)
	}
	wantParams := map[string]any{
		"page_location":        p.EventSourceURL,
		"page_referrer":        p.ReferrerURL,
		"engagement_time_msec": 1.0,
		"transaction_id":       "1001",
		"currency":             "EUR",
		"value":                129.0,
		"coupon":               "WELCOME10",
		"shipping":             4.9,
	}
	for k, want := range wantParams {
		if got := ev.Params[k]; got != want {
			t.Errorf("params.%s = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"ga_reserved", "nested", "bad-name", "gift_wrapped"} {
		if _, ok := ev.Params[k]; ok {
			t.Errorf("params.%s was sent", k)
		}
	}
	items, _ := ev.Params["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items %v", ev.Params["items"])
	}
	first := items[0].(map[string]any)
	if first["item_id"] != "sku-1" || first["item_name"] != "Trail shoe" || first["price"] != 49.5 ||
		first["quantity"] != 2.0 || first["item_category"] != "shoes" {
		t.Errorf("items[0] %v", first)
	}
	if len(ev.Params) != len(wantParams)+1 {
		t.Errorf("params %v", ev.Params)
	}
	if msgs := ga4test.Validate(raw, testNow); len(msgs) != 0 {
		t.Errorf("the validation server refuses the golden body: %+v", msgs)
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake:
// every event is recorded, nothing is dropped, and events of one visitor
// share a request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := newFake(t)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	batch := []destinations.Event{purchase(), pageView("a", "1764330000000.1"), pageView("b", "1764330000000.2"),
		pageView("c", "1764330000000.1")}
	search := pageView("s", "1764330000000.2")
	search.EventName = "Search"
	search.CustomData = &destinations.CustomData{SearchString: "red shoes"}
	custom := pageView("n", "1764330000000.2")
	custom.EventName = "newsletter_signup"
	batch = append(batch, search, custom)
	for i, err := range d.Deliver(context.Background(), batch) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if dropped := fake.Dropped(); len(dropped) != 0 {
		t.Fatalf("GA4 would drop %+v", dropped)
	}
	got := fake.Events(testStream)
	if len(got) != len(batch) {
		t.Fatalf("fake holds %d events", len(got))
	}
	if fake.Requests() != 3 {
		t.Errorf("%d requests; want one per visitor (3)", fake.Requests())
	}
	names := map[string]string{}
	for _, r := range got {
		names[r.Name] = r.ClientID
	}
	if names["search"] != DerivedClientID("1764330000000.2") || names["newsletter_signup"] == "" || names["purchase"] != "1234567890.1700000000" {
		t.Errorf("names and client ids %v", names)
	}
	for _, r := range got {
		if r.Name == "search" && r.Params["search_term"] != "red shoes" {
			t.Errorf("search params %v", r.Params)
		}
	}

	// 30 events of one visitor take two requests (25 + 5).
	many := make([]destinations.Event, 30)
	for i := range many {
		many[i] = pageView(fmt.Sprint("m", i), "1764330000000.9")
	}
	before := fake.Requests()
	for i, err := range d.Deliver(context.Background(), many) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := fake.Requests() - before; n != 2 {
		t.Errorf("30 events of one visitor took %d requests, want 2", n)
	}
	if n := len(fake.Events(testStream)); n != len(batch)+30 {
		t.Errorf("fake holds %d events", n)
	}
}

// TestRefusesWhatGA4Drops: events GA4 would drop silently fail alone as
// permanent and are never sent; the rest go through.
func TestRefusesWhatGA4Drops(t *testing.T) {
	fake := newFake(t)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	old := pageView("old", "1764330000000.1")
	old.EventTime = testNow.Add(-72*time.Hour - time.Minute).Unix()
	reserved := pageView("reserved", "1764330000000.1")
	reserved.EventName = "session_start"
	badName := pageView("badname", "1764330000000.1")
	badName.EventName = "add-to-cart"
	noTime := pageView("notime", "1764330000000.1")
	noTime.EventTime = 0
	future := pageView("future", "1764330000000.1")
	future.EventTime = testNow.Add(time.Hour).Unix()
	batch := []destinations.Event{pageView("ok", "1764330000000.1"), old, reserved, badName, noTime, future}
	errs := d.Deliver(context.Background(), batch)
	want := []destinations.Kind{0, destinations.Permanent, destinations.Permanent, destinations.Permanent, destinations.Permanent, 0}
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k != want[i] {
			t.Errorf("event %s: %v, want %v", batch[i].EventID, err, want[i])
		}
	}
	if _, de := destinations.Classify(errs[1]); !strings.Contains(de.Message, "72 hours") {
		t.Errorf("old event: %v", errs[1])
	}
	got := fake.Events(testStream)
	if len(got) != 2 || len(fake.Dropped()) != 0 {
		t.Fatalf("fake holds %d events, dropped %v", len(got), fake.Dropped())
	}
	for _, r := range got {
		if r.TimestampMicros > testNow.UnixMicro() {
			t.Errorf("a future time went out: %d", r.TimestampMicros)
		}
	}
}

// validRequest is a request the validation server accepts, for the
// agreement tests to break one rule at a time.
func validRequest() (mpRequest, mpEvent) {
	e := purchase()
	top, ev := toGA4(&e, "purchase", testNow)
	return top, ev
}

// TestPrevalidationAgreesWithValidationServer breaks GA4's rules one at a
// time and checks that the adapter's pre-validation and the validation
// server (the strict fake) give the same verdict.
func TestPrevalidationAgreesWithValidationServer(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	manyParams := func(n int) map[string]any {
		p := map[string]any{}
		for i := range n {
			p[fmt.Sprintf("p%d", i)] = "v"
		}
		return p
	}
	manyItems := func(n int) []mpItem {
		out := make([]mpItem, n)
		for i := range out {
			out[i] = mpItem{ItemID: fmt.Sprint(i)}
		}
		return out
	}
	cases := []struct {
		name   string
		mutate func(top *mpRequest, ev *mpEvent)
		bad    bool
	}{
		{"valid", func(*mpRequest, *mpEvent) {}, false},
		{"reserved event name", func(_ *mpRequest, ev *mpEvent) { ev.Name = "first_visit" }, true},
		{"reserved event prefix", func(_ *mpRequest, ev *mpEvent) { ev.Name = "google_purchase" }, true},
		{"event name 40", func(_ *mpRequest, ev *mpEvent) { ev.Name = "e" + long(39) }, false},
		{"event name 41", func(_ *mpRequest, ev *mpEvent) { ev.Name = "e" + long(40) }, true},
		{"event name with a dash", func(_ *mpRequest, ev *mpEvent) { ev.Name = "my-event" }, true},
		{"event name starting with a digit", func(_ *mpRequest, ev *mpEvent) { ev.Name = "1event" }, true},
		{"25 params", func(_ *mpRequest, ev *mpEvent) { ev.Params = manyParams(25) }, false},
		{"26 params", func(_ *mpRequest, ev *mpEvent) { ev.Params = manyParams(26) }, true},
		{"reserved param prefix", func(_ *mpRequest, ev *mpEvent) { ev.Params["firebase_x"] = "1" }, true},
		{"reserved param name", func(_ *mpRequest, ev *mpEvent) { ev.Params["firebase_conversion"] = "1" }, true},
		{"param name 41", func(_ *mpRequest, ev *mpEvent) { ev.Params["p"+long(40)] = "1" }, true},
		{"value 100", func(_ *mpRequest, ev *mpEvent) { ev.Params["coupon"] = long(100) }, false},
		{"value 101", func(_ *mpRequest, ev *mpEvent) { ev.Params["coupon"] = long(101) }, true},
		{"page_location 1000", func(_ *mpRequest, ev *mpEvent) { ev.Params["page_location"] = long(1000) }, false},
		{"page_location 1001", func(_ *mpRequest, ev *mpEvent) { ev.Params["page_location"] = long(1001) }, true},
		{"page_referrer 421", func(_ *mpRequest, ev *mpEvent) { ev.Params["page_referrer"] = long(421) }, true},
		{"multibyte value of 100 characters", func(_ *mpRequest, ev *mpEvent) { ev.Params["coupon"] = strings.Repeat("é", 100) }, false},
		{"200 items", func(_ *mpRequest, ev *mpEvent) { ev.Params["items"] = manyItems(200) }, false},
		{"201 items", func(_ *mpRequest, ev *mpEvent) { ev.Params["items"] = manyItems(201) }, true},
		{"item without id or name", func(_ *mpRequest, ev *mpEvent) { ev.Params["items"] = []mpItem{{ItemCategory: "x"}} }, true},
		{"item id of 101", func(_ *mpRequest, ev *mpEvent) { ev.Params["items"] = []mpItem{{ItemID: long(101)}} }, true},
		{"72 hours old", func(_ *mpRequest, ev *mpEvent) { ev.TimestampMicros = testNow.Add(-72 * time.Hour).UnixMicro() }, false},
		{"73 hours old", func(_ *mpRequest, ev *mpEvent) { ev.TimestampMicros = testNow.Add(-73 * time.Hour).UnixMicro() }, true},
		{"no client id", func(top *mpRequest, _ *mpEvent) { top.ClientID = "" }, true},
		{"user_id 256", func(top *mpRequest, _ *mpEvent) { top.UserID = long(256) }, false},
		{"user_id 257", func(top *mpRequest, _ *mpEvent) { top.UserID = long(257) }, true},
		{"consent in lower case", func(top *mpRequest, _ *mpEvent) { top.Consent = &mpConsent{AdUserData: "granted"} }, true},
		{"upper-case digest", func(top *mpRequest, _ *mpEvent) { top.UserData.Emails = []string{strings.ToUpper(sha("a@b.co"))} }, true},
		{"raw e-mail", func(top *mpRequest, _ *mpEvent) { top.UserData.Emails = []string{"jane@example.com"} }, true},
		{"four e-mails", func(top *mpRequest, _ *mpEvent) {
			top.UserData.Emails = []string{sha("a"), sha("b"), sha("c"), sha("d")}
		}, true},
		{"bad ip_override", func(top *mpRequest, _ *mpEvent) { top.IPOverride = "999.1.1.1" }, true},
		{"bad country", func(top *mpRequest, _ *mpEvent) { top.UserLocation = &mpLocation{CountryID: "usa"} }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			top, ev := validRequest()
			tc.mutate(&top, &ev)
			p := validateEvent(&top, &ev, testNow)
			top.Events = []mpEvent{ev}
			body, err := json.Marshal(top)
			if err != nil {
				t.Fatal(err)
			}
			msgs := ga4test.Validate(body, testNow)
			if (p != nil) != tc.bad || (len(msgs) > 0) != tc.bad {
				t.Errorf("adapter: %v; validation server: %+v; want bad=%v", p, msgs, tc.bad)
			}
		})
	}
}

// FuzzPrevalidation: for any event and parameter names and values, the
// adapter refuses exactly what the validation server refuses.
func FuzzPrevalidation(f *testing.F) {
	f.Add("purchase", "coupon", "WELCOME10", int64(0))
	f.Add("session_start", "ga_x", "", int64(80))
	f.Add("a_b", "page_location", strings.Repeat("é", 1001), int64(71))
	f.Add("Ünïcode", "p", "\xff", int64(73))
	f.Fuzz(func(t *testing.T, name, param, value string, hoursAgo int64) {
		if hoursAgo < 0 || hoursAgo > 1000 {
			return
		}
		top, ev := validRequest()
		ev.Name = name
		ev.Params[param] = value
		ev.TimestampMicros = testNow.Add(-time.Duration(hoursAgo) * time.Hour).UnixMicro()
		p := validateEvent(&top, &ev, testNow)
		top.Events = []mpEvent{ev}
		body, err := json.Marshal(top)
		if err != nil {
			t.Fatal(err)
		}
		msgs := ga4test.Validate(body, testNow)
		if (p != nil) != (len(msgs) > 0) {
			t.Fatalf("adapter: %v; validation server: %+v", p, msgs)
		}
	})
}

func TestUserDataAndConsent(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(e *destinations.Event)
		check func(top mpRequest) bool
	}{
		{"variants preferred", func(*destinations.Event) {}, func(top mpRequest) bool {
			return top.UserData.Emails[0] == sha("janedoe@gmail.com") && top.UserData.Phones[0] == sha("+16505551212")
		}},
		{"fall back to the sender's digests", func(e *destinations.Event) { e.UserData.EmGoogle, e.UserData.PhE164 = nil, nil }, func(top mpRequest) bool {
			return top.UserData.Emails[0] == sha("jane.doe@gmail.com") && top.UserData.Phones[0] == sha("16505551212")
		}},
		{"appendix dropped, upper case lowered", func(e *destinations.Event) {
			e.UserData.EmGoogle = []string{strings.ToUpper(sha("x@y.z")) + ".AQYBAAAA"}
		}, func(top mpRequest) bool { return top.UserData.Emails[0] == sha("x@y.z") }},
		{"raw values never go out", func(e *destinations.Event) {
			e.UserData = destinations.UserData{Em: []string{"jane@example.com"}, Ph: []string{"+1 650 555"}}
		}, func(top mpRequest) bool { return top.UserData == nil }},
		{"at most three", func(e *destinations.Event) {
			e.UserData.EmGoogle = []string{sha("1"), sha("2"), sha("3"), sha("4")}
		}, func(top mpRequest) bool { return len(top.UserData.Emails) == 3 }},
		{"ad_user_data denied: no user data", func(e *destinations.Event) { e.Context.Consent.AdUserData = destinations.Denied },
			func(top mpRequest) bool { return top.UserData == nil && top.Consent.AdUserData == "DENIED" }},
		{"consent not stated: no consent object", func(e *destinations.Event) { e.Context.Consent = destinations.Consent{} },
			func(top mpRequest) bool { return top.Consent == nil && top.UserData != nil }},
		{"no external id: no user_id", func(e *destinations.Event) { e.UserData.ExternalID = nil },
			func(top mpRequest) bool { return top.UserID == "" }},
		{"bad IP and country left out", func(e *destinations.Event) {
			e.UserData.ClientIPAddress, e.Context.Country = "not-an-ip", "U1"
		}, func(top mpRequest) bool { return top.IPOverride == "" && top.UserLocation == nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := purchase()
			tc.edit(&e)
			top, ev := toGA4(&e, "purchase", testNow)
			if !tc.check(top) {
				b, _ := json.Marshal(top)
				t.Errorf("got %s", b)
			}
			if p := validateEvent(&top, &ev, testNow); p != nil {
				t.Errorf("invalid: %v", p)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		cd    *destinations.CustomData
		field string
	}{
		{"no custom data", nil, ""},
		{"value and currency", &destinations.CustomData{Value: ptr(1.0), Currency: "EUR"}, ""},
		{"lower-case currency", &destinations.CustomData{Value: ptr(1.0), Currency: "eur"}, ""},
		{"value without currency", &destinations.CustomData{Value: ptr(1.0)}, "custom_data.currency"},
		{"bad currency", &destinations.CustomData{Currency: "EURO"}, "custom_data.currency"},
		{"neither", &destinations.CustomData{OrderID: "1"}, ""},
	}
	for _, tc := range cases {
		e := pageView("a", "")
		e.CustomData = tc.cd
		v := Check(&e)
		if (v == nil) != (tc.field == "") || v != nil && v.Field != tc.field {
			t.Errorf("%s: %v", tc.name, v)
		}
	}
}

// TestBodyLimit: a request over 130 KB is split; an event alone over it is
// refused.
func TestBodyLimit(t *testing.T) {
	fake := newFake(t)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	big := func(id string) destinations.Event {
		e := pageView(id, "1764330000000.1")
		e.EventName = "ViewContent"
		e.CustomData = &destinations.CustomData{}
		for i := range 200 {
			e.CustomData.Contents = append(e.CustomData.Contents, destinations.Content{ID: fmt.Sprintf("%s-%03d-%s", id, i, strings.Repeat("i", 80)),
				Title: strings.Repeat("t", 100)})
		}
		return e
	}
	batch := []destinations.Event{big("a"), big("b"), big("c")}
	for i, err := range d.Deliver(context.Background(), batch) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if fake.Requests() < 2 || len(fake.Events(testStream)) != 3 || len(fake.Dropped()) != 0 {
		t.Errorf("%d requests, %d events, dropped %v", fake.Requests(), len(fake.Events(testStream)), fake.Dropped())
	}
}

func TestClassification(t *testing.T) {
	cases := []struct {
		name     string
		validate bool
		status   int
		header   map[string]string
		body     string
		kind     destinations.Kind
		code     string
		minDelay time.Duration
		whole    bool
	}{
		{name: "204", status: 204},
		{name: "200 with any body", status: 200, body: "<html>ok</html>"},
		{name: "500", status: 500, body: "oops", kind: destinations.Retryable},
		{name: "502 html", status: 502, body: "<html>bad gateway</html>", kind: destinations.Retryable},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "30"}, kind: destinations.Retryable, minDelay: 30 * time.Second},
		{name: "429 Retry-After", status: 429, header: map[string]string{"Retry-After": "120"}, kind: destinations.Retryable, minDelay: 2 * time.Minute},
		{name: "408", status: 408, kind: destinations.Retryable},
		{name: "400", status: 400, body: "bad", kind: destinations.Permanent},
		{name: "404", status: 404, kind: destinations.Permanent},
		{name: "413", status: 413, kind: destinations.Permanent},
		{name: "401", status: 401, kind: destinations.Paused},
		{name: "403", status: 403, kind: destinations.Paused},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"}, kind: destinations.Permanent},
		{name: "validation: clean", validate: true, status: 200, body: `{"validationMessages":[]}`},
		{name: "validation: a message", validate: true, status: 200,
			body: `{"validationMessages":[{"fieldPath":"events","description":"Event at index: [0] has invalid name.","validationCode":"NAME_INVALID"}]}`,
			kind: destinations.Permanent, code: "NAME_INVALID", whole: true},
		{name: "validation: unreadable", validate: true, status: 200, body: `<html>`, kind: destinations.Retryable},
		{name: "validation: 500", validate: true, status: 500, kind: destinations.Retryable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.CaptureAnswering(t, tc.status, tc.header, tc.body)
			d, _ := newAdapter(t, settingsJSON(t, srv.URL, map[string]any{"validate_only": tc.validate}), nil)
			errs := d.Deliver(context.Background(), []destinations.Event{pageView("a", "1.1"), pageView("b", "1.1")})
			destinationstest.CheckShared(t, errs, 2)
			want := map[bool]string{false: "/mp/collect", true: "/debug/mp/collect"}[tc.validate]
			if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].URL.Path != want {
				t.Errorf("requests %v, want one to %q", reqs, want)
			}
			destinationstest.CheckOutcome(t, errs[0], destinationstest.Outcome{Kind: tc.kind, Code: tc.code, Status: tc.status,
				WholeBatch: tc.whole, MinRetryAfter: tc.minDelay})
		})
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	d, logs := newAdapter(t, settingsJSON(t, destinationstest.Hanging(t).URL, map[string]any{"timeout": "50ms"}), nil)
	err := destinationstest.CheckTimeout(t, d, pageView("a", "1.1"))
	checkNoSecret(t, logs.String(), []error{err})
}

func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
	}{
		{"no secret", map[string]any{"api_secret": nil}},
		{"dry_run flag", map[string]any{"dry_run": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCaptureServer(t)
			var recorded [][]byte
			d, logs := newAdapter(t, settingsJSON(t, srv.URL, tc.extra), func(b []byte) { recorded = append(recorded, b) })
			destinationstest.CheckDryRun(t, d, srv, []destinations.Event{purchase(), pageView("a", "1.1"), pageView("b", "1.1")})
			if len(recorded) != 2 {
				t.Fatalf("recorded %d bodies, want 2 (one per visitor)", len(recorded))
			}
			if bytes.Contains(bytes.Join(recorded, nil), []byte(testSecret)) {
				t.Error("a recorded body holds the secret")
			}
			if msgs := ga4test.Validate(recorded[0], testNow); len(msgs) != 0 {
				t.Errorf("the recorded body is invalid: %+v", msgs)
			}
			out := logs.String()
			if strings.Count(out, "ga4 dry run: request not sent") != 2 || !strings.Contains(out, "level=INFO") {
				t.Errorf("dry-run log:\n%s", out)
			}
		})
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: ids and counts at info level, the
// body (IP addresses, digests) only at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"measurement_id":"G-ABC123XYZ"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{purchase()}, "2001:db8::7", sha("janedoe@gmail.com"))
}

// TestSecretNeverLeaks scans logs and errors for the API secret, as it is
// and query-escaped, in every path: error bodies echoing the URL,
// redirects, timeouts and an unreachable host.
func TestSecretNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, "bad request %s secret=%s", r.URL.RequestURI(), r.URL.Query().Get("api_secret"))
		}
	}
	handlers := map[string]http.Handler{
		"success":        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }),
		"permanent echo": echo(400),
		"5xx echo":       echo(502),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
		}),
	}
	destinationstest.CheckLeaks(t, handlers, pageView("a", "1.1"), func(t *testing.T, url string) (destinations.Destination, *testlog.Buffer) {
		return newAdapter(t, settingsJSON(t, url, map[string]any{"timeout": "50ms"}), nil)
	}, testSecret, url.QueryEscape(testSecret))
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		d, logs := newAdapter(t, settingsJSON(t, u, nil), nil)
		errs := d.Deliver(context.Background(), []destinations.Event{pageView("a", "1.1")})
		if k, _ := destinations.Classify(errs[0]); k != destinations.Retryable {
			t.Errorf("connection refused: %v", errs[0])
		}
		checkNoSecret(t, logs.String(), errs)
	})
}

func checkNoSecret(t *testing.T, logs string, errs []error) {
	t.Helper()
	destinationstest.CheckNoSecret(t, logs, errs, testSecret, url.QueryEscape(testSecret))
}

// TestFakeFailures: the strict fake's injected failures and its silent
// drop of a wrong secret.
func TestFakeFailures(t *testing.T) {
	fake := newFake(t)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	fake.FailNext(1, http.StatusServiceUnavailable, "unavailable")
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a", "1.1")})
	if k, _ := destinations.Classify(errs[0]); k != destinations.Retryable {
		t.Errorf("503: %v", errs[0])
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{pageView("a", "1.1")}); errs[0] != nil {
		t.Errorf("after the failure: %v", errs[0])
	}
	if got := fake.Events(testStream); len(got) != 1 {
		t.Errorf("fake holds %d events", len(got))
	}

	// A wrong secret: GA4 answers 204 and keeps nothing. The adapter
	// cannot tell; the fake can.
	wrong, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"api_secret": "wrong"}), nil)
	if errs := wrong.Deliver(context.Background(), []destinations.Event{pageView("b", "1.1")}); errs[0] != nil {
		t.Errorf("wrong secret: %v", errs[0])
	}
	if dropped := fake.Dropped(); len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "api_secret") {
		t.Errorf("dropped %+v", dropped)
	}

	// validate_only against the fake: nothing recorded, nothing dropped.
	v, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"validate_only": true}), nil)
	if errs := v.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Errorf("validate_only: %v", errs[0])
	}
	if got := fake.Events(testStream); len(got) != 1 {
		t.Errorf("validate_only recorded events: %d", len(got))
	}
}

// BenchmarkDeliver measures mapping, validation, encoding and one round
// trip per visitor for a batch of 25 Purchases of one visitor.
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
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
