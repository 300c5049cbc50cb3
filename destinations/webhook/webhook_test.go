package webhook

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/webhook/webhooktest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	// testSecret is whsec_ and the base64 of 32 bytes.
	testSecret = "whsec_dGFnd2F5LXRlc3Qtc2lnbmluZy1rZXktMzItYnl0ZXM="
	// otherSecret is a second valid secret.
	otherSecret = "whsec_b3RoZXItdGFnd2F5LXNpZ25pbmcta2V5LTMyYnl0ZQ=="
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

func ptr[T any](v T) *T { return &v }

// loopback allows the test receivers' network.
var loopback = Egress{AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// settingsJSON builds settings for the adapter under test; a nil value in
// extra removes the key.
func settingsJSON(t testing.TB, url string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"url": url, "secret": testSecret}, extra)
}

// newAdapter builds an adapter under e logging into the returned buffer.
func newAdapter(t testing.TB, e Egress, settings json.RawMessage, deps destinations.Deps) (*Adapter, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if deps.Now == nil {
		deps.Now = fixedNow
	}
	d, err := e.New(settings, deps)
	if err != nil {
		t.Fatal(err)
	}
	return d.(*Adapter), logs
}

// newReceiver starts the strict fake on the test clock.
func newReceiver(t testing.TB) *webhooktest.Server {
	t.Helper()
	rcv := webhooktest.NewServer(t, testSecret)
	rcv.SetNow(fixedNow)
	return rcv
}

// purchase is a website Purchase with every field filled.
func purchase() destinations.Event {
	return destinations.Event{
		EventName:      "Purchase",
		EventTime:      testNow.Add(-90 * time.Second).Unix(),
		EventID:        "order-1001",
		EventSourceURL: "https://shop.example/checkout/thank-you?order=1001",
		ReferrerURL:    "https://shop.example/checkout",
		ActionSource:   "website",
		OptOut:         true,
		UserData: destinations.UserData{
			Em:              []string{sha("jane@example.com")},
			Ph:              []string{sha("16505551212")},
			Fn:              []string{sha("jane")},
			Ln:              []string{sha("doe")},
			Ge:              []string{sha("f")},
			Db:              []string{sha("19800419")},
			Ct:              []string{sha("menlopark")},
			St:              []string{sha("ca")},
			Zp:              []string{sha("94025")},
			Country:         []string{sha("us")},
			ExternalID:      []string{sha("cust-9")},
			ClientIPAddress: "2001:db8::7",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
			Fbc:             "fb.1.1764330000000.IwAR2F4",
			Fbp:             "fb.1.1764329000000.482913756104",
			SubscriptionID:  "sub-1",
			FbLoginID:       "1234",
			LeadID:          "lead-1",
			PhE164:          []string{sha("+16505551212")},
			EmGoogle:        []string{sha("jane@example.com")},
		},
		CustomData: &destinations.CustomData{
			Value:       ptr(129.0),
			Currency:    "EUR",
			ContentIDs:  []string{"sku-1", "sku-2"},
			ContentType: "product",
			Contents: []destinations.Content{
				{ID: "sku-1", Quantity: ptr(2), ItemPrice: ptr(49.5), Title: "Mug"},
				{ID: "sku-2", Quantity: ptr(1), ItemPrice: ptr(30.0), DeliveryCategory: "home_delivery"},
			},
			NumItems: ptr(3),
			OrderID:  "1001",
			Custom:   map[string]json.RawMessage{"coupon": json.RawMessage(`"WELCOME10"`)},
		},
		DataProcessingOptions:        []string{"LDU"},
		DataProcessingOptionsCountry: ptr(1),
		DataProcessingOptionsState:   ptr(1000),
		Context: destinations.Context{
			SiteID:     "shop",
			ReceivedAt: testNow.Add(-89 * time.Second).UnixMilli(),
			Source:     "browser",
			Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted,
				AdPersonalization: destinations.Denied, AnalyticsStorage: destinations.Granted},
			TestEventCode: "TEST42",
			Country:       "US",
			Region:        "CA",
			Route:         "route-7",
			VisitorID:     "vid-abc",
			ClickIDs: map[string]destinations.ClickID{
				"gclid":  {Value: "Cj0KCQ", At: testNow.Add(-time.Hour).UnixMilli()},
				"ttclid": {Value: "E.C.P.abc", At: testNow.Add(-2 * time.Hour).UnixMilli()},
			},
			Cookies: map[string]string{"_ga": "GA1.1.123.456", "_ttp": "ttp-1"},
		},
	}
}

