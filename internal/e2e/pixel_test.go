package e2e

// The first-party pixel end to end in headless Chromium: the demo shop and
// test pages with tw.js, the whole gateway over real Redis, and the strict
// fake of Meta's Graph API. Proves one event id across the four pixels and
// Meta's server events, the click ids kept in server-set cookies, consent
// (nothing leaves without it, everything once granted), delivery when the
// gateway was down, the per-site default paths when /tw.js and /collect are
// blocked, the path-prefix deployment behind the store's own web server,
// and the GA4 dataLayer.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/internal/browsertest"
	"github.com/tagway/tagway/routing/dispatch"
)

// browser is a headless Chromium for one test.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser { return &browser{t: t, ctx: browsertest.New(t)} }

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) eval(js string, out any) {
	b.t.Helper()
	b.run(chromedp.Evaluate(js, out))
}

// waitJS waits until the JavaScript expression is true in the page.
func (b *browser) waitJS(cond string) {
	b.t.Helper()
	var ok bool
	b.run(chromedp.Evaluate(`new Promise(function(ok){ (function wait(){ (`+cond+`) ? ok(true) : setTimeout(wait, 20) })() })`, &ok,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

// cookies returns the browser's cookies for u, by name.
func (b *browser) cookies(u string) map[string]*network.Cookie {
	b.t.Helper()
	var list []*network.Cookie
	b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		list, err = network.GetCookies().WithURLs([]string{u}).Do(ctx)
		return err
	}))
	jar := map[string]*network.Cookie{}
	for _, c := range list {
		jar[c.Name] = c
	}
	return jar
}

// clean fails the test on any console error but those containing one of
// allowed (failed loads a test provokes on purpose).
func (b *browser) clean(allowed ...string) {
	b.t.Helper()
next:
	for _, e := range browsertest.Console(b.ctx).Errors() {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		b.t.Errorf("console error: %s", e)
	}
}

// vendorIDs returns the event ids each pixel stand-in of the demo received,
// by vendor and event name.
func (b *browser) vendorIDs() map[string]map[string]string {
	b.t.Helper()
	var out map[string]map[string]string
	b.eval(`(function(){
  var last = function(c){ return c[c.length - 1] || {} };
  var by = function(calls, name, id){ var m = {}; calls.forEach(function(c){ var n = name(c), i = id(last(c)); if (n && i) m[n] = i }); return m };
  return {
    fbq: by(fbq.queue.map(function(a){ return Array.from(a) }), function(c){ return c[0] == 'init' ? '' : c[1] }, function(o){ return o.eventID }),
    ttq: by(ttq.queue, function(c){ return c[0] == 'track' ? c[1] : '' }, function(o){ return o.event_id }),
    snaptr: by(snaptr.queue, function(c){ return c[0] == 'track' ? c[1] : '' }, function(o){ return o.client_dedup_id }),
    pintrk: by(pintrk.queue, function(c){ return c[0] == 'track' ? c[1] : '' }, function(o){ return o.event_id })
  };
})()`, &out)
	return out
}

// metaIDs returns the event ids Meta received, by event name, failing when
// one id arrived twice.
func metaIDs(t *testing.T, got []metatest.Received) map[string]string {
	t.Helper()
	ids := map[string]string{}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.EventID] {
			t.Errorf("Meta received event %s (%s) twice", r.EventID, r.EventName)
		}
		seen[r.EventID] = true
		ids[r.EventName] = r.EventID
	}
	return ids
}

