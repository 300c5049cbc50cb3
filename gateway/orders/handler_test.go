package orders

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/testlog"
)

const (
	shopSecret = "shpss_test_0123456789abcdef"
	wooSecret  = "wc-secret-Qq7!&<x>"
)

// fakeSite is the handler's view of the stores: secrets per site and a
// recording queue.
type fakeSite struct {
	mu         sync.Mutex
	secrets    map[string][]string
	secretsErr error
	enqueueErr error
	queued     []Change
	outcomes   []Outcome
}

func (f *fakeSite) handler(t *testing.T, src Source, log *testlog.Buffer) *Handler {
	t.Helper()
	opts := HandlerOptions{
		Secrets: func(_ context.Context, site string) ([]string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.secrets[site], f.secretsErr
		},
		Enqueue: func(_ context.Context, site string, c Change) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.enqueueErr != nil {
				return f.enqueueErr
			}
			if site != "shop1" {
				t.Errorf("enqueued for site %q", site)
			}
			f.queued = append(f.queued, c)
			return nil
		},
		Now:     func() time.Time { return testNow },
		MaxBody: 1 << 20,
		Observe: func(_ string, _ Source, o Outcome) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.outcomes = append(f.outcomes, o)
		},
	}
	if log != nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := NewHandler(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandler(t *testing.T) {
	order := fixture(t, "shopify_order.json")
	woo := fixture(t, "woo_order.json")
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("a"), 1<<20)...)
	big = append(big, `"}`...)
	type req struct {
		method  string
		site    string
		body    []byte
		headers map[string]string
	}
	shopify := func(topic string, body []byte, secret string) req {
		return req{"POST", "shop1", body, map[string]string{
			HeaderShopifyTopic: topic, HeaderShopifyHmac: SignatureHeader(body, secret), HeaderShopifyWebhookID: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
		}}
	}
	wooReq := func(topic string, body []byte, secret string) req {
		h := map[string]string{HeaderWooTopic: topic, HeaderWooDeliveryID: "8f14e45fceea167a5a36dedd4bea2543"}
		if secret != "" {
			h[HeaderWooSignature] = SignatureHeader(body, secret)
		}
		return req{"POST", "shop1", body, h}
	}
	tests := []struct {
		name       string
		src        Source
		req        req
		secretsErr error
		enqueueErr error
		status     int
		code       string // error code, or the status word of a 200
		outcome    Outcome
		queued     bool
	}{
		{"shopify order", Shopify, shopify(ShopifyOrdersCreate, order, shopSecret), nil, nil, 200, "accepted", OutcomeAccepted, true},
		{"shopify refund", Shopify, shopify(ShopifyRefundsCreate, fixture(t, "shopify_refund.json"), shopSecret), nil, nil, 200, "accepted", OutcomeAccepted, true},
		{"wrong secret", Shopify, shopify(ShopifyOrdersCreate, order, "other"), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"no signature", Shopify, req{"POST", "shop1", order, map[string]string{HeaderShopifyTopic: ShopifyOrdersCreate}}, nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"tampered body", Shopify, func() req {
			r := shopify(ShopifyOrdersCreate, order, shopSecret)
			r.body = bytes.Replace(r.body, []byte(`"124.50"`), []byte(`"1.00"`), 1)
			return r
		}(), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"unknown site", Shopify, func() req { r := shopify(ShopifyOrdersCreate, order, shopSecret); r.site = "shop2"; return r }(), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"secrets unavailable", Shopify, shopify(ShopifyOrdersCreate, order, shopSecret), errors.New("redis down"), nil, 503, "unavailable", OutcomeUnavailable, false},
		{"queue unavailable", Shopify, shopify(ShopifyOrdersCreate, order, shopSecret), nil, errors.New("redis down"), 503, "unavailable", OutcomeUnavailable, false},
		{"malformed but signed", Shopify, shopify(ShopifyOrdersCreate, []byte(`{"id":"x"}`), shopSecret), nil, nil, 400, "invalid_payload", OutcomeMalformed, false},
		{"unknown topic", Shopify, shopify("products/create", []byte(`{"id":1}`), shopSecret), nil, nil, 200, "ignored", OutcomeIgnored, false},
		{"too large", Shopify, shopify(ShopifyOrdersCreate, big, shopSecret), nil, nil, 413, "body_too_large", OutcomeTooLarge, false},
		{"GET", Shopify, req{"GET", "shop1", nil, nil}, nil, nil, 405, "method_not_allowed", OutcomeBadMethod, false},
		{"woo order", WooCommerce, wooReq(WooOrderCreated, woo, wooSecret), nil, nil, 200, "accepted", OutcomeAccepted, true},
		{"woo deleted", WooCommerce, wooReq(WooOrderDeleted, []byte(`{"id":727}`), wooSecret), nil, nil, 200, "accepted", OutcomeAccepted, true},
		{"woo ping", WooCommerce, wooReq("", []byte("webhook_id=12"), ""), nil, nil, 200, "ping", OutcomePing, false},
		{"woo ping for a site without a secret", WooCommerce, func() req { r := wooReq("", []byte("webhook_id=12"), ""); r.site = "shop2"; return r }(), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"woo unsigned order", WooCommerce, wooReq(WooOrderCreated, woo, ""), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
		{"woo order signed with shopify's secret", WooCommerce, wooReq(WooOrderCreated, woo, shopSecret), nil, nil, 401, "unauthorized", OutcomeUnauthorized, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := shopSecret
			if tt.src == WooCommerce {
				secret = wooSecret
			}
			f := &fakeSite{secrets: map[string][]string{"shop1": {"old-secret", secret}}, secretsErr: tt.secretsErr, enqueueErr: tt.enqueueErr}
			var log testlog.Buffer
			mux := http.NewServeMux()
			mux.Handle("/webhooks/"+string(tt.src)+"/{site}", f.handler(t, tt.src, &log))
			r := httptest.NewRequest(tt.req.method, "/webhooks/"+string(tt.src)+"/"+tt.req.site, bytes.NewReader(tt.req.body))
			for k, v := range tt.req.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)

			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var resp struct {
				Status string `json:"status"`
				Error  struct {
					Code, Message, Field string
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if got := resp.Status + resp.Error.Code; got != tt.code {
				t.Errorf("answer %q, want %q: %s", got, tt.code, w.Body)
			}
			if (len(f.queued) == 1) != tt.queued || len(f.queued) > 1 {
				t.Errorf("queued %d changes", len(f.queued))
			}
			if tt.queued && f.queued[0].DeliveryID == "" {
				t.Error("no delivery id")
			}
			if len(f.outcomes) != 1 || f.outcomes[0] != tt.outcome {
				t.Errorf("outcomes %v, want %v", f.outcomes, tt.outcome)
			}
			for _, s := range []string{shopSecret, wooSecret, "jane", "juergen"} {
				if strings.Contains(strings.ToLower(log.String()+w.Body.String()), strings.ToLower(s)) {
					t.Errorf("log or answer holds %q: %s %s", s, log.String(), w.Body)
				}
			}
		})
	}
}

