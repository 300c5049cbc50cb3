package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tagway/tagway/internal/httproute"
)

// Route labels: the route label of tagway_http_request_seconds and of
// logs. Several routes may share one (a path's POST and OPTIONS).
const (
	routeCollect = "collect"
	routeEvents  = "events"
	routeCAPI    = "capi"
	routeScript  = "script"
	routeWebhook = "webhook"
	routeHealth  = "healthz"
	routeReady   = "readyz"
	routeMetrics = "metrics"
	routeStatic  = "static"
)

// SiteHandler serves a request addressed to one site by its path, such as
// an order webhook (gateway/orders.Handler).
type SiteHandler interface {
	ServeSite(w http.ResponseWriter, r *http.Request, site string)
}

// orderWebhookPlatforms are the platforms Options.OrderWebhooks may name,
// the path segment of POST /webhooks/<platform>/{site}.
var orderWebhookPlatforms = []string{"shopify", "woocommerce"}

// router returns the gateway's named routes in the order they are tried:
// the mounts, /collect (the busiest), the server APIs, the script, the
// operator's endpoints, and last each site's own script and collect
// paths, which follow the configuration as it changes. A path no route
// takes is Static's; a path a route takes with another method is 405.
func (g *Gateway) router() *mux.Router {
	r := mux.NewRouter()
	g.labels = map[string]string{}
	handle := func(rt *mux.Route, name, label string, h http.Handler) {
		rt.Name(name).Handler(g.instrumented(label, h))
		g.labels[name] = label
	}
	for _, m := range g.opts.Mounts {
		r.MatcherFunc(below(m.Path)).Name("mount " + m.Path).Handler(m.Handler)
	}

	collect, preflight := http.HandlerFunc(g.collect), http.HandlerFunc(g.preflight)
	handle(r.MatcherFunc(exactly("/collect")).Methods(http.MethodPost), "collect", routeCollect, collect)
	handle(r.MatcherFunc(exactly("/collect")).Methods(http.MethodOptions), "collect preflight", routeCollect, preflight)
	handle(r.MatcherFunc(exactly("/v1/events")).Methods(http.MethodPost), "events", routeEvents, g.authGuard(refuseAPI, http.HandlerFunc(g.serverEvents)))
	for _, platform := range orderWebhookPlatforms {
		if h := g.opts.OrderWebhooks[platform]; h != nil {
			handle(r.Path("/webhooks/"+platform+"/{site}").Methods(http.MethodPost), "webhook "+platform, routeWebhook,
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeSite(w, r, mux.Vars(r)["site"]) }))
		}
	}
	// Any method: the drop-in endpoint refuses others in Graph's words.
	handle(r.Path("/{version}/{pixel}/events"), "capi", routeCAPI, g.authGuard(refuseGraph, http.HandlerFunc(g.capi)))
	script := orNotFound(nil)
	if g.opts.Script != nil {
		script = http.HandlerFunc(g.script)
	}
	handle(r.MatcherFunc(exactly("/tw.js")), "script", routeScript, script)
	handle(r.MatcherFunc(exactly("/healthz")).Methods(http.MethodGet, http.MethodHead), "healthz", routeHealth, http.HandlerFunc(g.healthz))
	handle(r.MatcherFunc(exactly("/readyz")).Methods(http.MethodGet, http.MethodHead), "readyz", routeReady, http.HandlerFunc(g.readyz))
	if g.opts.MetricsToken == "" {
		handle(r.MatcherFunc(exactly("/metrics")), "metrics", routeMetrics, orNotFound(nil)) // OpsHandler's alone
	} else {
		handle(r.MatcherFunc(exactly("/metrics")).Methods(http.MethodGet, http.MethodHead), "metrics", routeMetrics, g.tokenGuard(g.metricsHandler()))
	}

	handle(r.MatcherFunc(g.atSitePath(routeCollect)).Methods(http.MethodPost), "site collect", routeCollect, collect)
	handle(r.MatcherFunc(g.atSitePath(routeCollect)).Methods(http.MethodOptions), "site collect preflight", routeCollect, preflight)
	handle(r.MatcherFunc(g.atSitePath(routeScript)), "site script", routeScript, script)

	r.NotFoundHandler = g.instrumented(routeStatic, orNotFound(g.opts.Static))
	r.MethodNotAllowedHandler = g.methodNotAllowed(r)
	return r
}