// waitMeta waits until Meta received an event of each name.
func waitMeta(t *testing.T, g *testGateway, names ...string) []metatest.Received {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := g.Graph.Events(testPixel)
		have := map[string]bool{}
		for _, r := range got {
			have[r.EventName] = true
		}
		missing := ""
		for _, n := range names {
			if !have[n] {
				missing = n
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Meta has no %s event after 30s; got %d events", missing, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPixelE2EOneIDEveryPixelAndClickIDs walks the demo shop landing from an
// ad click with every click id: each pixel stand-in gets the id Meta
// receives from the server, Purchase's id is the order id, and the gateway
// keeps every click id in its own cookies with the capture time.
func TestPixelE2EOneIDEveryPixelAndClickIDs(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	b := newBrowser(t)
	clicks := url.Values{
		"gclid": {"Cj0KCQ_e2e"}, "gbraid": {"0AAAA_gb"}, "wbraid": {"CkQK_wb"}, "ttclid": {"E.C.P.tt_e2e"},
		"ScCid": {"sc-e2e"}, "epik": {"dj0y_ep"}, "rdt_cid": {"1234_rdt"}, "li_fat_id": {"li-e2e"},
		"msclkid": {"ab12ms"}, "fbclid": {"IwAR_e2e"},
	}
	before := time.Now().UnixMilli()
	b.run(chromedp.Navigate(g.URL + "/?" + clicks.Encode()))
	b.run(chromedp.WaitVisible("#consent-accept", chromedp.ByID), chromedp.Click("#consent-accept", chromedp.ByID))
	b.run(chromedp.Click("#add-to-cart", chromedp.ByID))
	b.waitJS(`document.querySelectorAll('#events li').length == 3`)
	vendors := b.vendorIDs()
	got := waitMeta(t, g, "PageView", "ViewContent", "AddToCart")
	after := time.Now().UnixMilli()
	ids := metaIDs(t, got)
	wantVendors := map[string]map[string]string{
		"fbq":    {"PageView": ids["PageView"], "ViewContent": ids["ViewContent"], "AddToCart": ids["AddToCart"]},
		"ttq":    {"ViewContent": ids["ViewContent"], "AddToCart": ids["AddToCart"]},
		"snaptr": {"PAGE_VIEW": ids["PageView"], "VIEW_CONTENT": ids["ViewContent"], "ADD_CART": ids["AddToCart"]},
		"pintrk": {"pagevisit": ids["PageView"], "addtocart": ids["AddToCart"]},
	}
	if fmt.Sprint(vendors) != fmt.Sprint(wantVendors) {
		t.Errorf("the pixels got\n%v\nMeta's ids say\n%v", vendors, wantVendors)
	}

	// Every click id, in the gateway's cookies, with its capture time.
	jar := b.cookies(g.URL + "/")
	cid := jar["_tw_cid"]
	if cid == nil {
		t.Fatalf("no _tw_cid cookie; jar %v", jar)
	}
	stored, err := url.ParseQuery(cid.Value)
	if err != nil {
		t.Fatal(err)
	}
	for name := range clicks {
		if name == "fbclid" {
			continue
		}
		ms, v, _ := strings.Cut(stored.Get(name), ".")
		at, _ := strconv.ParseInt(ms, 10, 64)
		if v != clicks.Get(name) || at < before || at > after {
			t.Errorf("_tw_cid %s = %q; want %s captured in [%d, %d]", name, stored.Get(name), clicks.Get(name), before, after)
		}
	}
	if c := jar["_gcl_aw"]; c == nil || !regexp.MustCompile(`^GCL\.\d{10}\.Cj0KCQ_e2e$`).MatchString(c.Value) {
		t.Errorf("_gcl_aw = %+v", c)
	}
	if c := jar["_fbc"]; c == nil || !strings.HasSuffix(c.Value, ".IwAR_e2e") {
		t.Errorf("_fbc = %+v", c)
	}
	for _, name := range []string{"_tw_vid", "_tw_cid", "_gcl_aw", "_fbp"} {
		if c := jar[name]; c == nil || c.HTTPOnly || c.Path != "/" {
			t.Errorf("%s cookie %+v", name, c)
		}
	}

	// Checkout: Purchase takes the order id as its event id, everywhere.
	b.run(chromedp.Click("#checkout-link", chromedp.ByID), chromedp.WaitVisible("#pay", chromedp.ByID),
		chromedp.SendKeys("#email", "jane@example.com", chromedp.ByID), chromedp.Click("#pay", chromedp.ByID),
		chromedp.WaitVisible("#thank-you", chromedp.ByID))
	var order string
	b.run(chromedp.Text("#order-id", &order, chromedp.ByID))
	b.waitJS(`document.querySelectorAll('#events li').length == 4`)
	vendors = b.vendorIDs()
	got = waitMeta(t, g, "InitiateCheckout", "AddPaymentInfo", "Purchase")
	ids = metaIDs(t, got)
	if ids["Purchase"] != order {
		t.Errorf("Meta's Purchase event_id %q; want the order id %q", ids["Purchase"], order)
	}
	for vendor, name := range map[string]string{"fbq": "Purchase", "ttq": "Purchase", "snaptr": "PURCHASE", "pintrk": "checkout"} {
		if vendors[vendor][name] != order {
			t.Errorf("%s got Purchase id %q; want %q", vendor, vendors[vendor][name], order)
		}
	}
	b.clean()
}

// TestPixelE2EConsentDeniedThenGranted runs an EU store (wait default): no
// event leaves before the choice; after Reject, no cookie is set, nothing is
// stored on the device and nothing reaches Meta; after Accept, cookies and
// identifiers do.
func TestPixelE2EConsentDeniedThenGranted(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{"TAGWAY_CONSENT_DEFAULT": "wait"}})
	b := newBrowser(t)
	b.run(chromedp.Navigate(g.URL + "/?gclid=G_consent&fbclid=F_consent"))
	b.run(chromedp.WaitVisible("#consent-reject", chromedp.ByID), chromedp.Click("#consent-reject", chromedp.ByID))
	b.run(chromedp.Click("#add-to-cart", chromedp.ByID))
	b.waitJS(`document.querySelectorAll('#events li').length == 3`)
	// The marker is the first event after Accept: once Meta has it, every
	// earlier (denied) event was dispatched before it.
	denied := map[string]bool{}
	var deniedIDs []string
	b.eval(`[...document.querySelectorAll('#events code')].map(c => c.textContent)`, &deniedIDs)
	for _, id := range deniedIDs {
		denied[id] = true
	}

	jar := b.cookies(g.URL + "/")
	for _, name := range []string{"_fbp", "_fbc", "_tw_vid", "_tw_cid", "_gcl_aw"} {
		if jar[name] != nil {
			t.Errorf("cookie %s set after Reject: %+v", name, jar[name])
		}
	}
	var stored []string
	b.eval(`Object.keys(localStorage).filter(k => k.startsWith('_tw'))`, &stored)
	if len(stored) != 0 {
		t.Errorf("localStorage holds %v after Reject", stored)
	}

	b.run(chromedp.Click("#consent-open", chromedp.ByID), chromedp.WaitVisible("#consent-accept", chromedp.ByID),
		chromedp.Click("#consent-accept", chromedp.ByID))
	b.eval(`tagway('track', 'Lead', {}, {user_data: {em: 'jane@example.com', external_id: 'c-1'}}), 1`, new(int))
	got := waitMeta(t, g, "Lead")
	for _, r := range got {
		if denied[r.EventID] {
			t.Errorf("Meta received %s %s, sent without consent", r.EventName, r.EventID)
		}
		if r.EventName != "Lead" {
			continue
		}
		ud := r.UserData
		if ud["fbp"] == nil || ud["fbc"] == nil || ud["em"] == nil || ud["external_id"] == nil || ud["client_ip_address"] == nil {
			t.Errorf("Lead after Accept lacks identifiers: %v", ud)
		}
	}
	jar = b.cookies(g.URL + "/")
	for _, name := range []string{"_fbp", "_fbc", "_tw_vid", "_tw_cid", "_gcl_aw"} {
		if jar[name] == nil {
			t.Errorf("no %s cookie after Accept", name)
		}
	}
	b.clean()
}

// TestPixelE2EConsentDeniedAnonymous: a site whose consent_denied_mode is
// anonymous accepts its events without consent, with no identifier at all:
// the user agent is the only customer information left — so little that
// Meta refuses such events (error 2804050), so routing withholds them from
// Meta (consent:anonymous_unsupported) rather than sending them to be
// refused. Nothing reaches Meta, not even a refused request, and no cookie
// is set.
func TestPixelE2EConsentDeniedAnonymous(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{"TAGWAY_CONSENT_DEFAULT": "denied", "TAGWAY_CONSENT_DENIED_MODE": "anonymous"}})
	b := newBrowser(t)
	b.run(chromedp.Navigate(g.URL + "/checkout.html?gclid=G_anon&fbclid=F_anon"))
	b.run(chromedp.WaitVisible("#pay", chromedp.ByID), chromedp.SendKeys("#email", "jane@example.com", chromedp.ByID),
		chromedp.Click("#pay", chromedp.ByID), chromedp.WaitVisible("#thank-you", chromedp.ByID))
	// The PageView and the Purchase of the page are both withheld.
	for deadline := time.Now().Add(30 * time.Second); withheldMetric(t, g, "meta", dispatch.ReasonAnonymousUnsupported) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the denied visitor's events were not withheld from Meta as anonymous_unsupported")
		}
	}
	if rej := g.Graph.Rejections(); len(rej) != 0 {
		t.Errorf("Meta was sent events it refused: %v", rej)
	}
	for _, r := range g.Graph.Events(testPixel) {
		t.Errorf("Meta received %s with %v", r.EventName, r.UserData)
	}
	if jar := b.cookies(g.URL + "/"); len(jar) != 0 {
		t.Errorf("cookies without consent: %v", jar)
	}
	b.clean()
}

