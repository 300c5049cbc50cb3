package googleads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/googleads/googleadstest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testAccount  = "1234567890"
	testManager  = "9876543210"
	purchaseCA   = "111222333"
	leadCA       = "444555666"
	saEmail      = "tagway@tagway-test.iam.gserviceaccount.com"
	testClientID = "1234-abc.apps.googleusercontent.com"
	testSecret   = "GOCSPX-clientSecretValue42"
	testRefresh  = "1//0refreshTokenValueXYZ"
	userEmail    = "owner@shop.example"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

func ptr[T any](v T) *T { return &v }

// clock is a movable clock shared by an adapter and its fake.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a fake Google with a service account and a refresh-token user,
// both granted the test account and its two conversion actions.
type env struct {
	fake  *googleadstest.Server
	clock *clock
	saKey string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fake: googleadstest.NewServer(t), clock: &clock{t: testNow}}
	e.fake.SetNow(e.clock.now)
	e.saKey = e.fake.NewServiceAccount(saEmail)
	e.fake.AddRefreshToken(testClientID, testSecret, testRefresh, userEmail)
	e.fake.Grant(saEmail, testAccount, purchaseCA, leadCA)
	e.fake.Grant(userEmail, testAccount)
	return e
}

func (e *env) settings(t testing.TB, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{
		"operating_account_id": "123-456-7890",
		"conversion_actions":   map[string]string{"Purchase": purchaseCA, "Lead": leadCA},
		"service_account_json": e.saKey,
		"api_url":              e.fake.URL(),
		"token_url":            e.fake.TokenURL(),
	}, extra)
}

func (e *env) refreshSettings(t testing.TB, extra map[string]any) json.RawMessage {
	m := map[string]any{"service_account_json": nil, "refresh_token": testRefresh, "client_id": testClientID, "client_secret": testSecret}
	for k, v := range extra {
		m[k] = v
	}
	return e.settings(t, m)
}

func newAdapter(t testing.TB, settings json.RawMessage, now func() time.Time, record func([]byte)) (*Adapter, *testlog.Buffer) {
	d, logs := destinationstest.NewAdapter(t, New, settings, now, record)
	return d.(*Adapter), logs
}

// purchase is a browser Purchase with a click and every identifier.
func purchase() destinations.Event {
	return destinations.Event{
		EventName:      "Purchase",
		EventTime:      testNow.Add(-90 * time.Second).Unix(),
		EventID:        "3f0c6a52-9b1e-4c7e-8d2a-5b7f1e0c9a11",
		EventSourceURL: "https://shop.example/checkout/thank-you",
		ActionSource:   "website",
		UserData: destinations.UserData{
			Em:              []string{sha("jane.doe@gmail.com")},
			EmGoogle:        []string{sha("janedoe@gmail.com")},
			Ph:              []string{sha("16505551212")},
			PhE164:          []string{sha("+16505551212")},
			Fn:              []string{sha("jane")},
			ClientIPAddress: "203.0.113.7",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		},
		CustomData: &destinations.CustomData{Value: ptr(129.5), Currency: "eur", OrderID: "1001",
			Contents: []destinations.Content{{ID: "sku-1", Quantity: ptr(1), ItemPrice: ptr(129.5)}}},
		Context: destinations.Context{
			SiteID:  "shop",
			Source:  "browser",
			Country: "US",
			Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted, AdPersonalization: destinations.Denied},
			ClickIDs: map[string]destinations.ClickID{
				"gclid":  {Value: "EAIaIQobChMI-gclid-value", At: testNow.Add(-2 * time.Hour).UnixMilli()},
				"wbraid": {Value: "older-wbraid", At: testNow.Add(-48 * time.Hour).UnixMilli()},
			},
		},
	}
}

// lead is a Lead with only a hashed e-mail.
func lead(id string) destinations.Event {
	return destinations.Event{
		EventName:    "Lead",
		EventTime:    testNow.Add(-time.Minute).Unix(),
		EventID:      id,
		ActionSource: "website",
		UserData:     destinations.UserData{EmGoogle: []string{sha(id + "@example.com")}},
		Context:      destinations.Context{Consent: destinations.Consent{AdUserData: destinations.Granted}},
	}
}

