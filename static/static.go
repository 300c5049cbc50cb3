// Package static holds tagway's embedded web assets: a small demo shop that
// shows the first-party script at work.
//
// The shop has a product page (/), a checkout (/checkout.html) and a page
// of a store that already pushes GA4 e-commerce events (/ga4.html). Each
// page pastes the tagway queue stub with its own tracking, and includes the
// parts all pages share (parts.html): the offline stand-ins for the Meta,
// TikTok, Snap and Pinterest pixels (/vendors.js: they record their calls
// and load nothing), the demo's panel and consent banner (/shop.js, and
// their markup), and <script async src="/tw.js">. The panel lists every
// event tw.js sent, with its event_id and the pixels that received that
// same id, by listening to the tagway:event DOM event. The banner grants or
// revokes consent through tagway('consent', ...). The product page's
// Details/Reviews tabs switch with history.pushState, as a single-page app
// does. The script itself (/tw.js) and /collect are served by the gateway,
// not by this package.
//
// Stable element ids for tests and for newcomers: #add-to-cart,
// #checkout-link, #tab-details and #tab-reviews on /; #email, #phone, #pay,
// #thank-you and #order-id on /checkout.html; #ga4-add and #ga4-purchase on
// /ga4.html; #events (the panel), #consent-banner, #consent-accept,
// #consent-reject, #consent-open and #consent-state on all of them.
package static

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"text/template"
	"time"
)

//go:embed site parts.html
var files embed.FS

// Handler serves the demo shop, with its index at "/". Responses carry
// Cache-Control: no-cache, so an upgraded binary shows its pages at once.
// The pages are rendered once, here, with the parts they share
// (parts.html); an error there is a broken embedded file, which
// TestHandler catches, and panics.
func Handler() http.Handler {
	site, err := fs.Sub(files, "site")
	if err != nil {
		panic("static: embedded site missing: " + err.Error()) // cannot happen: the path is a literal
	}
	pages, err := renderPages(site)
	if err != nil {
		panic("static: " + err.Error())
	}
	assets := http.FileServerFS(site)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		name := r.URL.Path[1:]
		if name == "" {
			name = "index.html"
		}
		// /index.html itself redirects to / (the file server does that).
		if page, ok := pages[name]; ok && r.URL.Path != "/index.html" {
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(page))
			return
		}
		assets.ServeHTTP(w, r)
	})
}

// renderPages renders every page of site (*.html) with the shared parts.
func renderPages(site fs.FS) (map[string][]byte, error) {
	parts, err := template.ParseFS(files, "parts.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(site, "*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string][]byte{}
	for _, name := range names {
		src, err := fs.ReadFile(site, name)
		if err != nil {
			return nil, err
		}
		t, err := parts.Clone()
		if err == nil {
			_, err = t.New(name).Option("missingkey=error").Parse(string(src))
		}
		var b bytes.Buffer
		if err == nil {
			err = t.ExecuteTemplate(&b, name, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		pages[name] = b.Bytes()
	}
	return pages, nil
}