// switchProxy forwards to the gateway; while down, it answers POST requests
// to collect with 503, as an overloaded or restarting gateway would, and
// counts them.
type switchProxy struct {
	proxy   *httputil.ReverseProxy
	down    atomic.Bool
	refused atomic.Int32
	block   func(r *http.Request) bool // paths answered 404 (a blocker)

	mu    sync.Mutex
	paths []string // POST paths forwarded
}

func newSwitchProxy(t *testing.T, target string) (*switchProxy, *httptest.Server) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.block != nil && p.block(r) {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodPost {
		if p.down.Load() {
			p.refused.Add(1)
			w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		p.mu.Unlock()
	}
	p.proxy.ServeHTTP(w, r)
}

// TestPixelE2ERetryWhenGatewayIsDown: events the gateway could not take
// (503, then the browser offline) reach Meta exactly once when it is back:
// from the next page, and when the browser is back online.
func TestPixelE2ERetryWhenGatewayIsDown(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true})
	proxy, front := newSwitchProxy(t, g.URL)
	b := newBrowser(t)

	proxy.down.Store(true)
	b.run(chromedp.Navigate(front.URL + "/"))
	b.run(chromedp.WaitVisible("#consent-accept", chromedp.ByID), chromedp.Click("#consent-accept", chromedp.ByID),
		chromedp.Click("#add-to-cart", chromedp.ByID))
	b.waitJS(`(JSON.parse(localStorage.getItem('_tw_q')) || []).length == 3`)
	if proxy.refused.Load() == 0 {
		t.Fatal("the gateway refused nothing")
	}
	proxy.down.Store(false)
	// The next page sends what the last one could not.
	b.run(chromedp.Click("#checkout-link", chromedp.ByID), chromedp.WaitVisible("#pay", chromedp.ByID))
	waitMeta(t, g, "PageView", "ViewContent", "AddToCart", "InitiateCheckout")
	b.waitJS(`localStorage.getItem('_tw_q') === null`)

	// Offline: the browser cannot reach the gateway at all; back online,
	// the events go.
	b.run(network.EmulateNetworkConditions(true, 0, -1, -1))
	b.run(chromedp.Click("#pay", chromedp.ByID), chromedp.WaitVisible("#thank-you", chromedp.ByID))
	b.waitJS(`(JSON.parse(localStorage.getItem('_tw_q')) || []).length == 2`)
	b.run(network.EmulateNetworkConditions(false, 0, -1, -1))
	waitMeta(t, g, "AddPaymentInfo", "Purchase")
	b.waitJS(`localStorage.getItem('_tw_q') === null`)

	// Each once: 2 page views, ViewContent, AddToCart, InitiateCheckout,
	// AddPaymentInfo, Purchase; and nothing more arrives.
	b.eval(`tagway('track', 'Contact'), 1`, new(int))
	got := waitMeta(t, g, "Contact")
	metaIDs(t, got)
	if len(got) != 8 {
		var names []string
		for _, r := range got {
			names = append(names, r.EventName+" "+r.EventID)
		}
		t.Errorf("Meta received %d events, want 8:\n%s", len(got), strings.Join(names, "\n"))
	}
	b.clean("503", "ERR_INTERNET_DISCONNECTED")
}

