package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/meta"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/internal/secrets"
	"github.com/tagway/tagway/internal/testlog"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

const (
	rootToken = "root-token-0123456789"
	tokenA    = "EAAtenantAsecretTOKEN-aaaa1111"
	tokenB    = "EAAtenantBsecretTOKEN-bbbb2222"
	secretKey = "3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w0=" // 32 bytes, base64
)

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testlog.Buffer

// queueFunc is a fake Enqueuer.
type queueFunc func(ctx context.Context, siteID string, events []destinations.Event) error

func (f queueFunc) Enqueue(ctx context.Context, siteID string, events []destinations.Event) error {
	return f(ctx, siteID, events)
}

// env is an admin API on a real Redis, with every answer it gave kept for
// the secret scan.
type env struct {
	t       *testing.T
	url     string
	rdb     *redis.Client
	store   *config.Store
	queue   *queue.Queue // the real queue that fills the dead-letter streams
	dead    *dispatch.DeadLetterStore
	logs    *syncBuffer
	mu      sync.Mutex
	answers bytes.Buffer
	queued  []destinations.Event
	now     time.Time
	tokens  map[string]string // key id → bearer token
}

func newEnv(t *testing.T, keyring bool, root string) *env {
	t.Helper()
	e := &env{t: t, logs: &syncBuffer{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), tokens: map[string]string{}}
	e.rdb = redistest.Start(t).Client()
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []config.StoreOption{
		config.WithSecretFields(model.SecretFields{"meta": {"access_token"}}),
		config.WithDestinationValidator(func(d model.Destination) error {
			if d.Type != "meta" {
				return fmt.Errorf("type %q is not a destination type", d.Type)
			}
			_, err := meta.ParseSettings(d.Settings)
			return err
		}),
		config.WithClock(e.clock),
	}
	if keyring {
		k, err := secrets.NewKeyring(secretKey)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, config.WithKeyring(k))
	}
	e.store = config.NewStore(e.rdb, logger, opts...)
	e.queue = queue.New(e.rdb, queue.Options{Now: e.clock, Logger: logger})
	e.dead = dispatch.NewDeadLetterStore(e.rdb, e.clock)
	api, err := New(Options{Store: e.store, RootToken: root, Logger: logger, Now: e.clock, DeadLetters: e.dead,
		Enqueuer: queueFunc(func(_ context.Context, _ string, evs []destinations.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.queued = append(e.queued, evs...)
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.tokens["root"] = root
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// resp is one answer.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r resp) errCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r resp) errField() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["field"].(string)
		return s
	}
	return ""
}

// do sends a request as who (a key id, "root", or "" for no token).
func (e *env) do(who, method, path string, body any, header ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if who != "" {
		tok, ok := e.tokens[who]
		if !ok {
			tok = who // a literal token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	e.mu.Lock()
	e.answers.Write(raw)
	for k, v := range res.Header {
		fmt.Fprintln(&e.answers, k, v)
	}
	e.mu.Unlock()
	out := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func (e *env) must(want int, r resp) resp {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d: %s", r.status, want, r.raw)
	}
	return r
}

// newKey creates an API key and remembers its token. The creation answer
// is the one place a token appears; it is not kept for the secret scan.
func (e *env) newKey(id, tenant, role string) {
	e.t.Helper()
	r := e.must(201, e.do("root", "POST", "/admin/v1/keys", map[string]string{"id": id, "tenant": tenant, "role": role}))
	tok, _ := r.body["token"].(string)
	if !strings.HasPrefix(tok, "twk_"+id+"_") {
		e.t.Fatalf("token %q", tok)
	}
	e.tokens[id] = tok
}

// seed builds two tenants, each with a site, a Meta destination, a route and
// keys of every role.
func (e *env) seed() {
	e.t.Helper()
	for _, t := range []string{"a", "b"} {
		e.must(201, e.do("root", "POST", "/admin/v1/tenants", map[string]string{"id": t, "name": "Agency " + t}))
	}
	e.newKey("a-admin", "a", "admin")
	e.newKey("a-editor", "a", "editor")
	e.newKey("a-viewer", "a", "viewer")
	e.newKey("b-admin", "b", "admin")
	for _, x := range []struct{ t, tok, pixel string }{{"a", tokenA, "111"}, {"b", tokenB, "222"}} {
		who := x.t + "-admin"
		e.must(201, e.do(who, "POST", "/admin/v1/sites", map[string]any{"id": x.t + "-shop", "domains": []string{x.t + "-shop.example"}}))
		e.must(201, e.do(who, "POST", "/admin/v1/destinations", map[string]any{"id": x.t + "-meta", "site": x.t + "-shop", "type": "meta",
			"settings": map[string]any{"pixel_id": x.pixel, "access_token": x.tok}}))
		e.must(201, e.do(who, "POST", "/admin/v1/routes", map[string]any{"id": x.t + "-route", "site": x.t + "-shop", "destination": x.t + "-meta"}))
	}
}

func TestEveryPathNeedsAValidTokenFirst(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	paths := []string{"/admin/v1", "/admin/v1/", "/admin/v1/sites", "/admin/v1/sites/a-shop", "/admin/v1/nope/at/all",
		"/admin/v1/keys", "/admin/v1/audit", "/admin/v1/export", "/admin/v1/apply", "/admin/v1/routes/a-route/test-results"}
	for _, p := range paths {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
			for _, who := range []string{"", "wrong-token-wrong-token", "twk_a-admin_" + strings.Repeat("x", 43), "Basic abc"} {
				r := e.do(who, m, p, "{not json")
				if r.status != 401 || r.errCode() != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("%s %s as %q: %d %s; want 401 before anything else", m, p, who, r.status, r.raw)
				}
			}
		}
	}
	// A deleted key stops working at once.
	e.must(204, e.do("root", "DELETE", "/admin/v1/keys/a-viewer", nil))
	if r := e.do("a-viewer", "GET", "/admin/v1/sites", nil); r.status != 401 {
		t.Errorf("deleted key: %d", r.status)
	}
}

func TestDisabledWithoutRootToken(t *testing.T) {
	e := newEnv(t, true, "")
	for _, who := range []string{"", "anything-at-all-1234"} {
		r := e.do(who, "GET", "/admin/v1/sites", nil)
		if r.status != 503 || r.errCode() != "admin_disabled" || !strings.Contains(r.raw, "TAGWAY_ADMIN_TOKEN") {
			t.Errorf("disabled API: %d %s", r.status, r.raw)
		}
	}
}

// TestTenantIsolation: for every endpoint, tenant A's admin key on tenant
// B's resources gets 404 and none of B's data.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	site := map[string]any{"id": "b-shop", "domains": []string{"b-shop.example"}}
	dest := map[string]any{"id": "b-meta", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "9"}}
	route := map[string]any{"id": "b-route", "site": "b-shop", "destination": "b-meta"}
	anyTag := []string{"If-Match", "*"}
	tests := []struct {
		method, path string
		body         any
		header       []string
	}{
		{"GET", "/admin/v1/tenants/b", nil, nil},
		{"PUT", "/admin/v1/tenants/b", map[string]any{"id": "b"}, anyTag},
		{"DELETE", "/admin/v1/tenants/b", nil, nil},
		{"GET", "/admin/v1/sites/b-shop", nil, nil},
		{"PUT", "/admin/v1/sites/b-shop", site, anyTag},
		{"DELETE", "/admin/v1/sites/b-shop", nil, nil},
		{"POST", "/admin/v1/sites/b-shop/ingest-keys", map[string]string{"overlap": "1h"}, nil},
		{"POST", "/admin/v1/sites/b-shop/test-event", map[string]string{"event_name": "Purchase"}, nil},
		{"POST", "/admin/v1/sites", map[string]any{"id": "sneaky", "tenant": "b", "domains": []string{"sneaky.example"}}, nil},
		{"GET", "/admin/v1/destinations/b-meta", nil, nil},
		{"PUT", "/admin/v1/destinations/b-meta", dest, anyTag},
		{"DELETE", "/admin/v1/destinations/b-meta", nil, nil},
		{"POST", "/admin/v1/destinations", map[string]any{"id": "sneaky", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "9"}}, nil},
		{"GET", "/admin/v1/routes/b-route", nil, nil},
		{"PUT", "/admin/v1/routes/b-route", route, anyTag},
		{"DELETE", "/admin/v1/routes/b-route", nil, nil},
		{"GET", "/admin/v1/routes/b-route/test-results", nil, nil},
		{"POST", "/admin/v1/routes", map[string]any{"id": "sneaky", "site": "b-shop", "destination": "b-meta"}, nil},
		{"GET", "/admin/v1/keys/b-admin", nil, nil},
		{"DELETE", "/admin/v1/keys/b-admin", nil, nil},
		{"POST", "/admin/v1/keys", map[string]string{"id": "sneaky", "tenant": "b", "role": "admin"}, nil},
		{"POST", "/admin/v1/apply", map[string]any{"sites": []any{map[string]any{"id": "sneaky", "tenant": "b", "domains": []string{"s.example"}}}}, nil},
		{"POST", "/admin/v1/apply", map[string]any{"sites": []any{}, "destinations": []any{map[string]any{"id": "sneaky", "site": "b-shop", "type": "meta", "settings": map[string]any{"pixel_id": "9"}}}}, nil},
		{"POST", "/admin/v1/apply", map[string]any{"sites": []any{}, "routes": []any{route}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.do("a-admin", tt.method, tt.path, tt.body, tt.header...)
			if r.status != 404 {
				t.Fatalf("status %d, want 404: %s", r.status, r.raw)
			}
			for _, leak := range []string{"b-shop.example", `"222"`, "Agency b", "bbbb"} {
				if strings.Contains(r.raw, leak) {
					t.Errorf("answer leaks %s: %s", leak, r.raw)
				}
			}
		})
	}
	// Lists, audit and export show only A's own resources.
	for _, p := range []string{"/admin/v1/tenants", "/admin/v1/sites", "/admin/v1/destinations", "/admin/v1/routes",
		"/admin/v1/keys", "/admin/v1/audit", "/admin/v1/export", "/admin/v1/destinations?site=b-shop"} {
		r := e.must(200, e.do("a-admin", "GET", p, nil))
		for _, leak := range []string{"b-shop", "b-meta", "b-route", "b-admin", `"b"`} {
			if strings.Contains(r.raw, leak) {
				t.Errorf("GET %s leaks %s: %s", p, leak, r.raw)
			}
		}
		if p != "/admin/v1/destinations?site=b-shop" && !strings.Contains(r.raw, `"a`) {
			t.Errorf("GET %s does not show A's own resources: %s", p, r.raw)
		}
	}
	// B's resources are untouched.
	r := e.must(200, e.do("root", "GET", "/admin/v1/destinations/b-meta", nil))
	if !strings.Contains(r.raw, `"222"`) {
		t.Errorf("b-meta changed: %s", r.raw)
	}
	// A site may not take over a domain of another tenant's site.
	r = e.do("a-admin", "POST", "/admin/v1/sites", map[string]any{"id": "grab", "domains": []string{"t.b-shop.example"}})
	if r.status != 422 || r.errField() != "domains[0]" || strings.Contains(r.raw, "b-shop\"") {
		t.Errorf("domain take-over: %d %s", r.status, r.raw)
	}
}

