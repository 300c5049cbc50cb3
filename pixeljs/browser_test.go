package pixeljs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/browsertest"
	"github.com/tagway/tagway/pixeljs"
)

// The tests run the built script in each browser engine (Chromium, Firefox,
// WebKit). Pages come from one
// origin and the script and the fake /collect from another, as on a store
// with the gateway on t.shop.example, so CORS with credentials is exercised.
// /tw.js and /tw/tw.js are the denied variant (sent at once, nothing stored
// before the page grants); /granted/tw.js, /denied/tw.js and /wait/tw.js are
// the variants of those defaults; f.script serves other variants.

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// collectBody is the /collect body; decoding it strictly proves the script
// sends nothing outside the contract.
type collectBody struct {
	Vid      string            `json:"vid"`
	URL      string            `json:"url"`
	Referrer string            `json:"referrer"`
	Consent  map[string]string `json:"consent"`
	Events   []collectEvent    `json:"events"`
	SentAt   *int64            `json:"sent_at"`
	Debug    bool              `json:"debug"`
}

type collectEvent struct {
	EventName      string            `json:"event_name"`
	EventID        string            `json:"event_id"`
	EventTime      int64             `json:"event_time"`
	EventSourceURL string            `json:"event_source_url"`
	CustomData     map[string]any    `json:"custom_data"`
	UserData       map[string]string `json:"user_data"`
}

// request is one request the fake gateway received.
type request struct {
	Path        string
	ContentType string
	Cookie      string
	Body        collectBody
}

func (r request) names() []string {
	var n []string
	for _, e := range r.Events() {
		n = append(n, e.EventName)
	}
	return n
}

// Events returns the events of the request.
func (r request) Events() []collectEvent { return r.Body.Events }

// fixture is a page server and a tag server (script + fake collect).
type fixture struct {
	t       *testing.T
	b       browsertest.Browser
	pages   *httptest.Server
	tags    *httptest.Server
	got     chan request
	mu      sync.Mutex
	content map[string]string
	script  *pixeljs.Script
	mux     *http.ServeMux
	// status, when set, answers /collect with that status instead (as an
	// overloaded or restarting gateway would), without recording.
	status  int
	refused atomic.Int32 // requests answered with status
	// answer, when set, says how /collect answers a request it recorded
	// (default: 204 and no body, as the gateway answers when all is well).
	answer func(collectBody) (status int, body string)
}

// setAnswer makes /collect answer recorded requests with answer (nil: 204).
func (f *fixture) setAnswer(answer func(collectBody) (int, string)) {
	f.mu.Lock()
	f.answer = answer
	f.mu.Unlock()
}

// variant serves the script built for o at /v/<name>/tw.js, posting to
// /v/collect (o.Collect "../collect"), and returns its URL.
func (f *fixture) variant(name string, o pixeljs.Options) string {
	o.Collect = "../collect"
	f.mux.Handle("GET /v/"+name+"/tw.js", f.script.For(o))
	return f.tags.URL + "/v/" + name + "/tw.js"
}

// setStatus makes /collect answer status (0: answer normally).
func (f *fixture) setStatus(status int) {
	f.mu.Lock()
	f.status = status
	f.mu.Unlock()
}

func newFixture(t *testing.T, engine string) *fixture {
	t.Helper()
	return newFixtureWith(t, engine, browsertest.Options{})
}

