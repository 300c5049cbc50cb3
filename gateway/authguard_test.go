package gateway

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/authlimit"
)

// TestWrongIngestKeysBackOff: past a few wrong ingest keys, a client gets
// 429 with Retry-After before its request is read, on /v1/events and on
// the drop-in endpoint alike, even with the right key; other clients are
// not held back.
func TestWrongIngestKeysBackOff(t *testing.T) {
	now := testNow
	limiter := authlimit.New(authlimit.Options{Free: 3, Base: 2 * time.Second, Now: func() time.Time { return now }})
	tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{capiSnapshot(t)}; o.AuthLimiter = limiter })
	events := `{"data":` + capiEvents(t) + `}`
	server := func(key, addr string) (int, string, string) {
		w := tg.do("POST", "/v1/events", events, "Authorization", "Bearer "+key, "RemoteAddr", addr)
		return w.Code, w.Header().Get("Retry-After"), w.Body.String()
	}
	capi := func(key, addr string) (int, string, string) {
		w := tg.do("POST", "/v24.0/222/events?access_token="+url.QueryEscape(key), events, "Content-Type", "application/json", "RemoteAddr", addr)
		return w.Code, w.Header().Get("Retry-After"), w.Body.String()
	}
	const attacker, other = "198.51.100.9:4000", "198.51.100.10:4000"
	for i := range 2 {
		if code, _, _ := server("wrong-key-0123456789-"+string(rune('a'+i)), attacker); code != 401 {
			t.Fatalf("wrong key %d: %d", i, code)
		}
	}
	if code, _, body := capi("wrong-key-0123456789-c", attacker); code != 400 || !strings.Contains(body, `"code":190`) {
		t.Fatalf("wrong token on the drop-in endpoint: %d %s", code, body)
	}
	for name, call := range map[string]func(string, string) (int, string, string){"/v1/events": server, "drop-in": capi} {
		code, retry, body := call("wrong-key-0123456789-d", attacker)
		if code != 429 || retry != "2" || !json.Valid([]byte(body)) {
			t.Errorf("%s after 3 wrong keys: %d Retry-After %q %s", name, code, retry, body)
		}
		if code, _, _ := call(testIngestKey, attacker); code != 429 {
			t.Errorf("%s: the held-back client with the right key: %d", name, code)
		}
		if code, _, body := call(testIngestKey, other); code != 200 {
			t.Errorf("%s: another client: %d %s", name, code, body)
		}
	}
	if code, _, body := capi("x", attacker); !strings.Contains(body, `"code":4`) || code != 429 {
		t.Errorf("drop-in refusal shape: %d %s", code, body)
	}
	now = now.Add(2 * time.Second)
	if code, _, _ := server(testIngestKey, attacker); code != 200 {
		t.Errorf("after Retry-After: %d", code)
	}
}
