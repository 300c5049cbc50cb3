package pixeljs_test

// Browser tests of the script's features beyond the basics: the vendor
// pixels sharing one event id, the GA4 dataLayer, the IAB TCF and Google
// Consent Mode, delivery retries, and single-page-app page views.

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/browsertest"
	"github.com/tagway/tagway/pixeljs"
)

// vendorStubs stand in for the Meta, TikTok, Snap, Pinterest and Reddit
// base codes: they record their calls and load nothing.
const vendorStubs = `
window.calls = {fbq: [], ttq: [], snaptr: [], pintrk: [], rdt: []};
window.fbq = function(){ calls.fbq.push(Array.from(arguments)) };
window.ttq = {track: function(){ calls.ttq.push(Array.from(arguments)) }, page: function(){}};
window.snaptr = function(){ calls.snaptr.push(Array.from(arguments)) };
window.pintrk = function(){ calls.pintrk.push(Array.from(arguments)) };
window.rdt = function(){ calls.rdt.push(Array.from(arguments)) };
`

// waitJS waits until the JavaScript expression cond is true in the page.
func (f *fixture) waitJS(cond string) {
	f.t.Helper()
	if err := browsertest.Wait(f.b, cond, 30*time.Second); err != nil {
		f.t.Fatal(err)
	}
}

// waitRefused waits until the failing /collect has refused n requests in
// all. The wait is bounded, so that a missing request fails the test.
func (f *fixture) waitRefused(n int32) {
	f.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); f.refused.Load() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("the failing gateway refused %d requests, want %d", f.refused.Load(), n)
		}
	}
}

// cleanExcept fails the test when the page reported an error that does not
// contain allowed (such as the 503 answers a retry test provokes, which
// Chromium logs as failed loads).
func (f *fixture) cleanExcept(allowed string) {
	f.t.Helper()
	for _, e := range browsertest.Errors(f.b) {
		if !strings.Contains(e, allowed) {
			f.t.Errorf("console error: %s", e)
		}
	}
}

func TestBrowserVendorPixelsShareEventID(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		head := vendorStubs + `
	tagway('consent', {ad_storage:'granted', ad_user_data:'granted'});
	tagway('track', 'AddToCart', {content_ids:['sku-1'], contents:[{id:'sku-1', quantity:2, item_price:21.25}], value:42.5, currency:'EUR'});
	tagway('track', 'Purchase', {order_id:'1001', value:42.5, currency:'EUR', contents:[{id:'sku-1', quantity:2, item_price:21.25}]});
	tagway('track', 'QuizDone', {score:3});
	`
		f.open(f.page("/vendors", head, ""))
		r := f.next()
		if got := strings.Join(r.names(), ","); got != "PageView,AddToCart,Purchase,QuizDone" {
			t.Fatalf("events %s", got)
		}
		id := map[string]string{}
		for _, e := range r.Events() {
			id[e.EventName] = e.EventID
		}
		if id["Purchase"] != "1001" {
			t.Errorf("Purchase event_id %q; want the order id", id["Purchase"])
		}

		var calls map[string][][]any
		f.eval(`calls`, &calls)
		lines := []any{map[string]any{"content_id": "sku-1", "quantity": 2.0, "price": 21.25}}
		pinLines := []any{map[string]any{"product_id": "sku-1", "product_quantity": 2.0, "product_price": 21.25}}
		want := map[string][][]any{
			"fbq": {
				{"track", "PageView", map[string]any{}, map[string]any{"eventID": id["PageView"]}},
				{"track", "AddToCart", map[string]any{"content_ids": []any{"sku-1"}, "contents": []any{map[string]any{"id": "sku-1", "quantity": 2.0, "item_price": 21.25}},
					"value": 42.5, "currency": "EUR"}, map[string]any{"eventID": id["AddToCart"]}},
				{"track", "Purchase", map[string]any{"order_id": "1001", "value": 42.5, "currency": "EUR",
					"contents": []any{map[string]any{"id": "sku-1", "quantity": 2.0, "item_price": 21.25}}}, map[string]any{"eventID": "1001"}},
				{"trackCustom", "QuizDone", map[string]any{"score": 3.0}, map[string]any{"eventID": id["QuizDone"]}},
			},
			// TikTok: not PageView (its base code's ttq.page() counts it);
			// custom events by their own name.
			"ttq": {
				{"AddToCart", map[string]any{"value": 42.5, "currency": "EUR", "contents": lines}, map[string]any{"event_id": id["AddToCart"]}},
				{"Purchase", map[string]any{"value": 42.5, "currency": "EUR", "contents": lines}, map[string]any{"event_id": "1001"}},
				{"QuizDone", map[string]any{"contents": []any{}}, map[string]any{"event_id": id["QuizDone"]}},
			},
			// Snap: its own names; no custom events.
			"snaptr": {
				{"track", "PAGE_VIEW", map[string]any{"item_ids": []any{}, "client_dedup_id": id["PageView"]}},
				{"track", "ADD_CART", map[string]any{"price": 42.5, "currency": "EUR", "item_ids": []any{"sku-1"}, "client_dedup_id": id["AddToCart"]}},
				{"track", "PURCHASE", map[string]any{"price": 42.5, "currency": "EUR", "item_ids": []any{"sku-1"}, "transaction_id": "1001", "client_dedup_id": "1001"}},
			},
			// Pinterest: its tag's names; no custom events.
			"pintrk": {
				{"track", "pagevisit", map[string]any{"line_items": []any{}, "event_id": id["PageView"]}},
				{"track", "addtocart", map[string]any{"value": 42.5, "currency": "EUR", "line_items": pinLines, "event_id": id["AddToCart"]}},
				{"track", "checkout", map[string]any{"value": 42.5, "currency": "EUR", "order_id": "1001", "line_items": pinLines, "event_id": "1001"}},
			},
			// Reddit: its names; others as its Custom event.
			"rdt": {
				{"track", "PageVisit", map[string]any{"products": []any{}, "conversionId": id["PageView"]}},
				{"track", "AddToCart", map[string]any{"value": 42.5, "currency": "EUR", "products": []any{map[string]any{"id": "sku-1"}}, "conversionId": id["AddToCart"]}},
				{"track", "Purchase", map[string]any{"value": 42.5, "currency": "EUR", "products": []any{map[string]any{"id": "sku-1"}}, "conversionId": "1001"}},
				{"track", "Custom", map[string]any{"customEventName": "QuizDone", "products": []any{}, "conversionId": id["QuizDone"]}},
			},
		}
		for _, vendor := range []string{"fbq", "ttq", "snaptr", "pintrk", "rdt"} {
			if !reflect.DeepEqual(calls[vendor], want[vendor]) {
				g, _ := json.Marshal(calls[vendor])
				w, _ := json.Marshal(want[vendor])
				t.Errorf("%s calls\n got %s\nwant %s", vendor, g, w)
			}
		}
		f.clean()
	})
}

