package gateway

// Where the script and the collect endpoint live: the fixed /tw.js and
// /collect, each site's own script_path and collect_path, each site's
// derived default paths (random-looking, stable, unique to the
// installation), and all of them under a path prefix when the gateway is
// mounted behind the store's own web server (shop.example/tw/...).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path"
	"strings"

	"github.com/tagway/tagway/routing/model"
)

// ScriptOptions are the site settings a script variant is built for.
type ScriptOptions struct {
	// ConsentDefault is the site's consent default: model.ConsentGranted,
	// ConsentDenied or ConsentWait.
	ConsentDefault string
	// Collect is the collect endpoint relative to the script's URL
	// ("collect" for /tw.js; "../e/2b9f" for /a/s.js posting to /e/2b9f),
	// so that the script finds its endpoint under any path prefix.
	Collect string
	// SPAPageViews sends a PageView on history.pushState and popstate.
	SPAPageViews bool
	// DataLayer maps the GA4 e-commerce events of window.dataLayer.
	DataLayer bool
}

// SiteScripts is a ScriptSource that also builds the script for a site's
// options. The gateway prefers it when Options.Script implements it; a
// plain ScriptSource gets only the consent default, and its script posts
// to the collect endpoint next to it.
type SiteScripts interface {
	ScriptSource
	ForSite(ScriptOptions) http.Handler
}

// DefaultPaths returns a site's default script and collect paths, served
// for the site besides /tw.js, /collect and its configured script_path and
// collect_path. They look random ("/3f9a1c0e/8b2d4e61.js" and
// "/3f9a1c0e/c90a7d55") so that blockers cannot list them, and are stable:
// the HMAC-SHA256 of the site id under secret (the installation's
// TAGWAY_PATH_SECRET), so every replica serves the same paths and a
// restart never breaks an installed tag. Without a secret they depend on
// the site id alone.
func DefaultPaths(secret []byte, siteID string) (script, collect string) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tagway default paths\x00" + siteID))
	h := hex.EncodeToString(m.Sum(nil))
	return "/" + h[:8] + "/" + h[8:16] + ".js", "/" + h[:8] + "/" + h[16:24]
}

// defaultPaths returns DefaultPaths of site under the installation's
// secret, remembered for the configuration snapshot snap.
func (g *Gateway) defaultPaths(snap *model.Snapshot, site *model.Site) (script, collect string) {
	if p, ok := g.sitePaths.get(snap, site.ID); ok {
		return p[0], p[1]
	}
	script, collect = DefaultPaths(g.opts.PathSecret, site.ID)
	g.sitePaths.put(snap, site.ID, [2]string{script, collect})
	return script, collect
}

// siteRoute says which of a site's own paths a request addresses:
// routeScript, routeCollect, or "" for none. The site is the one of the
// request's host.
func (g *Gateway) siteRoute(r *http.Request) string {
	snap := g.opts.Sites.Snapshot()
	if snap == nil {
		return ""
	}
	site, ok := snap.SiteByHost(g.requestHost(r))
	if !ok {
		return ""
	}
	defScript, defCollect := g.defaultPaths(snap, site)
	switch r.URL.Path {
	case site.ScriptPath, defScript:
		return routeScript
	case site.CollectPath, defCollect:
		return routeCollect
	}
	return ""
}

// scriptHandler returns the script for site (nil: a host of no site)
// served at scriptPath.
func (g *Gateway) scriptHandler(site *model.Site, scriptPath string) http.Handler {
	if site == nil {
		return g.opts.Script.ForConsentDefault(model.ConsentWait)
	}
	ss, ok := g.opts.Script.(SiteScripts)
	if !ok {
		return g.opts.Script.ForConsentDefault(site.ConsentDefault)
	}
	return ss.ForSite(g.scriptOptions(site, scriptPath))
}

// scriptOptions are the options of site's script served at scriptPath. A
// script at a site's own path posts to the site's collect_path, else to its
// default collect path; /tw.js posts to /collect next to it.
func (g *Gateway) scriptOptions(site *model.Site, scriptPath string) ScriptOptions {
	o := ScriptOptions{
		ConsentDefault: site.ConsentDefault,
		Collect:        "collect",
		SPAPageViews:   site.SPAPageViews == nil || *site.SPAPageViews,
		DataLayer:      site.GA4DataLayer,
	}
	if scriptPath != "/tw.js" {
		collect := site.CollectPath
		if collect == "" {
			_, collect = g.defaultPaths(g.opts.Sites.Snapshot(), site)
		}
		o.Collect = relativePath(scriptPath, collect)
	}
	return o
}

// relativePath returns the reference that resolves against a URL with
// path from to the path to (both absolute and clean): relativePath(
// "/a/s.js", "/b/c") is "../b/c". It never returns "" or a reference
// starting with "/", so it works below any prefix.
func relativePath(from, to string) string {
	dir := strings.Split(strings.Trim(path.Dir(from), "/"), "/")
	if dir[0] == "" {
		dir = nil
	}
	target := strings.Split(strings.Trim(to, "/"), "/")
	common := 0
	for common < len(dir) && common < len(target)-1 && dir[common] == target[common] {
		common++
	}
	return strings.Repeat("../", len(dir)-common) + strings.Join(target[common:], "/")
}

// withPrefix serves h below the deployment's path prefix: the configured
// BasePath, or the X-Forwarded-Prefix a trusted proxy sent. A request whose
// path starts with the prefix is served as if it did not (a proxy that
// forwards /tw/collect unchanged reaches /collect); one without it is
// served as it is (a proxy that strips the prefix, a health check made
// directly). Nothing else needs the prefix: the script derives its
// endpoint from its own URL, and cookies are set on the store's domain
// with Path=/.
func (g *Gateway) withPrefix(h http.Handler) http.Handler {
	base := strings.TrimRight(g.opts.BasePath, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefixes := []string{base}
		if g.fromTrustedProxy(r) {
			prefixes = append(prefixes, strings.TrimRight(strings.TrimSpace(r.Header.Get("X-Forwarded-Prefix")), "/"))
		}
		for _, p := range prefixes {
			if p == "" || !strings.HasPrefix(p, "/") {
				continue
			}
			rest, ok := strings.CutPrefix(r.URL.Path, p)
			if !ok || rest != "" && rest[0] != '/' {
				continue
			}
			if rest == "" {
				rest = "/"
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = rest, ""
			r = r2
			break
		}
		h.ServeHTTP(w, r)
	})
}