// TestPixelE2EBlockedPathsFallBackToSitePaths: with /tw.js and /collect
// blocked (as a blocker learns them), the site's default paths carry the
// script and the events.
func TestPixelE2EBlockedPathsFallBackToSitePaths(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{"TAGWAY_PATH_SECRET": "e2e-secret"}})
	script, collect := gateway.DefaultPaths([]byte("e2e-secret"), "default")
	if !strings.Contains(g.Logs.String(), script) || !strings.Contains(g.Logs.String(), collect) {
		t.Errorf("the start-up log does not show the default paths %s %s", script, collect)
	}
	proxy, front := newSwitchProxy(t, g.URL)
	proxy.block = func(r *http.Request) bool { return r.URL.Path == "/tw.js" || r.URL.Path == "/collect" }
	page := `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)};
tagway('track', 'Lead', {value: 1, currency: 'EUR'});</script>
<script async src="` + front.URL + script + `"></script></head><body>blocked</body></html>`
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(pages.Close)

	b := newBrowser(t)
	b.run(chromedp.Navigate(pages.URL + "/landing"))
	waitMeta(t, g, "PageView", "Lead")
	proxy.mu.Lock()
	paths := strings.Join(proxy.paths, ",")
	proxy.mu.Unlock()
	if paths != collect {
		t.Errorf("events posted to %s; want the site's default collect path %s", paths, collect)
	}
	b.clean()
}

