package static_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tagway/tagway/internal/browsertest"
	"github.com/tagway/tagway/pixeljs"
	"github.com/tagway/tagway/static"
)

// external matches an attribute that would load something from another host.
var external = regexp.MustCompile(`(?:src|href)="(?:https?:)?//[^"]*"`)

func TestHandler(t *testing.T) {
	stub := `window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)}`
	tests := []struct {
		path, contentType string
		contains          []string
	}{
		{"/", "text/html; charset=utf-8", []string{stub, `<script async src="/tw.js"></script>`, `<script src="/vendors.js"></script>`,
			`id="add-to-cart"`, `id="checkout-link"`, `id="events"`, `'ViewContent'`, `id="consent-banner"`, `history.pushState`}},
		{"/checkout.html", "text/html; charset=utf-8", []string{stub, `<script async src="/tw.js"></script>`, `<script src="/vendors.js"></script>`,
			`id="email"`, `id="phone"`, `id="pay"`, `id="thank-you"`, `id="events"`, `'InitiateCheckout'`, `'Purchase'`, `id="consent-accept"`}},
		{"/ga4.html", "text/html; charset=utf-8", []string{stub, `<script async src="/tw.js"></script>`,
			`event: 'view_item'`, `gtag('event', 'purchase'`, `id="consent-reject"`}},
		{"/shop.css", "text/css; charset=utf-8", []string{"--accent"}},
		{"/shop.js", "text/javascript; charset=utf-8", []string{"tagway:event", "tagway('consent'"}},
		{"/vendors.js", "text/javascript; charset=utf-8", []string{"fbq.version = '2.0'", "w.ttq", "w.snaptr", "w.pintrk"}},
		{"/favicon.svg", "image/svg+xml", []string{"<svg"}},
	}
	h := static.Handler()
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s: %d", tt.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tt.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.contentType)
		}
		body := rec.Body.String()
		for _, c := range tt.contains {
			if !strings.Contains(body, c) {
				t.Errorf("GET %s: lacks %q", tt.path, c)
			}
		}
		// The demo must run offline: nothing is loaded from another host.
		if external.MatchString(body) {
			t.Errorf("GET %s loads %q from another host", tt.path, external.FindString(body))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/missing.html", nil))
	if rec.Code != 404 {
		t.Errorf("GET /missing.html: %d", rec.Code)
	}
}

// TestPagesShareTheirParts: the pixel stand-ins, the banner, the header
// and the panel are written once, in parts.html; the pages' sources include
// them instead of repeating them (TestHandler checks that every page shows
// them).
func TestPagesShareTheirParts(t *testing.T) {
	pages, err := filepath.Glob("site/*.html")
	if err != nil || len(pages) < 3 {
		t.Fatalf("pages %v, %v", pages, err)
	}
	for _, page := range pages {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{`src="/vendors.js"`, `src="/shop.js"`, `id="consent-banner"`, `class="brand"`, `id="events"`} {
			if strings.Contains(string(src), part) {
				t.Errorf("%s repeats %s: include the part of parts.html", page, part)
			}
		}
		for _, include := range []string{`{{template "head"`, `{{template "scripts"}}`, `{{template "banner"}}`, `{{template "events"}}`} {
			if !strings.Contains(string(src), include) {
				t.Errorf("%s lacks %s", page, include)
			}
		}
	}
}

type event struct {
	EventName      string            `json:"event_name"`
	EventSourceURL string            `json:"event_source_url"`
	EventID        string            `json:"event_id"`
	CustomData     map[string]any    `json:"custom_data"`
	UserData       map[string]string `json:"user_data"`
}

type body struct {
	Vid     string            `json:"vid"`
	Consent map[string]string `json:"consent"`
	Events  []event           `json:"events"`
}

