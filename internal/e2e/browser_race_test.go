package e2e

// A brand-new visitor's first two requests race: the second leaves the
// browser before the first response (and its Set-Cookie) arrives. Both must
// carry the same _fbp to Meta, on a site whose consent default is granted and
// whose page never calls tagway('consent'): the gateway serves that site the
// script built for its default, which sends the visitor seed, from which the
// gateway derives the one _fbp.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tagway/tagway/internal/browsertest"
)

// holdBound is how long the proxy holds the first /collect response while it
// waits for the second request. Reaching it means the script sent no second
// request, which the test then reports; it is a deadline for failure, never a
// speed assertion.
const holdBound = 20 * time.Second

// collectSeen is what the racing proxy saw of one /collect request.
type collectSeen struct {
	Cookie string
	Vid    string
	Events []string
}

// racingProxy forwards to the gateway, and holds the response to the first
// POST /collect until a second one has reached it: the gateway has answered
// the first request (and chosen its _fbp) but the browser has not seen the
// answer when it sends the second.
type racingProxy struct {
	t      *testing.T
	proxy  *httputil.ReverseProxy
	second chan struct{}

	mu   sync.Mutex
	seen []collectSeen
}

type holdKey struct{}

func newRacingProxy(t *testing.T, gateway string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	p := &racingProxy{t: t, proxy: httputil.NewSingleHostReverseProxy(target), second: make(chan struct{})}
	p.proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Context().Value(holdKey{}) != nil {
			select {
			case <-p.second:
			case <-time.After(holdBound):
			}
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { p.check() })
	return srv
}

func (p *racingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/collect" {
		p.proxy.ServeHTTP(w, r)
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		p.t.Errorf("proxy: read /collect body: %v", err)
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(raw)))
	var body struct {
		Vid    string `json:"vid"`
		Events []struct {
			EventName string `json:"event_name"`
		} `json:"events"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		p.t.Errorf("proxy: /collect body: %v: %s", err, raw)
	}
	s := collectSeen{Cookie: r.Header.Get("Cookie"), Vid: body.Vid}
	for _, e := range body.Events {
		s.Events = append(s.Events, e.EventName)
	}
	p.mu.Lock()
	p.seen = append(p.seen, s)
	n := len(p.seen)
	p.mu.Unlock()
	switch n {
	case 1:
		r = r.WithContext(context.WithValue(r.Context(), holdKey{}, true))
	case 2:
		close(p.second)
	}
	p.proxy.ServeHTTP(w, r)
}

// check proves the race was real: the first two requests each held one
// event and went out before the browser had any _fbp cookie.
func (p *racingProxy) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) < 2 {
		p.t.Errorf("the proxy saw %d /collect requests, want 2", len(p.seen))
		return
	}
	for i, s := range p.seen[:2] {
		if len(s.Events) != 1 {
			p.t.Errorf("request %d held %v; want one event per request", i+1, s.Events)
		}
		if strings.Contains(s.Cookie, "_fbp=") {
			p.t.Errorf("request %d carried %q: the requests did not race", i+1, s.Cookie)
		}
	}
	if p.seen[0].Vid == "" || p.seen[1].Vid != p.seen[0].Vid {
		p.t.Errorf("visitor seeds %q and %q; want one seed on both requests", p.seen[0].Vid, p.seen[1].Vid)
	}
}

// racePage never calls tagway('consent'). When the load PageView is
// recorded, it queues an AddToCart for a later tick: the PageView's request
// leaves first, the AddToCart's right after, in a second request.
const racePage = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>
window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)};
addEventListener('tagway:event', function (e) {
  if (e.detail.name === 'PageView') setTimeout(function () {
    tagway('track', 'AddToCart', {content_ids: ['sku-1'], value: 19.9, currency: 'EUR'});
  }, 0);
});
</script>
<script async src="{{gateway}}/tw.js"></script>
</head><body><p>no consent banner here</p></body></html>`

func TestBrowserRacingFirstRequestsShareFbp(t *testing.T) {
	g := startGateway(t, gatewayOptions{config: metaSite("consent_default: granted")})
	gw := newRacingProxy(t, g.URL)
	// The page comes from another port of 127.0.0.1, a domain of the site:
	// an allowed origin, and the same site for cookies.
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, strings.ReplaceAll(racePage, "{{gateway}}", gw.URL))
	}))
	t.Cleanup(pages.Close)

	ctx := browsertest.New(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(pages.URL+"/product")); err != nil {
		t.Fatal(err)
	}

	got := g.Graph.WaitEvents(testPixel, 2, 30*time.Second)
	fbp := map[string]string{}
	for _, r := range got {
		ud, _ := r.Event["user_data"].(map[string]any)
		fbp[r.EventName], _ = ud["fbp"].(string)
	}
	if len(got) != 2 || fbp["PageView"] == "" || fbp["AddToCart"] == "" {
		t.Fatalf("Meta received %d events with fbp %v; want PageView and AddToCart with an fbp", len(got), fbp)
	}
	if fbp["PageView"] != fbp["AddToCart"] {
		t.Fatalf("one new visitor, two _fbp: PageView %s, AddToCart %s", fbp["PageView"], fbp["AddToCart"])
	}
	if !regexp.MustCompile(`^fb\.0\.\d{13}\.[1-9]\d{9}$`).MatchString(fbp["PageView"]) {
		t.Errorf("fbp %q", fbp["PageView"])
	}

	// The cookie the browser kept is the same _fbp.
	var cookies []*network.Cookie
	if err := chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{gw.URL + "/"}).Do(ctx)
		return err
	})); err != nil {
		t.Fatal(err)
	}
	var jar []string
	for _, c := range cookies {
		if c.Name == "_fbp" {
			jar = append(jar, c.Value)
		}
	}
	if len(jar) != 1 || jar[0] != fbp["PageView"] {
		t.Errorf("browser _fbp cookies %v; want only %s", jar, fbp["PageView"])
	}
	if errs := browsertest.Console(ctx).Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
