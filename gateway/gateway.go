// Package gateway is tagway's HTTP layer: browser ingest (POST /collect)
// with first-party Meta cookies, server ingest (POST /v1/events and the
// drop-in Conversions API endpoint), the script and static routes, the
// order webhooks' routes, and the health, readiness and metrics endpoints,
// routed by gorilla/mux (router.go).
//
// It validates and bounds every input, identifies the site, hashes PII
// through package pii before anything is queued, and answers only once the
// Enqueuer has accepted the events. It depends on small interfaces (an
// Enqueuer, a SiteSource) so that it never imports Redis or an adapter.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// Enqueuer stores a site's events durably. A nil error means the events are
// safe: the gateway answers the sender only then.
type Enqueuer interface {
	Enqueue(ctx context.Context, siteID string, events []destinations.Event) error
}

// SiteSource returns the current configuration snapshot (nil while none is
// loaded).
type SiteSource interface {
	Snapshot() *model.Snapshot
}

// AuthLimiter slows down the guessing of ingest keys per client
// (internal/authlimit.Limiter): Allow says whether the client at addr may
// try now, else for how long it must wait; Fail records a wrong key.
type AuthLimiter interface {
	Allow(addr string) (time.Duration, bool)
	Fail(addr string)
}

// ScriptSource provides the browser script, built once per consent default:
// the script must know the site's default to decide, before the page has
// made any consent choice, whether it may store and send the visitor seed.
type ScriptSource interface {
	// ForConsentDefault returns the handler serving the script built for a
	// site's consent default (model.ConsentGranted, ConsentDenied or
	// ConsentWait); any other value must get the most private script.
	ForConsentDefault(consentDefault string) http.Handler
}

// Default limits.
const (
	DefaultMaxBodyBytes       = 64 << 10
	DefaultMaxEvents          = 50
	DefaultMaxServerBodyBytes = 2 << 20
	DefaultMaxServerEvents    = 1000
)

// readyTimeout bounds one /readyz check.
const readyTimeout = 2 * time.Second

// Options configure a Gateway. Enqueuer and Sites are required; the rest
// have defaults.
type Options struct {
	Enqueuer Enqueuer
	Sites    SiteSource
	// TrustedProxies are the peers whose X-Forwarded-For, X-Forwarded-Proto
	// and X-Forwarded-Host headers are believed.
	TrustedProxies []netip.Prefix
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// Rand is the entropy for minted event ids and _fbp values; default
	// crypto/rand. It is read under a lock, so it need not be concurrency safe.
	Rand io.Reader
	// Registerer receives the gateway's metrics and Gatherer serves
	// /metrics. When both are nil a private registry serves as both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// MetricsToken guards /metrics on Handler, the public port, whose
	// metrics name every tenant's sites and destinations: empty, it is not
	// served there (404; OpsHandler serves it on a private listener); set,
	// it is served to requests with Authorization: Bearer <MetricsToken>.
	MetricsToken string
	// AuthLimiter, when set, answers 429 with Retry-After to a client
	// that gave too many wrong ingest keys (/v1/events and the drop-in
	// Conversions API endpoint) before its request is read.
	AuthLimiter AuthLimiter
	// Script serves /tw.js (and a site's script_path), in the variant of
	// the request host's site; nil answers 404.
	Script ScriptSource
	// Static serves / and every path no other route matches; nil answers 404.
	Static http.Handler
	// BasePath is the path prefix the gateway is mounted under behind the
	// store's web server ("/tw"); see withPrefix. Empty: none, beyond the
	// X-Forwarded-Prefix of trusted proxies.
	BasePath string
	// PathSecret keys each site's default script and collect paths (see
	// DefaultPaths).
	PathSecret []byte
	// Mounts are further handlers served beside the gateway's routes and
	// under the same path prefix (the admin API at /admin/v1), matched
	// before them; see Mount.
	Mounts []Mount
	// OrderWebhooks serve POST /webhooks/<platform>/{site} for the
	// platforms they name, "shopify" and "woocommerce"; a platform without
	// one is not routed.
	OrderWebhooks map[string]SiteHandler
	// Ready reports whether the queue is reachable (for /readyz); nil is ready.
	Ready func(ctx context.Context) error
	// Draining reports that shutdown has begun (/readyz then fails); nil is never.
	Draining func() bool
	// CountryHeader and RegionHeader name request headers holding the
	// visitor's country (ISO 3166-1 alpha-2, "CF-IPCountry") and
	// subdivision ("CA"), set by a trusted proxy; see geo.go.
	CountryHeader string
	RegionHeader  string

	// MaxBodyBytes and MaxEvents bound one /collect request.
	MaxBodyBytes int64
	MaxEvents    int
	// MaxServerBodyBytes and MaxServerEvents bound one /v1/events request.
	MaxServerBodyBytes int64
	MaxServerEvents    int
}

// Mount serves Handler for the requests whose path, once the deployment's
// path prefix is removed, is Path or lies below it (Path "/admin/v1" takes
// /admin/v1 and /admin/v1/sites, not /admin/v10). The handler sees the
// path without the prefix and is not wrapped by the gateway: it answers
// for itself.
type Mount struct {
	Path    string
	Handler http.Handler
}