// TestPixelE2EPathPrefix mounts the gateway below /tw on the store's own
// web server (same origin: the Safari-proof deployment), once with a
// server that strips the prefix and says so in X-Forwarded-Prefix, once
// with one that forwards it unchanged to a gateway told TAGWAY_BASE_PATH.
func TestPixelE2EPathPrefix(t *testing.T) {
	for _, strip := range []bool{true, false} {
		t.Run(fmt.Sprintf("strip=%v", strip), func(t *testing.T) {
			env := map[string]string{"TAGWAY_TRUSTED_PROXIES": "127.0.0.1"}
			if !strip {
				env["TAGWAY_BASE_PATH"] = "/tw"
			}
			g := startGateway(t, gatewayOptions{meta: true, env: env})
			target, _ := url.Parse(g.URL)
			var posted atomic.Value
			store := httptest.NewServer(nil)
			rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(target)
				r.SetXForwarded()
				if strip {
					r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/tw")
					r.Out.Header.Set("X-Forwarded-Prefix", "/tw")
				}
			}}
			store.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/tw/") {
					if r.Method == http.MethodPost {
						posted.Store(r.URL.Path)
					}
					rp.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				io.WriteString(w, `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)};
tagway('track', 'ViewContent', {content_ids: ['sku-1']});</script>
<script async src="/tw/tw.js"></script></head><body>store</body></html>`)
			})
			t.Cleanup(store.Close)

			b := newBrowser(t)
			b.run(chromedp.Navigate(store.URL + "/product?fbclid=IwAR_prefix"))
			got := waitMeta(t, g, "PageView", "ViewContent")
			if p, _ := posted.Load().(string); p != "/tw/collect" {
				t.Errorf("posted to %q; want /tw/collect", p)
			}
			jar := b.cookies(store.URL + "/")
			if jar["_fbp"] == nil || jar["_fbc"] == nil || jar["_tw_vid"] == nil {
				t.Fatalf("cookies on the store's host: %v", jar)
			}
			for _, r := range got {
				if r.UserData["fbp"] != jar["_fbp"].Value {
					t.Errorf("%s fbp %v; cookie %s", r.EventName, r.UserData["fbp"], jar["_fbp"].Value)
				}
			}
			b.clean()
		})
	}
}

// TestPixelE2EGA4DataLayer: a store that only pushes GA4 e-commerce events
// gets them to Meta as standard events, with contents, on a site with the
// option on.
func TestPixelE2EGA4DataLayer(t *testing.T) {
	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{"TAGWAY_GA4_DATALAYER": "on"}})
	b := newBrowser(t)
	b.run(chromedp.Navigate(g.URL + "/ga4.html"))
	b.run(chromedp.WaitVisible("#ga4-purchase", chromedp.ByID), chromedp.Click("#ga4-purchase", chromedp.ByID))
	got := waitMeta(t, g, "ViewContent", "Purchase")
	for _, r := range got {
		switch r.EventName {
		case "ViewContent":
			if fmt.Sprint(r.CustomData["contents"]) != "[map[id:sku-1 item_price:42.5 quantity:1]]" {
				t.Errorf("ViewContent contents %v", r.CustomData["contents"])
			}
		case "Purchase":
			if !strings.HasPrefix(r.EventID, "ga4-") || r.CustomData["order_id"] != r.EventID {
				t.Errorf("Purchase event_id %s, order_id %v; want the transaction_id for both", r.EventID, r.CustomData["order_id"])
			}
		}
	}
	b.clean()
}