// pageView is a small event of site.
func pageView(site, id string) destinations.Event {
	return destinations.Event{
		EventName:      "PageView",
		EventTime:      testNow.Add(-time.Minute).Unix(),
		EventID:        id,
		EventSourceURL: "https://shop.example/",
		ActionSource:   "website",
		UserData:       destinations.UserData{ClientIPAddress: "203.0.113.9", ClientUserAgent: "Mozilla/5.0"},
		Context:        destinations.Context{SiteID: site, Consent: destinations.Consent{AdStorage: destinations.Denied}},
	}
}

func pageViews(site string, n int) []destinations.Event {
	out := make([]destinations.Event, n)
	for i := range out {
		out[i] = pageView(site, fmt.Sprintf("pv-%d", i))
	}
	return out
}

// kinds returns the kind of each outcome (0: delivered).
func kinds(errs []error) []destinations.Kind {
	out := make([]destinations.Kind, len(errs))
	for i, err := range errs {
		out[i], _ = destinations.Classify(err)
	}
	return out
}

func wantKinds(t *testing.T, errs []error, want destinations.Kind, n int) {
	t.Helper()
	if len(errs) != n {
		t.Fatalf("%d outcomes, want %d", len(errs), n)
	}
	for i, k := range kinds(errs) {
		if k != want {
			t.Fatalf("event %d: outcome %v (%v), want kind %d", i, k, errs[i], want)
		}
	}
}

func TestSpec(t *testing.T) {
	s := Spec()
	if s.Type != "webhook" || s.New == nil || s.AdPlatform || !s.Anonymous || s.MaxAge != nil ||
		s.Check != nil || s.EventName != nil || s.Hashes != 0 || len(s.APIURLs) != 0 {
		t.Errorf("Spec() = %+v", s)
	}
	if !slices.Equal(s.Secrets, []string{"secret", "previous_secret", "auth_header"}) {
		t.Errorf("Secrets = %v", s.Secrets)
	}
	// Spec() is the strict policy; Egress.Spec carries the operator's.
	raw := settingsJSON(t, "http://127.0.0.1:9/hook", nil)
	if _, err := Spec().New(raw, destinations.Deps{}); err == nil {
		t.Error("Spec().New accepted a loopback http url")
	}
	d, err := loopback.Spec().New(raw, destinations.Deps{})
	if err != nil {
		t.Fatalf("Egress.Spec().New refused an allowed url: %v", err)
	}
	a := d.(*Adapter)
	if !a.AcceptsAnonymous() || a.AdPlatform() || a.MaxBatch() != DefaultMaxBatch {
		t.Errorf("adapter: anonymous %v, ad platform %v, max batch %d", a.AcceptsAnonymous(), a.AdPlatform(), a.MaxBatch())
	}
	if _, ok := d.(destinations.AgeLimiter); ok {
		t.Error("a webhook has no age limit, but the adapter is an AgeLimiter")
	}
}

