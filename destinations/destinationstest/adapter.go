package destinationstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/testlog"
)

// This file holds what the adapters' own tests share: building an adapter
// under test, stand-in platforms, and the checks every platform's tests
// make (no secret shown, golden payloads, documented fields, settings
// refused, the dry run's logs).

// SHA256 is the lowercase hex SHA-256 of s: what ingest makes of a
// normalized value.
func SHA256(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Ptr returns a pointer to v, for an event's optional fields.
func Ptr[T any](v T) *T { return &v }

// SettingsJSON is base with extra's keys set, a nil value removing one, as
// an adapter's JSON settings.
func SettingsJSON(t testing.TB, base, extra map[string]any) json.RawMessage {
	t.Helper()
	m := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewAdapter builds an adapter under test with newFn from settings: a
// plain client, the clock now, record as the dry run's recorder, and a
// logger at DEBUG writing as text into the buffer it returns.
func NewAdapter(t testing.TB, newFn destinations.Factory, settings json.RawMessage, now func() time.Time,
	record func([]byte)) (destinations.Destination, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	d, err := newFn(settings, destinations.Deps{
		HTTP:   &http.Client{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    now,
		Record: record,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}

// Capture is a stand-in platform: it records every request and answers
// each as its answer function says. Its methods are safe for concurrent
// use.
type Capture struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
}

// Request is one request a Capture received.
type Request struct {
	URL    *url.URL
	Header http.Header
	Body   []byte
}

// NewCapture starts a Capture, closed when the test ends; answer writes
// the answer to a request whose body is body.
func NewCapture(t testing.TB, answer func(w http.ResponseWriter, body []byte)) *Capture {
	c := &Capture{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.requests = append(c.requests, Request{URL: r.URL, Header: r.Header.Clone(), Body: b})
		c.mu.Unlock()
		answer(w, b)
	}))
	t.Cleanup(c.Close)
	return c
}

// Requests returns the requests received so far, in order.
func (c *Capture) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// CaptureAnswering is a Capture that answers every request with status,
// header and body.
func CaptureAnswering(t testing.TB, status int, header map[string]string, body string) *Capture {
	return NewCapture(t, func(w http.ResponseWriter, _ []byte) { writeAnswer(w, status, header, body) })
}

// Bodies returns the bodies of the requests received so far, in order.
func (c *Capture) Bodies() [][]byte {
	var out [][]byte
	for _, r := range c.Requests() {
		out = append(out, r.Body)
	}
	return out
}

// Answering is a stand-in platform that answers every request with status,
// header and body, closed when the test ends. It keeps nothing of the
// requests (Capture does), so a benchmark measures the adapter alone.
func Answering(t testing.TB, status int, header map[string]string, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeAnswer(w, status, header, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeAnswer(w http.ResponseWriter, status int, header map[string]string, body string) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// Hanging is a stand-in platform that holds every request until its client
// gives up or the test ends.
func Hanging(t testing.TB) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

// CheckNoSecret fails t when logs, or an error of errs, shows any of
// secrets. logs must hold something: a test that logged nothing checked
// nothing.
func CheckNoSecret(t testing.TB, logs string, errs []error, secrets ...string) {
	t.Helper()
	if logs == "" {
		t.Error("no log output to check")
	}
	checkNoSecret(t, logs, errs, secrets...)
}

func checkNoSecret(t testing.TB, logs string, errs []error, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs show the secret %q:\n%s", secret, logs)
		}
		for i, err := range errs {
			if err != nil && strings.Contains(fmt.Sprintf("%v %+v", err, err), secret) {
				t.Errorf("event %d: the error shows the secret %q: %+v", i, secret, err)
			}
		}
	}
}

// Golden checks body, indented, against the golden file at path,
// rewriting the file first when update is set (go test -update).
func Golden(t testing.TB, path string, body []byte, update bool) {
	t.Helper()
	var got bytes.Buffer
	if err := json.Indent(&got, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	if update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("payload differs from %s (go test -update rewrites it):\n%s", path, got.String())
	}
}

// CheckDocumented checks the golden payload at path field by field against
// documented, the fields the platform's documentation lists, by their path
// in the body ("data[].user.email[]") and of the kind it says ("hex64": a
// lowercase hex SHA-256 digest, "string", "numstring": a number in a
// string, "number", "integer", "bool"):
// every leaf must be a documented field of its kind, and every documented
// field but those of notInGolden must be there.
func CheckDocumented(t testing.TB, path string, documented map[string]string, notInGolden ...string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var body any
	if err := DecodeJSON(raw, &body); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	walkLeaves("", body, func(p string, v any) {
		seen[p] = true
		kind, ok := documented[p]
		if !ok {
			t.Errorf("%s: not a documented field", p)
			return
		}
		if err := checkKind(kind, v); err != nil {
			t.Errorf("%s = %v: %v", p, v, err)
		}
	})
	var missing []string
	for p := range documented {
		if !seen[p] && !slices.Contains(notInGolden, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("the golden payload lacks %v", missing)
	}
}

func walkLeaves(path string, v any, f func(string, any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkLeaves(p, c, f)
		}
	case []any:
		for _, c := range v {
			walkLeaves(path+"[]", c, f)
		}
	default:
		f(path, v)
	}
}

func checkKind(kind string, v any) error {
	switch kind {
	case "hex64":
		if s, ok := v.(string); !ok || !IsSHA256(s) {
			return errors.New("want a lowercase hex SHA-256 digest")
		}
	case "string":
		if s, ok := v.(string); !ok || s == "" {
			return errors.New("want a non-empty string")
		}
	case "numstring":
		s, ok := v.(string)
		if !ok {
			return errors.New("want a string")
		}
		if _, err := json.Number(s).Float64(); err != nil {
			return errors.New("want a number in a string")
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return errors.New("want a boolean")
		}
	case "number", "integer":
		n, ok := v.(json.Number)
		if !ok {
			return errors.New("want a number")
		}
		if kind == "integer" && strings.ContainsAny(n.String(), ".eE") {
			return errors.New("want an integer")
		}
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	return nil
}

// CheckRefused checks, as a subtest named name, that settings are refused
// by both parse and newFn, with an error naming each of fields.
func CheckRefused(t *testing.T, name string, settings json.RawMessage, fields []string,
	parse func(json.RawMessage) error, newFn destinations.Factory) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		err := parse(settings)
		if err == nil {
			t.Fatal("no error")
		}
		for _, f := range fields {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name %s", err, f)
			}
		}
		if _, err := newFn(settings, destinations.Deps{}); err == nil {
			t.Error("New accepted bad settings")
		}
	})
}

