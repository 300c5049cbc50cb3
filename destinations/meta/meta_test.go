package meta

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
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/testlog"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const (
	testPixel = "1234567890"
	testToken = "EAAsecretTOKENvalue42"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func sha(s string) string { return destinationstest.SHA256(s) }

// settingsJSON builds settings for the adapter under test.
func settingsJSON(t testing.TB, graphURL string, extra map[string]any) json.RawMessage {
	return destinationstest.SettingsJSON(t, map[string]any{"pixel_id": testPixel, "access_token": testToken, "graph_url": graphURL}, extra)
}

// newAdapter builds an adapter logging into the returned buffer.
func newAdapter(t testing.TB, settings json.RawMessage, record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	return destinationstest.NewAdapter(t, New, settings, fixedNow, record)
}

// purchase is a website Purchase with every kind of field filled.
func purchase() destinations.Event {
	p := destinationstest.Purchase(testNow)
	p.UserData.PhE164 = nil
	p.UserData.Fbc = "fb.1.1764330000000.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
	p.CustomData.Contents[0].Title = ""
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
			Fbp:             "fb.1.1764329000000.482913756104",
		},
		Context: destinations.Context{SiteID: "shop"},
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"pixel_id":"123","access_token":"tokSECRET"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{PixelID: "123", AccessToken: "tokSECRET", GraphURL: DefaultGraphURL, APIVersion: "v24.0",
		PartnerAgent: "tagway", Timeout: Duration(1500 * time.Millisecond)}
	if s != want {
		t.Errorf("defaults: got %+v, want %+v", s, want)
	}
	if got := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(got, "tokSECRET") {
		t.Errorf("formatted settings show the token: %s", got)
	}

	s, err = ParseSettings(json.RawMessage(`{"pixel_id":"123","timeout":"800ms","api_version":"v23.0","dry_run":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.Timeout) != 800*time.Millisecond || s.APIVersion != "v23.0" || !s.dryRun() {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"unknown field", `{"pixel_id":"123","pixelid":"1"}`, []string{"pixelid"}},
		{"not an object", `[]`, []string{"meta settings"}},
		{"trailing data", `{"pixel_id":"123"} {}`, []string{"trailing"}},
		{"missing pixel", `{}`, []string{"pixel_id"}},
		{"pixel not digits", `{"pixel_id":"12a"}`, []string{"pixel_id"}},
		{"bad version", `{"pixel_id":"1","api_version":"24.0"}`, []string{"api_version"}},
		{"bad timeout", `{"pixel_id":"1","timeout":"soon"}`, []string{"timeout"}},
		{"negative timeout", `{"pixel_id":"1","timeout":"-1s"}`, []string{"timeout"}},
		{"bad graph url", `{"pixel_id":"1","graph_url":"ftp://x"}`, []string{"graph_url"}},
		{"graph url with query", `{"pixel_id":"1","graph_url":"https://x/?access_token=a"}`, []string{"graph_url"}},
		{"several", `{"pixel_id":"x","api_version":"v1","graph_url":"nope"}`, []string{"pixel_id", "api_version", "graph_url"}},
	}
	parse := func(raw json.RawMessage) error { _, err := ParseSettings(raw); return err }
	for _, tc := range bad {
		destinationstest.CheckRefused(t, tc.name, json.RawMessage(tc.json), tc.fields, parse, New)
	}
}

func TestMaxBatchAndAge(t *testing.T) {
	d, _ := newAdapter(t, settingsJSON(t, "http://127.0.0.1:1", nil), nil)
	if d.MaxBatch() != 1000 {
		t.Errorf("MaxBatch %d", d.MaxBatch())
	}
	al, ok := d.(destinations.AgeLimiter)
	if !ok {
		t.Fatal("not an AgeLimiter")
	}
	if got := al.MaxEventAge(pageView("a")); got != 7*24*time.Hour {
		t.Errorf("website age %s", got)
	}
	if got := al.MaxEventAge(destinations.Event{ActionSource: "physical_store"}); got != 62*24*time.Hour {
		t.Errorf("physical_store age %s", got)
	}
}

// newCaptureServer answers every request with 200 events_received = the
// number of events sent, and keeps the requests.
func newCaptureServer(t *testing.T) *destinationstest.Capture {
	return destinationstest.NewCapture(t, func(w http.ResponseWriter, b []byte) {
		var body struct{ Data []json.RawMessage }
		_ = json.Unmarshal(b, &body)
		fmt.Fprintf(w, `{"events_received":%d,"messages":[],"fbtrace_id":"A1"}`, len(body.Data))
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
	if path := srv.Requests()[0].URL.RequestURI(); path != "/v24.0/"+testPixel+"/events" {
		t.Errorf("path %q", path)
	}
	destinationstest.Golden(t, filepath.Join("testdata", "purchase.golden.json"), srv.Bodies()[0], *update)
}

// TestFakeAcceptsPayloads sends real payloads through the strict fake: the
// golden Purchase, a batch split by test event code, and a batch bigger than
// one request.
func TestFakeAcceptsPayloads(t *testing.T) {
	fake := metatest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), map[string]any{"test_event_code": "TESTDEFAULT"}), nil)

	p := purchase()
	a, b, c := pageView("a"), pageView("b"), pageView("c")
	b.Context.TestEventCode = "TESTB"
	for i, err := range d.Deliver(context.Background(), []destinations.Event{p, a, b, c}) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if fake.Requests() != 2 {
		t.Errorf("%d requests, want one per test event code", fake.Requests())
	}
	got := fake.Events(testPixel)
	codes := map[string]string{}
	for _, r := range got {
		codes[r.EventID] = r.TestEventCode
		if r.PartnerAgent != "tagway" || r.TokenIn != "body" || r.ContentType != "application/json" {
			t.Errorf("event %s: partner %q, token in %q, type %q", r.EventID, r.PartnerAgent, r.TokenIn, r.ContentType)
		}
		if _, ok := r.Event["tw"]; ok {
			t.Errorf("event %s carries tagway's context", r.EventID)
		}
	}
	want := map[string]string{p.EventID: "TESTDEFAULT", "a": "TESTDEFAULT", "b": "TESTB", "c": "TESTDEFAULT"}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("test codes %v, want %v", codes, want)
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
}

// TestPrecheck: an event Meta would refuse fails alone; the rest is sent.
func TestPrecheck(t *testing.T) {
	fake := metatest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)

	old := pageView("old")
	old.EventTime = testNow.Add(-7*24*time.Hour - time.Minute).Unix()
	store := pageView("store")
	store.ActionSource = "physical_store"
	store.EventSourceURL = ""
	store.EventTime = testNow.Add(-30 * 24 * time.Hour).Unix()
	noName := pageView("noname")
	noName.EventName = ""
	noTime := pageView("notime")
	noTime.EventTime = 0

	errs := d.Deliver(context.Background(), []destinations.Event{pageView("ok"), old, store, noName, noTime})
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

func graphBody(code, subcode int, transient bool) string {
	return fmt.Sprintf(`{"error":{"message":"Invalid parameter","type":"OAuthException","code":%d,"error_subcode":%d,"is_transient":%t,"error_user_title":"Title %d","error_user_msg":"User message %d","fbtrace_id":"AbCdEf"}}`,
		code, subcode, transient, code, code)
}

func TestClassification(t *testing.T) {
	const usage = `{"1234":[{"type":"ads_management","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":15}]}`
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
		{name: "1 unknown", status: 500, body: graphBody(1, 0, false), kind: destinations.Retryable, code: "1"},
		{name: "2 service", status: 503, body: graphBody(2, 0, true), kind: destinations.Retryable, code: "2"},
		{name: "2 with Retry-After", status: 503, header: map[string]string{"Retry-After": "30"}, body: graphBody(2, 0, true),
			kind: destinations.Retryable, code: "2", minDelay: 30 * time.Second, maxDelay: 30 * time.Second},
		{name: "4 app limit", status: 400, body: graphBody(4, 0, true), kind: destinations.Retryable, code: "4", minDelay: time.Minute},
		{name: "17 user limit", status: 400, body: graphBody(17, 0, false), kind: destinations.Retryable, code: "17", minDelay: time.Minute},
		{name: "32 page limit", status: 400, body: graphBody(32, 0, false), kind: destinations.Retryable, code: "32", minDelay: time.Minute},
		{name: "341 app limit reached", status: 400, body: graphBody(341, 0, false), kind: destinations.Retryable, code: "341", minDelay: time.Minute},
		{name: "613 rate limit", status: 400, body: graphBody(613, 0, false), kind: destinations.Retryable, code: "613", minDelay: time.Minute},
		{name: "80000 BUC", status: 400, body: graphBody(80000, 0, false), kind: destinations.Retryable, code: "80000", minDelay: time.Minute},
		{name: "80004 ad account", status: 400, body: graphBody(80004, 2446079, false), kind: destinations.Retryable, code: "80004/2446079", minDelay: time.Minute},
		{name: "80014 BUC", status: 429, body: graphBody(80014, 0, false), kind: destinations.Retryable, code: "80014", minDelay: time.Minute},
		{name: "rate limit with Retry-After", status: 400, header: map[string]string{"Retry-After": "300"}, body: graphBody(4, 0, false),
			kind: destinations.Retryable, code: "4", minDelay: 5 * time.Minute},
		{name: "rate limit with BUC usage header", status: 400, header: map[string]string{"X-Business-Use-Case-Usage": usage}, body: graphBody(80004, 0, false),
			kind: destinations.Retryable, code: "80004", minDelay: 15 * time.Minute, maxDelay: 15 * time.Minute},
		{name: "368 policy block", status: 400, body: graphBody(368, 1390008, false), kind: destinations.Retryable, code: "368/1390008", minDelay: time.Hour},
		{name: "190 token", status: 400, body: graphBody(190, 463, false), kind: destinations.Paused, code: "190/463"},
		{name: "102 session", status: 400, body: graphBody(102, 0, false), kind: destinations.Paused, code: "102"},
		{name: "10 permission", status: 400, body: graphBody(10, 0, false), kind: destinations.Paused, code: "10"},
		{name: "200 permission", status: 403, body: graphBody(200, 0, false), kind: destinations.Paused, code: "200"},
		{name: "294 permission", status: 400, body: graphBody(294, 0, false), kind: destinations.Paused, code: "294"},
		{name: "299 permission", status: 400, body: graphBody(299, 0, false), kind: destinations.Paused, code: "299"},
		{name: "100 invalid", status: 400, body: graphBody(100, 0, false), kind: destinations.Permanent, code: "100", whole: true, message: "User message 100"},
		{name: "100/33 unknown pixel", status: 400, body: graphBody(100, 33, false), kind: destinations.Paused, code: "100/33"},
		{name: "100/2804003 too old", status: 400,
			body: `{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"is_transient":false,"error_user_title":"Event Timestamp Too Old","error_user_msg":"The timestamp for this event is too far in the past.","fbtrace_id":"AxYz"}}`,
			kind: destinations.Permanent, code: "100/2804003", whole: true, message: "Invalid parameter: Event Timestamp Too Old: The timestamp for this event is too far in the past. (fbtrace_id AxYz)"},
		{name: "100/2804050 too little data", status: 400, body: graphBody(100, 2804050, false), kind: destinations.Permanent, code: "100/2804050", whole: true, message: "Title 100"},
		{name: "unknown transient", status: 400, body: graphBody(9007, 0, true), kind: destinations.Retryable, code: "9007"},
		{name: "unknown code on 400", status: 400, body: graphBody(2500, 0, false), kind: destinations.Permanent, code: "2500"},
		{name: "unknown code on 500", status: 500, body: graphBody(9999, 0, false), kind: destinations.Retryable, code: "9999"},
		{name: "unknown code on 401", status: 401, body: graphBody(9999, 0, false), kind: destinations.Paused, code: "9999"},
		{name: "502 html", status: 502, body: "<html>bad gateway</html>", kind: destinations.Retryable, message: "bad gateway"},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, body: "", kind: destinations.Retryable,
			minDelay: 7 * time.Second, maxDelay: 7 * time.Second},
		{name: "429 plain", status: 429, body: "slow down", kind: destinations.Retryable},
		{name: "404 plain", status: 404, body: "not found", kind: destinations.Permanent},
		{name: "403 plain", status: 403, body: "", kind: destinations.Paused},
		{name: "307 redirect not followed", status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/steal"}, kind: destinations.Permanent},
		{name: "200 count mismatch", status: 200, body: `{"events_received":1,"messages":[],"fbtrace_id":"A"}`, kind: destinations.Retryable, message: "received 1 of 2"},
		{name: "200 without count", status: 200, body: `<html>ok</html>`, kind: destinations.Retryable},
		{name: "200 success", status: 200, body: `{"events_received":2,"messages":[],"fbtrace_id":"A"}`},
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
			var body map[string]any
			if err := json.Unmarshal(recorded[0], &body); err != nil {
				t.Fatal(err)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("recorded body holds access_token")
			}
			if data, _ := body["data"].([]any); len(data) != 2 || body["partner_agent"] != "tagway" {
				t.Errorf("recorded body %s", recorded[0])
			}
			lines := strings.Count(logs.String(), "meta dry run: request not sent")
			if lines != 2 || !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), `\"event_name\":\"Purchase\"`) {
				t.Errorf("dry-run log:\n%s", logs)
			}
		})
	}
}