func TestRoleLimits(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	site := func(id string) map[string]any { return map[string]any{"id": id, "domains": []string{id + ".example"}} }
	tests := []struct {
		who, method, path string
		body              any
		want              int
	}{
		{"a-viewer", "GET", "/admin/v1/sites/a-shop", nil, 200},
		{"a-viewer", "GET", "/admin/v1/destinations", nil, 200},
		{"a-viewer", "GET", "/admin/v1/audit", nil, 200},
		{"a-viewer", "POST", "/admin/v1/sites", site("v1"), 403},
		{"a-viewer", "DELETE", "/admin/v1/routes/a-route", nil, 403},
		{"a-viewer", "POST", "/admin/v1/sites/a-shop/ingest-keys", nil, 403},
		{"a-viewer", "POST", "/admin/v1/apply", map[string]any{"sites": []any{}}, 403},
		{"a-viewer", "GET", "/admin/v1/keys", nil, 403},
		{"a-editor", "POST", "/admin/v1/sites", site("e1"), 201},
		{"a-editor", "DELETE", "/admin/v1/sites/e1", nil, 204},
		{"a-editor", "GET", "/admin/v1/keys", nil, 403},
		{"a-editor", "POST", "/admin/v1/keys", map[string]string{"id": "e-key", "role": "admin"}, 403},
		{"a-editor", "POST", "/admin/v1/tenants", map[string]string{"id": "c"}, 403},
		{"a-admin", "POST", "/admin/v1/keys", map[string]string{"id": "a-ci", "role": "editor"}, 201},
		{"a-admin", "GET", "/admin/v1/keys/a-ci", nil, 200},
		{"a-admin", "PUT", "/admin/v1/tenants/a", map[string]string{"id": "a", "name": "renamed"}, 403},
		{"a-admin", "POST", "/admin/v1/secrets/reencrypt", nil, 403},
		{"root", "POST", "/admin/v1/secrets/reencrypt", nil, 200},
	}
	for _, tt := range tests {
		r := e.do(tt.who, tt.method, tt.path, tt.body, "If-Match", "*")
		if r.status != tt.want {
			t.Errorf("%s %s %s: %d, want %d: %s", tt.who, tt.method, tt.path, r.status, tt.want, r.raw)
		}
	}
}