// TestSignatureVector signs the Standard Webhooks reference libraries'
// own test vector.
func TestSignatureVector(t *testing.T) {
	key, err := parseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	other, _ := parseSecret(otherSecret)
	two := Sign([][]byte{key, other}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if !strings.HasPrefix(two, got+" v1,") || strings.Count(two, " ") != 1 {
		t.Errorf("two keys: %s", two)
	}
}

func TestMessageID(t *testing.T) {
	base := pageViews("shop", 3)
	id := MessageID("shop", base)
	if !strings.HasPrefix(id, "msg_") || len(id) != 28 || strings.ContainsAny(id, ".+/= ") {
		t.Errorf("id %q: want msg_ and 24 base64url characters", id)
	}
	if again := MessageID("shop", pageViews("shop", 3)); again != id {
		t.Errorf("same events, another id: %s, %s", id, again)
	}
	changed := map[string]func([]destinations.Event) (string, []destinations.Event){
		"site":  func(e []destinations.Event) (string, []destinations.Event) { return "other", e },
		"order": func(e []destinations.Event) (string, []destinations.Event) { e[0], e[1] = e[1], e[0]; return "shop", e },
		"name":  func(e []destinations.Event) (string, []destinations.Event) { e[1].EventName = "Lead"; return "shop", e },
		"id":    func(e []destinations.Event) (string, []destinations.Event) { e[2].EventID = "x"; return "shop", e },
		"time":  func(e []destinations.Event) (string, []destinations.Event) { e[0].EventTime++; return "shop", e },
		"fewer": func(e []destinations.Event) (string, []destinations.Event) { return "shop", e[:2] },
		// Length prefixes keep field boundaries: "pv-0"+"x" is not "pv-0x".
		"boundary": func(e []destinations.Event) (string, []destinations.Event) {
			e[0].EventName, e[0].EventID = "PageViewp", "v-0"
			return "shop", e
		},
	}
	for name, change := range changed {
		site, evs := change(pageViews("shop", 3))
		if MessageID(site, evs) == id {
			t.Errorf("%s changed, the id did not", name)
		}
	}
}

// anonymous is a PageView stripped of every identifier but the user
// agent (consent_denied_mode anonymous).
func anonymous() destinations.Event {
	ev := pageView("shop", "anon-1")
	ev.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0"}
	ev.Context.Anonymous = true
	ev.Context.Source = "browser"
	ev.Context.ReceivedAt = testNow.Add(-59 * time.Second).UnixMilli()
	return ev
}

// TestGolden pins whole requests, headers and body, for a Purchase with
// every field filled and an anonymous PageView.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		event destinations.Event
	}{
		{"purchase.golden.json", purchase()},
		{"anonymous.golden.json", anonymous()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rcv := newReceiver(t)
			a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), nil), destinations.Deps{})
			wantKinds(t, a.Deliver(context.Background(), []destinations.Event{tc.event}), 0, 1)
			msgs := rcv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages, rejections %v", len(msgs), rcv.Rejections())
			}
			m := msgs[0]
			var body any
			if err := json.Unmarshal(m.Body, &body); err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(map[string]any{
				"headers": map[string]string{
					"Content-Type":      m.Header.Get("Content-Type"),
					"User-Agent":        m.Header.Get("User-Agent"),
					"webhook-id":        m.ID,
					"webhook-timestamp": m.Header.Get("webhook-timestamp"),
					"webhook-signature": m.Signature,
				},
				"body": body,
			})
			if err != nil {
				t.Fatal(err)
			}
			destinationstest.Golden(t, filepath.Join("testdata", tc.file), got, *update)
		})
	}
}