// TestTokenNeverLeaks scans logs and errors for the token in every path,
// including error bodies and redirects that echo it back.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			w.WriteHeader(status)
			fmt.Fprintf(w, "bad token %s", body.AccessToken)
		}
	}
	handlers := map[string]http.Handler{
		"success": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"events_received":1}`)
		}),
		"graph error echoing token": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"message":"Malformed access token %s","type":"OAuthException","code":190,"fbtrace_id":"A"}}`, testToken)
		}),
		"token split by an invalid byte": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			fmt.Fprintf(w, "bad token %s\xff%s", testToken[:5], testToken[5:])
		}),
		"permanent echo": echo(400),
		"5xx echo":       echo(502),
		"redirect": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?access_token="+testToken, http.StatusTemporaryRedirect)
		}),
	}
	destinationstest.CheckLeaks(t, handlers, pageView("a"), func(t *testing.T, url string) (destinations.Destination, *testlog.Buffer) {
		return newAdapter(t, settingsJSON(t, url, map[string]any{"timeout": "50ms"}), nil)
	}, testToken)
	t.Run("dry run", func(t *testing.T) {
		var rec []byte
		d, logs := newAdapter(t, settingsJSON(t, "http://127.0.0.1:1", map[string]any{"dry_run": true}), func(b []byte) { rec = b })
		errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
		checkNoToken(t, logs.String()+string(rec), errs)
		if rec == nil {
			t.Error("nothing recorded")
		}
	})
}

