package pixeljs_test

// Browser tests of the script on hostile pages (what shops' own scripts do
// to the globals it uses), of the wire contract's send time and debug
// switch, of how it treats each answer of /collect, and of delivery when the
// page is left.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/browsertest"
)

// grantedTag loads the granted variant.
func (f *fixture) grantedTag() string {
	return `<script async src="` + f.tags.URL + `/granted/tw.js"></script>`
}

// shopEvent is what the hostile pages track, and what must arrive.
const shopEvent = `tagway('track', 'AddToCart', {content_ids: ['sku-1', 'sku-2'], contents: [{id: 'sku-1', quantity: 2, item_price: 9.95}], value: 19.9, currency: 'EUR'});`

var shopData = map[string]any{
	"content_ids": []any{"sku-1", "sku-2"},
	"contents":    []any{map[string]any{"id": "sku-1", "quantity": 2.0, "item_price": 9.95}},
	"value":       19.9,
	"currency":    "EUR",
}

func TestBrowserHostilePages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		head  string // runs before tw.js, then shopEvent is tracked
		after string // runs once tw.js ran, before it sends
	}{
		// Prototype.js (Magento 1 shops): JSON.stringify turns arrays into
		// strings; its older releases quote strings twice.
		{"Prototype.js toJSON", `Array.prototype.toJSON = function(){ return '[' + this.join(', ') + ']' };
String.prototype.toJSON = function(){ return '"' + this + '"' };`, ""},
		{"Object.prototype polluted", `Object.prototype.toJSON = function(){ return 'polluted' };
Object.prototype.polluted = 'x'; Array.prototype.extra = function(){};`, ""},
		// MooTools 1.2 replaced window.JSON with an object of its own: the
		// script took JSON.stringify as it loaded.
		{"JSON replaced, no stringify", "", `window.JSON = {decode: function(){}, encode: function(){}};`},
		{"JSON.stringify broken, JSON frozen", "", `JSON.stringify = function(){ return '"broken"' }; Object.freeze(JSON);`},
		// Safari with storage blocked, browsers in some private modes.
		{"localStorage throws", `Object.defineProperty(window, 'localStorage', {get: function(){ throw new DOMException('The operation is insecure.', 'SecurityError') }});`, ""},
		// A fetch polyfill on XMLHttpRequest that knows no keepalive and
		// answers a bare {status}.
		{"fetch polyfill", `window.fetch = function(url, o){ return new Promise(function(ok, fail){
  var x = new XMLHttpRequest(); x.open(o.method, url); x.withCredentials = o.credentials == 'include';
  x.onload = function(){ ok({status: x.status}) }; x.onerror = fail; x.send(o.body) }) };`, ""},
		{"Array methods replaced", `Array.prototype.map = function(f){ var r = []; for (var i = 0; i < this.length; i++) r.push(f(this[i], i)); return r };
Array.prototype.filter = function(f){ var r = []; for (var i = 0; i < this.length; i++) if (f(this[i], i)) r.push(this[i]); return r };`, ""},
	}
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		for i, tt := range tests {
			tag := "" // the default: async
			if tt.after != "" {
				tag = `<script src="` + f.tags.URL + `/tw.js"></script><script>` + tt.after + `</script>`
			}
			f.open(f.page(fmt.Sprintf("/hostile%d", i), `tagway('consent', {ad_storage: 'granted'});`+tt.head+shopEvent, tag))
			var got []collectEvent
			for len(got) < 2 {
				r := f.next()
				got = append(got, r.Events()...)
				if r.Body.Vid == "" {
					t.Errorf("%s: no visitor seed under granted consent", tt.name)
				}
			}
			if len(got) != 2 || got[0].EventName != "PageView" || got[1].EventName != "AddToCart" {
				t.Fatalf("%s: events %v", tt.name, got)
			}
			if !reflect.DeepEqual(got[1].CustomData, shopData) {
				t.Errorf("%s: custom_data %v\nwant %v", tt.name, got[1].CustomData, shopData)
			}
			f.clean()
		}

		// JSON replaced before the script loaded (and put back after, for
		// the test's own driver): the script has no JSON.stringify and
		// sends nothing (README), but it loads and throws nothing into the
		// page.
		f.open(f.page("/json-before", `var realJSON = JSON; window.JSON = {decode: function(){}, encode: function(){}};`+shopEvent,
			`<script src="`+f.tags.URL+`/tw.js"></script><script>window.JSON = realJSON</script>`))
		f.ready()
		f.eval(`tagway('track', 'Lead'), 1`, new(int))
		select {
		case r := <-f.got:
			t.Errorf("JSON replaced before the script: sent %v", r.names())
		case <-time.After(500 * time.Millisecond):
		}
		f.clean()

		// Shop data the page built badly: a cycle, a getter that throws,
		// numbers JSON has no form for (a BigInt goes as a string). The event
		// arrives with what could be kept.
		f.open(f.page("/cyclic", `var p = {id: 'sku-1'}; p.self = p; p.list = [p, 1];
Object.defineProperty(p, 'stock', {enumerable: true, get: function(){ throw new Error('no stock') }});
tagway('track', 'ViewContent', {value: 5, currency: 'EUR', product: p, ratio: NaN, big: Infinity, stock: BigInt(12)});`, ""))
		r := f.next()
		want := map[string]any{"value": 5.0, "currency": "EUR", "product": map[string]any{"id": "sku-1", "list": []any{nil, 1.0}}, "ratio": nil, "big": nil, "stock": "12"}
		if e := r.Events(); len(e) != 2 || !reflect.DeepEqual(e[1].CustomData, want) {
			t.Errorf("cyclic data: events %+v\nwant ViewContent with %v", e, want)
		}
		f.clean()
	})
}