// serve dispatches r with the router. A request whose route has no path
// variables goes to the route's handler as it is: mux's own ServeHTTP
// copies every request twice to carry the variables and the route in its
// context, which cost /collect 2-4% of its CPU (BENCHMARKS.md, "The
// router"). So mux.CurrentRoute is nil in those handlers; mux.Vars works
// wherever a route has variables.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	m := g.matches.Get().(*mux.RouteMatch)
	var h http.Handler
	if p := r.URL.Path; path.Clean(p) == p && g.routes.Match(r, m) && len(m.Vars) == 0 {
		h = m.Handler
	}
	vars := m.Vars
	clear(vars)
	*m = mux.RouteMatch{Vars: vars}
	g.matches.Put(m)
	if h == nil {
		h = g.routes // path variables, or a path mux redirects to its clean form
	}
	h.ServeHTTP(w, r)
}

// OpsHandler serves /metrics, /healthz and /readyz for the operator's
// private listener (TAGWAY_METRICS_ADDR), without the token.
func (g *Gateway) OpsHandler() http.Handler {
	r := mux.NewRouter()
	r.MatcherFunc(exactly("/metrics")).Methods(http.MethodGet, http.MethodHead).Name("metrics").Handler(g.instrumented(routeMetrics, g.metricsHandler()))
	r.MatcherFunc(exactly("/healthz")).Methods(http.MethodGet, http.MethodHead).Name("healthz").Handler(g.instrumented(routeHealth, http.HandlerFunc(g.healthz)))
	r.MatcherFunc(exactly("/readyz")).Methods(http.MethodGet, http.MethodHead).Name("readyz").Handler(g.instrumented(routeReady, http.HandlerFunc(g.readyz)))
	r.NotFoundHandler = orNotFound(nil)
	r.MethodNotAllowedHandler = g.methodNotAllowed(r)
	return r
}

// exactly matches the requests for path. The gateway's fixed paths use it
// rather than mux's path templates, which match with a regular expression.
func exactly(path string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return r.URL.Path == path }
}

// below matches the requests whose path is path or lies below it ("/a"
// takes /a and /a/b, not /ab).
func below(path string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool {
		rest, ok := strings.CutPrefix(r.URL.Path, path)
		return ok && (rest == "" || rest[0] == '/')
	}
}

// atSitePath matches the requests for one of the paths of kind
// (routeScript, routeCollect) of the request host's site: its configured
// script_path or collect_path, or its default path of that kind. It reads
// the current configuration on every request.
func (g *Gateway) atSitePath(kind string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return g.siteRoute(r) == kind }
}

// methodNotAllowed answers a request whose path a route of routes takes,
// but with other methods: 405, the methods in Allow, counted under the
// route's label.
func (g *Gateway) methodNotAllowed(routes *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods, route := httproute.Allowed(routes, r)
		allow := strings.Join(methods, ", ")
		refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed,
				Message: "method " + r.Method + " is not allowed here; use " + allow})
		})
		label := ""
		if route != nil {
			label = g.labels[route.GetName()]
		}
		if label == "" {
			refuse(w, r)
			return
		}
		g.instrumented(label, refuse).ServeHTTP(w, r)
	})
}

// metricsHandler serves the Prometheus metrics of Options.Gatherer.
func (g *Gateway) metricsHandler() http.Handler {
	if g.gather == nil {
		return orNotFound(nil)
	}
	return promhttp.HandlerFor(g.gather, promhttp.HandlerOpts{})
}

// tokenGuard serves next only to requests with Authorization: Bearer
// <MetricsToken> (compared in constant time), else 401.
func (g *Gateway) tokenGuard(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(g.opts.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tagway-metrics"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "the metrics need Authorization: Bearer <TAGWAY_METRICS_TOKEN>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
