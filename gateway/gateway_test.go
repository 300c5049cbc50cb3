package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testIngestKey = "test-ingest-key-0123456789"

// fakeQueue records what the gateway enqueues.
type fakeQueue struct {
	mu    sync.Mutex
	calls []enqueued
	err   error
	panic bool
}

type enqueued struct {
	Site   string
	Events []destinations.Event
}

func (q *fakeQueue) Enqueue(ctx context.Context, siteID string, events []destinations.Event) error {
	if q.panic {
		panic("boom")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.calls = append(q.calls, enqueued{siteID, events})
	return nil
}

func (q *fakeQueue) all() []destinations.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []destinations.Event
	for _, c := range q.calls {
		out = append(out, c.Events...)
	}
	return out
}

// staticSites serves a fixed snapshot.
type staticSites struct{ snap *model.Snapshot }

func (s staticSites) Snapshot() *model.Snapshot { return s.snap }

func testSnapshot(t testing.TB) *model.Snapshot {
	t.Helper()
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
		{ID: "shop", Domains: []string{"shop.example"}, AllowedOrigins: []string{"https://checkout.partner.example"},
			IngestKeys: []string{testIngestKey}},
		{ID: "uk", Domains: []string{"shop.co.uk"}},
		{ID: "private", Domains: []string{"private.example"}, ConsentDefault: model.ConsentDenied},
		{ID: "waiting", Domains: []string{"waiting.example"}, ConsentDefault: model.ConsentWait},
		{ID: "local", Domains: []string{"localhost", "127.0.0.1"}, CollectPath: "/tw/c", ScriptPath: "/tw/s.js"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

type testGW struct {
	*Gateway
	q   *fakeQueue
	reg *prometheus.Registry
	h   http.Handler
	log *bytes.Buffer
}

func newTestGateway(t testing.TB, mod func(*Options)) *testGW {
	t.Helper()
	q := &fakeQueue{}
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	opts := Options{
		Enqueuer:       q,
		Sites:          staticSites{testSnapshot(t)},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
		Logger:         slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:            func() time.Time { return testNow },
		Rand:           rand.NewChaCha8([32]byte{1}),
		Registerer:     reg,
		Gatherer:       reg,
	}
	if mod != nil {
		mod(&opts)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testGW{Gateway: g, q: q, reg: reg, h: g.Handler(), log: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// do sends a request; hdr holds header pairs. Host defaults to t.shop.example.
func (tg *testGW) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://t.shop.example"+path, strings.NewReader(body))
	r.RemoteAddr = "203.0.113.7:51234"
	r.Header.Set("User-Agent", "Mozilla/5.0 (tagway test)") // browsers always send one; a test may replace it
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "User-Agent" {
			r.Header.Del("User-Agent")
		}
		switch hdr[i] {
		case "Host":
			r.Host = hdr[i+1]
		case "RemoteAddr":
			r.RemoteAddr = hdr[i+1]
		default:
			r.Header.Add(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	tg.h.ServeHTTP(w, r)
	return w
}

type errorEnvelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func decodeError(t testing.TB, w *httptest.ResponseRecorder) errorEnvelope {
	t.Helper()
	var e errorEnvelope
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d: Content-Type %q, body %s", w.Code, ct, w.Body)
	}
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: body is not the error envelope (%v): %s", w.Code, err, w.Body)
	}
	return e
}

func TestNewRequiresCollaborators(t *testing.T) {
	_, err := New(Options{})
	if err == nil || !strings.Contains(err.Error(), "Enqueuer") || !strings.Contains(err.Error(), "Sites") {
		t.Fatalf("New(Options{}) = %v; want both missing collaborators named", err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var readyErr error
	draining := false
	tg := newTestGateway(t, func(o *Options) {
		o.Ready = func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return readyErr
		}
		o.Draining = func() bool { return draining }
	})
	if w := tg.do("GET", "/healthz", ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("/healthz = %d %s", w.Code, w.Body)
	}
	if w := tg.do("GET", "/readyz", ""); w.Code != 200 {
		t.Fatalf("/readyz = %d %s", w.Code, w.Body)
	}
	readyErr = errors.New("redis down")
	if w := tg.do("GET", "/readyz", ""); w.Code != 503 || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("/readyz with Ready failing = %d %s", w.Code, w.Body)
	}
	readyErr, draining = nil, true
	if w := tg.do("GET", "/readyz", ""); w.Code != 503 {
		t.Fatalf("/readyz while draining = %d", w.Code)
	}

	tg.do("POST", "/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example")
	tg.do("POST", "/collect", `{`, "Origin", "https://shop.example")
	w := httptest.NewRecorder()
	tg.OpsHandler().ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:9090/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`tagway_events_received_total{site="shop",source="browser"} 1`,
		`tagway_events_rejected_total{reason="invalid_json"} 1`,
		`tagway_http_request_seconds_count{route="collect"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	tg := newTestGateway(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/collect", "POST, OPTIONS"},
		{"PUT", "/v1/events", "POST"},
		{"POST", "/healthz", "GET"},
	} {
		w := tg.do(c.method, c.path, "")
		if w.Code != 405 || w.Header().Get("Allow") != c.allow || decodeError(t, w).Error.Code != "method_not_allowed" {
			t.Errorf("%s %s = %d Allow %q %s", c.method, c.path, w.Code, w.Header().Get("Allow"), w.Body)
		}
	}
	if w := tg.do("GET", "/nope", ""); w.Code != 404 || decodeError(t, w).Error.Code != "not_found" {
		t.Errorf("unknown path without Static = %d %s", w.Code, w.Body)
	}
	if w := tg.do("GET", "/tw.js", ""); w.Code != 404 {
		t.Errorf("/tw.js without Script = %d", w.Code)
	}
}

// fakeScripts is a ScriptSource whose script names the consent default it
// was built for.
type fakeScripts struct{}

func (fakeScripts) ForConsentDefault(consentDefault string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "script "+consentDefault)
	})
}

var _ ScriptSource = fakeScripts{}

func TestScriptStaticAndSitePaths(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) {
		o.Script = fakeScripts{}
		o.Static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static "+r.URL.Path) })
	})
	for _, c := range []struct{ host, path, want string }{
		{"t.shop.example", "/tw.js", "script granted"},
		{"t.shop.example", "/", "static /"},
		{"t.shop.example", "/debug/x", "static /debug/x"},
		{"t.shop.example", "/tw/s.js", "static /tw/s.js"}, // another site's path
		{"localhost:8080", "/tw/s.js", "script granted"},
	} {
		if w := tg.do("GET", c.path, "", "Host", c.host); w.Body.String() != c.want {
			t.Errorf("GET %s%s = %q; want %q", c.host, c.path, w.Body, c.want)
		}
	}
	w := tg.do("POST", "/tw/c", `{"events":[{"event_name":"PageView"}]}`, "Host", "localhost:8080")
	if w.Code != http.StatusNoContent || len(tg.q.all()) != 1 || tg.q.all()[0].Context.SiteID != "local" {
		t.Fatalf("POST a site's collect_path = %d %s", w.Code, w.Body)
	}
}

// TestScriptFollowsSiteConsentDefault checks that each host gets the script
// built for its site's consent default, and an unknown host the most private.
func TestScriptFollowsSiteConsentDefault(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.Script = fakeScripts{} })
	for _, c := range []struct {
		name string
		path string
		hdr  []string
		want string
	}{
		{"granted site", "/tw.js", []string{"Host", "t.shop.example"}, "granted"},
		{"denied site", "/tw.js", []string{"Host", "www.private.example"}, "denied"},
		{"wait site", "/tw.js", []string{"Host", "waiting.example:8443"}, "wait"},
		{"unknown host", "/tw.js", []string{"Host", "stranger.example"}, "wait"},
		{"site's script_path", "/tw/s.js", []string{"Host", "127.0.0.1:8080"}, "granted"},
		{"host from a trusted proxy", "/tw.js", []string{"Host", "gateway.internal", "RemoteAddr", "10.1.2.3:4000",
			"X-Forwarded-Host", "private.example"}, "denied"},
		{"host from an untrusted peer", "/tw.js", []string{"Host", "private.example",
			"X-Forwarded-Host", "shop.example"}, "denied"},
	} {
		if w := tg.do("GET", c.path, "", c.hdr...); w.Code != 200 || w.Body.String() != "script "+c.want {
			t.Errorf("%s: %d %q, want the %s script", c.name, w.Code, w.Body, c.want)
		}
	}

	noConfig := newTestGateway(t, func(o *Options) {
		o.Script = fakeScripts{}
		o.Sites = staticSites{}
	})
	if w := noConfig.do("GET", "/tw.js", ""); w.Body.String() != "script wait" {
		t.Errorf("no configuration loaded: %q, want the wait script", w.Body)
	}
}

func TestPanicBecomes500JSON(t *testing.T) {
	tg := newTestGateway(t, nil)
	tg.q.panic = true
	w := tg.do("POST", "/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example")
	if w.Code != 500 || decodeError(t, w).Error.Code != "internal" {
		t.Fatalf("panic = %d %s", w.Code, w.Body)
	}
	tg.q.panic = false
	if w := tg.do("POST", "/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example"); w.Code != http.StatusNoContent {
		t.Fatalf("after a panic = %d %s", w.Code, w.Body)
	}
}

// countingReader yields n bytes of JSON-ish filler and counts what was read.
type countingReader struct{ n, read int }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(len(p), c.n-c.read)
	for i := range k {
		p[i] = ' '
	}
	c.read += k
	return k, nil
}

func newRequest(method, path string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, "http://t.shop.example"+path, body)
	r.RemoteAddr = "203.0.113.7:51234"
	r.ContentLength = -1
	return r
}

func recorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
