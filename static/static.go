// Package static holds tagway's embedded web assets: a small demo shop that
// shows the first-party script at work.
//
// The shop has a product page (/), a checkout (/checkout.html) and a page
// of a store that already pushes GA4 e-commerce events (/ga4.html). Each
// page pastes the tagway queue stub, loads offline stand-ins for the Meta,
// TikTok, Snap and Pinterest pixels (/vendors.js: they record their calls
// and load nothing), the demo's panel and consent banner (/shop.js), and
// <script async src="/tw.js">. The panel lists every event tw.js sent, with
// its event_id and the pixels that received that same id, by listening to
// the tagway:event DOM event. The banner grants or revokes consent through
// tagway('consent', ...). The product page's Details/Reviews tabs switch
// with history.pushState, as a single-page app does. The script itself
// (/tw.js) and /collect are served by the gateway, not by this package.
//
// Stable element ids for tests and for newcomers: #add-to-cart,
// #checkout-link, #tab-details and #tab-reviews on /; #email, #phone, #pay,
// #thank-you and #order-id on /checkout.html; #ga4-add and #ga4-purchase on
// /ga4.html; #events (the panel), #consent-banner, #consent-accept,
// #consent-reject, #consent-open and #consent-state on all of them.
package static

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed site
var site embed.FS

// Handler serves the demo shop, with its index at "/". Responses carry
// Cache-Control: no-cache, so an upgraded binary shows its pages at once.
func Handler() http.Handler {
	sub, err := fs.Sub(site, "site")
	if err != nil {
		panic("static: embedded site missing: " + err.Error()) // cannot happen: the path is a literal
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
