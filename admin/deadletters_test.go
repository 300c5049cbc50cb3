package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/dispatch"
)

// fakeMeta stands in for Meta in the dispatcher: it refuses every event for
// good (refuse) or accepts it, and refuses to send events older than an
// hour, so the dispatcher dead-letters those as too_old.
type fakeMeta struct {
	refuse bool
	mu     *sync.Mutex
	got    *[]string // event ids accepted
}

func (fakeMeta) MaxBatch() int { return 100 }

func (fakeMeta) MaxEventAge(destinations.Event) time.Duration { return time.Hour }

func (f fakeMeta) Deliver(_ context.Context, batch []destinations.Event) []error {
	if f.refuse {
		return destinations.All(len(batch), destinations.PermanentError("Invalid parameter (#100)"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range batch {
		*f.got = append(*f.got, ev.EventID)
	}
	return make([]error, len(batch))
}

var (
	_ destinations.Destination = fakeMeta{}
	_ destinations.AgeLimiter  = fakeMeta{}
)

// dispatch runs the real dispatcher over e's store and queue with a fake
// Meta until until() holds, then stops it.
func (e *env) dispatch(refuse bool, got *[]string, mu *sync.Mutex, until func() bool) {
	e.t.Helper()
	reg := destinations.Registry{"meta": func(json.RawMessage, destinations.Deps) (destinations.Destination, error) {
		return fakeMeta{refuse: refuse, mu: mu, got: got}, nil
	}}
	d, err := dispatch.New(e.rdb, e.store, reg, destinations.Deps{}, dispatch.Options{
		Block: 20 * time.Millisecond, Linger: -1, TrimInterval: time.Hour, Now: e.clock,
		Retry: dispatch.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !until() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			e.t.Fatal("the dispatcher did not reach the expected state")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deadCount(site, dest string) int64 {
	e.t.Helper()
	n, err := e.rdb.XLen(context.Background(), routing.DeadKey(site, dest)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) retryCount(site, dest string) int64 {
	e.t.Helper()
	n, err := e.rdb.ZCard(context.Background(), routing.RetryKey(site, dest)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) enqueue(site string, ids ...string) {
	e.t.Helper()
	now := e.clock()
	var evs []destinations.Event
	for _, id := range ids {
		at := now
		if strings.HasPrefix(id, "old") {
			at = now.Add(-2 * time.Hour)
		}
		evs = append(evs, destinations.Event{EventName: "Purchase", EventID: id, EventTime: at.Unix(), ActionSource: "website",
			UserData: destinations.UserData{ExternalID: []string{hashHex("visitor-" + id)}, ClientIPAddress: "203.0.113.7"},
			Context: destinations.Context{Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted,
				AdPersonalization: destinations.Granted, AnalyticsStorage: destinations.Granted}}})
	}
	if err := e.queue.Enqueue(context.Background(), site, evs); err != nil {
		e.t.Fatal(err)
	}
}

// deadEnv is the seeded env with dead letters made by the real dispatcher:
// a-meta holds p1, p2 (permanent) and old1 (too_old) failed at t0, and p3
// (permanent) failed an hour later; b-meta holds b1.
func deadEnv(t *testing.T) (*env, time.Time) {
	e := newEnv(t, true, rootToken)
	e.seed()
	t0 := e.clock()
	e.enqueue("a-shop", "p1", "p2", "old1")
	e.enqueue("b-shop", "b1")
	var mu sync.Mutex
	e.dispatch(true, nil, &mu, func() bool { return e.deadCount("a-shop", "a-meta") == 3 && e.deadCount("b-shop", "b-meta") == 1 })
	e.advance(time.Hour)
	e.enqueue("a-shop", "p3")
	e.dispatch(true, nil, &mu, func() bool { return e.deadCount("a-shop", "a-meta") == 4 })
	return e, t0
}

// eventIDsOf lists the event ids of a list answer, sorted.
func eventIDsOf(t *testing.T, r resp) []string {
	t.Helper()
	items, ok := r.body["items"].([]any)
	if !ok {
		t.Fatalf("no items: %s", r.raw)
	}
	var out []string
	for _, it := range items {
		ev, _ := it.(map[string]any)["event"].(map[string]any)
		id, _ := ev["event_id"].(string)
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func TestDeadLettersList(t *testing.T) {
	e, t0 := deadEnv(t)
	t1 := t0.Add(time.Hour)

	r := e.must(200, e.do("a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters", nil))
	if got := eventIDsOf(t, r); fmt.Sprint(got) != "[old1 p1 p2 p3]" {
		t.Fatalf("all: %v", got)
	}
	for _, it := range r.body["items"].([]any) {
		m := it.(map[string]any)
		ev := m["event"].(map[string]any)
		want := map[string]any{"destination": "a-meta", "reason": "permanent", "message": "Invalid parameter (#100)",
			"attempts": float64(1), "failed_at": t0.Format(time.RFC3339)}
		switch ev["event_id"] {
		case "old1":
			want["reason"], want["attempts"] = "too_old", float64(0)
			want["message"] = m["message"] // the dispatcher's own wording
		case "p3":
			want["failed_at"] = t1.Format(time.RFC3339)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v", ev["event_id"], k, m[k], v)
			}
		}
		if id, _ := m["id"].(string); !streamIDPattern.MatchString(id) {
			t.Errorf("id %q", m["id"])
		}
		if ud := ev["user_data"].(map[string]any); len(ud["external_id"].([]any)[0].(string)) != 64 {
			t.Errorf("user_data %v", ud)
		}
	}

	for _, tc := range []struct{ query, want string }{
		{"reason=too_old", "[old1]"},
		{"reason=permanent", "[p1 p2 p3]"},
		{"destination=a-meta&since=" + t1.Format(time.RFC3339), "[p3]"},
		{"until=" + t1.Format(time.RFC3339), "[old1 p1 p2]"},
		{"since=30m", "[p3]"}, // a duration before now (t1)
		{"since=" + t0.Format(time.RFC3339) + "&until=" + t1.Format(time.RFC3339) + "&reason=permanent", "[p1 p2]"},
		{"destination=other", "[]"},
	} {
		r := e.must(200, e.do("a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters?"+tc.query, nil))
		if got := fmt.Sprint(eventIDsOf(t, r)); got != tc.want {
			t.Errorf("?%s: %s, want %s", tc.query, got, tc.want)
		}
	}

	// Pages of two, resumed with next_cursor.
	var paged []string
	cursor := ""
	for range 5 {
		r := e.must(200, e.do("a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters?limit=2&cursor="+cursor, nil))
		if n := len(r.body["items"].([]any)); n > 2 {
			t.Fatalf("page of %d", n)
		}
		paged = append(paged, eventIDsOf(t, r)...)
		cursor, _ = r.body["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	sort.Strings(paged)
	if fmt.Sprint(paged) != "[old1 p1 p2 p3]" {
		t.Errorf("paged: %v", paged)
	}

	for _, tc := range []struct{ query, field string }{
		{"reason=bogus", "reason"},
		{"since=yesterday", "since"},
		{"until=-2h", "until"},
		{"since=1h&until=2h", "until"},
		{"destination=Not%20An%20Id", "destination"},
		{"limit=0", "limit"},
		{"cursor=garbage", "cursor"},
	} {
		r := e.do("a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters?"+tc.query, nil)
		if r.status != 400 || r.errCode() != "invalid_field" || r.errField() != tc.field {
			t.Errorf("?%s: %d %s; want 400 on %s", tc.query, r.status, r.raw, tc.field)
		}
	}
}

func TestDeadLettersReplayAndDrop(t *testing.T) {
	e, _ := deadEnv(t)

	r := e.must(200, e.do("a-editor", "POST", "/admin/v1/sites/a-shop/deadletters/replay", map[string]any{"reason": "permanent"}))
	if r.raw != "{\n  \"replayed\": 3\n}\n" {
		t.Fatalf("replay: %s", r.raw)
	}
	if d, q := e.deadCount("a-shop", "a-meta"), e.retryCount("a-shop", "a-meta"); d != 1 || q != 3 {
		t.Errorf("after the replay: %d dead, %d scheduled; want 1 and 3", d, q)
	}
	if e.deadCount("b-shop", "b-meta") != 1 {
		t.Error("tenant B's dead letter moved")
	}

	// The replayed events go out when the platform takes them again.
	var mu sync.Mutex
	var got []string
	e.dispatch(false, &got, &mu, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3 && e.retryCount("a-shop", "a-meta") == 0
	})
	slices.Sort(got)
	if fmt.Sprint(got) != "[p1 p2 p3]" {
		t.Errorf("delivered after the replay: %v", got)
	}

	// Drop the last one by id.
	r = e.must(200, e.do("a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters", nil))
	items := r.body["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("left: %s", r.raw)
	}
	id := items[0].(map[string]any)["id"].(string)
	body := map[string]any{"destination": "a-meta", "ids": []string{id}}
	r = e.must(200, e.do("a-admin", "POST", "/admin/v1/sites/a-shop/deadletters/drop", body))
	if r.body["dropped"] != float64(1) || e.deadCount("a-shop", "a-meta") != 0 {
		t.Errorf("drop: %s, %d left", r.raw, e.deadCount("a-shop", "a-meta"))
	}
	if r = e.must(200, e.do("a-admin", "POST", "/admin/v1/sites/a-shop/deadletters/drop", body)); r.body["dropped"] != float64(0) {
		t.Errorf("second drop: %s", r.raw)
	}

	// Both are in the audit log, for tenant A only.
	r = e.must(200, e.do("a-viewer", "GET", "/admin/v1/audit?limit=2", nil))
	audit := r.body["items"].([]any)
	drop, replay := audit[0].(map[string]any), audit[1].(map[string]any)
	if drop["op"] != "drop" || drop["kind"] != "deadletters" || drop["resource_id"] != "a-shop" || drop["actor"] != "a-admin" ||
		drop["tenant"] != "a" || drop["count"] != float64(1) || fmt.Sprint(drop["fields"]) != "[destination=a-meta ids=1]" {
		t.Errorf("drop audit: %v", drop)
	}
	if replay["op"] != "replay" || replay["actor"] != "a-editor" || replay["count"] != float64(3) || fmt.Sprint(replay["fields"]) != "[reason=permanent]" {
		t.Errorf("replay audit: %v", replay)
	}
	if r = e.must(200, e.do("b-admin", "GET", "/admin/v1/audit?limit=200", nil)); strings.Contains(r.raw, "deadletters") {
		t.Errorf("tenant B sees A's dead-letter audit: %s", r.raw)
	}

	// Strict bodies, errors named by field.
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"dest": "a-meta"}, "dest"},
		{map[string]any{"ids": "1-0"}, "ids"},
		{map[string]any{"ids": []string{"1-0"}}, "destination"},
		{map[string]any{"destination": "a-meta", "ids": []string{"1-0", "x"}}, "ids[1]"},
		{map[string]any{"reason": "tired"}, "reason"},
		{map[string]any{"since": "last week"}, "since"},
	} {
		for _, action := range []string{"replay", "drop"} {
			r := e.do("a-editor", "POST", "/admin/v1/sites/a-shop/deadletters/"+action, tc.body)
			if r.status != 400 || r.errCode() != "invalid_field" || r.errField() != tc.field {
				t.Errorf("%s %v: %d %s; want 400 on %s", action, tc.body, r.status, r.raw, tc.field)
			}
		}
	}
	if r := e.do("a-editor", "POST", "/admin/v1/sites/a-shop/deadletters/drop", ""); r.status != 400 || r.errCode() != "invalid_json" {
		t.Errorf("drop without a body: %d %s", r.status, r.raw)
	}
}

// TestDeadLettersAccess: auth first, then the site's tenant (404), the
// method, then the role.
func TestDeadLettersAccess(t *testing.T) {
	e, _ := deadEnv(t)
	paths := []struct{ method, path string }{
		{"GET", "/admin/v1/sites/b-shop/deadletters"},
		{"POST", "/admin/v1/sites/b-shop/deadletters/replay"},
		{"POST", "/admin/v1/sites/b-shop/deadletters/drop"},
	}
	for _, p := range paths {
		for _, who := range []string{"", "wrong-token-wrong-token"} {
			if r := e.do(who, p.method, p.path, map[string]any{}); r.status != 401 || r.errCode() != "unauthorized" {
				t.Errorf("%s %s as %q: %d %s", p.method, p.path, who, r.status, r.raw)
			}
		}
		for _, who := range []string{"a-admin", "a-editor", "a-viewer"} {
			r := e.do(who, p.method, p.path, map[string]any{})
			if r.status != 404 || r.errCode() != "not_found" || strings.Contains(r.raw, "b1") {
				t.Errorf("%s %s as %s: %d %s; want 404", p.method, p.path, who, r.status, r.raw)
			}
		}
		if r := e.do("a-admin", p.method, strings.Replace(p.path, "b-shop", "no-shop", 1), map[string]any{}); r.status != 404 {
			t.Errorf("%s on a missing site: %d", p.method, r.status)
		}
	}
	if n := e.deadCount("b-shop", "b-meta"); n != 1 {
		t.Errorf("tenant B's dead letters: %d, want 1", n)
	}
	// The owner and the operator see B's letter.
	for _, who := range []string{"b-admin", "root"} {
		r := e.must(200, e.do(who, "GET", "/admin/v1/sites/b-shop/deadletters", nil))
		if fmt.Sprint(eventIDsOf(t, r)) != "[b1]" {
			t.Errorf("%s: %s", who, r.raw)
		}
	}

	tests := []struct {
		who, method, path string
		want              int
	}{
		{"a-viewer", "GET", "/admin/v1/sites/a-shop/deadletters", 200},
		{"a-viewer", "POST", "/admin/v1/sites/a-shop/deadletters/replay", 403},
		{"a-viewer", "POST", "/admin/v1/sites/a-shop/deadletters/drop", 403},
		{"a-editor", "PUT", "/admin/v1/sites/a-shop/deadletters", 405},
		{"a-editor", "GET", "/admin/v1/sites/a-shop/deadletters/replay", 405},
		{"a-editor", "POST", "/admin/v1/sites/a-shop/deadletters/other", 404},
	}
	for _, tt := range tests {
		if r := e.do(tt.who, tt.method, tt.path, map[string]any{}); r.status != tt.want {
			t.Errorf("%s %s %s: %d, want %d: %s", tt.who, tt.method, tt.path, r.status, tt.want, r.raw)
		}
	}
	if n := e.deadCount("a-shop", "a-meta"); n != 4 {
		t.Errorf("a viewer changed the dead letters: %d left, want 4", n)
	}
}

func TestDeadLettersWithoutQueue(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	api, err := New(Options{Store: e.store, RootToken: rootToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	r := e.do("root", "GET", "/admin/v1/sites/a-shop/deadletters", nil)
	if r.status != 503 || r.errCode() != "unavailable" {
		t.Errorf("without a queue: %d %s", r.status, r.raw)
	}
}