func checkNoToken(t *testing.T, logs string, errs []error) {
	t.Helper()
	destinationstest.CheckNoSecret(t, logs, errs, testToken)
}

// TestFakeRejections runs the adapter against the strict fake's own errors.
func TestFakeRejections(t *testing.T) {
	fake := metatest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	fake.AddPixel("555", "EAAother")

	raw := pageView("raw")
	raw.UserData.Em = []string{"jane@example.com"}
	cases := []struct {
		name     string
		settings map[string]any
		event    destinations.Event
		kind     destinations.Kind
		code     string
	}{
		{"wrong token", map[string]any{"access_token": "EAAwrong"}, pageView("a"), destinations.Paused, "190"},
		{"pixel of another token", map[string]any{"pixel_id": "555"}, pageView("a"), destinations.Paused, "100/33"},
		{"unhashed email", nil, raw, destinations.Permanent, "100"},
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

	fake.FailNext(1, http.StatusBadRequest, metatest.GraphError{Code: 80004, Type: "OAuthException",
		Message: "There have been too many calls to this ad-account.", IsTransient: true}.Body())
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("a")})
	if kind, de := destinations.Classify(errs[0]); kind != destinations.Retryable || de.RetryAfter < time.Minute {
		t.Errorf("throttled: %v (delay %s)", errs[0], de.RetryAfter)
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
	srv := destinationstest.Answering(b, http.StatusOK, nil, `{"events_received":1000}`)
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

// TestWholeBatchMarking: a code-100 rejection of a multi-event request is
// marked WholeBatch so the queue splits it; one event alone, a paused
// 100/33 and other codes are not.
func TestWholeBatchMarking(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		events int
		whole  bool
		kind   destinations.Kind
	}{
		{"100 on a batch", graphBody(100, 0, false), 3, true, destinations.Permanent},
		{"100/2804003 on a batch", graphBody(100, 2804003, false), 2, true, destinations.Permanent},
		{"100/2804050 on a batch", graphBody(100, 2804050, false), 2, true, destinations.Permanent},
		{"100 on one event", graphBody(100, 0, false), 1, false, destinations.Permanent},
		{"100/33 pauses", graphBody(100, 33, false), 3, false, destinations.Paused},
		{"190 pauses", graphBody(190, 0, false), 3, false, destinations.Paused},
		{"throttled", graphBody(4, 0, true), 3, false, destinations.Retryable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := destinationstest.Answering(t, http.StatusBadRequest, nil, tc.body)
			d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
			batch := make([]destinations.Event, tc.events)
			for i := range batch {
				batch[i] = pageView(fmt.Sprint("e", i))
			}
			for i, err := range d.Deliver(context.Background(), batch) {
				kind, de := destinations.Classify(err)
				if kind != tc.kind || de.WholeBatch != tc.whole {
					t.Errorf("event %d: %v kind %v WholeBatch %v; want %v %v", i, err, kind, de.WholeBatch, tc.kind, tc.whole)
				}
			}
		})
	}

	// Against the strict fake: one stale event sinks a batch of two, which
	// comes back marked for splitting.
	fake := metatest.NewServer(t)
	fake.SetNow(fixedNow)
	fake.AddPixel(testPixel, testToken)
	d, _ := newAdapter(t, settingsJSON(t, fake.URL(), nil), nil)
	bad := pageView("bad")
	bad.UserData = destinations.UserData{ClientUserAgent: "Mozilla/5.0"} // too little customer information
	errs := d.Deliver(context.Background(), []destinations.Event{pageView("good"), bad})
	for i, err := range errs {
		if _, de := destinations.Classify(err); de == nil || !de.WholeBatch || de.Code != "100/2804050" {
			t.Errorf("event %d: %v; want a WholeBatch 100/2804050", i, err)
		}
	}
}