// newFixtureWith is newFixture with a browser started with o.
func newFixtureWith(t *testing.T, engine string, o browsertest.Options) *fixture {
	t.Helper()
	script, err := pixeljs.New()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, got: make(chan request, 64), content: map[string]string{}}
	f.pages = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		html, ok := f.content[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, html)
	}))
	t.Cleanup(f.pages.Close)

	mux := http.NewServeMux()
	mux.Handle("GET /tw.js", script.ForConsentDefault(pixeljs.ConsentDenied))
	mux.Handle("GET /tw/tw.js", script.ForConsentDefault(pixeljs.ConsentDenied))
	mux.Handle("GET /granted/tw.js", script.ForConsentDefault(pixeljs.ConsentGranted))
	mux.Handle("GET /denied/tw.js", script.ForConsentDefault(pixeljs.ConsentDenied))
	mux.Handle("GET /wait/tw.js", script.ForConsentDefault(pixeljs.ConsentWait))
	collect := func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o == f.pages.URL {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Vary", "Origin")
		}
		f.mu.Lock()
		status, answer := f.status, f.answer
		f.mu.Unlock()
		if status != 0 {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"code":"unavailable","message":"try again later"}}`)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		req := request{Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Cookie: r.Header.Get("Cookie")}
		if err := dec.Decode(&req.Body); err != nil {
			t.Errorf("collect body outside the contract: %v\n%s", err, raw)
		}
		http.SetCookie(w, &http.Cookie{Name: "_fbp", Value: "fb.1.1.1", Path: "/"})
		if answer == nil {
			w.WriteHeader(http.StatusNoContent) // as the gateway answers
		} else {
			status, body := answer(req.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
		f.got <- req
	}
	for _, p := range []string{"/collect", "/tw/collect", "/elsewhere", "/granted/collect", "/denied/collect", "/wait/collect", "/v/collect"} {
		mux.HandleFunc("POST "+p, collect)
	}
	f.script, f.mux = script, mux
	f.tags = httptest.NewServer(mux)
	t.Cleanup(f.tags.Close)

	f.b = browsertest.Start(t, engine, o)
	return f
}

// page serves a test page at path: the queue stub, head (scripts that run
// before tw.js), then the script tag.
func (f *fixture) page(path, head, tag string) string {
	if tag == "" {
		tag = `<script async src="` + f.tags.URL + `/tw.js"></script>`
	}
	f.mu.Lock()
	f.content[path] = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
` + browsertest.ConsoleHook + `
<script>window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)}</script>
<script>` + head + `</script>
` + tag + `
</head><body><p>test page</p></body></html>`
	f.mu.Unlock()
	return f.pages.URL + path
}

// open navigates to url.
func (f *fixture) open(url string) {
	f.t.Helper()
	if err := f.b.Navigate(url); err != nil {
		f.t.Fatal(err)
	}
}

// eval runs JavaScript in the page, awaits it when it is a promise, and
// decodes its result into out.
func (f *fixture) eval(js string, out any) {
	f.t.Helper()
	if err := f.b.Eval(js, out); err != nil {
		f.t.Fatalf("%s: %v", js, err)
	}
}

// next waits for the next request the fake gateway receives. The wait is
// bounded so that a missing request fails the test instead of hanging it.
func (f *fixture) next() request {
	f.t.Helper()
	select {
	case r := <-f.got:
		return r
	case <-time.After(30 * time.Second):
		f.t.Fatal("no request reached /collect")
		return request{}
	}
}

// ready waits until tw.js has replaced the queue stub.
func (f *fixture) ready() {
	f.t.Helper()
	f.waitJS(`window.tagway && tagway.tw`)
}