// TestSecretsNeverLeave: a secret written through the API never appears in
// any answer, log line, export, audit entry, or in clear in Redis.
func TestSecretsNeverLeave(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	r := e.must(200, e.do("a-admin", "GET", "/admin/v1/destinations/a-meta", nil))
	tok, _ := r.body["settings"].(map[string]any)["access_token"].(map[string]any)
	if tok["set"] != true || tok["last4"] != "1111" {
		t.Errorf("redacted secret = %v", tok)
	}
	// Write back what was read: the secret is kept.
	etag := r.header.Get("ETag")
	body := r.body
	body["settings"].(map[string]any)["test_event_code"] = "TEST1"
	e.must(200, e.do("a-admin", "PUT", "/admin/v1/destinations/a-meta", body, "If-Match", etag))
	d, _ := e.store.Snapshot().Destination("a-meta")
	if !strings.Contains(string(d.Settings), tokenA) || !strings.Contains(string(d.Settings), "TEST1") {
		t.Errorf("the round trip lost the secret: %v", e.store.Snapshot().Config().Destinations)
	}
	// Every read path.
	for _, p := range []string{"/admin/v1/destinations", "/admin/v1/destinations/a-meta", "/admin/v1/export", "/admin/v1/audit", "/admin/v1/sites/a-shop"} {
		e.must(200, e.do("root", "GET", p, nil))
		e.must(200, e.do("a-admin", "GET", p, nil))
	}
	// An invalid write does not echo the secret in its error.
	r = e.do("a-admin", "PUT", "/admin/v1/destinations/a-meta", map[string]any{"id": "a-meta", "site": "a-shop", "type": "meta",
		"settings": map[string]any{"pixel_id": "not-digits", "access_token": "EAAnewSECRETvalue-0000"}}, "If-Match", "*")
	if r.status != 422 || r.errField() != "settings" {
		t.Errorf("invalid settings: %d %s", r.status, r.raw)
	}
	e.mu.Lock()
	answers := e.answers.String()
	e.mu.Unlock()
	for _, secret := range []string{tokenA, tokenB, "EAAnewSECRETvalue-0000", rootToken} {
		if strings.Contains(answers, secret) {
			t.Errorf("an answer holds the secret %q", secret)
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the log holds the secret %q", secret)
		}
	}
	all, _ := e.rdb.HGetAll(context.Background(), routing.ConfigKey).Result()
	audit, _ := e.rdb.XRange(context.Background(), routing.AuditKey, "-", "+").Result()
	if dump := fmt.Sprint(all, audit); strings.Contains(dump, tokenA) || strings.Contains(dump, tokenB) {
		t.Error("a secret is in clear in Redis")
	}
	for id := range e.tokens {
		if id != "root" && strings.Contains(fmt.Sprint(all), strings.TrimPrefix(e.tokens[id], "twk_"+id+"_")) {
			t.Errorf("the secret of key %s is stored in clear", id)
		}
	}
}