func TestParseSettings(t *testing.T) {
	e := &env{fake: nil, saKey: testKeyJSON(t)}
	raw := json.RawMessage(`{"operating_account_id":"123-456-7890","conversion_actions":{"Purchase":"42"},
		"refresh_token":"rtSECRET","client_id":"cid","client_secret":"csSECRET"}`)
	s, err := ParseSettings(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s.OperatingAccountID != "1234567890" || s.APIURL != DefaultAPIURL || s.TokenURL != DefaultTokenURL ||
		time.Duration(s.Timeout) != 10*time.Second || s.auth() != authRefreshToken || s.dryRun() {
		t.Errorf("defaults: %+v", s)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "rtSECRET") || strings.Contains(got, "csSECRET") {
		t.Errorf("formatted settings show a secret: %s", got)
	}
	s, err = ParseSettings(json.RawMessage(`{"operating_account_id":"1234567890","login_account_id":"987-654-3210","conversion_actions":{"Lead":"7"}}`))
	if err != nil || s.LoginAccountID != "9876543210" || s.LoginAccountType != "GOOGLE_ADS" || !s.dryRun() {
		t.Errorf("login account: %+v %v", s, err)
	}
	sa, _ := json.Marshal(map[string]any{"operating_account_id": "1", "conversion_actions": map[string]string{"Lead": "7"},
		"service_account_json": e.saKey})
	if s, err := ParseSettings(sa); err != nil || s.auth() != authServiceAccount {
		t.Errorf("service account: %v", err)
	}

	const marker = "PRIVATEMARKER"
	badKey, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "a@b.c",
		"private_key": "-----BEGIN PRIVATE KEY-----\n" + marker + "\n-----END PRIVATE KEY-----\n"})
	notJSON := "{" + marker
	base := `"operating_account_id":"1","conversion_actions":{"Lead":"7"}`
	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{` + base + `,"customer_id":"1"}`, []string{"customer_id"}},
		{"missing account", `{"conversion_actions":{"Lead":"7"}}`, []string{"operating_account_id"}},
		{"account not digits", `{"operating_account_id":"abc","conversion_actions":{"Lead":"7"}}`, []string{"operating_account_id"}},
		{"no conversion actions", `{"operating_account_id":"1"}`, []string{"conversion_actions"}},
		{"action not digits", `{"operating_account_id":"1","conversion_actions":{"Lead":"customers/1/conversionActions/7"}}`, []string{"conversion_actions"}},
		{"empty event name", `{"operating_account_id":"1","conversion_actions":{"":"7"}}`, []string{"conversion_actions"}},
		{"login type without id", `{` + base + `,"login_account_type":"GOOGLE_ADS"}`, []string{"login_account_type"}},
		{"bad login type", `{` + base + `,"login_account_id":"2","login_account_type":"MCC"}`, []string{"login_account_type"}},
		{"refresh token alone", `{` + base + `,"refresh_token":"rtSECRET"}`, []string{"refresh_token, client_id and client_secret"}},
		{"both auths", `{` + base + `,"refresh_token":"rtSECRET","client_id":"c","client_secret":"csSECRET","service_account_json":` + jsonString(e.saKey) + `}`, []string{"not both"}},
		{"key file not JSON", `{` + base + `,"service_account_json":` + jsonString(notJSON) + `}`, []string{"service_account_json"}},
		{"key not PEM", `{` + base + `,"service_account_json":` + jsonString(string(badKey)) + `}`, []string{"private_key"}},
		{"not a service account", `{` + base + `,"service_account_json":"{\"type\":\"authorized_user\"}"}`, []string{"service_account"}},
		{"bad api url", `{` + base + `,"api_url":"ftp://x"}`, []string{"api_url"}},
		{"bad token url", `{` + base + `,"token_url":"https://x/?a=b"}`, []string{"token_url"}},
		{"bad timeout", `{` + base + `,"timeout":"soon"}`, []string{"timeout"}},
		{"several", `{"operating_account_id":"x","timeout":"-1s","api_url":"nope"}`, []string{"operating_account_id", "conversion_actions", "timeout", "api_url"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings(json.RawMessage(tc.json))
			if err == nil {
				t.Fatal("no error")
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			for _, secret := range []string{marker, "rtSECRET", "csSECRET", "BEGIN PRIVATE KEY"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
			if _, err := New(json.RawMessage(tc.json), destinations.Deps{}); err == nil {
				t.Error("New accepted bad settings")
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// testKeyJSON is a service account key file not known to any fake.
func testKeyJSON(t *testing.T) string {
	return googleadstest.NewServer(t).NewServiceAccount("spare@x.iam.gserviceaccount.com")
}

func TestSpec(t *testing.T) {
	s := Spec()
	if s.Type != "google_ads" || s.New == nil || s.Check == nil || s.EventName == nil || s.MaxAge == nil {
		t.Fatalf("incomplete spec %+v", s)
	}
	if fmt.Sprint(s.Secrets) != "[service_account_json refresh_token client_secret]" {
		t.Errorf("secrets %v", s.Secrets)
	}
	if s.APIURLs["api_url"] != "TAGWAY_GOOGLE_API_URL" || s.APIURLs["token_url"] != "TAGWAY_GOOGLE_TOKEN_URL" || len(s.APIURLs) != 2 {
		t.Errorf("API URLs %v", s.APIURLs)
	}
	if !s.AdPlatform || s.Anonymous || s.Hashes != destinations.HashPhoneE164|destinations.HashEmailGoogle {
		t.Errorf("AdPlatform %v Anonymous %v Hashes %b", s.AdPlatform, s.Anonymous, s.Hashes)
	}
	if s.MaxAge(destinations.Event{}) != 90*24*time.Hour {
		t.Errorf("MaxAge %s", s.MaxAge(destinations.Event{}))
	}
	if n, ok := s.EventName("Purchase"); n != "Purchase" || !ok {
		t.Error("the type refuses a name")
	}
	if _, ok := s.EventName(""); ok {
		t.Error("the type takes an empty name")
	}
	for _, tc := range []struct {
		cur string
		ok  bool
	}{{"EUR", true}, {"usd", true}, {"EURO", false}, {"", true}} {
		e := destinations.Event{CustomData: &destinations.CustomData{Currency: tc.cur}}
		if v := s.Check(&e); (v == nil) != tc.ok {
			t.Errorf("Check(%q) = %v", tc.cur, v)
		}
	}

	// The operator's URLs reach New; the destination's own event names.
	en := newEnv(t)
	d, err := destinations.WithAPIURLs(s.New, map[string]string{"api_url": en.fake.URL(), "token_url": en.fake.TokenURL()})(
		en.settings(t, map[string]any{"api_url": nil, "token_url": nil}), destinations.Deps{Now: en.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(context.Background(), []destinations.Event{lead("l1")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(en.fake.Events(testAccount)) != 1 {
		t.Error("the operator's URLs were not used")
	}
	namer, ok := d.(interface{ EventName(string) (string, bool) })
	if !ok {
		t.Fatal("no instance EventName")
	}
	for name, want := range map[string]bool{"Purchase": true, "Lead": true, "PageView": false, "AddToCart": false} {
		if _, ok := namer.EventName(name); ok != want {
			t.Errorf("EventName(%q) = %v", name, ok)
		}
	}
}

// newCaptureAPI answers {"requestId"} and keeps the requests.
func newCaptureAPI(t *testing.T) *destinationstest.Capture {
	return destinationstest.CaptureAnswering(t, http.StatusOK, nil, `{"requestId":"r1"}`)
}

func TestGoldenPurchase(t *testing.T) {
	en := newEnv(t)
	en.fake.SetTokenValue("ya29.golden-token")
	api := newCaptureAPI(t)
	a, _ := newAdapter(t, en.settings(t, map[string]any{"api_url": api.URL, "login_account_id": testManager}), en.clock.now, nil)
	if errs := a.Deliver(context.Background(), []destinations.Event{purchase()}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	reqs := api.Requests()
	if len(reqs) != 1 || reqs[0].URL.Path != "/v1/events:ingest" {
		t.Fatalf("requests %v", reqs)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer ya29.golden-token" {
		t.Errorf("Authorization %q", got)
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), api.Bodies()[0], *update)
}

// TestGoldenMatchesDocumentation reads the golden request field by field
// against the Data Manager API reference (IngestEventsRequest,
// Destination, ProductAccount, Event, AdIdentifiers, UserData, Consent,
// DeviceInfo; proto3 JSON names).
func TestGoldenMatchesDocumentation(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "purchase.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	type account struct {
		AccountType string `json:"accountType"`
		AccountID   string `json:"accountId"`
	}
	var req struct {
		Destinations []struct {
			Reference            string   `json:"reference"`
			LoginAccount         *account `json:"loginAccount"`
			OperatingAccount     account  `json:"operatingAccount"`
			ProductDestinationID string   `json:"productDestinationId"`
		} `json:"destinations"`
		Events []struct {
			DestinationReferences []string `json:"destinationReferences"`
			TransactionID         string   `json:"transactionId"`
			EventTimestamp        string   `json:"eventTimestamp"`
			UserData              struct {
				UserIdentifiers []map[string]string `json:"userIdentifiers"`
			} `json:"userData"`
			Consent         map[string]string `json:"consent"`
			AdIdentifiers   map[string]string `json:"adIdentifiers"`
			Currency        string            `json:"currency"`
			ConversionValue float64           `json:"conversionValue"`
			EventSource     string            `json:"eventSource"`
			EventDeviceInfo map[string]string `json:"eventDeviceInfo"`
		} `json:"events"`
		Encoding     string `json:"encoding"`
		ValidateOnly bool   `json:"validateOnly"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("the golden body has a field the reference does not list: %v", err)
	}
	if len(req.Destinations) != 1 || len(req.Events) != 1 {
		t.Fatalf("%s", raw)
	}
	d, ev := req.Destinations[0], req.Events[0]
	p := purchase()
	checks := []struct {
		field string
		ok    bool
	}{
		{"operatingAccount: GOOGLE_ADS, the id without dashes", d.OperatingAccount == account{"GOOGLE_ADS", testAccount}},
		{"loginAccount: the manager", d.LoginAccount != nil && *d.LoginAccount == account{"GOOGLE_ADS", testManager}},
		{"productDestinationId: the conversion action id", d.ProductDestinationID == purchaseCA},
		{"the event names its destination", len(ev.DestinationReferences) == 1 && ev.DestinationReferences[0] == d.Reference && d.Reference != ""},
		{"encoding HEX (user identifiers are hex digests)", req.Encoding == "HEX"},
		{"validateOnly off", !req.ValidateOnly},
		{"transactionId: the order id of a Purchase", ev.TransactionID == "1001"},
		{"eventTimestamp: RFC 3339 UTC", ev.EventTimestamp == time.Unix(p.EventTime, 0).UTC().Format(time.RFC3339)},
		{"emailAddress: Gmail dots removed", len(ev.UserData.UserIdentifiers) == 2 && ev.UserData.UserIdentifiers[0]["emailAddress"] == sha("janedoe@gmail.com")},
		{"phoneNumber: E.164 with +", len(ev.UserData.UserIdentifiers) == 2 && ev.UserData.UserIdentifiers[1]["phoneNumber"] == sha("+16505551212")},
		{"one field per identifier", len(ev.UserData.UserIdentifiers) == 2 && len(ev.UserData.UserIdentifiers[0]) == 1 && len(ev.UserData.UserIdentifiers[1]) == 1},
		{"consent: CONSENT_ words", ev.Consent["adUserData"] == "CONSENT_GRANTED" && ev.Consent["adPersonalization"] == "CONSENT_DENIED"},
		{"adIdentifiers: the most recent click, alone", len(ev.AdIdentifiers) == 1 && ev.AdIdentifiers["gclid"] == "EAIaIQobChMI-gclid-value"},
		{"currency upper case", ev.Currency == "EUR"},
		{"conversionValue", ev.ConversionValue == 129.5},
		{"eventSource WEB", ev.EventSource == "WEB"},
		{"eventDeviceInfo: user agent, and the IP of a US visitor", ev.EventDeviceInfo["userAgent"] == p.UserData.ClientUserAgent &&
			ev.EventDeviceInfo["ipAddress"] == "203.0.113.7"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s:\n%s", c.field, raw)
		}
	}
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake:
// two conversion actions share a request; every event is ingested into its
// action with its transaction id.
func TestFakeAcceptsPayloads(t *testing.T) {
	en := newEnv(t)
	a, _ := newAdapter(t, en.settings(t, nil), en.clock.now, nil)
	p := purchase()
	noOrder := purchase()
	noOrder.EventID, noOrder.CustomData.OrderID = "no-order", ""
	batch := []destinations.Event{p, lead("l1"), noOrder, lead("l2")}
	for i, err := range a.Deliver(context.Background(), batch) {
		if err != nil {
			t.Fatalf("event %d: %v (rejections %v)", i, err, en.fake.Rejections())
		}
	}
	if en.fake.Requests() != 1 {
		t.Errorf("%d requests, want 1", en.fake.Requests())
	}
	got := en.fake.Events(testAccount)
	want := map[string]string{"1001": purchaseCA, "l1": leadCA, "no-order": purchaseCA, "l2": leadCA}
	if len(got) != len(want) {
		t.Fatalf("ingested %+v", got)
	}
	for _, r := range got {
		if want[r.TransactionID] != r.ConversionAction || r.Principal != saEmail {
			t.Errorf("ingested %+v", r)
		}
	}
}