// clean fails the test when the page reported an error.
func (f *fixture) clean() {
	f.t.Helper()
	if errs := browsertest.Errors(f.b); len(errs) > 0 {
		f.t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

func TestBrowserPageViewOnLoad(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		url := f.page("/product", "", "")
		before := time.Now().Unix()
		f.open(url)
		r := f.next()
		after := time.Now().Unix()

		if r.Path != "/collect" || r.ContentType != "text/plain;charset=UTF-8" {
			t.Errorf("POST %s with %q; want /collect with text/plain;charset=UTF-8", r.Path, r.ContentType)
		}
		if got := r.names(); len(got) != 1 || got[0] != "PageView" {
			t.Fatalf("events %v, want [PageView]", got)
		}
		e := r.Events()[0]
		if !uuidV4.MatchString(e.EventID) {
			t.Errorf("event_id %q is not a UUID v4", e.EventID)
		}
		if e.EventTime < before || e.EventTime > after {
			t.Errorf("event_time %d outside [%d, %d]", e.EventTime, before, after)
		}
		if r.Body.URL != url || e.EventSourceURL != url {
			t.Errorf("url %q, event_source_url %q; want %q", r.Body.URL, e.EventSourceURL, url)
		}
		// No consent given: no consent object, no visitor seed, nothing stored.
		if r.Body.Consent != nil || r.Body.Vid != "" {
			t.Errorf("consent %v, vid %q without any consent call", r.Body.Consent, r.Body.Vid)
		}
		var stored int
		f.eval(`localStorage.length`, &stored)
		if stored != 0 {
			t.Errorf("%d localStorage keys without consent", stored)
		}

		// credentials:'include': the cookie the gateway set on the first answer
		// comes back on the next request, although the gateway is another origin.
		// The fake answered as it recorded the request; wait until the browser
		// has stored the answer's cookie before sending again.
		deadline := time.Now().Add(10 * time.Second)
		for {
			jar, _ := f.b.Cookies(f.tags.URL + "/")
			if slices.ContainsFunc(jar, func(c browsertest.Cookie) bool { return c.Name == "_fbp" }) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		f.eval(`tagway('page'), 1`, new(int))
		if r := f.next(); r.Cookie != "_fbp=fb.1.1.1" || len(r.Events()) != 1 || r.Events()[0].EventName != "PageView" {
			t.Errorf("second page view: cookie %q, events %v", r.Cookie, r.names())
		}
		f.clean()
	})
}

func TestBrowserQueueReplayAndMeta(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		// A Meta Pixel stand-in with the base code's queue, and a tagway:event
		// listener; then calls made before tw.js loads.
		head := `
	window.fbq = function(){ fbq.queue.push(arguments) }; fbq.queue = []; fbq.loaded = true; fbq.version = '2.0';
	window.seen = []; addEventListener('tagway:event', function(e){ seen.push(e.detail) });
	tagway('consent', {ad_storage:'granted', ad_user_data:'granted', ad_personalization:'denied', analytics_storage:'granted', bogus:'granted'});
	tagway('identify', {em:'Jane@Example.com', external_id:'cust-9'});
	tagway('track', 'ViewContent', {content_ids:['sku-1'], value:42.5, currency:'EUR'});
	tagway('track', 'QuizDone', {score:3});
	tagway('track', 'AddToCart', {content_ids:['sku-1']}, {event_id:'order-1001', user_data:{ph:'+1 650 555 1212'}});
	`
		f.open(f.page("/queued", head, ""))
		r := f.next()

		// The load PageView, then the queued calls in order, in one request.
		want := []string{"PageView", "ViewContent", "QuizDone", "AddToCart"}
		if got := r.names(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v in one request", got, want)
		}
		wantConsent := map[string]string{"ad_storage": "granted", "ad_user_data": "granted", "ad_personalization": "denied", "analytics_storage": "granted"}
		if fmt.Sprint(r.Body.Consent) != fmt.Sprint(wantConsent) {
			t.Errorf("consent %v, want %v", r.Body.Consent, wantConsent)
		}
		if !regexp.MustCompile(`^\d{13}\.[1-9]\d{9}$`).MatchString(r.Body.Vid) {
			t.Errorf("vid %q", r.Body.Vid)
		}
		ev := r.Events()
		for i, e := range ev[:3] {
			if !uuidV4.MatchString(e.EventID) {
				t.Errorf("%s: event_id %q is not a UUID v4", e.EventName, e.EventID)
			}
			if len(e.UserData) != 2 || e.UserData["em"] != "Jane@Example.com" || e.UserData["external_id"] != "cust-9" {
				t.Errorf("events[%d] %s: user_data %v, want the identified user", i, e.EventName, e.UserData)
			}
		}
		if ev[3].EventID != "order-1001" {
			t.Errorf("AddToCart event_id %q, want the one passed in", ev[3].EventID)
		}
		if u := ev[3].UserData; len(u) != 3 || u["ph"] != "+1 650 555 1212" || u["em"] != "Jane@Example.com" {
			t.Errorf("AddToCart user_data %v, want identify merged with its own", u)
		}
		if fmt.Sprint(ev[1].CustomData) != fmt.Sprint(map[string]any{"content_ids": []any{"sku-1"}, "value": 42.5, "currency": "EUR"}) {
			t.Errorf("ViewContent custom_data %v", ev[1].CustomData)
		}

		// The Meta Pixel got every event with the posted id as eventID.
		var fbq [][]any
		f.eval(`fbq.queue.map(function(a){ return Array.from(a) })`, &fbq)
		if len(fbq) != len(ev) {
			t.Fatalf("fbq calls %v, want %d", fbq, len(ev))
		}
		for i, call := range fbq {
			method := "track"
			if ev[i].EventName == "QuizDone" {
				method = "trackCustom"
			}
			opts, _ := call[3].(map[string]any)
			if call[0] != method || call[1] != ev[i].EventName || opts["eventID"] != ev[i].EventID {
				t.Errorf("fbq call %d: %v; want %s %s with eventID %s", i, call, method, ev[i].EventName, ev[i].EventID)
			}
		}
		// The tagway:event DOM event reported each one.
		var seen []map[string]string
		f.eval(`seen`, &seen)
		for i, s := range seen {
			if s["name"] != ev[i].EventName || s["event_id"] != ev[i].EventID {
				t.Errorf("tagway:event %d: %v, want %s %s", i, s, ev[i].EventName, ev[i].EventID)
			}
		}
		if len(seen) != len(ev) {
			t.Errorf("%d tagway:event, want %d", len(seen), len(ev))
		}

		// Only the visitor seed is stored: the identified user stays in memory.
		var storage map[string]string
		f.eval(`Object.assign({}, localStorage)`, &storage)
		if len(storage) != 1 || storage["_tw_vid"] != r.Body.Vid {
			t.Errorf("localStorage %v, want only _tw_vid=%s", storage, r.Body.Vid)
		}
		var cookies string
		f.eval(`document.cookie`, &cookies)
		if strings.Contains(cookies, "Jane") || strings.Contains(cookies, "555") {
			t.Errorf("PII in document.cookie: %q", cookies)
		}

		// Later calls: identify merges into the events after it; a consent
		// revoke applies to the request and drops the seed.
		f.eval(`tagway('identify', {fn:'jane'}); tagway('track', 'Lead'); tagway('consent', {ad_storage:'denied'}); 1`, new(int))
		r = f.next()
		if got := r.names(); len(got) != 1 || got[0] != "Lead" {
			t.Fatalf("events %v, want [Lead]", got)
		}
		if u := r.Events()[0].UserData; len(u) != 3 || u["fn"] != "jane" {
			t.Errorf("Lead user_data %v", u)
		}
		if r.Body.Vid != "" || r.Body.Consent["ad_storage"] != "denied" || r.Body.Consent["ad_user_data"] != "granted" {
			t.Errorf("after revoke: vid %q, consent %v", r.Body.Vid, r.Body.Consent)
		}
		f.clean()
	})
}

