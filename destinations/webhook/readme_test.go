package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/webhook"
)

// README snippet begins

// VerifyWebhook checks a tagway webhook signed with secret ("whsec_...")
// and returns its body; use the body only when the error is nil.
func VerifyWebhook(r *http.Request, secret string, now time.Time) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, errors.New("the secret is not whsec_ and base64")
	}
	id := r.Header.Get("webhook-id")
	ts := r.Header.Get("webhook-timestamp")
	sigs := r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errors.New("webhook-timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(sent, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return nil, errors.New("webhook-timestamp is more than five minutes off")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if ok && version == "v1" && hmac.Equal([]byte(value), want) {
			return body, nil
		}
	}
	return nil, errors.New("no valid signature")
}

// README snippet ends

// TestREADMESnippet: the README's verification code is VerifyWebhook,
// letter for letter.
func TestREADMESnippet(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- verify snippet[^\n]*\n```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no verify snippet")
	}
	_, rest, _ := strings.Cut(string(src), "// README snippet begins\n")
	code, _, _ := strings.Cut(rest, "// README snippet ends")
	if strings.TrimSpace(string(m[1])) != strings.TrimSpace(code) {
		t.Errorf("the README's snippet differs from VerifyWebhook in readme_test.go:\n%s", m[1])
	}
}

// TestVerifyWebhook runs the README's receiver code against real
// deliveries of the adapter.
func TestVerifyWebhook(t *testing.T) {
	const secret = "whsec_cmVhZG1lLXNuaXBwZXQtdGVzdC1rZXktMzItYnl0ZXM="
	now := time.Now()
	var mu sync.Mutex
	var verified [][]byte
	var refusals []string
	receiverSecret := secret
	receiverNow := now
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, err := VerifyWebhook(r, receiverSecret, receiverNow)
		if err != nil {
			refusals = append(refusals, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		verified = append(verified, body)
	}))
	t.Cleanup(srv.Close)
	egress := webhook.Egress{AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	settings, _ := json.Marshal(map[string]any{"url": srv.URL + "/hook", "secret": secret})
	d, err := egress.New(settings, destinations.Deps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ev := destinations.Event{EventName: "Purchase", EventTime: now.Unix(), EventID: "order-1", ActionSource: "website",
		Context: destinations.Context{SiteID: "shop"}}
	deliver := func() error { return d.Deliver(context.Background(), []destinations.Event{ev})[0] }

	if err := deliver(); err != nil {
		t.Fatalf("verified delivery: %v (%v)", err, refusals)
	}
	var m webhook.Message
	if err := json.Unmarshal(verified[0], &m); err != nil || m.Data.Events[0].EventID != "order-1" {
		t.Errorf("body %s: %v", verified[0], err)
	}
	mu.Lock()
	receiverSecret = "whsec_b3RoZXItdGFnd2F5LXNpZ25pbmcta2V5LTMyYnl0ZQ=="
	mu.Unlock()
	if err := deliver(); err == nil {
		t.Error("verified with another secret")
	}
	mu.Lock()
	receiverSecret, receiverNow = secret, now.Add(6*time.Minute)
	mu.Unlock()
	if err := deliver(); err == nil {
		t.Error("verified a timestamp six minutes off")
	}
	if len(verified) != 1 || len(refusals) != 2 || !strings.Contains(refusals[0], "signature") || !strings.Contains(refusals[1], "five minutes") {
		t.Errorf("verified %d, refusals %v", len(verified), refusals)
	}
}

// TestREADMESchema checks the golden payload field by field against the
// README's table of the body: every field sent is documented, and every
// documented field is in the golden Purchase, which fills them all, or the
// golden anonymous event.
func TestREADMESchema(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\| (string|integer|boolean|array|object) \\|").FindAllSubmatch(readme, -1) {
		documented = append(documented, string(m[1]))
	}
	var bodies []map[string]any
	for _, file := range []string{"testdata/purchase.golden.json", "testdata/anonymous.golden.json"} {
		golden, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Headers map[string]string `json:"headers"`
			Body    map[string]any    `json:"body"`
		}
		if err := json.Unmarshal(golden, &g); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, g.Body)
		if file == "testdata/purchase.golden.json" {
			// The README's example request is the golden Purchase's.
			for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
				if line := h + ": " + g.Headers[h]; !strings.Contains(string(readme), line) {
					t.Errorf("README.md's example lacks %q", line)
				}
			}
		}
	}
	// Objects documented as a whole (free keys) are leaves.
	leaves := map[string]bool{"data.events[].custom_data": true, "data.events[].context.consent": true,
		"data.events[].context.click_ids": true, "data.events[].context.cookies": true}
	sent := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if leaves[path] {
				sent[path] = "object"
				return
			}
			for k, child := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, child)
			}
		case []any:
			if path == "data.events" {
				for _, e := range v {
					walk(path+"[]", e)
				}
				return
			}
			sent[path] = "array"
		case string:
			sent[path] = "string"
		case float64:
			sent[path] = "integer"
		case bool:
			sent[path] = "boolean"
		}
	}
	for _, b := range bodies {
		walk("", b)
	}
	var sentPaths []string
	for p := range sent {
		sentPaths = append(sentPaths, p)
	}
	sort.Strings(sentPaths)
	for _, p := range sentPaths {
		if !slices.Contains(documented, p) {
			t.Errorf("%s is sent but not documented in README.md", p)
		}
	}
	for _, p := range documented {
		if _, ok := sent[p]; !ok {
			t.Errorf("%s is documented but in no golden payload", p)
		}
	}
	types := regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\| ([a-z]+) \\|")
	for _, m := range types.FindAllSubmatch(readme, -1) {
		if got, ok := sent[string(m[1])]; ok && got != string(m[2]) {
			t.Errorf("%s is documented as %s but sent as %s", m[1], m[2], got)
		}
	}
}