// TestPayload checks what a message carries and leaves out.
func TestPayload(t *testing.T) {
	rcv := newReceiver(t)
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), nil), destinations.Deps{})
	p := purchase()
	wantKinds(t, a.Deliver(context.Background(), []destinations.Event{p, pageView("shop", "pv-1")}), 0, 2)
	msgs := rcv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, rejections %v", len(msgs), rcv.Rejections())
	}
	m := msgs[0]
	body := string(m.Body)
	for _, absent := range []string{`"ph_e164"`, `"em_google"`, `"route"`, `route-7`, `"tw"`, `"vid"`} {
		if strings.Contains(body, absent) {
			t.Errorf("the body holds %s:\n%s", absent, body)
		}
	}
	if m.ID != MessageID("shop", []destinations.Event{p, pageView("shop", "pv-1")}) {
		t.Errorf("webhook-id %s is not MessageID's", m.ID)
	}
	if m.Timestamp != testNow.Unix() {
		t.Errorf("webhook-timestamp %d, want the send time %d", m.Timestamp, testNow.Unix())
	}
	pl := m.Payload
	if pl.Type != PayloadType || pl.Data.Site != "shop" || len(pl.Data.Events) != 2 {
		t.Fatalf("payload %+v", pl)
	}
	if want := time.Unix(pageView("shop", "").EventTime, 0).UTC().Format(time.RFC3339); pl.Timestamp != want {
		t.Errorf("timestamp %s, want the newest event_time %s", pl.Timestamp, want)
	}
	e := pl.Data.Events[0]
	c := e.Context
	if e.EventID != "order-1001" || e.UserData.Em[0] != sha("jane@example.com") || e.CustomData["coupon"] != "WELCOME10" ||
		c.VisitorID != "vid-abc" || c.ClickIDs["gclid"].Value != "Cj0KCQ" || c.Cookies["_ga"] != "GA1.1.123.456" ||
		c.Consent.AdPersonalization != "denied" || c.TestEventCode != "TEST42" || c.Country != "US" || c.Source != "browser" {
		t.Errorf("event %+v", e)
	}
	if pl.Data.Events[1].EventID != "pv-1" {
		t.Errorf("order lost: %+v", pl.Data.Events[1])
	}
}

func TestAnonymousEventIsDelivered(t *testing.T) {
	rcv := newReceiver(t)
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), nil), destinations.Deps{})
	wantKinds(t, a.Deliver(context.Background(), []destinations.Event{anonymous()}), 0, 1)
	if evs := rcv.Events(); len(evs) != 1 || !evs[0].Context.Anonymous {
		t.Fatalf("events %+v, rejections %v", evs, rcv.Rejections())
	}
}

// TestBatching: one message per site, each of at most max_batch events,
// in order.
func TestBatching(t *testing.T) {
	rcv := newReceiver(t)
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), map[string]any{"max_batch": 2}), destinations.Deps{})
	if a.MaxBatch() != 2 {
		t.Fatalf("MaxBatch = %d", a.MaxBatch())
	}
	batch := []destinations.Event{pageView("a", "1"), pageView("b", "2"), pageView("a", "3"), pageView("a", "4"), pageView("b", "5")}
	wantKinds(t, a.Deliver(context.Background(), batch), 0, 5)
	var got []string
	for _, m := range rcv.Messages() {
		var ids []string
		for _, e := range m.Payload.Data.Events {
			ids = append(ids, e.EventID)
		}
		got = append(got, m.Payload.Data.Site+":"+strings.Join(ids, ","))
	}
	if want := []string{"a:1,3", "b:2,5", "a:4"}; !slices.Equal(got, want) {
		t.Errorf("messages %v, want %v", got, want)
	}
	if errs := a.Deliver(context.Background(), nil); len(errs) != 0 {
		t.Errorf("empty batch: %v", errs)
	}
	if n := rcv.Requests(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// TestOutcomePerMessage: events share their message's outcome only.
func TestOutcomePerMessage(t *testing.T) {
	rcv := newReceiver(t)
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), map[string]any{"max_batch": 2}), destinations.Deps{})
	rcv.FailNext(1, http.StatusServiceUnavailable, nil, "busy")
	errs := a.Deliver(context.Background(), pageViews("shop", 3))
	if got := kinds(errs); !slices.Equal(got, []destinations.Kind{destinations.Retryable, destinations.Retryable, 0}) {
		t.Errorf("kinds %v", got)
	}
}

