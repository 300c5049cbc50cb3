// Package static holds tagway's embedded web assets: a small demo shop that
// shows the first-party script at work.
//
// The shop has a product page (/) and a checkout (/checkout.html). Each page
// pastes the tagway queue stub, a stand-in for Meta's Pixel base code (fbq
// with its queue, loading nothing from the network) and <script async
// src="/tw.js">, and lists in a side panel the events it sent, with their
// event_id, by listening to the tagway:event DOM event tw.js dispatches.
// The script itself (/tw.js) and /collect are served by the gateway, not by
// this package.
//
// Stable element ids for tests and for newcomers: #add-to-cart and
// #checkout-link on /, #email, #phone, #pay and #thank-you on
// /checkout.html, and #events (the panel) on both.
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