// TestEventsTheAPIWouldRefuse fail alone as permanent and never reach the
// API, which would refuse their whole request.
func TestEventsTheAPIWouldRefuse(t *testing.T) {
	en := newEnv(t)
	a, _ := newAdapter(t, en.settings(t, nil), en.clock.now, nil)
	unmapped := lead("pv")
	unmapped.EventName = "PageView"
	anonymous := lead("anon")
	anonymous.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0"}
	denied := lead("denied")
	denied.Context.Consent.AdUserData = destinations.Denied
	deniedWithClick := purchase()
	deniedWithClick.EventID = "denied-click"
	deniedWithClick.Context.Consent.AdUserData = destinations.Denied
	old := lead("old")
	old.EventTime = testNow.Add(-91 * 24 * time.Hour).Unix()
	noTime := lead("notime")
	noTime.EventTime = 0
	badCurrency := lead("cur")
	badCurrency.CustomData = &destinations.CustomData{Currency: "EURO", Value: ptr(1.0)}
	rawOnly := lead("raw")
	rawOnly.UserData = destinations.UserData{Em: []string{"jane@example.com"}}
	batch := []destinations.Event{lead("ok"), unmapped, anonymous, denied, deniedWithClick, old, noTime, badCurrency, rawOnly}
	want := []string{"", "NO_CONVERSION_ACTION", "NO_IDENTIFIERS_PROVIDED", "NO_IDENTIFIERS_PROVIDED", "", "perm", "perm", "INVALID_CURRENCY_CODE", "NO_IDENTIFIERS_PROVIDED"}
	for i, err := range a.Deliver(context.Background(), batch) {
		kind, de := destinations.Classify(err)
		switch want[i] {
		case "":
			if err != nil {
				t.Errorf("%s: %v", batch[i].EventID, err)
			}
		case "perm":
			if kind != destinations.Permanent {
				t.Errorf("%s: %v", batch[i].EventID, err)
			}
		default:
			if kind != destinations.Permanent || de.Code != want[i] {
				t.Errorf("%s: %v, want %s", batch[i].EventID, err, want[i])
			}
		}
	}
	got := en.fake.Events(testAccount)
	if len(got) != 2 || len(en.fake.Rejections()) != 0 {
		t.Fatalf("ingested %d, rejections %v", len(got), en.fake.Rejections())
	}
	for _, r := range got {
		if r.TransactionID == "1001" {
			if _, ok := r.Event["userData"]; ok {
				t.Error("user data sent without ad_user_data consent")
			}
		}
	}
}