// TestRetryKeepsID: a batch sent again (a retry) has the same webhook-id
// and body, a new signed timestamp, and the receiver drops it as a
// duplicate.
func TestRetryKeepsID(t *testing.T) {
	rcv := newReceiver(t)
	now := testNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rcv.SetNow(clock)
	rcv.FailNext(1, http.StatusBadGateway, nil, "")
	var stamps []string
	var ids []string
	record := &recordingHandler{next: rcv.Handler(), seen: func(r *http.Request) {
		stamps = append(stamps, r.Header.Get(HeaderTimestamp))
		ids = append(ids, r.Header.Get(HeaderID))
	}}
	front := httptest.NewServer(record)
	t.Cleanup(front.Close)
	a, _ := newAdapter(t, loopback, settingsJSON(t, front.URL+"/hook", nil), destinations.Deps{Now: clock})
	batch := pageViews("shop", 2)
	wantKinds(t, a.Deliver(context.Background(), batch), destinations.Retryable, 2)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	wantKinds(t, a.Deliver(context.Background(), batch), 0, 2)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	wantKinds(t, a.Deliver(context.Background(), batch), 0, 2)
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("webhook-ids %v, want one id", ids)
	}
	if len(stamps) != 3 || stamps[0] == stamps[1] || stamps[1] == stamps[2] {
		t.Errorf("timestamps %v, want the time of each attempt", stamps)
	}
	if len(rcv.Messages()) != 1 || rcv.Duplicates() != 1 {
		t.Errorf("%d messages, %d duplicates; want 1 and 1", len(rcv.Messages()), rcv.Duplicates())
	}
}

type recordingHandler struct {
	mu   sync.Mutex
	next http.Handler
	seen func(*http.Request)
}

func (h *recordingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen(r)
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

// TestSignatureVerifies: the receiver's verification per the spec holds
// for the secret, both secrets during a rotation, and not for another.
func TestSignatureVerifies(t *testing.T) {
	cases := []struct {
		name             string
		secret, previous string
		receiver         string
		want             destinations.Kind
	}{
		{"one secret", testSecret, "", testSecret, 0},
		{"rotation, receiver still on the old", otherSecret, testSecret, testSecret, 0},
		{"rotation, receiver on the new", otherSecret, testSecret, otherSecret, 0},
		{"wrong secret", otherSecret, "", testSecret, destinations.Paused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := webhooktest.NewServer(t, tc.receiver)
			rcv.SetNow(fixedNow)
			extra := map[string]any{"secret": tc.secret}
			if tc.previous != "" {
				extra["previous_secret"] = tc.previous
			}
			a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), extra), destinations.Deps{})
			errs := a.Deliver(context.Background(), pageViews("shop", 2))
			wantKinds(t, errs, tc.want, 2)
			if tc.want == destinations.Paused {
				if r := rcv.Rejections(); len(r) != 1 || r[0].Status != 401 || !strings.Contains(r[0].Reason, "signature") {
					t.Errorf("rejections %v", r)
				}
			}
		})
	}
}

// TestTimestampIsTheAttempt: a receiver whose clock is 10 minutes off
// refuses the message as a replay.
func TestTimestampIsTheAttempt(t *testing.T) {
	rcv := newReceiver(t)
	rcv.SetNow(func() time.Time { return testNow.Add(10 * time.Minute) })
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), nil), destinations.Deps{})
	wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), destinations.Paused, 1)
	if r := rcv.Rejections(); len(r) != 1 || !strings.Contains(r[0].Reason, "timestamp") {
		t.Errorf("rejections %v", r)
	}
}

func TestHeaders(t *testing.T) {
	rcv := newReceiver(t)
	rcv.RequireHeader("X-Api-Key", "k-123456789")
	rcv.RequireHeader("X-Shop", "shop-1")
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), map[string]any{"headers": map[string]string{"x-shop": "shop-1"}}), destinations.Deps{})
	wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), destinations.Paused, 1)
	a, _ = newAdapter(t, loopback, settingsJSON(t, rcv.URL(), map[string]any{
		"headers": map[string]string{"x-shop": "shop-1"}, "auth_header": "X-Api-Key: k-123456789"}), destinations.Deps{})
	wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), 0, 1)
	h := rcv.Messages()[0].Header
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != UserAgent {
		t.Errorf("headers %v", h)
	}
}