// Gateway serves tagway's HTTP endpoints. It is safe for concurrent use.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	proxies []netip.Prefix
	metrics *metrics
	gather  prometheus.Gatherer

	randMu sync.Mutex
	rand   io.Reader

	// Per-request lookups that only change with the configuration.
	originSites  lookupCache[*model.Site] // Origin header → the site whose domains cover it
	cookieScopes lookupCache[cookieScope] // request host → cookie scope
	sitePaths    lookupCache[[2]string]   // site id → its default script and collect paths

	routes  *mux.Router
	matches sync.Pool         // *mux.RouteMatch, for serve
	labels  map[string]string // route name → route label
	handler http.Handler
}

// New checks opts, applies defaults and registers the metrics.
func New(opts Options) (*Gateway, error) {
	var errs []error
	if opts.Enqueuer == nil {
		errs = append(errs, errors.New("gateway: Options.Enqueuer is required"))
	}
	if opts.Sites == nil {
		errs = append(errs, errors.New("gateway: Options.Sites is required"))
	}
	if opts.MaxBodyBytes < 0 || opts.MaxEvents < 0 || opts.MaxServerBodyBytes < 0 || opts.MaxServerEvents < 0 {
		errs = append(errs, errors.New("gateway: limits must not be negative"))
	}
	for _, p := range opts.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, errors.New("gateway: invalid trusted proxy prefix"))
		}
	}
	for platform, h := range opts.OrderWebhooks {
		if !slices.Contains(orderWebhookPlatforms, platform) || h == nil {
			errs = append(errs, fmt.Errorf("gateway: order webhooks %q: a platform of %v and a handler are required", platform, orderWebhookPlatforms))
		}
	}
	for _, m := range opts.Mounts {
		if !strings.HasPrefix(m.Path, "/") || strings.HasSuffix(m.Path, "/") || m.Handler == nil {
			errs = append(errs, fmt.Errorf("gateway: mount %q: a path such as /admin/v1 and a handler are required", m.Path))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxServerBodyBytes == 0 {
		opts.MaxServerBodyBytes = DefaultMaxServerBodyBytes
	}
	if opts.MaxServerEvents == 0 {
		opts.MaxServerEvents = DefaultMaxServerEvents
	}
	if opts.Registerer == nil && opts.Gatherer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	proxies := make([]netip.Prefix, len(opts.TrustedProxies))
	for i, p := range opts.TrustedProxies {
		proxies[i] = p.Masked()
	}
	g := &Gateway{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		proxies: proxies,
		rand:    opts.Rand,
		gather:  opts.Gatherer,
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	g.routes = g.router()
	g.matches.New = func() any { return &mux.RouteMatch{Vars: map[string]string{}} }
	g.handler = g.withPrefix(http.HandlerFunc(g.serve))
	return g, nil
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// authGuard answers, through refuse, a client the AuthLimiter holds back,
// before next reads anything of the request.
func (g *Gateway) authGuard(refuse func(w http.ResponseWriter, wait time.Duration), next http.Handler) http.Handler {
	if g.opts.AuthLimiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := g.opts.AuthLimiter.Allow(g.clientIP(r)); !ok {
			g.metrics.rejected.WithLabelValues(codeTooManyFailures).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			refuse(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authFailed records that r gave a wrong ingest key.
func (g *Gateway) authFailed(r *http.Request) {
	if g.opts.AuthLimiter != nil {
		g.opts.AuthLimiter.Fail(g.clientIP(r))
	}
}

func refuseAPI(w http.ResponseWriter, _ time.Duration) {
	writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: codeTooManyFailures,
		Message: "too many requests with a wrong key from this address; wait for Retry-After"})
}

func refuseGraph(w http.ResponseWriter, _ time.Duration) {
	writeJSON(w, http.StatusTooManyRequests, map[string]*graphError{"error": {Code: 4, Type: "OAuthException", IsTransient: true,
		Message: "Application request limit reached: too many calls with a wrong access token from this address"}})
}

// script serves the script variant of the site the request's host belongs
// to (X-Forwarded-Host behind a trusted proxy), with that site's consent
// default; a host of no site (or no configuration yet) gets the wait
// variant, the most private. No Vary: caches key on the host already.
func (g *Gateway) script(w http.ResponseWriter, r *http.Request) {
	var site *model.Site
	if snap := g.opts.Sites.Snapshot(); snap != nil {
		site, _ = snap.SiteByHost(g.requestHost(r))
	}
	g.scriptHandler(site, r.URL.Path).ServeHTTP(w, r)
}

// instrumented is h with panic recovery (500 JSON) and the request-duration
// metric under the route label route.
func (g *Gateway) instrumented(route string, h http.Handler) http.Handler {
	obs := g.metrics.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.log.Error("handler panic", "route", route, "panic", v, "stack", string(debug.Stack()))
				if !rw.wrote {
					writeError(rw, &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
				}
			}
			obs.Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(rw, r)
	})
}

// statusWriter records whether the header was written.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func orNotFound(h http.Handler) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such resource"})
	})
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if g.opts.Draining != nil && g.opts.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if g.opts.Sites.Snapshot() == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no configuration loaded"})
		return
	}
	if g.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := g.opts.Ready(ctx); err != nil {
			g.log.Warn("not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readRand fills b from the injected entropy source.
func (g *Gateway) readRand(b []byte) error {
	g.randMu.Lock()
	defer g.randMu.Unlock()
	_, err := io.ReadFull(g.rand, b)
	return err
}