// TestShopInBrowser walks the demo shop as a visitor would, with the real
// script and a fake /collect, and checks what reaches the gateway, what
// reaches fbq and what the panel shows.
func TestShopInBrowser(t *testing.T) {
	script, err := pixeljs.New()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan body, 16)
	mux := http.NewServeMux()
	mux.Handle("/", static.Handler())
	mux.Handle("GET /tw.js", script)
	mux.HandleFunc("POST /collect", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var b body
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Errorf("collect: %v: %s", err, raw)
		}
		w.WriteHeader(http.StatusNoContent)
		got <- b
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t)
	run := func(actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want ...string) body {
		t.Helper()
		select {
		case b := <-got:
			var names []string
			for _, e := range b.Events {
				names = append(names, e.EventName)
			}
			if strings.Join(names, ",") != strings.Join(want, ",") {
				t.Fatalf("events %v, want %v", names, want)
			}
			return b
		case <-time.After(30 * time.Second):
			t.Fatalf("no request with %v reached /collect", want)
			return body{}
		}
	}
	// The pixels that take each event (vendors.js stand-ins), as the panel
	// names them.
	takers := map[string]string{
		"PageView":         "same id → Meta, Snap, Pinterest",
		"ViewContent":      "same id → Meta, TikTok, Snap",
		"AddToCart":        "same id → Meta, TikTok, Snap, Pinterest",
		"InitiateCheckout": "same id → Meta, TikTok, Snap",
		"AddPaymentInfo":   "same id → Meta, TikTok, Snap",
		"Purchase":         "same id → Meta, TikTok, Snap, Pinterest",
	}
	// sameIDs checks that the panel and fbq show exactly the posted ids, and
	// that every pixel stand-in got the posted id.
	sameIDs := func(posted []event) {
		t.Helper()
		var panel [][]string
		run(chromedp.Evaluate(`[...document.querySelectorAll('#events li')].map(li => [li.querySelector('.name').textContent, li.querySelector('code').textContent, li.querySelector('.pixels').textContent])`, &panel))
		var fbq [][]any
		run(chromedp.Evaluate(`fbq.queue.map(a => Array.from(a)).filter(a => a[0] !== 'init')`, &fbq))
		if len(panel) != len(posted) || len(fbq) != len(posted) {
			t.Fatalf("posted %d events; panel shows %v; fbq got %v", len(posted), panel, fbq)
		}
		for i, e := range posted {
			if panel[i][0] != e.EventName || panel[i][1] != e.EventID || panel[i][2] != takers[e.EventName] {
				t.Errorf("panel row %d: %v, want %s %s %s", i, panel[i], e.EventName, e.EventID, takers[e.EventName])
			}
			opts, _ := fbq[i][3].(map[string]any)
			if fbq[i][0] != "track" || fbq[i][1] != e.EventName || opts["eventID"] != e.EventID {
				t.Errorf("fbq call %d: %v, want track %s with eventID %s", i, fbq[i], e.EventName, e.EventID)
			}
		}
	}

	// Product page: PageView and ViewContent on load under the site's
	// default; the visitor accepts in the banner; AddToCart on click.
	run(chromedp.Navigate(srv.URL + "/"))
	product := next("PageView", "ViewContent")
	if product.Consent != nil {
		t.Errorf("consent %v before any choice", product.Consent)
	}
	run(chromedp.WaitVisible("#consent-banner", chromedp.ByID), chromedp.Click("#consent-accept", chromedp.ByID),
		chromedp.WaitNotVisible("#consent-banner", chromedp.ByID))
	run(chromedp.Click("#add-to-cart", chromedp.ByID))
	cart := next("AddToCart")
	if cart.Consent["ad_storage"] != "granted" || cart.Consent["ad_user_data"] != "granted" {
		t.Errorf("AddToCart consent %v after Accept", cart.Consent)
	}
	// The Reviews tab: a single-page-app navigation, a PageView.
	run(chromedp.Click("#tab-reviews", chromedp.ByID), chromedp.WaitVisible("#reviews", chromedp.ByID))
	spa := next("PageView")
	if !strings.HasSuffix(spa.Events[0].EventSourceURL, "/?tab=reviews") {
		t.Errorf("SPA PageView at %s", spa.Events[0].EventSourceURL)
	}
	sameIDs(append(append(product.Events, cart.Events...), spa.Events...))
	if cart.Events[0].CustomData["currency"] != "EUR" || cart.Events[0].CustomData["value"] != 42.5 {
		t.Errorf("AddToCart custom_data %v", cart.Events[0].CustomData)
	}

	// Checkout: InitiateCheckout on load, under the choice made on the
	// product page; Pay sends AddPaymentInfo then Purchase with the order
	// (its id as the event id) and the form's e-mail and phone.
	run(chromedp.Click("#checkout-link", chromedp.ByID))
	checkout := next("PageView", "InitiateCheckout")
	if checkout.Consent["ad_storage"] != "granted" {
		t.Errorf("checkout consent %v; want the choice kept from the product page", checkout.Consent)
	}
	run(
		chromedp.WaitVisible("#pay", chromedp.ByID),
		chromedp.SendKeys("#email", "Jane@Example.com", chromedp.ByID),
		chromedp.SendKeys("#phone", "+1 (650) 555-1212", chromedp.ByID),
		chromedp.Click("#pay", chromedp.ByID),
	)
	paid := next("AddPaymentInfo", "Purchase")
	run(chromedp.WaitVisible("#thank-you", chromedp.ByID))
	sameIDs(append(checkout.Events, paid.Events...))

	p := paid.Events[1]
	if p.EventID != p.CustomData["order_id"] {
		t.Errorf("Purchase event_id %s; want the order id %v", p.EventID, p.CustomData["order_id"])
	}
	if id, _ := p.CustomData["order_id"].(string); !strings.HasPrefix(id, "demo-") ||
		p.CustomData["value"] != 42.5 || p.CustomData["currency"] != "EUR" || p.CustomData["contents"] == nil {
		t.Errorf("Purchase custom_data %v", p.CustomData)
	}
	for _, e := range paid.Events {
		if e.UserData["em"] != "Jane@Example.com" || e.UserData["ph"] != "+1 (650) 555-1212" {
			t.Errorf("%s user_data %v, want the form's e-mail and phone", e.EventName, e.UserData)
		}
	}
	var orderShown string
	run(chromedp.Text("#order-id", &orderShown, chromedp.ByID))
	if orderShown != p.CustomData["order_id"] {
		t.Errorf("thank-you shows order %q, Purchase has %v", orderShown, p.CustomData["order_id"])
	}
	if product.Vid == "" || checkout.Vid != product.Vid {
		t.Errorf("vid %q on the product page, %q at checkout: want one visitor seed", product.Vid, checkout.Vid)
	}

	// Privacy choices → Reject: the next event says denied and carries no
	// visitor seed; the seed is gone from the device.
	run(chromedp.Click("#consent-open", chromedp.ByID), chromedp.WaitVisible("#consent-reject", chromedp.ByID),
		chromedp.Click("#consent-reject", chromedp.ByID), chromedp.WaitNotVisible("#consent-banner", chromedp.ByID))
	run(chromedp.Evaluate(`tagway('track', 'Contact'), 1`, new(int)))
	revoked := next("Contact")
	var seed string
	run(chromedp.Evaluate(`localStorage.getItem('_tw_vid') || ''`, &seed))
	if revoked.Consent["ad_storage"] != "denied" || revoked.Vid != "" || seed != "" {
		t.Errorf("after Reject: consent %v, vid %q, stored seed %q", revoked.Consent, revoked.Vid, seed)
	}
	var state string
	run(chromedp.Text("#consent-state", &state, chromedp.ByID))
	if state != "consent: denied" {
		t.Errorf("header shows %q", state)
	}
	if errs := browsertest.Console(ctx).Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