// TestClassification maps every answer of a receiver to its outcome.
func TestClassification(t *testing.T) {
	type row struct {
		status     int
		header     http.Header
		body       string
		events     int
		want       destinations.Kind
		retryAfter time.Duration
		wholeBatch bool
	}
	rows := []row{
		{status: 200, events: 3},
		{status: 201, events: 3},
		{status: 202, events: 3},
		{status: 204, events: 3},
		{status: 299, events: 1},
		{status: 301, events: 3, want: destinations.Paused},
		{status: 302, events: 3, want: destinations.Paused},
		{status: 303, events: 3, want: destinations.Paused},
		{status: 307, events: 3, want: destinations.Paused},
		{status: 308, events: 3, want: destinations.Paused},
		{status: 400, events: 3, want: destinations.Permanent, wholeBatch: true},
		{status: 400, events: 1, want: destinations.Permanent},
		{status: 401, events: 3, want: destinations.Paused},
		{status: 403, events: 3, want: destinations.Paused},
		{status: 404, events: 3, want: destinations.Permanent},
		{status: 405, events: 3, want: destinations.Permanent},
		{status: 408, events: 3, want: destinations.Retryable},
		{status: 409, events: 3, want: destinations.Permanent},
		{status: 410, events: 3, want: destinations.Paused},
		{status: 413, events: 3, want: destinations.Permanent, wholeBatch: true},
		{status: 415, events: 3, want: destinations.Permanent},
		{status: 422, events: 3, want: destinations.Permanent, wholeBatch: true},
		{status: 422, events: 1, want: destinations.Permanent},
		{status: 425, events: 3, want: destinations.Retryable},
		{status: 429, events: 3, want: destinations.Retryable},
		{status: 429, header: http.Header{"Retry-After": {"30"}}, events: 3, want: destinations.Retryable, retryAfter: 30 * time.Second},
		{status: 429, header: http.Header{"Retry-After": {testNow.Add(time.Hour).Format(http.TimeFormat)}}, events: 2,
			want: destinations.Retryable, retryAfter: time.Hour},
		{status: 500, events: 3, want: destinations.Retryable},
		{status: 502, events: 3, want: destinations.Retryable},
		{status: 503, header: http.Header{"Retry-After": {"120"}}, events: 3, want: destinations.Retryable, retryAfter: 2 * time.Minute},
		{status: 504, events: 3, want: destinations.Retryable},
	}
	for _, r := range rows {
		t.Run(fmt.Sprintf("%d_%d_%v", r.status, r.events, r.header), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				_, _ = io.Copy(io.Discard, req.Body)
				for k, v := range r.header {
					w.Header()[k] = v
				}
				if r.status/100 == 3 {
					w.Header().Set("Location", "https://elsewhere.example/hook")
				}
				w.WriteHeader(r.status)
				_, _ = io.WriteString(w, r.body)
			}))
			t.Cleanup(srv.Close)
			a, _ := newAdapter(t, loopback, settingsJSON(t, srv.URL+"/hook", nil), destinations.Deps{})
			errs := a.Deliver(context.Background(), pageViews("shop", r.events))
			wantKinds(t, errs, r.want, r.events)
			if r.want == 0 {
				return
			}
			_, de := destinations.Classify(errs[0])
			if de.Status != r.status || de.RetryAfter != r.retryAfter || de.WholeBatch != r.wholeBatch {
				t.Errorf("error %+v: want status %d, RetryAfter %s, WholeBatch %v", de, r.status, r.retryAfter, r.wholeBatch)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	closed := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/hook"
	}
	hang := func(t *testing.T) string {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		return srv.URL + "/hook"
	}
	untrusted := func(t *testing.T) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL + "/hook"
	}
	noSuchHost := Egress{AllowNets: loopback.AllowNets, Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}}
	dnsDown := Egress{AllowNets: loopback.AllowNets, Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
	}}
	cases := []struct {
		name   string
		egress Egress
		url    func(*testing.T) string
		extra  map[string]any
		want   destinations.Kind
		code   string
	}{
		{"connection refused", loopback, closed, nil, destinations.Retryable, ""},
		{"timeout", loopback, hang, map[string]any{"timeout": "100ms"}, destinations.Retryable, ""},
		{"untrusted certificate", loopback, untrusted, nil, destinations.Paused, "tls_certificate"},
		{"no such host", noSuchHost, func(*testing.T) string { return "https://nowhere.example/hook" }, nil, destinations.Paused, "no_such_host"},
		{"DNS failure", dnsDown, func(*testing.T) string { return "https://flaky.example/hook" }, nil, destinations.Retryable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newAdapter(t, tc.egress, settingsJSON(t, tc.url(t), tc.extra), destinations.Deps{})
			errs := a.Deliver(context.Background(), pageViews("shop", 2))
			wantKinds(t, errs, tc.want, 2)
			if _, de := destinations.Classify(errs[0]); de.Code != tc.code {
				t.Errorf("code %q, want %q (%v)", de.Code, tc.code, errs[0])
			}
		})
	}
}

