package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/mux"

	"github.com/tagway/tagway/routing/model"
)

// fakeWebhooks is a SiteHandler that names the site it was given.
type fakeWebhooks struct{ platform string }

func (f fakeWebhooks) ServeSite(w http.ResponseWriter, r *http.Request, site string) {
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, f.platform+" "+site)
}

// TestOrderWebhookRoutes: POST /webhooks/<platform>/{site} reaches the
// platform's handler with the site of the path, also under the base path
// and for a site named like a drop-in path segment; another method is 405;
// a platform without a handler is not routed.
func TestOrderWebhookRoutes(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) {
		o.BasePath = "/tw"
		o.OrderWebhooks = map[string]SiteHandler{"shopify": fakeWebhooks{"shopify"}}
	})
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"POST", "/webhooks/shopify/shop-1", 202, "shopify shop-1"},
		{"POST", "/tw/webhooks/shopify/shop-1", 202, "shopify shop-1"},
		{"POST", "/webhooks/shopify/events", 202, "shopify events"},
		{"GET", "/webhooks/shopify/shop-1", 405, `"method_not_allowed"`},
		{"POST", "/webhooks/shopify/", 404, `"not_found"`},
		{"POST", "/webhooks/woocommerce/shop-1", 404, `"not_found"`},
	} {
		w := tg.do(c.method, c.path, "{}")
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("%s %s = %d %s; want %d %s", c.method, c.path, w.Code, w.Body, c.status, c.body)
		}
		if c.status == 405 && w.Header().Get("Allow") != "POST" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
	for _, bad := range []map[string]SiteHandler{{"magento": fakeWebhooks{}}, {"shopify": nil}} {
		if _, err := New(Options{Enqueuer: &fakeQueue{}, Sites: staticSites{testSnapshot(t)}, OrderWebhooks: bad}); err == nil {
			t.Errorf("order webhooks %v accepted", bad)
		}
	}
}

// swappableSites is a SiteSource whose snapshot a test replaces.
type swappableSites struct {
	p atomic.Pointer[model.Snapshot]
}

func (s *swappableSites) Snapshot() *model.Snapshot { return s.p.Load() }

// TestSitePathsFollowTheConfiguration: a site's own paths are routed from
// the configuration of the moment: a changed script_path or collect_path
// is served at once, and the old one no longer is.
func TestSitePathsFollowTheConfiguration(t *testing.T) {
	sites := &swappableSites{}
	use := func(scriptPath, collectPath string) {
		snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
			{ID: "shop", Domains: []string{"shop.example"}, ScriptPath: scriptPath, CollectPath: collectPath},
		}})
		if err != nil {
			t.Fatal(err)
		}
		sites.p.Store(snap)
	}
	use("/a/s.js", "/a/c")
	tg := newTestGateway(t, func(o *Options) {
		o.Sites = sites
		o.Script = fakeScripts{}
		o.Static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static") })
	})
	check := func(path, want string) {
		t.Helper()
		if w := tg.do("GET", path, "", "Host", "shop.example"); w.Body.String() != want {
			t.Errorf("GET %s = %q, want %q", path, w.Body, want)
		}
	}
	collect := func(path string, want int) {
		t.Helper()
		w := tg.do("POST", path, `{"events":[{"event_name":"PageView"}]}`, "Host", "shop.example")
		if w.Code != want {
			t.Errorf("POST %s = %d %s, want %d", path, w.Code, w.Body, want)
		}
	}
	check("/a/s.js", "script granted")
	collect("/a/c", http.StatusNoContent)
	use("/b/s.js", "/b/c")
	check("/a/s.js", "static")
	check("/b/s.js", "script granted")
	collect("/b/c", http.StatusNoContent)
	collect("/a/c", http.StatusOK) // the static handler's answer
	if w := tg.do("GET", "/b/c", "", "Host", "shop.example"); w.Code != 405 || w.Header().Get("Allow") != "POST, OPTIONS" {
		t.Errorf("GET a site's collect path = %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestEveryRouteIsNamedAndLabelled: every route of the router has a name,
// every route of the gateway's own a metrics label, and a 405 is counted
// under the label of the route whose path it asked for.
func TestEveryRouteIsNamedAndLabelled(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) {
		o.MetricsToken = "metrics-token-0123456789"
		o.Mounts = []Mount{{Path: "/admin/v1", Handler: http.NotFoundHandler()}}
		o.OrderWebhooks = map[string]SiteHandler{"shopify": fakeWebhooks{}, "woocommerce": fakeWebhooks{}}
	})
	names := map[string]bool{}
	err := tg.routes.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		name := route.GetName()
		if name == "" || names[name] {
			t.Errorf("route %q: a route needs a name of its own", name)
		}
		names[name] = true
		if _, ok := tg.labels[name]; !ok && !strings.HasPrefix(name, "mount ") {
			t.Errorf("route %q has no metrics label", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"collect", "collect preflight", "events", "capi", "webhook shopify", "webhook woocommerce", "script",
		"healthz", "readyz", "metrics", "site collect", "site collect preflight", "site script", "mount /admin/v1"} {
		if !names[want] {
			t.Errorf("no route %q", want)
		}
	}
	tg.do("PUT", "/v1/events", "")
	w := httptest.NewRecorder()
	tg.OpsHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if body := w.Body.String(); !strings.Contains(body, `tagway_http_request_seconds_count{route="events"} 1`) {
		t.Errorf("the 405 is not counted under its route:\n%s", body)
	}
}

// TestHeadOnGetRoutes: HEAD goes where GET does.
func TestHeadOnGetRoutes(t *testing.T) {
	tg := newTestGateway(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		if w := tg.do("HEAD", path, ""); w.Code != 200 {
			t.Errorf("HEAD %s = %d", path, w.Code)
		}
	}
}

// TestRoutingCollectAllocatesNothing: the router adds no allocation to a
// request for /collect or for a site's own collect path, the busiest
// (mux's own ServeHTTP adds seven; a site's default paths, derived anew
// per request, eleven).
func TestRoutingCollectAllocatesNothing(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) {
		o.Mounts = []Mount{{Path: "/admin/v1", Handler: http.NotFoundHandler()}}
		o.Enqueuer = nopQueue{}
	})
	const body = `{"events":[{"event_name":"PageView","event_id":"e1"}]}`
	allocs := func(h http.Handler, url, origin string) float64 {
		return testing.AllocsPerRun(200, func() {
			r := httptest.NewRequest(http.MethodPost, url, strings.NewReader(body))
			r.Header.Set("Origin", origin)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusNoContent {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
	for _, c := range []struct{ route, url, origin string }{
		{"collect", "http://shop.example/collect", "https://shop.example"},
		{"site collect", "http://localhost/tw/c", "http://localhost"},
	} {
		direct := allocs(tg.routes.Get(c.route).GetHandler(), c.url, c.origin)
		if routed := allocs(tg.Handler(), c.url, c.origin); routed > direct {
			t.Errorf("routing %s allocates %.0f times, its handler alone %.0f", c.url, routed, direct)
		}
	}
	// A path mux cleans is still redirected.
	if w := tg.do("GET", "/x/../healthz", ""); w.Code != http.StatusMovedPermanently || !strings.HasSuffix(w.Header().Get("Location"), "//t.shop.example/healthz") {
		t.Errorf("an unclean path = %d Location %q", w.Code, w.Header().Get("Location"))
	}
}