// CheckDryRunLogs delivers batch through an adapter in dry run, built by
// newDryRun with a JSON logger, once at INFO and once at DEBUG: both must
// log the count and every event id; each of personal (IP addresses, user
// agents, cookies, click ids, digests) must appear at DEBUG only.
func CheckDryRunLogs(t *testing.T, newDryRun func(*slog.Logger) (destinations.Destination, error),
	batch []destinations.Event, personal ...string) {
	t.Helper()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		logs := &testlog.Buffer{}
		d, err := newDryRun(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level})))
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range d.Deliver(context.Background(), batch) {
			if err != nil {
				t.Fatal(err)
			}
		}
		out := logs.String()
		if !strings.Contains(out, `"events":`+strconv.Itoa(len(batch))) {
			t.Errorf("%s: the count is missing:\n%s", level, out)
		}
		for _, e := range batch {
			if !strings.Contains(out, e.EventID) {
				t.Errorf("%s: the id %s is missing:\n%s", level, e.EventID, out)
			}
		}
		for _, v := range personal {
			if got := strings.Contains(out, v); got != (level == slog.LevelDebug) {
				t.Errorf("%s: %q in the log: %v", level, v, got)
			}
		}
	}
}

// Outcome is what a platform's answer must make of an event.
type Outcome struct {
	// Kind is the failure's kind; 0 means delivered.
	Kind       destinations.Kind
	Code       string
	Status     int
	WholeBatch bool
	// MinRetryAfter and MaxRetryAfter (0: no bound) bound a retryable
	// failure's delay; a failure of another kind must have none.
	MinRetryAfter, MaxRetryAfter time.Duration
	// Message is a part of the failure's message.
	Message string
}

// CheckOutcome fails t unless err is the outcome want: a typed
// *destinations.Error with want's kind, code, status, whole-batch mark,
// delay and message, or nil when want is delivered.
func CheckOutcome(t testing.TB, err error, want Outcome) {
	t.Helper()
	kind, de := destinations.Classify(err)
	if kind != want.Kind {
		t.Fatalf("kind %v, want %v (%v)", kindName(kind), kindName(want.Kind), err)
	}
	if kind == 0 {
		return
	}
	if !errors.As(err, new(*destinations.Error)) {
		t.Fatalf("%T is not a *destinations.Error", err)
	}
	if de.Code != want.Code || de.Status != want.Status || de.WholeBatch != want.WholeBatch {
		t.Errorf("code %q status %d whole %v; want %q %d %v", de.Code, de.Status, de.WholeBatch, want.Code, want.Status, want.WholeBatch)
	}
	switch {
	case kind != destinations.Retryable && de.RetryAfter != 0:
		t.Errorf("delay %s on a %v error", de.RetryAfter, kind)
	case kind == destinations.Retryable &&
		(de.RetryAfter < want.MinRetryAfter || (want.MaxRetryAfter != 0 && de.RetryAfter > want.MaxRetryAfter)):
		t.Errorf("delay %s, want in [%s, %s]", de.RetryAfter, want.MinRetryAfter, want.MaxRetryAfter)
	}
	if !strings.Contains(de.Message, want.Message) {
		t.Errorf("message %q lacks %q", de.Message, want.Message)
	}
}