func TestCancellation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	a, _ := newAdapter(t, loopback, settingsJSON(t, srv.URL+"/hook", nil), destinations.Deps{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantKinds(t, a.Deliver(ctx, pageViews("shop", 2)), destinations.Retryable, 2)
}

// TestSecretsNeverLeak: neither the signing secrets, the auth_header
// credential nor a token in the url's path shows in errors or logs, at
// any level, whatever the receiver echoes.
func TestSecretsNeverLeak(t *testing.T) {
	const pathToken = "tok_PATHSECRET0123456789"
	const credential = "Bearer cred_SECRETVALUE987654321"
	echo := strings.Join([]string{testSecret, strings.TrimPrefix(otherSecret, SecretPrefix), credential, "cred_SECRETVALUE987654321", pathToken}, " | ")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "echo: "+echo+" "+r.URL.String())
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	for _, target := range []string{srv.URL + "/hooks/" + pathToken + "?key=" + pathToken, "http://" + closedAddr + "/hooks/" + pathToken} {
		a, logs := newAdapter(t, loopback, settingsJSON(t, target, map[string]any{
			"previous_secret": otherSecret, "auth_header": "Authorization: " + credential}), destinations.Deps{})
		errs := a.Deliver(context.Background(), pageViews("shop", 2))
		for _, err := range errs {
			if err == nil {
				t.Fatal("delivered")
			}
		}
		secrets := []string{testSecret, strings.TrimPrefix(testSecret, SecretPrefix), strings.TrimPrefix(otherSecret, SecretPrefix),
			"cred_SECRETVALUE987654321", pathToken}
		destinationstest.CheckNoSecret(t, logs.String(), errs, secrets...)
		settings := fmt.Sprintf("%v %+v %#v", a.settings, a.settings, a.settings)
		for _, secret := range secrets[:4] {
			if strings.Contains(settings, secret) {
				t.Errorf("%s shows in the formatted settings: %s", secret, settings)
			}
		}
		if text := fmt.Sprint(errs) + logs.String(); !strings.Contains(text, "127.0.0.1") {
			t.Errorf("errors do not name the endpoint's host:\n%s", text)
		}
	}
}