func TestBrowserGA4DataLayer(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		// GTM-style and gtag-style pushes before the script loads, including a
		// Consent Mode update (read with the option off too).
		head := `
	window.dataLayer = window.dataLayer || [];
	function gtag(){ dataLayer.push(arguments) }
	gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied'});
	gtag('consent', 'update', {ad_storage: 'granted', ad_user_data: 'granted'});
	dataLayer.push({event: 'gtm.js'});
	dataLayer.push({ecommerce: null});
	dataLayer.push({event: 'view_item', ecommerce: {currency: 'EUR', value: 42.5, items: [{item_id: 'sku-1', item_name: 'Shirt', price: 42.5, quantity: 1}]}});
	`
		later := `
	dataLayer.push({ecommerce: null});
	dataLayer.push({event: 'add_to_cart', ecommerce: {currency: 'EUR', value: 85, items: [{item_id: 'sku-1', price: 42.5, quantity: 2}]}});
	dataLayer.push({event: 'purchase'});
	gtag('event', 'purchase', {transaction_id: 4711, value: '85,00', currency: 'EUR', items: [{item_id: 123, price: '42,50', quantity: '2'}, {item_name: 'no id'}]});
	1`
		on := pixeljs.Options{ConsentDefault: pixeljs.ConsentDenied, SPAPageViews: true, DataLayer: true}
		tag := `<script async src="` + f.variant("datalayer", on) + `"></script>`
		f.open(f.page("/ga4", head, tag))
		r := f.next()
		if got := strings.Join(r.names(), ","); got != "PageView,ViewContent" {
			t.Fatalf("first request %s; want the PageView and the view_item pushed before the script", got)
		}
		if r.Body.Consent["ad_storage"] != "granted" || r.Body.Consent["ad_user_data"] != "granted" || r.Body.Vid == "" {
			t.Errorf("consent %v, vid %q; want the Consent Mode update applied", r.Body.Consent, r.Body.Vid)
		}
		wantView := map[string]any{"value": 42.5, "currency": "EUR", "contents": []any{map[string]any{"id": "sku-1", "quantity": 1.0, "item_price": 42.5}}}
		if got := r.Events()[1].CustomData; !reflect.DeepEqual(got, wantView) {
			t.Errorf("ViewContent custom_data %v; want %v", got, wantView)
		}

		f.eval(later, new(int))
		r = f.next()
		if got := strings.Join(r.names(), ","); got != "AddToCart,Purchase" {
			t.Fatalf("later pushes gave %s; want AddToCart,Purchase (the push without ecommerce skipped)", got)
		}
		// A European shop's plugin: numbers as the page wrote them, which the
		// gateway reads (a conversion in the browser would lose "85,00").
		p := r.Events()[1]
		wantPurchase := map[string]any{"value": "85,00", "currency": "EUR", "order_id": 4711.0,
			"contents": []any{map[string]any{"id": 123.0, "quantity": "2", "item_price": "42,50"}}}
		if p.EventID != "4711" || !reflect.DeepEqual(p.CustomData, wantPurchase) {
			t.Errorf("Purchase %s %v; want event id 4711 and %v", p.EventID, p.CustomData, wantPurchase)
		}

		// The same page on a site without the option: e-commerce pushes are
		// not events, the Consent Mode update still counts.
		f.open(f.page("/ga4-off", head, `<script async src="`+f.tags.URL+`/denied/tw.js"></script>`))
		r = f.next()
		if got := strings.Join(r.names(), ","); got != "PageView" || r.Body.Consent["ad_storage"] != "granted" {
			t.Errorf("without the option: %s, consent %v; want only the PageView, granted", got, r.Body.Consent)
		}
		f.eval(later+`; tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("without the option, later pushes gave %v", r.names())
		}
		f.clean()
	})
}

func TestBrowserTCF(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		// A CMP stub: the listener first hears that the banner is shown (no
		// choice yet), then the test plays the visitor's choice.
		cmp := `
	window.__tcfapi = function(cmd, version, cb){
	  if (cmd !== 'addEventListener' || version !== 2) return;
	  window.tcfListener = cb;
	  cb({gdprApplies: true, eventStatus: 'cmpuishown', purpose: {consents: {}}}, true);
	};
	`
		f.open(f.page("/tcf", cmp, `<script async src="`+f.tags.URL+`/wait/tw.js"></script>`))
		f.ready()
		f.eval(`tcfListener({gdprApplies: true, eventStatus: 'useractioncomplete', purpose: {consents: {1: true, 3: false, 4: true, 7: true}}}, true), 1`, new(int))
		r := f.next()
		want := map[string]string{"ad_storage": "granted", "ad_user_data": "granted", "ad_personalization": "denied", "analytics_storage": "granted"}
		if strings.Join(r.names(), ",") != "PageView" || !reflect.DeepEqual(r.Body.Consent, want) || r.Body.Vid == "" {
			t.Errorf("after the choice: %v, consent %v, vid %q; want the held PageView under %v", r.names(), r.Body.Consent, r.Body.Vid, want)
		}
		// Purpose 7 refused: no ad_user_data.
		f.eval(`tcfListener({gdprApplies: true, eventStatus: 'useractioncomplete', purpose: {consents: {1: true, 3: true, 4: true}}}, true); tagway('track', 'Lead'), 1`, new(int))
		if r := f.next(); r.Body.Consent["ad_user_data"] != "denied" || r.Body.Consent["ad_personalization"] != "granted" {
			t.Errorf("without purpose 7: consent %v", r.Body.Consent)
		}

		// GDPR does not apply: the TCF says nothing, the site default stands.
		noGDPR := `window.__tcfapi = function(cmd, v, cb){ cb({gdprApplies: false, eventStatus: 'tcloaded', purpose: {consents: {1: true, 4: true, 7: true}}}, true) };`
		f.open(f.page("/tcf-no-gdpr", noGDPR, `<script async src="`+f.tags.URL+`/denied/tw.js"></script>`))
		if r := f.next(); r.Body.Consent != nil || r.Body.Vid != "" {
			t.Errorf("gdprApplies false: consent %v, vid %q; want the denied default untouched", r.Body.Consent, r.Body.Vid)
		}
		f.clean()
	})
}

func TestBrowserRetryWhenGatewayIsDown(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		granted := `<script async src="` + f.tags.URL + `/granted/tw.js"></script>`

		// The gateway answers 503: the events stay, stored (ad_storage is
		// granted) without their raw user data, and are sent once it is back.
		f.setStatus(503)
		f.open(f.page("/down", `tagway('track', 'Lead', {value: 1}, {user_data: {em: 'jane@example.com'}});`, granted))
		f.waitJS(`(JSON.parse(localStorage.getItem('_tw_q')) || []).length == 2`)
		var stored string
		f.eval(`localStorage.getItem('_tw_q')`, &stored)
		if strings.Contains(stored, "jane") || !strings.Contains(stored, `"event_name":"Lead"`) {
			t.Errorf("stored queue %s; want the events without raw user data", stored)
		}
		if f.refused.Load() == 0 {
			t.Fatal("no request reached the failing gateway")
		}
		f.setStatus(0)
		f.eval(`dispatchEvent(new Event('online')), 1`, new(int))
		r := f.next()
		if got := strings.Join(r.names(), ","); got != "PageView,Lead" {
			t.Fatalf("after recovery: %s; want PageView,Lead", got)
		}
		if em := r.Events()[1].UserData["em"]; em != "jane@example.com" {
			t.Errorf("the retry from memory lost the user data: %v", r.Events()[1].UserData)
		}
		f.waitJS(`localStorage.getItem('_tw_q') === null`)
		f.eval(`tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("next request %v; want only the marker: nothing is sent twice", r.names())
		}

		// Next page: events a page could not deliver are sent by the next one,
		// once each.
		f.setStatus(503)
		f.open(f.page("/down-a", `tagway('track', 'AddToCart', {value: 2, currency: 'EUR'});`, granted))
		f.waitJS(`(JSON.parse(localStorage.getItem('_tw_q')) || []).length == 2`)
		var ids []string
		f.eval(`JSON.parse(localStorage.getItem('_tw_q')).map(function(e){ return e.event_id })`, &ids)
		f.setStatus(0)
		f.open(f.page("/down-b", "", granted))
		r = f.next()
		if got := strings.Join(r.names(), ","); got != "PageView,AddToCart,PageView" {
			t.Fatalf("next page sent %s; want the stored PageView and AddToCart, then its own PageView", got)
		}
		if r.Events()[0].EventID != ids[0] || r.Events()[1].EventID != ids[1] {
			t.Errorf("ids %s %s; want the stored %v", r.Events()[0].EventID, r.Events()[1].EventID, ids)
		}
		f.waitJS(`localStorage.getItem('_tw_q') === null`)
		f.eval(`tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("next request %v; want only the marker", r.names())
		}

		// Without storage consent the events wait in memory only.
		f.setStatus(503)
		before := f.refused.Load()
		f.open(f.page("/down-denied", `localStorage.clear();`, `<script async src="`+f.tags.URL+`/denied/tw.js"></script>`))
		f.waitRefused(before + 1)
		var keys int
		f.eval(`localStorage.length`, &keys)
		if keys != 0 {
			t.Errorf("%d localStorage keys without consent", keys)
		}
		f.setStatus(0)
		f.eval(`dispatchEvent(new Event('online')), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "PageView" || r.Body.Vid != "" {
			t.Errorf("after recovery without consent: %v, vid %q", r.names(), r.Body.Vid)
		}
		f.cleanExcept("503")
	})
}

