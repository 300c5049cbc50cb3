package e2e

// End-to-end tests of tenant isolation on a running gateway: the three
// holes of issue 13 reproduced as they were reported (two tenants, an admin
// key each, B owning site sb with Meta destination db and route rb).

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

// apiAnswer is one admin API answer.
type apiAnswer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (a apiAnswer) field() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["field"].(string)
	return s
}

// callAPI sends one admin API request with token.
func callAPI(t *testing.T, url, token, method, path string, body any, header ...string) apiAnswer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiAnswer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func mustAPI(t *testing.T, want int, a apiAnswer) apiAnswer {
	t.Helper()
	if a.status != want {
		t.Fatalf("status %d, want %d: %s", a.status, want, a.raw)
	}
	return a
}

// twoTenantGateway runs a gateway with the admin API on, tenants ta and tb
// with an admin key each (and a viewer of tb), and B's site sb (ingest key
// keyB) with Meta destination db and route rb delivering to graph.
type twoTenantGateway struct {
	url, ta, tb, tbViewer string
	graph                 *metatest.Server
	rs                    *redistest.Server
	rdb                   *redis.Client
	logs                  *syncBuffer
}

const (
	isoPixel = "424242"
	isoToken = "EAAtenantBtoken-SECRET-9876"
	isoKeyB  = "tb-ingest-key-0123456789-zzzz"
)

func startTwoTenants(t *testing.T) *twoTenantGateway {
	t.Helper()
	gw := startGateway(t, gatewayOptions{env: map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey,
		"TAGWAY_SITE_REUSE_DELAY": "300ms"}})
	g := &twoTenantGateway{url: gw.URL, graph: gw.Graph, rs: gw.Redis, rdb: gw.Redis.Client(), logs: gw.Logs}
	g.graph.AddPixel(isoPixel, isoToken)
	for _, tenant := range []string{"ta", "tb"} {
		mustAPI(t, 201, callAPI(t, g.url, adminToken, "POST", "/admin/v1/tenants", map[string]string{"id": tenant}))
	}
	key := func(id, tenant, role string) string {
		a := mustAPI(t, 201, callAPI(t, g.url, adminToken, "POST", "/admin/v1/keys", map[string]string{"id": id, "tenant": tenant, "role": role}))
		tok, _ := a.body["token"].(string)
		return tok
	}
	g.ta, g.tb, g.tbViewer = key("ta-admin", "ta", "admin"), key("tb-admin", "tb", "admin"), key("tb-viewer", "tb", "viewer")
	mustAPI(t, 201, callAPI(t, g.url, g.tb, "POST", "/admin/v1/sites", map[string]any{"id": "sb", "domains": []string{"sb.example"}, "ingest_keys": []string{isoKeyB}}))
	mustAPI(t, 201, callAPI(t, g.url, g.tb, "POST", "/admin/v1/destinations", map[string]any{"id": "db", "site": "sb", "type": "meta",
		"settings": map[string]any{"pixel_id": isoPixel, "access_token": isoToken}}))
	mustAPI(t, 201, callAPI(t, g.url, g.tb, "POST", "/admin/v1/routes", map[string]any{"id": "rb", "site": "sb", "destination": "db"}))
	return g
}