// TestDryRunLogsNoPersonalDataAtInfo: the quick start's dry run logs how
// many events it held back and their ids at info level; the request body
// (IP addresses, user agents, cookies, hashed e-mails) only at debug.
func TestDryRunLogsNoPersonalDataAtInfo(t *testing.T) {
	p := purchase()
	p.UserData.ClientIPAddress, p.UserData.ClientUserAgent, p.UserData.Fbp = "203.0.113.99", "Mozilla/5.0 (Secret UA)", "fb.1.1764329000000.999"
	destinationstest.CheckDryRunLogs(t, func(log *slog.Logger) (destinations.Destination, error) {
		return New(json.RawMessage(`{"pixel_id":"123"}`), destinations.Deps{Logger: log, Now: fixedNow})
	}, []destinations.Event{p, pageView("pv-1")}, "203.0.113.99", "Secret UA", "fb.1.1764329000000.999", sha("jane@example.com"))
}

// TestOtherPlatformsDigestsStayHome: the digest variants ingest computes for
// other platforms (E.164 phones, Google's e-mails) never reach Meta.
func TestOtherPlatformsDigestsStayHome(t *testing.T) {
	srv := newCaptureServer(t)
	d, _ := newAdapter(t, settingsJSON(t, srv.URL, nil), nil)
	ev := purchase()
	ev.UserData.PhE164 = []string{strings.Repeat("a", 64)}
	ev.UserData.EmGoogle = []string{strings.Repeat("b", 64)}
	if errs := d.Deliver(context.Background(), []destinations.Event{ev}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for _, k := range []string{"ph_e164", "em_google", strings.Repeat("a", 64)} {
		if bytes.Contains(srv.Bodies()[0], []byte(k)) {
			t.Errorf("the request to Meta carries %q:\n%s", k, srv.Bodies()[0])
		}
	}
}