// TestBrowserCookiesOff: a visitor who turned cookies off (which also turns
// site storage off in Chromium and Firefox) still sends every event.
func TestBrowserCookiesOff(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixtureWith(t, engine, browsertest.Options{NoCookies: true})
		f.open(f.page("/no-cookies", `tagway('consent', {ad_storage: 'granted'});`+shopEvent, f.grantedTag()))
		var got []collectEvent
		var seed string
		for len(got) < 2 {
			r := f.next()
			got = append(got, r.Events()...)
			seed = r.Body.Vid
		}
		if len(got) != 2 || !reflect.DeepEqual(got[1].CustomData, shopData) {
			t.Fatalf("events %+v", got)
		}
		f.eval(`tagway('track', 'Lead'), 1`, new(int))
		r := f.next()
		if strings.Join(r.names(), ",") != "Lead" || r.Cookie != "" {
			t.Errorf("next request: %v with cookie %q; want Lead, no cookie", r.names(), r.Cookie)
		}
		// Without storage the seed lives for the page: the gateway derives
		// one _fbp for the page's requests.
		if seed == "" || r.Body.Vid != seed {
			t.Errorf("visitor seed %q, then %q: want one seed for the page", seed, r.Body.Vid)
		}
		f.clean()
	})
}

// skewedClock replaces Date.now with a clock ms milliseconds off.
func skewedClock(ms int64) string {
	return fmt.Sprintf(`(function(){ var now = Date.now; Date.now = function(){ return now() + %d } })();`, ms)
}

// TestBrowserSentAt: every request carries the device's clock at send time,
// resends from a later page included, on the clock that stamped the events,
// so that the gateway can correct a wrong device clock.
func TestBrowserSentAt(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		for i, skew := range []time.Duration{0, 2 * time.Hour, -8 * 24 * time.Hour} {
			before := time.Now().Add(skew).UnixMilli()
			f.open(f.page(fmt.Sprintf("/clock%d", i), skewedClock(skew.Milliseconds()), ""))
			r := f.next()
			after := time.Now().Add(skew).UnixMilli()
			if r.Body.SentAt == nil {
				t.Fatalf("skew %v: no sent_at", skew)
			}
			if *r.Body.SentAt < before || *r.Body.SentAt > after {
				t.Fatalf("skew %v: sent_at %d outside [%d, %d] (%v)", skew, *r.Body.SentAt, before, after, r.names())
			}
			if e := r.Events()[0]; e.EventTime > *r.Body.SentAt/1000 || e.EventTime < before/1000 {
				t.Errorf("skew %v: event_time %d, sent_at %d: not one clock", skew, e.EventTime, *r.Body.SentAt)
			}
		}

		// The gateway down: the events are stored; the next page, a while
		// later, sends them with its own send time.
		f.setStatus(503)
		f.open(f.page("/clock-down", skewedClock(-3600e3)+`tagway('consent', {ad_storage: 'granted'}); tagway('track', 'Lead');`, f.grantedTag()))
		f.waitJS(`(JSON.parse(localStorage.getItem('_tw_q')) || []).length == 2`)
		var stored []collectEvent
		var raw string
		f.eval(`localStorage.getItem('_tw_q')`, &raw)
		if err := json.Unmarshal([]byte(raw), &stored); err != nil {
			t.Fatal(err)
		}
		// Leave the page first, so that its own retry does not send them.
		f.open("about:blank")
		time.Sleep(1100 * time.Millisecond)
		f.setStatus(0)
		f.open(f.page("/clock-later", skewedClock(-3600e3), f.grantedTag()))
		r := f.next()
		if got := strings.Join(r.names(), ","); got != "PageView,Lead,PageView" {
			t.Fatalf("later page sent %s; want the stored PageView and Lead, then its own PageView", got)
		}
		if r.Events()[1].EventTime != stored[1].EventTime {
			t.Errorf("the stored Lead's event_time changed: %d, stored %d", r.Events()[1].EventTime, stored[1].EventTime)
		}
		if sent := *r.Body.SentAt; sent/1000 <= stored[1].EventTime || sent > time.Now().Add(-time.Hour).UnixMilli()+1000 {
			t.Errorf("resend sent_at %d: want the later page's clock, after the Lead's %d s", sent, stored[1].EventTime)
		}
		f.cleanExcept("503")
	})
}