// serverEvent posts one Purchase to /v1/events with key and returns the
// status.
func serverEvent(t *testing.T, url, key, eventID string) int {
	t.Helper()
	body := `{"data":[{"event_name":"Purchase","event_time":` + itoa(time.Now().Unix()) + `,"event_id":"` + eventID + `",
		"action_source":"website","event_source_url":"https://sb.example/thanks",
		"user_data":{"em":"jane@sb.example","client_user_agent":"Mozilla/5.0 (isolation)"},
		"custom_data":{"value":10,"currency":"EUR"}}]}`
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestIssue13WriteOnlySecretStaysWriteOnly: B's key cannot point db at an
// address of its choosing while keeping the stored token; deliveries keep
// going to the operator's Graph URL (TAGWAY_META_GRAPH_URL, which applies
// to tenants' destinations too), nothing reaches the other address, and no
// dead letter carries its answer.
func TestIssue13WriteOnlySecretStaysWriteOnly(t *testing.T) {
	g := startTwoTenants(t)
	var captured atomic.Int64
	capture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		captured.Add(1)
		io.WriteString(w, `{"error":{"message":"whatever that server said","code":1}}`)
	}))
	defer capture.Close()
	etag := mustAPI(t, 200, callAPI(t, g.url, g.tb, "GET", "/admin/v1/destinations/db", nil)).header.Get("ETag")
	a := callAPI(t, g.url, g.tb, "PUT", "/admin/v1/destinations/db", map[string]any{"id": "db", "site": "sb", "type": "meta",
		"settings": map[string]any{"pixel_id": isoPixel, "access_token": map[string]any{"set": true}, "graph_url": capture.URL}}, "If-Match", etag)
	if a.status != 422 || a.field() != "settings.graph_url" {
		t.Fatalf("B pointing db elsewhere: %d %s", a.status, a.raw)
	}
	if s := serverEvent(t, g.url, isoKeyB, "order-1"); s != 200 {
		t.Fatalf("server event: %d", s)
	}
	g.graph.WaitEvents(isoPixel, 1, 10*time.Second)
	if n := captured.Load(); n != 0 {
		t.Errorf("the other address got %d requests", n)
	}
	a = mustAPI(t, 200, callAPI(t, g.url, g.tb, "GET", "/admin/v1/sites/sb/deadletters", nil))
	if strings.Contains(a.raw, "whatever that server said") || !strings.Contains(a.raw, `"items": []`) {
		t.Errorf("dead letters: %s", a.raw)
	}
	if strings.Contains(g.logs.String(), isoToken) {
		t.Error("the token is in the log")
	}
}