// TestChunking: at most 10 conversion actions and 2,000 events a request.
func TestChunking(t *testing.T) {
	en := newEnv(t)
	actions := map[string]string{}
	var ids []string
	for i := range 11 {
		id := fmt.Sprint(700 + i)
		actions[fmt.Sprint("E", i)] = id
		ids = append(ids, id)
	}
	en.fake.Grant(saEmail, testAccount, ids...)
	a, _ := newAdapter(t, en.settings(t, map[string]any{"conversion_actions": actions}), en.clock.now, nil)
	var batch []destinations.Event
	for i := range 11 {
		e := lead(fmt.Sprint("e", i))
		e.EventName = fmt.Sprint("E", i)
		batch = append(batch, e)
	}
	for i, err := range a.Deliver(context.Background(), batch) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := en.fake.Requests(); n != 2 {
		t.Errorf("11 conversion actions took %d requests, want 2", n)
	}
	many := make([]destinations.Event, 2001)
	for i := range many {
		many[i] = lead(fmt.Sprint("m", i))
		many[i].EventName = "E0"
	}
	before := en.fake.Requests()
	for i, err := range a.Deliver(context.Background(), many) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := en.fake.Requests() - before; n != 2 {
		t.Errorf("2,001 events took %d requests, want 2", n)
	}
	if n := len(en.fake.Events(testAccount)); n != 11+2001 {
		t.Errorf("ingested %d", n)
	}
}

// TestTokenCachedAndRefreshed: one token for many calls, a new one when it
// expires and when the API refuses it, and a paused destination when even
// a new one is refused. Both grants.
func TestTokenCachedAndRefreshed(t *testing.T) {
	for _, flow := range []string{"service account", "refresh token"} {
		t.Run(flow, func(t *testing.T) {
			en := newEnv(t)
			settings := en.settings(t, nil)
			if flow == "refresh token" {
				en.fake.Grant(userEmail, testAccount, leadCA)
				settings = en.refreshSettings(t, nil)
			}
			a, logs := newAdapter(t, settings, en.clock.now, nil)
			deliver := func(id string) error {
				t.Helper()
				return a.Deliver(context.Background(), []destinations.Event{lead(id)})[0]
			}
			for i := range 3 {
				if err := deliver(fmt.Sprint("a", i)); err != nil {
					t.Fatal(err)
				}
			}
			if n := en.fake.TokenFetches(); n != 1 {
				t.Fatalf("%d token fetches for 3 calls, want 1", n)
			}

			// Shortly before expiry (the fake's tokens live an hour), a new one.
			en.clock.advance(59*time.Minute + 30*time.Second)
			if err := deliver("b"); err != nil {
				t.Fatal(err)
			}
			if n := en.fake.TokenFetches(); n != 2 {
				t.Fatalf("%d token fetches after expiry, want 2", n)
			}

			// Revoked: the API answers 401, the adapter fetches a new token
			// and sends again within the same call.
			en.fake.RevokeTokens()
			before := en.fake.Requests()
			if err := deliver("c"); err != nil {
				t.Fatal(err)
			}
			if n := en.fake.TokenFetches(); n != 3 {
				t.Fatalf("%d token fetches after a 401, want 3", n)
			}
			if n := en.fake.Requests() - before; n != 2 {
				t.Errorf("%d requests for a 401 and its retry, want 2", n)
			}

			// Refused with a new token too: paused, no third try.
			unauth := googleadstest.Status{HTTP: 401, Status: "UNAUTHENTICATED", Message: "Request had invalid authentication credentials.",
				Reason: "ACCESS_TOKEN_EXPIRED"}.Body()
			en.fake.FailNext(2, 401, unauth)
			before = en.fake.Requests()
			err := deliver("d")
			if k, _ := destinations.Classify(err); k != destinations.Paused {
				t.Errorf("two 401s: %v", err)
			}
			if n := en.fake.Requests() - before; n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
			// The refused token is forgotten.
			if err := deliver("e"); err != nil {
				t.Fatal(err)
			}
			if n := en.fake.TokenFetches(); n != 5 {
				t.Errorf("%d token fetches, want 5", n)
			}
			if got := len(en.fake.Events(testAccount)); got != 6 {
				t.Errorf("ingested %d", got)
			}
			if strings.Contains(logs.String(), "ya29.") {
				t.Errorf("a token in the logs:\n%s", logs)
			}
		})
	}
}