// outcomes answers a request as the gateway does when asked for outcomes:
// an event named Fixable was fixed, one named Broken refused.
func outcomes(b collectBody) (int, string) {
	type fix struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	}
	type outcome struct {
		EventID string `json:"event_id"`
		Status  string `json:"status"`
		Fixes   []fix  `json:"fixes,omitempty"`
		Error   *struct {
			Field   string `json:"field"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"error,omitempty"`
	}
	var resp struct {
		Accepted int       `json:"accepted"`
		Rejected int       `json:"rejected"`
		Events   []outcome `json:"events"`
	}
	for _, e := range b.Events {
		o := outcome{EventID: e.EventID, Status: "accepted"}
		switch e.EventName {
		case "Fixable":
			o.Status, o.Fixes = "fixed", []fix{{"custom_data.value", "decimal_comma"}}
		case "Broken":
			o.Status = "rejected"
			o.Error = &struct {
				Field   string `json:"field"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			}{"event_time", "too_old", "older than the platforms accept"}
			resp.Rejected++
			resp.Events = append(resp.Events, o)
			continue
		}
		resp.Accepted++
		resp.Events = append(resp.Events, o)
	}
	raw, _ := json.Marshal(resp)
	return 200, string(raw)
}

// tagwayLines returns what the script printed, by level.
func (f *fixture) tagwayLines() map[string][]string {
	out := map[string][]string{}
	for _, m := range f.b.Console() {
		if strings.Contains(m.Text, "tagway") {
			out[m.Level] = append(out[m.Level], m.Text)
		}
	}
	return out
}

// waitLines waits until the script printed n lines in all.
func (f *fixture) waitLines(n int) map[string][]string {
	f.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines := f.tagwayLines()
		if len(lines["info"])+len(lines["warn"]) >= n || time.Now().After(deadline) {
			return lines
		}
	}
}

func TestBrowserDebug(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.setAnswer(outcomes)
		track := `tagway('track', 'Fixable', {value: '19,90'}); tagway('track', 'Broken');`

		// Debug off: the answer's outcomes are not printed, nor anything.
		f.open(f.page("/quiet", track, ""))
		if r := f.next(); r.Body.Debug || len(r.Events()) != 3 {
			t.Fatalf("debug off: debug %v, events %v", r.Body.Debug, r.names())
		}
		f.eval(`tagway('track', 'Marker'), 1`, new(int))
		f.next()
		time.Sleep(200 * time.Millisecond)
		if lines := f.tagwayLines(); len(lines) != 0 {
			t.Errorf("debug off, the script printed %v", lines)
		}

		// ?tw_debug=1: each outcome printed, refusals as warnings.
		f.page("/loud", track, "")
		f.open(f.pages.URL + "/loud?tw_debug=1")
		r := f.next()
		if !r.Body.Debug {
			t.Fatal("tw_debug=1: the request does not ask for outcomes")
		}
		lines := f.waitLines(3)
		info, warn := strings.Join(lines["info"], "\n"), strings.Join(lines["warn"], "\n")
		for _, want := range []string{r.Events()[0].EventID, `"status":"accepted"`, r.Events()[1].EventID, `"status":"fixed"`, `"field":"custom_data.value"`, `"reason":"decimal_comma"`} {
			if !strings.Contains(info, want) {
				t.Errorf("console.info %q lacks %s", info, want)
			}
		}
		for _, want := range []string{r.Events()[2].EventID, `"status":"rejected"`, `"reason":"too_old"`} {
			if !strings.Contains(warn, want) {
				t.Errorf("console.warn %q lacks %s", warn, want)
			}
		}
		if len(lines["info"]) != 2 || len(lines["warn"]) != 1 {
			t.Errorf("printed %v; want two infos and a warning", lines)
		}

		// tagway('debug', false) turns it off, tagway('debug', true) on.
		f.eval(`tagway('debug', false); tagway('track', 'Marker'), 1`, new(int))
		if r := f.next(); r.Body.Debug {
			t.Error("after tagway('debug', false) the request still asks for outcomes")
		}
		f.open(f.page("/switched", `tagway('debug', true);`, ""))
		if r := f.next(); !r.Body.Debug {
			t.Error("tagway('debug', true): the request does not ask for outcomes")
		}
		// A whole request refused: the error is printed.
		f.setAnswer(func(collectBody) (int, string) {
			return 403, `{"error":{"code":"origin_not_allowed","message":"this origin may not send events to this gateway"}}`
		})
		f.eval(`tagway('track', 'Lead'), 1`, new(int))
		f.next()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			w := f.tagwayLines()["warn"]
			if strings.Contains(w[len(w)-1], "origin_not_allowed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("refused request: warnings %v; want the error", w)
			}
		}
		f.cleanExcept("403")
	})
}

// TestBrowserAnswers: any 2xx settles the whole batch; a 4xx but 429 drops
// it (it would fail again); 429, 5xx and a gateway out of reach keep it for
// a retry.
func TestBrowserAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		resent bool
	}{
		{200, `{"accepted":2,"rejected":0,"events":[{"event_id":"a","status":"accepted"},{"event_id":"b","status":"accepted"}]}`, false},
		{204, ``, false},
		{400, `{"error":{"code":"invalid_json","message":"bad"}}`, false},
		{413, `{"error":{"code":"too_many_events","message":"at most 50"}}`, false},
		{429, `{"error":{"code":"rate_limited","message":"slow down"}}`, true},
		{500, `oops`, true},
		{503, `{"error":{"code":"unavailable","message":"later"}}`, true},
	}
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.open(f.page("/answers", "", ""))
		f.next()
		for _, tt := range tests {
			var answered atomic.Bool
			f.setAnswer(func(collectBody) (int, string) {
				if answered.CompareAndSwap(false, true) {
					return tt.status, tt.body
				}
				return 204, ""
			})
			f.eval(`tagway('track', 'Lead'), 1`, new(int))
			lead := f.next()
			// online: a retry goes at once, with the marker's request.
			f.eval(`dispatchEvent(new Event('online')); setTimeout(function(){ tagway('track', 'Marker') }, 50), 1`, new(int))
			var names []string
			for !strings.Contains(strings.Join(names, ","), "Marker") {
				names = append(names, f.next().names()...)
			}
			if resent := strings.Contains(strings.Join(names, ","), "Lead"); resent != tt.resent {
				t.Errorf("%d: the Lead (%s) sent again: %v, want %v (then %v)", tt.status, lead.Events()[0].EventID, resent, tt.resent, names)
			}
		}
		f.cleanExcept("the server responded with a status of") // Chromium's log of each refusal
	})
}

// TestBrowserLargeBatch: the events of one tick that would make a body
// over the gateway's limit go in several requests, each under it.
func TestBrowserLargeBatch(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		f.open(f.page("/large", "", ""))
		f.next()
		f.eval(`var long = new Array(1501).join('x'); for (var i = 0; i < 30; i++) tagway('track', 'Search', {search_string: long, n: i}); 1`, new(int))
		seen := map[float64]bool{}
		requests := 0
		for len(seen) < 30 {
			r := f.next()
			requests++
			raw, _ := json.Marshal(r.Body)
			if len(raw) > 20000+2000 {
				t.Errorf("a request of %d bytes", len(raw))
			}
			for _, e := range r.Events() {
				n := e.CustomData["n"].(float64)
				if seen[n] {
					t.Errorf("event %v sent twice", n)
				}
				seen[n] = true
			}
		}
		if requests < 3 {
			t.Errorf("30 events of 1.5 KB in %d requests; want at least 3", requests)
		}
		f.clean()
	})
}

// TestBrowserLeavingThePage: events tracked as the visitor leaves go with
// the page: by sendBeacon, or by fetch with keepalive where sendBeacon is
// missing, and both outlive the page.
func TestBrowserLeavingThePage(t *testing.T) {
	t.Parallel()
	browsertest.Run(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine)
		next := f.page("/next", "", `<script></script>`)
		for _, tt := range []struct{ name, head string }{
			{"sendBeacon", ""},
			{"fetch keepalive", `delete Navigator.prototype.sendBeacon;`},
		} {
			f.open(f.page("/leave", tt.head, ""))
			f.next()
			// In one task: the event, the page hidden (as a closed tab or a
			// followed link hides it: the script sends at once, on the unload
			// path) and the page left, before any timer of the script runs.
			f.eval(`setTimeout(function(){ tagway('track', 'Bye'); dispatchEvent(new PageTransitionEvent('pagehide')); location.href = '`+next+`' }), 1`, new(int))
			if r := f.next(); strings.Join(r.names(), ",") != "Bye" {
				t.Errorf("%s: %v, want [Bye]", tt.name, r.names())
			}
			f.waitJS(`location.pathname == '/next'`)
		}
		f.clean()
	})
}