// TestIssue13IngestKeyDigestCannotBeCopied: a viewer of B sees no digest;
// A's site with B's digest is refused; B's key keeps counting for sb after
// later config changes.
func TestIssue13IngestKeyDigestCannotBeCopied(t *testing.T) {
	g := startTwoTenants(t)
	digest := model.HashKey(isoKeyB)
	for _, p := range []string{"/admin/v1/sites/sb", "/admin/v1/export", "/admin/v1/sites"} {
		if a := mustAPI(t, 200, callAPI(t, g.url, g.tbViewer, "GET", p, nil)); strings.Contains(a.raw, digest) {
			t.Errorf("GET %s shows the digest: %s", p, a.raw)
		}
	}
	a := callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites", map[string]any{"id": "zz", "domains": []string{"zz.example"}, "ingest_key_hashes": []string{digest}})
	if a.status != 422 || strings.Contains(a.raw, "sb") {
		t.Fatalf("A copying B's digest: %d %s", a.status, a.raw)
	}
	mustAPI(t, 201, callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites", map[string]any{"id": "zz", "domains": []string{"zz.example"}}))
	if s := serverEvent(t, g.url, isoKeyB, "order-2"); s != 200 {
		t.Fatalf("server event: %d", s)
	}
	got := g.graph.WaitEvents(isoPixel, 1, 10*time.Second)
	if got[0].EventID != "order-2" {
		t.Errorf("Meta got %v", got)
	}
}

// TestIssue13ReusedSiteIDInheritsNothing: B's dead letters (hashed e-mail,
// IP, fbp) stay B's: once B deletes rb, db and sb, A cannot take sb until
// the id is clean, and then lists no dead letter and replays none.
func TestIssue13ReusedSiteIDInheritsNothing(t *testing.T) {
	g := startTwoTenants(t)
	ctx := t.Context()
	old := time.Now().Add(-8 * 24 * time.Hour)
	var stale []destinations.Event
	for _, id := range []string{"b-1", "b-2", "b-3"} {
		stale = append(stale, destinations.Event{EventName: "Purchase", EventID: id, EventTime: old.Unix(), ActionSource: "website",
			EventSourceURL: "https://sb.example/", UserData: destinations.UserData{Em: []string{sha("jane@sb.example")},
				ClientUserAgent: "UA", ClientIPAddress: "198.51.100.77", Fbp: "fb.1.1.42"},
			Context: destinations.Context{SiteID: "sb", Source: "server",
				Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}}})
	}
	if err := queue.New(g.rdb, queue.Options{}).Enqueue(ctx, "sb", stale); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(callAPI(t, g.url, g.tb, "GET", "/admin/v1/sites/sb/deadletters", nil).raw, "b-3") {
		if time.Now().After(deadline) {
			t.Fatal("B's events never reached the dead letters")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range []string{"/admin/v1/routes/rb", "/admin/v1/destinations/db", "/admin/v1/sites/sb"} {
		mustAPI(t, 204, callAPI(t, g.url, g.tb, "DELETE", p, nil))
	}
	site := map[string]any{"id": "sb", "domains": []string{"sa.example"}}
	if a := callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites", site); a.status != 409 || a.header.Get("Retry-After") == "" {
		t.Fatalf("A taking sb at once: %d %s", a.status, a.raw)
	}
	time.Sleep(350 * time.Millisecond)
	mustAPI(t, 201, callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites", site))
	a := mustAPI(t, 200, callAPI(t, g.url, g.ta, "GET", "/admin/v1/sites/sb/deadletters", nil))
	for _, leak := range []string{"b-1", "198.51.100.77", "fb.1.1.42", sha("jane@sb.example")} {
		if strings.Contains(a.raw, leak) {
			t.Errorf("A's dead letters show %s: %s", leak, a.raw)
		}
	}
	if a := mustAPI(t, 200, callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites/sb/deadletters/replay", "{}")); !strings.Contains(a.raw, `"replayed": 0`) {
		t.Errorf("replay: %s", a.raw)
	}
	if keys, _ := g.rdb.Keys(ctx, routing.SiteKeyPattern("sb")).Result(); len(keys) != 0 {
		t.Errorf("keys of the old sb left: %v", keys)
	}
}

// TestMetricsNotOnTheIngestPort: the port visitors reach does not list the
// tenants' site ids; TAGWAY_METRICS_ADDR's private listener serves them.
func TestMetricsNotOnTheIngestPort(t *testing.T) {
	// No metrics token: /metrics is not on the public port at all.
	g := startGateway(t, gatewayOptions{ops: true, env: map[string]string{"TAGWAY_SITE_DOMAINS": "secret-shop.example", "TAGWAY_METRICS_TOKEN": ""}})
	if code, body := getStatus(t, g.URL+"/metrics"); code != 404 || strings.Contains(body, `site="default"`) {
		t.Errorf("ingest port /metrics: %d %s", code, body)
	}
	if code, body := getStatus(t, g.OpsURL+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("private /metrics: %d %.200s", code, body)
	}
	if code, _ := getStatus(t, g.OpsURL+"/readyz"); code != 200 {
		t.Errorf("private /readyz: %d", code)
	}
}

// TestAuthBackOffEndToEnd: ten wrong ingest keys from one client and it is
// held back (429, Retry-After) on ingest and on the admin API alike, the
// right credentials included.
func TestAuthBackOffEndToEnd(t *testing.T) {
	g := startTwoTenants(t)
	for i := range 10 {
		if s := serverEvent(t, g.url, "wrong-ingest-key-0123456789", "x"); s != 401 {
			t.Fatalf("wrong key %d: %d", i, s)
		}
	}
	if s := serverEvent(t, g.url, isoKeyB, "order-9"); s != 429 {
		t.Errorf("the right key after ten wrong ones: %d", s)
	}
	if a := callAPI(t, g.url, adminToken, "GET", "/admin/v1/sites", nil); a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Errorf("the admin API after ten wrong keys: %d %s", a.status, a.raw)
	}
}

// TestIngestPathsIsolateTenants: every ingest path keeps tenants apart.
// A's ingest key names B's pixel on the drop-in endpoint and gets the
// answer of a pixel that does not exist; A's server events land on A's
// site and destinations only, whatever they say about B's shop; and a
// change of A's, live on another replica at once, leaves B's deliveries
// as they were.
func TestIngestPathsIsolateTenants(t *testing.T) {
	g := startTwoTenants(t)
	const pixelA, tokenA, keyA = "515151", "EAAtenantAtoken-SECRET-1234", "ta-ingest-key-0123456789-aaaa"
	g.graph.AddPixel(pixelA, tokenA)
	mustAPI(t, 201, callAPI(t, g.url, g.ta, "POST", "/admin/v1/sites", map[string]any{"id": "sa", "domains": []string{"sa.example"}, "ingest_keys": []string{keyA}}))
	mustAPI(t, 201, callAPI(t, g.url, g.ta, "POST", "/admin/v1/destinations", map[string]any{"id": "da", "site": "sa", "type": "meta",
		"settings": map[string]any{"pixel_id": pixelA, "access_token": tokenA}}))
	mustAPI(t, 201, callAPI(t, g.url, g.ta, "POST", "/admin/v1/routes", map[string]any{"id": "ra", "site": "sa", "destination": "da"}))

	// The drop-in endpoint: B's pixel through A's key is a pixel A does
	// not have, word for word.
	dropIn := func(pixel string) (int, map[string]any) {
		body := `{"data":[{"event_name":"Purchase","event_time":` + itoa(time.Now().Unix()) + `,"event_id":"d1","action_source":"website",
			"event_source_url":"https://sb.example/","user_data":{"em":"x@sb.example","client_user_agent":"UA"},
			"custom_data":{"value":1,"currency":"EUR"}}],"access_token":"` + keyA + `"}`
		res, err := http.Post(g.url+"/v24.0/"+pixel+"/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Error map[string]any `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&out)
		delete(out.Error, "fbtrace_id")
		out.Error["message"] = strings.ReplaceAll(out.Error["message"].(string), pixel, "PIXEL")
		return res.StatusCode, out.Error
	}
	codeB, errB := dropIn(isoPixel)
	codeNone, errNone := dropIn("777777")
	if codeB != codeNone || canon(t, errB) != canon(t, errNone) || codeB != 400 {
		t.Errorf("B's pixel through A's key: %d %v; a missing pixel: %d %v", codeB, errB, codeNone, errNone)
	}

	// Server events with A's key go to A, even when they name B's shop.
	if s := serverEvent(t, g.url, keyA, "a-order-1"); s != 200 {
		t.Fatalf("A's server event: %d", s)
	}
	g.graph.WaitEvents(pixelA, 1, 10*time.Second)

	// A second replica; A disables its route there, B keeps delivering.
	url2 := startGateway(t, gatewayOptions{redis: g.rs, env: map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey,
		"TAGWAY_META_GRAPH_URL": g.graph.URL()}}).URL
	etag := mustAPI(t, 200, callAPI(t, g.url, g.ta, "GET", "/admin/v1/routes/ra", nil)).header.Get("ETag")
	mustAPI(t, 200, callAPI(t, url2, g.ta, "PUT", "/admin/v1/routes/ra", map[string]any{"id": "ra", "site": "sa", "destination": "da", "disabled": true}, "If-Match", etag))
	if s := serverEvent(t, url2, isoKeyB, "b-order-2"); s != 200 {
		t.Fatalf("B's server event on the other replica: %d", s)
	}
	if got := g.graph.WaitEvents(isoPixel, 1, 10*time.Second); len(got) != 1 || got[0].EventID != "b-order-2" {
		t.Errorf("B's pixel got %+v", got)
	}
	if s := serverEvent(t, g.url, keyA, "a-order-2"); s != 200 {
		t.Fatalf("A's second server event: %d", s)
	}
	time.Sleep(300 * time.Millisecond)
	for _, r := range g.graph.Events(pixelA) {
		if r.EventID == "a-order-2" {
			t.Error("A's disabled route still delivered")
		}
	}
	for _, r := range g.graph.Events(isoPixel) {
		if strings.HasPrefix(r.EventID, "a-") || r.EventID == "d1" {
			t.Errorf("B's pixel got A's event %s", r.EventID)
		}
	}
}