// CheckShared fails t unless errs holds n outcomes, all the same: those of
// the events of one request that succeeded or failed as a whole.
func CheckShared(t testing.TB, errs []error, n int) {
	t.Helper()
	if len(errs) != n {
		t.Fatalf("%d outcomes for %d events", len(errs), n)
	}
	for i := 1; i < n; i++ {
		if fmt.Sprint(errs[i]) != fmt.Sprint(errs[0]) {
			t.Errorf("outcomes differ within one request: %v / %v", errs[0], errs[i])
		}
	}
}

// CheckLeaks runs one event through the adapter newAt builds for a
// platform at a URL, once for each of platforms (stand-ins by name:
// answers echoing the credential, redirects that carry it) and once for a
// platform that never answers: neither the errors nor the logs may show
// any of secrets. Each runs as a subtest; newAt should set a short timeout.
func CheckLeaks(t *testing.T, platforms map[string]http.Handler, e destinations.Event,
	newAt func(t *testing.T, url string) (destinations.Destination, *testlog.Buffer), secrets ...string) {
	t.Helper()
	all := maps.Clone(platforms)
	all["timeout"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Once the body is read, the server notices the client hanging up.
		_, _ = io.ReadAll(r.Body)
		<-r.Context().Done()
	})
	for name, h := range all {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			d, logs := newAt(t, srv.URL)
			errs := d.Deliver(context.Background(), []destinations.Event{e})
			CheckNoSecret(t, logs.String(), errs, secrets...)
		})
	}
}

// CheckTimeout delivers e through d, whose platform does not answer within
// d's timeout (Hanging): the outcome must be retryable and say that the
// deadline passed. It returns the outcome.
func CheckTimeout(t testing.TB, d destinations.Destination, e destinations.Event) error {
	t.Helper()
	err := d.Deliver(context.Background(), []destinations.Event{e})[0]
	if kind, de := destinations.Classify(err); kind != destinations.Retryable || !strings.Contains(de.Message, "deadline") {
		t.Errorf("timeout: %v", err)
	}
	return err
}

// CheckDryRun delivers batch through d, which must run dry: every event
// delivered, and no request reaching platform.
func CheckDryRun(t testing.TB, d destinations.Destination, platform *Capture, batch []destinations.Event) {
	t.Helper()
	for i, err := range d.Deliver(context.Background(), batch) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if n := len(platform.Requests()); n != 0 {
		t.Fatalf("dry run sent %d requests", n)
	}
}

// Purchase is the canonical website Purchase of the adapters' golden
// payloads, at now less 90 seconds, with every kind of field filled: each
// adapter's tests add what their platform reads beyond it (click ids,
// cookies, more customer information). Each call returns a new event.
func Purchase(now time.Time) destinations.Event {
	return destinations.Event{
		EventName:      "Purchase",
		EventTime:      now.Add(-90 * time.Second).Unix(),
		EventID:        "3f0c6a52-9b1e-4c7e-8d2a-5b7f1e0c9a11",
		EventSourceURL: "https://shop.example/checkout/thank-you?order=1001",
		ReferrerURL:    "https://shop.example/checkout",
		ActionSource:   "website",
		UserData: destinations.UserData{
			Em:              []string{SHA256("jane@example.com")},
			Ph:              []string{SHA256("16505551212")},
			PhE164:          []string{SHA256("+16505551212")},
			Fn:              []string{SHA256("jane")},
			Ln:              []string{SHA256("doe")},
			Ct:              []string{SHA256("menlopark")},
			St:              []string{SHA256("ca")},
			Zp:              []string{SHA256("94025")},
			Country:         []string{SHA256("us")},
			ExternalID:      []string{SHA256("cust-9")},
			ClientIPAddress: "2001:db8::7",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			Fbp:             "fb.1.1764329000000.482913756104",
		},
		CustomData: &destinations.CustomData{
			Value:       Ptr(129.0),
			Currency:    "EUR",
			ContentIDs:  []string{"sku-1", "sku-2"},
			ContentType: "product",
			Contents: []destinations.Content{
				{ID: "sku-1", Quantity: Ptr(2), ItemPrice: Ptr(49.5), Title: "Trail shoe"},
				{ID: "sku-2", Quantity: Ptr(1), ItemPrice: Ptr(30.0), DeliveryCategory: "home_delivery"},
			},
			NumItems: Ptr(3),
			OrderID:  "1001",
			Custom:   map[string]json.RawMessage{"coupon": json.RawMessage(`"WELCOME10"`)},
		},
		DataProcessingOptions:        []string{"LDU"},
		DataProcessingOptionsCountry: Ptr(1),
		DataProcessingOptionsState:   Ptr(1000),
		Context: destinations.Context{
			SiteID:     "shop",
			ReceivedAt: now.UnixMilli(),
			Source:     "browser",
			Consent:    destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted},
		},
	}
}
