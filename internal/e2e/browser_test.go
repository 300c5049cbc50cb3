package e2e

// The whole product in a real headless Chromium: the demo shop served by the
// gateway, tw.js, /collect, Redis, the dispatcher, the Meta adapter and a
// strict fake Graph API. Proves that the eventID handed to the browser Pixel
// (fbq) is the event_id Meta receives from the server, and that the gateway
// sets _fbp/_fbc as Meta specifies.

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tagway/tagway/internal/browsertest"
)

func TestBrowserPurchaseSharesEventIDWithPixel(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	ctx := browsertest.New(t)
	run := func(actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatal(err)
		}
	}

	// A visitor lands from a Meta ad: the URL carries an fbclid.
	run(chromedp.Navigate(g.URL + "/?fbclid=IwAR0Browser_Click"))
	run(chromedp.WaitVisible("#add-to-cart", chromedp.ByID))
	g.Graph.WaitEvents(testPixel, 2, 15*time.Second) // PageView, ViewContent
	run(chromedp.Click("#checkout-link", chromedp.ByID))
	run(
		chromedp.WaitVisible("#pay", chromedp.ByID),
		chromedp.SendKeys("#email", "Jane@Example.com", chromedp.ByID),
		chromedp.SendKeys("#phone", "+1 (650) 555-1212", chromedp.ByID),
		chromedp.Click("#pay", chromedp.ByID),
		chromedp.WaitVisible("#thank-you", chromedp.ByID),
	)

	// The eventID the page handed to fbq for Purchase.
	var pixelID string
	run(chromedp.Evaluate(`(fbq.queue.map(a => Array.from(a)).find(a => a[0] === 'track' && a[1] === 'Purchase') || [,,,{}])[3].eventID || ''`, &pixelID))
	if pixelID == "" {
		t.Fatal("fbq was not called for Purchase with an eventID")
	}

	// The event_id Meta received from the server for Purchase.
	var serverID string
	var purchase map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for serverID == "" && time.Now().Before(deadline) {
		for _, r := range g.Graph.Events(testPixel) {
			if r.Event["event_name"] == "Purchase" {
				serverID, _ = r.Event["event_id"].(string)
				purchase = r.Event
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if serverID != pixelID {
		t.Fatalf("Meta received Purchase event_id %q; the Pixel got eventID %q", serverID, pixelID)
	}

	// Cookies: set by the gateway on the page's host (an IP: host-only, index 0).
	var cookies []*network.Cookie
	run(chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{g.URL + "/"}).Do(ctx)
		return err
	}))
	jar := map[string]*network.Cookie{}
	for _, c := range cookies {
		jar[c.Name] = c
	}
	fbp, fbc := jar["_fbp"], jar["_fbc"]
	if fbp == nil || !regexp.MustCompile(`^fb\.0\.\d{13}\.\d{10,18}$`).MatchString(fbp.Value) {
		t.Fatalf("_fbp = %+v", fbp)
	}
	if fbc == nil || !regexp.MustCompile(`^fb\.0\.\d{13}\.IwAR0Browser_Click$`).MatchString(fbc.Value) {
		t.Fatalf("_fbc = %+v", fbc)
	}
	for _, c := range []*network.Cookie{fbp, fbc} {
		if c.HTTPOnly || c.Path != "/" || c.SameSite != network.CookieSameSiteLax {
			t.Errorf("%s attributes: httpOnly=%v path=%q sameSite=%q", c.Name, c.HTTPOnly, c.Path, c.SameSite)
		}
		if ttl := time.Until(time.Unix(int64(c.Expires), 0)); ttl < 399*24*time.Hour {
			t.Errorf("%s expires in %v; want 400 days", c.Name, ttl)
		}
	}
	ud, _ := purchase["user_data"].(map[string]any)
	if ud["fbp"] != fbp.Value || ud["fbc"] != fbc.Value {
		t.Errorf("Purchase user_data fbp/fbc = %v/%v; cookies %s/%s", ud["fbp"], ud["fbc"], fbp.Value, fbc.Value)
	}
	if em, _ := ud["em"].([]any); len(em) != 1 || em[0] != sha("jane@example.com") {
		t.Errorf("Purchase em = %v", ud["em"])
	}
	if errs := browsertest.Console(ctx).Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