func TestDryRun(t *testing.T) {
	var recorded [][]byte
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// No secret and an address nothing listens on: dry run sends nothing.
	raw := settingsJSON(t, "https://hooks.example/tagway", map[string]any{"secret": nil, "dry_run": true})
	a, _ := newAdapter(t, Egress{}, raw, destinations.Deps{Logger: logger, Record: func(b []byte) { recorded = append(recorded, b) }})
	p := purchase()
	wantKinds(t, a.Deliver(context.Background(), []destinations.Event{p}), 0, 1)
	if len(recorded) != 1 {
		t.Fatalf("%d records", len(recorded))
	}
	var m Message
	if err := json.Unmarshal(recorded[0], &m); err != nil || m.Data.Events[0].EventID != p.EventID {
		t.Errorf("record %s: %v", recorded[0], err)
	}
	out := logs.String()
	if !strings.Contains(out, "dry run") || !strings.Contains(out, p.EventID) {
		t.Errorf("INFO log: %s", out)
	}
	for _, pii := range []string{p.UserData.Em[0], p.UserData.ClientIPAddress, "vid-abc"} {
		if strings.Contains(out, pii) {
			t.Errorf("INFO log shows %s: %s", pii, out)
		}
	}
	if _, err := ParseSettings(settingsJSON(t, "https://hooks.example/tagway", map[string]any{"secret": nil})); err == nil ||
		!strings.Contains(err.Error(), "secret is required") {
		t.Errorf("no secret and no dry run: %v", err)
	}
}

// TestRedirectsAreNotFollowed: the message goes to the url alone.
func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newReceiver(t)
	for _, status := range []int{301, 302, 303, 307, 308} {
		redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL(), status)
		}))
		t.Cleanup(redirect.Close)
		a, _ := newAdapter(t, loopback, settingsJSON(t, redirect.URL+"/hook", nil), destinations.Deps{})
		errs := a.Deliver(context.Background(), pageViews("shop", 1))
		wantKinds(t, errs, destinations.Paused, 1)
		if !strings.Contains(errs[0].Error(), "redirect") {
			t.Errorf("%d: %v", status, errs[0])
		}
	}
	if n := target.Requests(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestNewRefusesForeignTransport(t *testing.T) {
	type roundTripper struct{ http.RoundTripper }
	_, err := loopback.New(settingsJSON(t, "http://127.0.0.1:9/hook", nil),
		destinations.Deps{HTTP: &http.Client{Transport: roundTripper{http.DefaultTransport}}})
	if err == nil || !strings.Contains(err.Error(), "*http.Transport") {
		t.Errorf("err = %v", err)
	}
}

// TestProxyIsNotUsed: a proxy in the injected transport would connect on
// the gateway's behalf, past the egress policy; the adapter drops it.
func TestProxyIsNotUsed(t *testing.T) {
	var proxied int
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(proxy.Close)
	rcv := newReceiver(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(proxy.URL) }
	a, _ := newAdapter(t, loopback, settingsJSON(t, rcv.URL(), nil), destinations.Deps{HTTP: &http.Client{Transport: tr}})
	wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), 0, 1)
	if proxied != 0 || len(rcv.Messages()) != 1 {
		t.Errorf("proxy got %d requests, receiver %d messages", proxied, len(rcv.Messages()))
	}
}

func TestCookiesAreNotKept(t *testing.T) {
	var cookies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cookies = append(cookies, r.Header.Get("Cookie"))
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc", Path: "/"})
	}))
	t.Cleanup(srv.Close)
	jar := &fakeJar{}
	a, _ := newAdapter(t, loopback, settingsJSON(t, srv.URL+"/hook", nil), destinations.Deps{HTTP: &http.Client{Jar: jar}})
	for range 2 {
		wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), 0, 1)
	}
	if cookies[1] != "" || jar.set != 0 {
		t.Errorf("cookies %q, jar set %d times", cookies, jar.set)
	}
}

type fakeJar struct {
	mu      sync.Mutex
	set     int
	cookies []*http.Cookie
}

func (j *fakeJar) SetCookies(_ *url.URL, c []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.set++
	j.cookies = append(j.cookies, c...)
}

func (j *fakeJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cookies
}

func BenchmarkDeliver(b *testing.B) {
	srv := destinationstest.Answering(b, http.StatusNoContent, nil, "")
	a, _ := newAdapter(b, loopback, settingsJSON(b, srv.URL+"/hook", map[string]any{"max_batch": 100}), destinations.Deps{})
	batch := make([]destinations.Event, 100)
	for i := range batch {
		batch[i] = purchase()
		batch[i].EventID = fmt.Sprintf("order-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, err := range a.Deliver(context.Background(), batch) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