func TestBrowserSameTickOneRequest(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.open(f.page("/tick", "", ""))
		f.next() // PageView
		f.eval(`for (var i = 0; i < 5; i++) tagway('track', 'Search', {search_string: 'q' + i}); 1`, new(int))
		r := f.next()
		if len(r.Events()) != 5 {
			t.Fatalf("first request holds %v; want the 5 events of one tick", r.names())
		}
		// A later tick is a new request: the next one holds only the marker,
		// so no event of the first tick went out on its own.
		f.eval(`tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Marker" {
			t.Errorf("next request %v, want [Marker]", r.names())
		}
		f.clean()
	})
}

func TestBrowserEndpoint(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		tests := []struct {
			name, tag, want string
		}{
			{"next to the script", `<script async src="` + f.tags.URL + `/tw/tw.js"></script>`, "/tw/collect"},
			{"data-endpoint", `<script async src="` + f.tags.URL + `/tw.js" data-endpoint="` + f.tags.URL + `/elsewhere"></script>`, "/elsewhere"},
		}
		for i, tt := range tests {
			f.open(f.page(fmt.Sprintf("/endpoint%d", i), "", tt.tag))
			if r := f.next(); r.Path != tt.want {
				t.Errorf("%s: posted to %s, want %s", tt.name, r.Path, tt.want)
			}
		}
		f.clean()
	})
}

func TestBrowserBeaconAndRobustness(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)

		// fetch missing or throwing: sendBeacon carries the events. Storage that
		// throws (Safari private mode), a Meta Pixel that throws and bad calls
		// never break the page nor stop the events.
		head := `
	Storage.prototype.getItem = Storage.prototype.setItem = function(){ throw new Error('storage denied') };
	window.fbq = function(){ throw new Error('pixel broke') };
	tagway('consent', {ad_storage:'granted'});
	tagway('nope'); tagway('track'); tagway('track', 42); tagway('identify', null); tagway('consent', 'yes');
	tagway('track', 'Lead', 'not an object', 'nor this');
	`
		for _, fetch := range []string{`window.fetch = undefined;`, `window.fetch = function(){ throw new TypeError('no') };`} {
			f.open(f.page("/robust", fetch+head, ""))
			r := f.next()
			if got := strings.Join(r.names(), ","); got != "PageView,Lead" {
				t.Errorf("%s: events %s, want PageView,Lead", fetch, got)
			}
			if r.Body.Vid == "" {
				t.Errorf("%s: no vid although storage only failed", fetch)
			}
			if !strings.EqualFold(r.ContentType, "text/plain;charset=UTF-8") { // Blob lowercases it
				t.Errorf("%s: beacon content type %q", fetch, r.ContentType)
			}
		}

		// pagehide: events not yet sent leave at once with sendBeacon. fetch
		// here swallows what it is given, so only the beacon can deliver.
		f.open(f.page("/leaving", `window.fetch = function(){ return new Promise(function(){}) };`, ""))
		f.ready()
		f.eval(`tagway('track', 'Bye'); dispatchEvent(new PageTransitionEvent('pagehide')); 1`, new(int))
		if r := f.next(); strings.Join(r.names(), ",") != "Bye" {
			t.Errorf("on pagehide: %v, want [Bye]", r.names())
		}
		f.clean()
	})
}

// TestBrowserConsentDefault runs each variant without a consent call, then
// with the opposite explicit choice: the site's default stands for
// ad_storage until the page chooses, and the explicit choice wins.
func TestBrowserConsentDefault(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		seed := regexp.MustCompile(`^\d{13}\.[1-9]\d{9}$`)
		tests := []struct {
			name    string
			dir     string // where the variant is served
			head    string // calls before the script loads
			later   string // a call once the script runs
			wantVid bool
		}{
			{"granted default", "/granted", "", "", true},
			{"granted default, page denies", "/granted", `tagway('consent', {ad_storage:'denied'});`, "", false},
			{"granted default, page denies other keys only", "/granted", `tagway('consent', {ad_user_data:'denied'});`, "", true},
			{"denied default", "/denied", "", "", false},
			{"denied default, page grants", "/denied", `tagway('consent', {ad_storage:'granted'});`, "", true},
			{"wait default, page grants", "/wait", `tagway('consent', {ad_storage:'granted'});`, "", true},
			// The wait default holds the PageView until the choice: the first
			// request already carries the choice made after the script ran.
			{"wait default, page denies later", "/wait", "", `tagway('consent', {ad_storage:'denied'})`, false},
			{"wait default, page grants later", "/wait", "", `tagway('consent', {ad_storage:'granted'})`, true},
		}
		for i, tt := range tests {
			tag := `<script async src="` + f.tags.URL + tt.dir + `/tw.js"></script>`
			f.open(f.page(fmt.Sprintf("/consent%d", i), `localStorage.clear();`+tt.head, tag))
			if tt.later != "" {
				f.ready()
				var stored int
				f.eval(`localStorage.length`, &stored)
				if stored != 0 {
					t.Errorf("%s: %d localStorage keys before the choice", tt.name, stored)
				}
				f.eval(tt.later+`, 1`, new(int))
			}
			r := f.next()
			if tt.later != "" {
				if got := strings.Join(r.names(), ","); got != "PageView" || r.Body.Consent["ad_storage"] == "" {
					t.Errorf("%s: first request %s with consent %v; want the held PageView under the choice", tt.name, got, r.Body.Consent)
				}
			}
			if r.Path != tt.dir+"/collect" {
				t.Fatalf("%s: posted to %s", tt.name, r.Path)
			}
			var storage map[string]string
			f.eval(`Object.assign({}, localStorage)`, &storage)
			if !tt.wantVid {
				if r.Body.Vid != "" || len(storage) != 0 {
					t.Errorf("%s: vid %q, localStorage %v; want neither", tt.name, r.Body.Vid, storage)
				}
				continue
			}
			if !seed.MatchString(r.Body.Vid) || len(storage) != 1 || storage["_tw_vid"] != r.Body.Vid {
				t.Errorf("%s: vid %q, localStorage %v; want one seed, stored", tt.name, r.Body.Vid, storage)
			}
			// A later request of the page sends the same seed.
			f.eval(`tagway('track', 'Lead'), 1`, new(int))
			if again := f.next(); again.Body.Vid != r.Body.Vid {
				t.Errorf("%s: second request vid %q, first %q", tt.name, again.Body.Vid, r.Body.Vid)
			}
		}
		f.clean()
	})
}