func TestHandlerMalformedNamesField(t *testing.T) {
	f := &fakeSite{secrets: map[string][]string{"shop1": {shopSecret}}}
	h := f.handler(t, Shopify, nil)
	body := edit(t, "shopify_order.json", set("currency", "dollars"))
	r := httptest.NewRequest("POST", "/webhooks/shopify/shop1", bytes.NewReader(body))
	r.Header.Set(HeaderShopifyTopic, ShopifyOrdersCreate)
	r.Header.Set(HeaderShopifyHmac, SignatureHeader(body, shopSecret))
	w := httptest.NewRecorder()
	h.ServeSite(w, r, "shop1")
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"currency"`) {
		t.Errorf("status %d: %s", w.Code, w.Body)
	}
}

func TestNewHandlerValidates(t *testing.T) {
	_, err := NewHandler("magento", HandlerOptions{MaxBody: -1})
	for _, want := range []string{"unknown source", "Secrets is required", "Enqueue is required", "MaxBody"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}

func TestVerify(t *testing.T) {
	body := fixture(t, "shopify_order.json")
	good := SignatureHeader(body, shopSecret)
	tests := []struct {
		name      string
		body      []byte
		signature string
		secrets   []string
		want      bool
	}{
		{"good", body, good, []string{shopSecret}, true},
		{"good with spaces", body, " " + good + " ", []string{shopSecret}, true},
		{"second of two secrets", body, good, []string{"old", shopSecret}, true},
		{"wrong secret", body, good, []string{"other"}, false},
		{"no secrets", body, good, nil, false},
		{"empty secret", body, SignatureHeader(body, ""), []string{""}, false},
		{"tampered body", append([]byte(" "), body...), good, []string{shopSecret}, false},
		{"not base64", body, "!!!", []string{shopSecret}, false},
		{"hex instead of base64", body, strings.Repeat("ab", 32), []string{shopSecret}, false},
		{"truncated", body, good[:20], []string{shopSecret}, false},
		{"empty", body, "", []string{shopSecret}, false},
	}
	for _, tt := range tests {
		if got := Verify(tt.body, tt.signature, tt.secrets...); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Shopify's documented scheme, computed independently of Sign.
	m := hmac.New(sha256.New, []byte(wooSecret))
	m.Write([]byte(`{"id":727}`))
	if !Verify([]byte(`{"id":727}`), base64.StdEncoding.EncodeToString(m.Sum(nil)), wooSecret) {
		t.Error("an HMAC-SHA256 base64 signature did not verify")
	}
}