func TestBrowserSPAPageViews(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.open(f.page("/spa/home", "", ""))
		first := f.next()
		f.eval(`history.pushState({}, '', '/spa/next?x=1'), 1`, new(int))
		r := f.next()
		if strings.Join(r.names(), ",") != "PageView" || !strings.HasSuffix(r.Events()[0].EventSourceURL, "/spa/next?x=1") {
			t.Fatalf("pushState: %v at %s; want a PageView of the new URL", r.names(), r.Events()[0].EventSourceURL)
		}
		if r.Events()[0].EventID == first.Events()[0].EventID {
			t.Error("the SPA PageView reuses the load PageView's id")
		}
		// replaceState and a hash change are not navigations.
		f.eval(`history.replaceState({}, '', '/spa/tidied'); history.pushState({}, '', '/spa/tidied#reviews'); tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("replaceState and a hash: %v; want only the marker", r.names())
		}
		// Back: popstate.
		f.eval(`history.go(-2), 1`, new(int))
		r = f.next()
		if strings.Join(r.names(), ",") != "PageView" || !strings.HasSuffix(r.Events()[0].EventSourceURL, "/spa/home") {
			t.Errorf("back: %v at %s; want a PageView of /spa/home", r.names(), r.Events()[0].EventSourceURL)
		}

		// A site with the option off.
		off := pixeljs.Options{ConsentDefault: pixeljs.ConsentDenied, SPAPageViews: false}
		f.open(f.page("/spa-off/home", "", `<script async src="`+f.variant("spa-off", off)+`"></script>`))
		f.next()
		f.eval(`history.pushState({}, '', '/spa-off/next'); tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("SPA page views off: %v; want only the marker", r.names())
		}
		f.clean()
	})
}

func TestBrowserRevokeClearsStorage(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.open(f.page("/revoke", `localStorage.clear();`, `<script async src="`+f.tags.URL+`/granted/tw.js"></script>`))
		r := f.next()
		var vid string
		f.eval(`localStorage.getItem('_tw_vid') || ''`, &vid)
		if vid == "" || vid != r.Body.Vid {
			t.Fatalf("granted: stored vid %q, sent %q", vid, r.Body.Vid)
		}
		f.eval(`tagway('consent', {ad_storage: 'denied'}); tagway('track', 'Lead'), 1`, new(int))
		r = f.next()
		var keys int
		f.eval(`localStorage.length`, &keys)
		if keys != 0 || r.Body.Vid != "" {
			t.Errorf("after the revoke: %d localStorage keys, vid %q; want none", keys, r.Body.Vid)
		}
		f.clean()
	})
}