func TestSecretsRefusedWithoutKey(t *testing.T) {
	e := newEnv(t, false, rootToken)
	e.must(201, e.do("root", "POST", "/admin/v1/sites", map[string]any{"id": "s", "domains": []string{"s.example"}}))
	r := e.do("root", "POST", "/admin/v1/destinations", map[string]any{"id": "m", "site": "s", "type": "meta",
		"settings": map[string]any{"pixel_id": "1", "access_token": "EAAwouldBeStoredInClear"}})
	if r.status != 400 || r.errCode() != "secrets_unavailable" || r.errField() != "settings.access_token" ||
		!strings.Contains(r.raw, "TAGWAY_SECRET_KEY") || strings.Contains(r.raw, "EAAwould") {
		t.Errorf("secret without key: %d %s", r.status, r.raw)
	}
	// Without a secret the destination is accepted (it runs dry).
	e.must(201, e.do("root", "POST", "/admin/v1/destinations", map[string]any{"id": "m", "site": "s", "type": "meta", "settings": map[string]any{"pixel_id": "1"}}))
}

func TestValidationNamesFields(t *testing.T) {
	e := newEnv(t, true, rootToken)
	tests := []struct {
		body        string
		status      int
		code, field string
	}{
		{`{"id":"s","domains":["s.example"],"colour":"red"}`, 400, "invalid_field", "colour"},
		{`{"id":"s","domains":"s.example"}`, 400, "invalid_field", "domains"},
		{`{"id":"s","domains":["s.example"]`, 400, "invalid_json", ""},
		{`{"id":"S S","domains":["s.example"]}`, 422, "invalid_config", "id"},
		{`{"id":"s","domains":["bad host"]}`, 422, "invalid_config", "domains[0]"},
		{`{"id":"s","domains":["s.example"],"region_rules":[{"regions":["Europe"],"withhold":true}]}`, 422, "invalid_config", "region_rules[0].regions[0]"},
		{`{"id":"s","domains":["s.example"],"tenant":"nobody"}`, 422, "invalid_config", "tenant"},
	}
	for _, tt := range tests {
		r := e.do("root", "POST", "/admin/v1/sites", tt.body)
		if r.status != tt.status || r.errCode() != tt.code || r.errField() != tt.field {
			t.Errorf("%s: %d %s/%s, want %d %s/%s: %s", tt.body, r.status, r.errCode(), r.errField(), tt.status, tt.code, tt.field, r.raw)
		}
	}
	e.must(201, e.do("root", "POST", "/admin/v1/sites", `{"id":"s","domains":["s.example"]}`))
	r := e.do("root", "POST", "/admin/v1/destinations", `{"id":"m","site":"s","type":"meta","settings":{"pixel_id":"abc","api_version":"9"}}`)
	if r.status != 422 || r.errField() != "settings" || len(r.body["error"].(map[string]any)["details"].([]any)) != 2 {
		t.Errorf("every problem is listed: %d %s", r.status, r.raw)
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	r := e.must(200, e.do("a-admin", "GET", "/admin/v1/sites/a-shop", nil))
	etag := r.header.Get("ETag")
	site := r.body
	if r := e.do("a-admin", "PUT", "/admin/v1/sites/a-shop", site); r.status != 428 || r.errCode() != "precondition_required" {
		t.Errorf("PUT without If-Match: %d %s", r.status, r.raw)
	}
	if r := e.do("a-admin", "PUT", "/admin/v1/sites/a-shop", site, "If-Match", `"0000"`); r.status != 412 {
		t.Errorf("PUT with a wrong ETag: %d %s", r.status, r.raw)
	}
	// Two editors read the same version and write at once: exactly one
	// wins, the other gets 412 and nothing of it is stored.
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for i, origin := range []string{"https://one.example", "https://two.example"} {
		body := map[string]any{"id": "a-shop", "domains": []any{"a-shop.example"}, "allowed_origins": []string{origin}}
		who := []string{"a-admin", "a-editor"}[i]
		wg.Go(func() { statuses <- e.do(who, "PUT", "/admin/v1/sites/a-shop", body, "If-Match", etag).status })
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[200] != 1 || got[412] != 1 {
		t.Fatalf("concurrent PUTs: %v; want one 200 and one 412", got)
	}
	r = e.must(200, e.do("a-admin", "GET", "/admin/v1/sites/a-shop", nil))
	if origins := fmt.Sprint(r.body["allowed_origins"]); strings.Count(origins, "https://") != 1 || r.header.Get("ETag") == etag {
		t.Errorf("after the race: %v, ETag %s", origins, r.header.Get("ETag"))
	}
}

func TestPaginationAndAudit(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	for i := range 5 {
		e.must(201, e.do("a-editor", "POST", "/admin/v1/sites", map[string]any{"id": fmt.Sprintf("p%d", i), "domains": []string{fmt.Sprintf("p%d.example", i)}}))
	}
	var ids []string
	cursor := ""
	for range 10 {
		r := e.must(200, e.do("a-viewer", "GET", "/admin/v1/sites?limit=2&cursor="+cursor, nil))
		items := r.body["items"].([]any)
		if len(items) > 2 {
			t.Fatalf("page of %d", len(items))
		}
		for _, it := range items {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
		cursor, _ = r.body["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if fmt.Sprint(ids) != "[a-shop p0 p1 p2 p3 p4]" {
		t.Errorf("paged ids %v", ids)
	}
	if r := e.do("a-viewer", "GET", "/admin/v1/sites?limit=1000", nil); r.status != 400 || r.errField() != "limit" {
		t.Errorf("limit over the maximum: %d", r.status)
	}

	r := e.must(200, e.do("a-viewer", "GET", "/admin/v1/audit?limit=3", nil))
	items := r.body["items"].([]any)
	first := items[0].(map[string]any)
	if len(items) != 3 || first["actor"] != "a-editor" || first["op"] != "create" || first["kind"] != "site" ||
		first["resource_id"] != "p4" || first["tenant"] != "a" || r.body["next_cursor"] == "" {
		t.Errorf("audit page %s", r.raw)
	}
	r = e.must(200, e.do("root", "GET", "/admin/v1/audit?limit=200", nil))
	var sawSecretField bool
	for _, it := range r.body["items"].([]any) {
		m := it.(map[string]any)
		if m["kind"] == "destination" && strings.Contains(fmt.Sprint(m["fields"]), "settings.access_token") {
			sawSecretField = true
		}
	}
	if !sawSecretField {
		t.Errorf("the audit does not say the token was set: %s", r.raw)
	}
}

func TestIngestKeyRotation(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	r := e.must(201, e.do("a-editor", "POST", "/admin/v1/sites/a-shop/ingest-keys", map[string]string{"overlap": "0s"}))
	first, _ := r.body["ingest_key"].(string)
	r = e.must(201, e.do("a-editor", "POST", "/admin/v1/sites/a-shop/ingest-keys", map[string]string{"overlap": "1h"}))
	second, _ := r.body["ingest_key"].(string)
	if first == "" || second == "" || first == second {
		t.Fatalf("keys %q %q", first, second)
	}
	snap := e.store.Snapshot()
	for key, want := range map[string]bool{first: true, second: true} {
		if s, ok := snap.SiteByIngestKey(key); ok != want || s.ID != "a-shop" {
			t.Errorf("during the overlap, key valid = %v", ok)
		}
	}
	e.advance(time.Hour)
	if _, ok := snap.SiteByIngestKey(first); ok {
		t.Error("the old key outlived its overlap")
	}
	if _, ok := snap.SiteByIngestKey(second); !ok {
		t.Error("the new key does not work")
	}
	all, _ := e.rdb.HGetAll(context.Background(), routing.ConfigKey).Result()
	if strings.Contains(fmt.Sprint(all), first) || strings.Contains(fmt.Sprint(all), second) {
		t.Error("an ingest key is stored in clear")
	}
	if r := e.do("a-editor", "POST", "/admin/v1/sites/a-shop/ingest-keys", map[string]string{"overlap": "90d"}); r.errField() != "overlap" {
		t.Errorf("bad overlap: %s", r.raw)
	}
}

func TestApplyExportRoundTrip(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	export := e.must(200, e.do("a-admin", "GET", "/admin/v1/export", nil))
	// Applying the export changes nothing, secrets included.
	r := e.must(200, e.do("a-admin", "POST", "/admin/v1/apply", export.raw))
	if n := len(r.body["changes"].([]any)); n != 0 {
		t.Fatalf("re-applying the export made %d changes: %s", n, r.raw)
	}
	cfg := map[string]any{
		"sites": []any{map[string]any{"id": "a-shop", "domains": []string{"a-shop.example", "a-shop.co.uk"}},
			map[string]any{"id": "a-two", "domains": []string{"a-two.example"}}},
		"destinations": []any{map[string]any{"id": "a-meta", "site": "a-shop", "type": "meta",
			"settings": map[string]any{"pixel_id": "111", "access_token": map[string]any{"set": true}}}},
		"routes": []any{map[string]any{"id": "a-route", "site": "a-shop", "destination": "a-meta", "exclude_events": []string{"PageView"}}},
	}
	version := e.store.Version()
	r = e.must(200, e.do("a-admin", "POST", "/admin/v1/apply?dry_run=true&prune=true", cfg))
	if r.body["dry_run"] != true || e.store.Version() != version {
		t.Fatalf("dry run wrote: %s", r.raw)
	}
	diff := fmt.Sprint(r.body["changes"])
	for _, want := range []string{"op:update", "id:a-shop", "op:create", "id:a-two", "id:a-route"} {
		if !strings.Contains(diff, want) {
			t.Errorf("dry-run diff lacks %s: %s", want, diff)
		}
	}
	if strings.Contains(diff, "b-") {
		t.Errorf("the diff shows another tenant: %s", diff)
	}
	r = e.must(200, e.do("a-admin", "POST", "/admin/v1/apply?prune=true", cfg))
	if r.body["dry_run"] != false {
		t.Fatal(r.raw)
	}
	again := e.must(200, e.do("a-admin", "POST", "/admin/v1/apply?prune=true", cfg))
	if n := len(again.body["changes"].([]any)); n != 0 {
		t.Errorf("apply is not idempotent: %s", again.raw)
	}
	snap := e.store.Snapshot()
	if _, ok := snap.Site("a-two"); !ok {
		t.Error("a-two not created")
	}
	if d, _ := snap.Destination("a-meta"); !strings.Contains(string(d.Settings), tokenA) {
		t.Error("the redacted secret did not keep its value")
	}
	if _, ok := snap.Destination("b-meta"); !ok {
		t.Error("prune removed another tenant's destination")
	}
	// Prune: a file without a-two removes it.
	cfg["sites"] = cfg["sites"].([]any)[:1]
	r = e.must(200, e.do("a-admin", "POST", "/admin/v1/apply?prune=true", cfg))
	if !strings.Contains(fmt.Sprint(r.body["changes"]), "op:delete") {
		t.Errorf("prune: %s", r.raw)
	}
	if _, ok := e.store.Snapshot().Site("a-two"); ok {
		t.Error("a-two survived the prune")
	}
	// A redacted secret with nothing to keep is an error naming the field.
	bad := map[string]any{"sites": []any{}, "destinations": []any{map[string]any{"id": "a-new", "site": "a-shop", "type": "meta",
		"settings": map[string]any{"pixel_id": "1", "access_token": map[string]any{"set": true, "last4": "1111"}}}}}
	if r := e.do("a-admin", "POST", "/admin/v1/apply", bad); r.status != 400 || r.errField() != "destinations[0].settings.access_token" {
		t.Errorf("redacted secret without a value: %d %s", r.status, r.raw)
	}
}

func TestTestEventEnqueuesSyntheticEvent(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	r := e.must(202, e.do("a-editor", "POST", "/admin/v1/sites/a-shop/test-event", map[string]string{"event_name": "Purchase", "test_event_code": "TEST9"}))
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queued) != 1 {
		t.Fatalf("queued %d", len(e.queued))
	}
	ev := e.queued[0]
	if ev.EventName != "Purchase" || ev.Context.SiteID != "a-shop" || ev.Context.Source != dispatch.SourceTest ||
		ev.Context.TestEventCode != "TEST9" || r.body["event_id"] != ev.EventID {
		t.Errorf("queued %+v; answer %s", ev, r.raw)
	}
}