// TestOneFetchForConcurrentCalls: calls that need a token at once share
// one fetch.
func TestOneFetchForConcurrentCalls(t *testing.T) {
	en := newEnv(t)
	a, _ := newAdapter(t, en.settings(t, nil), en.clock.now, nil)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = a.Deliver(context.Background(), []destinations.Event{lead(fmt.Sprint("c", i))})[0] })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n := en.fake.TokenFetches(); n != 1 {
		t.Errorf("%d token fetches for 8 concurrent calls, want 1", n)
	}
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		kind     destinations.Kind
		code     string
		minDelay time.Duration
	}{
		{"invalid_grant", 400, nil, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`, destinations.Paused, "invalid_grant", 0},
		{"invalid_client", 401, nil, `{"error":"invalid_client","error_description":"The OAuth client was not found."}`, destinations.Paused, "invalid_client", 0},
		{"unauthorized_client", 400, nil, `{"error":"unauthorized_client"}`, destinations.Paused, "unauthorized_client", 0},
		{"503", 503, map[string]string{"Retry-After": "20"}, `{"error":"temporarily_unavailable"}`, destinations.Retryable, "temporarily_unavailable", 20 * time.Second},
		{"429", 429, map[string]string{"Retry-After": "60"}, `slow down`, destinations.Retryable, "", time.Minute},
		{"500 html", 500, nil, `<html>oops</html>`, destinations.Retryable, "", 0},
		{"echoing the credentials", 400, nil, `{"error":"invalid_grant","error_description":"bad refresh token ` + testRefresh + ` for secret ` + testSecret + `"}`, destinations.Paused, "invalid_grant", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer tokenSrv.Close()
			en := newEnv(t)
			a, logs := newAdapter(t, en.refreshSettings(t, map[string]any{"token_url": tokenSrv.URL}), en.clock.now, nil)
			errs := a.Deliver(context.Background(), []destinations.Event{lead("a"), lead("b")})
			kind, de := destinations.Classify(errs[0])
			if kind != tc.kind || de.Code != tc.code || de.RetryAfter < tc.minDelay {
				t.Errorf("got %v (code %q, delay %s)", errs[0], de.Code, de.RetryAfter)
			}
			if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
				t.Errorf("outcomes differ: %v / %v", errs[0], errs[1])
			}
			if en.fake.Requests() != 0 {
				t.Error("the API was called without a token")
			}
			checkNoSecrets(t, logs.String(), errs)
		})
	}

	t.Run("unknown service account", func(t *testing.T) {
		en := newEnv(t)
		a, _ := newAdapter(t, en.settings(t, map[string]any{"service_account_json": testKeyJSON(t)}), en.clock.now, nil)
		err := a.Deliver(context.Background(), []destinations.Event{lead("a")})[0]
		if k, de := destinations.Classify(err); k != destinations.Paused || de.Code != "invalid_grant" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no access to the account", func(t *testing.T) {
		en := newEnv(t)
		a, _ := newAdapter(t, en.settings(t, map[string]any{"operating_account_id": "5555555555"}), en.clock.now, nil)
		err := a.Deliver(context.Background(), []destinations.Event{lead("a")})[0]
		if k, de := destinations.Classify(err); k != destinations.Paused || de.Code != "PERMISSION_DENIED" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unknown conversion action", func(t *testing.T) {
		en := newEnv(t)
		a, _ := newAdapter(t, en.settings(t, map[string]any{"conversion_actions": map[string]string{"Lead": "999"}}), en.clock.now, nil)
		err := a.Deliver(context.Background(), []destinations.Event{lead("a")})[0]
		if k, de := destinations.Classify(err); k != destinations.Paused || de.Code != "INVALID_ARGUMENT" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("token endpoint unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		en := newEnv(t)
		a, logs := newAdapter(t, en.settings(t, map[string]any{"token_url": u}), en.clock.now, nil)
		errs := a.Deliver(context.Background(), []destinations.Event{lead("a")})
		if k, _ := destinations.Classify(errs[0]); k != destinations.Retryable {
			t.Errorf("got %v", errs[0])
		}
		checkNoSecrets(t, logs.String(), errs)
	})
	t.Run("a token fetch is bounded by the call's context", func(t *testing.T) {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer hang.Close()
		defer close(release)
		en := newEnv(t)
		a, _ := newAdapter(t, en.settings(t, map[string]any{"token_url": hang.URL}), en.clock.now, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := a.Deliver(ctx, []destinations.Event{lead("a")})[0]
		if k, _ := destinations.Classify(err); k != destinations.Retryable {
			t.Errorf("got %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the fetch outlived its context by %s", d)
		}
	})
}

func checkNoSecrets(t *testing.T, logs string, errs []error, extra ...string) {
	t.Helper()
	destinationstest.CheckNoSecret(t, logs, errs, append([]string{testRefresh, testSecret, "ya29.", "PRIVATE KEY"}, extra...)...)
}

// TestSecretsNeverLeak: API answers echoing the access token, in bodies
// and in field violations, a redirect, a timeout.
func TestSecretsNeverLeak(t *testing.T) {
	const tok = "ya29.leak-check-token"
	echoStatus := googleadstest.Status{HTTP: 400, Status: "INVALID_ARGUMENT", Message: "bad token " + tok, Reason: "INVALID_ARGUMENT",
		Violations: []googleadstest.Violation{{Field: "events[0].user_data", Description: "token " + tok, Reason: "INVALID_FORMAT"}}}.Body()
	handlers := map[string]http.HandlerFunc{
		"status echo": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, echoStatus)
		},
		"plain echo": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "upstream said: "+r.Header.Get("Authorization"))
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?token="+tok, http.StatusTemporaryRedirect)
		},
		"timeout": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			<-r.Context().Done()
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			for _, flow := range []string{"service account", "refresh token"} {
				en := newEnv(t)
				en.fake.SetTokenValue(tok)
				api := httptest.NewServer(h)
				settings := en.settings(t, map[string]any{"api_url": api.URL, "timeout": "200ms"})
				if flow == "refresh token" {
					settings = en.refreshSettings(t, map[string]any{"api_url": api.URL, "timeout": "200ms"})
				}
				a, logs := newAdapter(t, settings, en.clock.now, nil)
				errs := a.Deliver(context.Background(), []destinations.Event{lead("a"), lead("b")})
				api.Close()
				checkNoSecrets(t, logs.String(), errs, tok)
				for _, line := range strings.Split(en.saKey, `\n`) {
					if len(line) > 20 && strings.Contains(logs.String(), line) {
						t.Errorf("key material in logs")
					}
				}
			}
		})
	}
}

func rpc(status, reason string, http int, violations ...googleadstest.Violation) string {
	return googleadstest.Status{HTTP: http, Status: status, Message: "msg", Reason: reason, Violations: violations}.Body()
}

func TestClassification(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		kinds    []destinations.Kind // per event of a batch of 3; one entry: all
		code     string
		minDelay time.Duration
		whole    bool
	}{
		{name: "ingested", status: 200, body: `{"requestId":"1"}`, kinds: []destinations.Kind{0}},
		{name: "validateOnly answer", status: 200, body: `{}`, kinds: []destinations.Kind{0}},
		{name: "RESOURCE_EXHAUSTED", status: 429, body: rpc("RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", 429),
			kinds: []destinations.Kind{destinations.Retryable}, code: "RESOURCE_EXHAUSTED/RATE_LIMIT_EXCEEDED", minDelay: time.Minute},
		{name: "RESOURCE_EXHAUSTED with RetryInfo", status: 429,
			body:  googleadstest.Status{HTTP: 429, Status: "RESOURCE_EXHAUSTED", Message: "quota", RetryDelay: 90 * time.Second}.Body(),
			kinds: []destinations.Kind{destinations.Retryable}, code: "RESOURCE_EXHAUSTED", minDelay: 90 * time.Second},
		{name: "daily quota", status: 429,
			body: googleadstest.Status{HTTP: 429, Status: "RESOURCE_EXHAUSTED", Message: "quota", Reason: "RATE_LIMIT_EXCEEDED",
				Metadata: map[string]string{"quota_limit": "IngestRequestsPerDayPerProject"}}.Body(),
			kinds: []destinations.Kind{destinations.Retryable}, code: "RESOURCE_EXHAUSTED/RATE_LIMIT_EXCEEDED", minDelay: time.Hour},
		{name: "UNAVAILABLE with Retry-After", status: 503, header: map[string]string{"Retry-After": "30"}, body: rpc("UNAVAILABLE", "", 503),
			kinds: []destinations.Kind{destinations.Retryable}, code: "UNAVAILABLE", minDelay: 30 * time.Second},
		{name: "INTERNAL", status: 500, body: rpc("INTERNAL", "INTERNAL_ERROR", 500), kinds: []destinations.Kind{destinations.Retryable}, code: "INTERNAL/INTERNAL_ERROR"},
		{name: "DEADLINE_EXCEEDED", status: 504, body: rpc("DEADLINE_EXCEEDED", "", 504), kinds: []destinations.Kind{destinations.Retryable}, code: "DEADLINE_EXCEEDED"},
		{name: "ABORTED", status: 409, body: rpc("ABORTED", "", 409), kinds: []destinations.Kind{destinations.Retryable}, code: "ABORTED"},
		{name: "UNKNOWN", status: 500, body: rpc("UNKNOWN", "", 500), kinds: []destinations.Kind{destinations.Retryable}, code: "UNKNOWN"},
		{name: "CANCELLED", status: 499, body: rpc("CANCELLED", "", 499), kinds: []destinations.Kind{destinations.Retryable}, code: "CANCELLED"},
		{name: "UNIMPLEMENTED", status: 501, body: rpc("UNIMPLEMENTED", "", 501), kinds: []destinations.Kind{destinations.Paused}, code: "UNIMPLEMENTED"},
		{name: "OUT_OF_RANGE", status: 400, body: rpc("OUT_OF_RANGE", "", 400), kinds: []destinations.Kind{destinations.Permanent}, code: "OUT_OF_RANGE", whole: true},
		{name: "ALREADY_EXISTS for event 2", status: 409, body: rpc("ALREADY_EXISTS", "", 409, googleadstest.Violation{Field: "events[2].transaction_id"}),
			kinds: []destinations.Kind{destinations.Retryable, destinations.Retryable, destinations.Permanent}},
		{name: "PERMISSION_DENIED", status: 403, body: rpc("PERMISSION_DENIED", "PERMISSION_DENIED", 403), kinds: []destinations.Kind{destinations.Paused}, code: "PERMISSION_DENIED"},
		{name: "NOT_FOUND", status: 404, body: rpc("NOT_FOUND", "NOT_FOUND", 404), kinds: []destinations.Kind{destinations.Paused}, code: "NOT_FOUND"},
		{name: "FAILED_PRECONDITION", status: 400, body: rpc("FAILED_PRECONDITION", "TERMS_AND_CONDITIONS_NOT_SIGNED", 400),
			kinds: []destinations.Kind{destinations.Paused}, code: "FAILED_PRECONDITION/TERMS_AND_CONDITIONS_NOT_SIGNED"},
		{name: "INVALID_ARGUMENT, no event named", status: 400, body: rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
			googleadstest.Violation{Description: "Invalid JSON payload received."}),
			kinds: []destinations.Kind{destinations.Permanent}, code: "INVALID_ARGUMENT", whole: true},
		{name: "INVALID_ARGUMENT, a bad conversion action", status: 400, body: rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
			googleadstest.Violation{Field: "destinations[0].product_destination_id", Description: "x", Reason: "INVALID_CONVERSION_ACTION_ID"}),
			kinds: []destinations.Kind{destinations.Paused}, code: "INVALID_ARGUMENT"},
		{name: "INVALID_ARGUMENT, terms not signed", status: 400, body: rpc("INVALID_ARGUMENT", "DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED", 400),
			kinds: []destinations.Kind{destinations.Paused}, code: "INVALID_ARGUMENT/DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED"},
		{name: "INVALID_ARGUMENT for event 1", status: 400, body: rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
			googleadstest.Violation{Field: "events[1].user_data.user_identifiers[0].email_address", Description: "bad", Reason: "INVALID_SHA256_FORMAT"}),
			kinds: []destinations.Kind{destinations.Retryable, destinations.Permanent, destinations.Retryable}},
		{name: "INVALID_ARGUMENT for events 0 and 2, camelCase paths", status: 400, body: rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
			googleadstest.Violation{Field: "events[0].eventTimestamp", Reason: "INVALID_FORMAT"},
			googleadstest.Violation{Field: "events[2].currency", Reason: "INVALID_CURRENCY_CODE"},
			googleadstest.Violation{Field: "events[2].conversionValue", Reason: "INVALID_NUMBER_FORMAT"}),
			kinds: []destinations.Kind{destinations.Permanent, destinations.Retryable, destinations.Permanent}},
		{name: "INVALID_ARGUMENT naming an event out of range", status: 400, body: rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
			googleadstest.Violation{Field: "events[7].currency"}),
			kinds: []destinations.Kind{destinations.Permanent}, code: "INVALID_ARGUMENT", whole: true},
		{name: "unknown status on 500", status: 500, body: rpc("SOMETHING_NEW", "", 500), kinds: []destinations.Kind{destinations.Retryable}, code: "SOMETHING_NEW"},
		{name: "502 html", status: 502, body: "<html>bad gateway</html>", kinds: []destinations.Kind{destinations.Retryable}},
		{name: "404 plain", status: 404, body: "not found", kinds: []destinations.Kind{destinations.Permanent}},
		{name: "403 plain", status: 403, kinds: []destinations.Kind{destinations.Paused}},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"}, kinds: []destinations.Kind{destinations.Permanent}},
	}
	en := newEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := destinationstest.Answering(t, tc.status, tc.header, tc.body)
			a, _ := newAdapter(t, en.settings(t, map[string]any{"api_url": api.URL}), en.clock.now, nil)
			errs := a.Deliver(context.Background(), []destinations.Event{lead("a"), lead("b"), lead("c")})
			for i, err := range errs {
				want := tc.kinds[0]
				if len(tc.kinds) > 1 {
					want = tc.kinds[i]
				}
				kind, de := destinations.Classify(err)
				if kind != want {
					t.Fatalf("event %d: kind %v, want %v (%v)", i, kind, want, err)
				}
				if kind == 0 {
					continue
				}
				var typed *destinations.Error
				if !errors.As(err, &typed) {
					t.Fatalf("%T is not a *destinations.Error", err)
				}
				if len(tc.kinds) == 1 && (de.Code != tc.code || de.WholeBatch != tc.whole || de.Status != tc.status) {
					t.Errorf("code %q whole %v status %d", de.Code, de.WholeBatch, de.Status)
				}
				if de.RetryAfter < tc.minDelay {
					t.Errorf("delay %s, want at least %s", de.RetryAfter, tc.minDelay)
				}
				if kind != destinations.Retryable && de.RetryAfter != 0 {
					t.Errorf("delay %s on a %v error", de.RetryAfter, kind)
				}
			}
			if len(tc.kinds) > 1 {
				for i, err := range errs {
					if _, de := destinations.Classify(err); tc.kinds[i] == destinations.Permanent && !strings.Contains(de.Message, fmt.Sprintf("events[%d]", i)) {
						t.Errorf("event %d: the message does not name the field: %v", i, err)
					}
				}
			}
		})
	}
}

// TestPerEventRefusalThenRetry: after the API names one bad event, the
// others go through on their retry.
func TestPerEventRefusalThenRetry(t *testing.T) {
	en := newEnv(t)
	a, _ := newAdapter(t, en.settings(t, nil), en.clock.now, nil)
	en.fake.FailNext(1, 400, rpc("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400,
		googleadstest.Violation{Field: "events[1].user_data.user_identifiers[0].email_address", Reason: "INVALID_SHA256_FORMAT"}))
	batch := []destinations.Event{lead("a"), lead("b"), lead("c")}
	errs := a.Deliver(context.Background(), batch)
	var again []destinations.Event
	for i, err := range errs {
		if k, _ := destinations.Classify(err); k == destinations.Retryable {
			again = append(again, batch[i])
		}
	}
	if len(again) != 2 {
		t.Fatalf("outcomes %v", errs)
	}
	for _, err := range a.Deliver(context.Background(), again) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(en.fake.Events(testAccount)); n != 2 {
		t.Errorf("ingested %d", n)
	}
}

func TestAdIdentifiers(t *testing.T) {
	at := func(d time.Duration) int64 { return testNow.Add(-d).UnixMilli() }
	cases := []struct {
		name    string
		clicks  map[string]destinations.ClickID
		cookies map[string]string
		want    *dmAdIdentifiers
	}{
		{"none", nil, nil, nil},
		{"gclid", map[string]destinations.ClickID{"gclid": {Value: "G", At: at(time.Hour)}}, nil, &dmAdIdentifiers{Gclid: "G"}},
		{"the most recent of three", map[string]destinations.ClickID{"gclid": {Value: "G", At: at(3 * time.Hour)},
			"gbraid": {Value: "B", At: at(time.Hour)}, "wbraid": {Value: "W", At: at(2 * time.Hour)}}, nil, &dmAdIdentifiers{Gbraid: "B"}},
		{"older than 90 days", map[string]destinations.ClickID{"gclid": {Value: "G", At: at(91 * 24 * time.Hour)}}, nil, nil},
		{"after the event", map[string]destinations.ClickID{"wbraid": {Value: "W", At: at(-time.Hour)}}, nil, nil},
		{"capture time unknown", map[string]destinations.ClickID{"gclid": {Value: "G"}}, nil, &dmAdIdentifiers{Gclid: "G"}},
		{"other platforms' clicks", map[string]destinations.ClickID{"ttclid": {Value: "T", At: at(time.Hour)}}, nil, nil},
		{"_gcl_aw cookie", nil, map[string]string{"_gcl_aw": fmt.Sprintf("GCL.%d.CookieGclid", testNow.Add(-time.Hour).Unix())}, &dmAdIdentifiers{Gclid: "CookieGclid"}},
		{"click id preferred to the cookie", map[string]destinations.ClickID{"wbraid": {Value: "W", At: at(time.Hour)}},
			map[string]string{"_gcl_aw": fmt.Sprintf("GCL.%d.C", testNow.Unix())}, &dmAdIdentifiers{Wbraid: "W"}},
		{"malformed cookie", nil, map[string]string{"_gcl_aw": "GCL.x.C"}, nil},
	}
	for _, tc := range cases {
		e := lead("a")
		e.EventTime = testNow.Unix()
		e.Context.ClickIDs, e.Context.Cookies = tc.clicks, tc.cookies
		got := adIdentifiers(&e)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestUserIdentifiersAndDevice(t *testing.T) {
	u := destinations.UserData{
		Em:       []string{sha("a"), "not-a-digest"},
		EmGoogle: nil,
		Ph:       []string{strings.ToUpper(sha("p")) + ".AQYBAAAA"},
	}
	d := userData(&u)
	if d == nil || len(d.UserIdentifiers) != 2 || d.UserIdentifiers[0].EmailAddress != sha("a") || d.UserIdentifiers[1].PhoneNumber != sha("p") {
		t.Errorf("fallbacks: %+v", d)
	}
	var many destinations.UserData
	for i := range 12 {
		many.EmGoogle = append(many.EmGoogle, sha(fmt.Sprint(i)))
	}
	if d := userData(&many); len(d.UserIdentifiers) != MaxIdentifiers {
		t.Errorf("%d identifiers", len(d.UserIdentifiers))
	}
	if d := userData(&destinations.UserData{Em: []string{"jane@example.com"}}); d != nil {
		t.Errorf("a raw address went out: %+v", d)
	}

	for country, wantIP := range map[string]bool{"US": true, "us": true, "DE": false, "GB": false, "CH": false, "NO": false, "": false} {
		e := purchase()
		e.Context.Country = country
		di := deviceInfo(&e)
		if (di.IPAddress != "") != wantIP || di.UserAgent == "" {
			t.Errorf("country %q: %+v", country, di)
		}
	}
	e := purchase()
	e.UserData.ClientIPAddress, e.UserData.ClientUserAgent = "", ""
	if di := deviceInfo(&e); di != nil {
		t.Errorf("empty device: %+v", di)
	}
}

func TestDryRun(t *testing.T) {
	en := newEnv(t)
	var recorded [][]byte
	a, logs := newAdapter(t, en.settings(t, map[string]any{"service_account_json": nil}), en.clock.now, func(b []byte) { recorded = append(recorded, b) })
	p := purchase()
	for i, err := range a.Deliver(context.Background(), []destinations.Event{p, lead("l1")}) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if en.fake.Requests() != 0 || en.fake.TokenFetches() != 0 {
		t.Fatal("a dry run called Google")
	}
	if len(recorded) != 1 || !bytes.Contains(recorded[0], []byte(`"transactionId":"1001"`)) {
		t.Fatalf("recorded %s", recorded)
	}
	out := logs.String()
	if !strings.Contains(out, "google_ads dry run: request not sent") || !strings.Contains(out, p.EventID) {
		t.Errorf("log:\n%s", out)
	}

	// At info level, no personal data.
	info := &testlog.Buffer{}
	d, err := New(en.settings(t, map[string]any{"service_account_json": nil}), destinations.Deps{
		Logger: slog.New(slog.NewTextHandler(info, &slog.HandlerOptions{Level: slog.LevelInfo})), Now: en.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	d.Deliver(context.Background(), []destinations.Event{p})
	for _, v := range []string{"203.0.113.7", sha("janedoe@gmail.com"), "EAIaIQobChMI"} {
		if strings.Contains(info.String(), v) {
			t.Errorf("%q at info level:\n%s", v, info)
		}
	}
}

func TestValidateOnly(t *testing.T) {
	en := newEnv(t)
	api := newCaptureAPI(t)
	a, _ := newAdapter(t, en.settings(t, map[string]any{"validate_only": true, "api_url": api.URL}), en.clock.now, nil)
	if err := a.Deliver(context.Background(), []destinations.Event{lead("a")})[0]; err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(api.Bodies()[0], []byte(`"validateOnly":true`)) {
		t.Errorf("body %s", api.Bodies()[0])
	}
	b, _ := newAdapter(t, en.settings(t, map[string]any{"validate_only": true}), en.clock.now, nil)
	if err := b.Deliver(context.Background(), []destinations.Event{lead("a")})[0]; err != nil {
		t.Fatal(err)
	}
	if n := len(en.fake.Events(testAccount)); n != 0 {
		t.Errorf("validateOnly ingested %d events", n)
	}
}

// TestNoGoroutinesOrSleeps: the adapter's code starts no goroutine and
// never sleeps; the queue owns time.
func TestNoGoroutinesOrSleeps(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: a go statement", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && (n.Sel.Name == "Sleep" || n.Sel.Name == "After" || n.Sel.Name == "Tick") {
					t.Errorf("%s: time.%s", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
}

// BenchmarkDeliver measures mapping, encoding and one round trip for a
// full batch with a cached token.
func BenchmarkDeliver(b *testing.B) {
	en := &env{fake: googleadstest.NewServer(b), clock: &clock{t: testNow}}
	en.fake.SetNow(en.clock.now)
	en.saKey = en.fake.NewServiceAccount(saEmail)
	en.fake.Grant(saEmail, testAccount, purchaseCA, leadCA)
	api := destinationstest.Answering(b, http.StatusOK, nil, `{"requestId":"1"}`)
	a, _ := newAdapter(b, en.settings(b, map[string]any{"api_url": api.URL}), en.clock.now, nil)
	batch := make([]destinations.Event, MaxEvents)
	for i := range batch {
		batch[i] = purchase()
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs := a.Deliver(context.Background(), batch); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}
