package e2e

// Shop data as stores really send it, through tw.js in each browser engine,
// the whole gateway and the strict fake of Meta's Graph API. The cases come
// from two files: gateway/testdata/shopdata.json, the shop data shapes the
// gateway's own test drives through /collect (each a tagway() call, with the outcome
// the gateway must answer and what Meta must receive), and
// testdata/browser_shop_data.json, what only a browser shows (a page's
// clock, its URL, Prototype.js, GA4 dataLayers of WooCommerce, Shopify and
// Magento, several events in one batch). Every page runs with tw_debug=1:
// the outcome tw.js prints is checked against the gateway's expected one.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/browsertest"
)

// browserRow is a row of testdata/browser_shop_data.json: what a page does,
// and what Meta must receive.
type browserRow struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// EventName is the event Meta must receive.
	EventName string `json:"event_name"`
	// CustomData is tracked with tagway('track', EventName, CustomData);
	// else DataLayer is pushed to window.dataLayer (the site maps GA4
	// events).
	CustomData json.RawMessage `json:"custom_data"`
	DataLayer  json.RawMessage `json:"datalayer"`
	Page       struct {
		// Setup runs before anything else of the page.
		Setup string `json:"setup"`
		// Also runs after the tracking call, in the same tick.
		Also string `json:"also"`
		// ClockMS is how far the device's clock is off.
		ClockMS int64 `json:"clock_ms"`
		// URLLength pads the page's URL to that many characters, QueryEnd
		// last.
		URLLength int    `json:"url_length"`
		QueryEnd  string `json:"query_end"`
	} `json:"page"`
	Want struct {
		CustomData json.RawMessage `json:"custom_data"`
		// UserData lists keys Meta's user_data must hold.
		UserData []string `json:"user_data"`
		// Also lists more events of the page Meta must receive.
		Also []string `json:"also"`
	} `json:"want"`
}

// sharedRow is a row of gateway/testdata/shopdata.json (see its "about").
type sharedRow struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Note   string `json:"note"`
	Call   struct {
		Command  string          `json:"command"`
		Event    string          `json:"event"`
		Params   json.RawMessage `json:"params"`
		Options  json.RawMessage `json:"options"`
		Identify json.RawMessage `json:"identify"`
	} `json:"call"`
	Wire   json.RawMessage `json:"wire"`
	Expect struct {
		Status         string            `json:"status"`
		Fixes          []shopFix         `json:"fixes"`
		EventName      string            `json:"event_name"`
		Error          *shopFix          `json:"error"`
		CustomData     json.RawMessage   `json:"custom_data"`
		UserDataHashed map[string]string `json:"user_data_hashed"`
		UserDataAbsent []string          `json:"user_data_absent"`
		Meta           string            `json:"meta"`
		Incomplete     string            `json:"incomplete"`
	} `json:"expect"`
}

// shopFix is a fix or refusal in the gateway's answer.
type shopFix struct {
	Field   string `json:"field"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// shopCase is one page of the table.
type shopCase struct {
	name string
	// script runs in the page's head, before tw.js: its setup, then its
	// tracking.
	script string
	// url returns the page's address below base.
	url func(base string) string

	// eventID is the id the page gives its event ("" when it cannot: a
	// dataLayer push).
	eventID   string
	eventName string
	meta      bool            // Meta must receive the event
	custom    json.RawMessage // Meta's custom_data (nil: not checked)
	userKeys  []string        // keys Meta's user_data must hold
	hashed    map[string]string
	absent    []string
	also      []string // more events Meta must receive from the page

	status    string // the outcome tw.js prints ("": not checked)
	fixes     []shopFix
	errReason string
}

// readJSON decodes the file at path strictly.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// clockScript replaces Date.now with a clock ms milliseconds off.
func clockScript(ms int64) string {
	if ms == 0 {
		return ""
	}
	return fmt.Sprintf(`(function(){ var now = Date.now; Date.now = function(){ return now() + %d } })();`, ms)
}

// shopCases reads both files into the pages of the table.
func shopCases(t *testing.T) []shopCase {
	t.Helper()
	var shared struct {
		About string      `json:"about"`
		Rows  []sharedRow `json:"rows"`
	}
	readJSON(t, "../../gateway/testdata/shopdata.json", &shared)
	var own []browserRow
	readJSON(t, "testdata/browser_shop_data.json", &own)

	var cases []shopCase
	for i, r := range shared.Rows {
		if r.Call.Command != "track" {
			t.Fatalf("shopdata.json %q: command %q", r.Name, r.Call.Command)
		}
		// The case's own id, so that its outcome and its event at Meta
		// are found whatever the row's options say.
		id := fmt.Sprintf("shared-%d", i)
		opts := map[string]any{}
		if r.Call.Options != nil {
			if err := json.Unmarshal(r.Call.Options, &opts); err != nil {
				t.Fatalf("shopdata.json %q: options: %v", r.Name, err)
			}
		}
		opts["event_id"] = id
		optsJSON, _ := json.Marshal(opts)
		script := ""
		if r.Call.Identify != nil {
			script += "tagway('identify', " + string(r.Call.Identify) + ");\n"
		}
		params := "null"
		if r.Call.Params != nil {
			params = string(r.Call.Params)
		}
		script += "tagway('track', " + strconv.Quote(r.Call.Event) + ", " + params + ", " + string(optsJSON) + ");"
		name := r.Expect.EventName
		if name == "" {
			name = r.Call.Event
		}
		c := shopCase{
			name: "shared/" + r.Name, script: script, eventID: id, eventName: name,
			meta: r.Expect.Meta == "sent", custom: r.Expect.CustomData, hashed: r.Expect.UserDataHashed, absent: r.Expect.UserDataAbsent,
			status: r.Expect.Status, fixes: r.Expect.Fixes,
		}
		if r.Expect.Error != nil {
			c.errReason = r.Expect.Error.Reason
		}
		cases = append(cases, c)
	}
	for _, r := range own {
		if r.Name == "" || r.EventName == "" || (r.CustomData == nil) == (r.DataLayer == nil) {
			t.Fatalf("browser_shop_data.json %q: needs a name, an event_name and one of custom_data and datalayer", r.Name)
		}
		track := "tagway('track', " + strconv.Quote(r.EventName) + ", " + string(r.CustomData) + ");"
		if r.DataLayer != nil {
			track = "window.dataLayer = window.dataLayer || []; dataLayer.push(" + string(r.DataLayer) + ");"
		}
		page := r.Page
		cases = append(cases, shopCase{
			name:   "browser/" + r.Name,
			script: page.Setup + clockScript(page.ClockMS) + "\n" + track + page.Also,
			url: func(u string) string {
				if n := page.URLLength - len(u) - len(page.QueryEnd); n > len("&filter=") {
					u += "&filter=" + strings.Repeat("x", n-len("&filter="))
				}
				return u + page.QueryEnd
			},
			eventName: r.EventName, meta: true, custom: r.Want.CustomData, userKeys: r.Want.UserData, also: r.Want.Also,
		})
	}
	return cases
}

// shopPage is the page of a case: the queue stub and consent, then the
// case's script, then tw.js from the gateway.
func shopPage(gateway string, c shopCase) string {
	return `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
` + browsertest.ConsoleHook + `
<script>window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)};
tagway('consent', {ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted', analytics_storage: 'granted'});
window.ids = []; addEventListener('tagway:event', function(e){ ids.push(e.detail.event_id) });</script>
<script>` + c.script + `</script>
<script async src="` + gateway + `/tw.js"></script>
</head><body><p>shop</p></body></html>`
}

// asJSON decodes Meta's json.Numbers, or a file's raw JSON, as
// encoding/json decodes into an any.
func asJSON(v any) any {
	raw, ok := v.(json.RawMessage)
	if !ok {
		raw, _ = json.Marshal(v)
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

func TestBrowserShopData(t *testing.T) {
	cases := shopCases(t)
	browsertest.Run(t, func(t *testing.T, engine string) {
		g := startGateway(t, gatewayOptions{config: metaSite("consent_default: granted", "ga4_datalayer: true")})
		pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/shop/"))
			if err != nil || i < 0 || i >= len(cases) {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, shopPage(g.URL, cases[i]))
		}))
		t.Cleanup(pages.Close)
		b := browsertest.Start(t, engine, browsertest.Options{})

		start := time.Now()
		for i, c := range cases {
			u := fmt.Sprintf("%s/shop/%d?tw_debug=1", pages.URL, i)
			if c.url != nil {
				u = c.url(u)
			}
			if err := b.Navigate(u); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			// The page is left once the gateway answered each of its events
			// (tw.js printed the outcome), so that no answer is lost.
			if err := waitOutcomes(b); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}

		// Meta's events by page, and tw.js's debug lines, once every page's
		// events have arrived (or a bound passed).
		var (
			got   map[int][]metatest.Received
			lines []browsertest.Message
		)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			got = metaByPage(g.Graph.Events(testPixel), pages.URL+"/shop/")
			lines = b.Console()
			complete := true
			for i, c := range cases {
				if !hasEvents(got[i], c.metaNames()) || c.status != "" && outcomeLine(lines, c.eventID) == nil {
					complete = false
				}
			}
			if complete || time.Now().After(deadline) {
				break
			}
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.checkMeta(t, got[i], start)
				c.checkOutcome(t, outcomeLine(lines, c.eventID))
			})
		}
		if errs := browsertest.Errors(b); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})
}

// waitOutcomes waits until tw.js has printed an outcome for every event of
// the page.
func waitOutcomes(b browsertest.Browser) error {
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := b.Eval(`window.tagway && tagway.tw ? ids : []`, &ids)
		if err == nil && len(ids) > 0 {
			lines := b.Console()
			if !slices.ContainsFunc(ids, func(id string) bool { return outcomeLine(lines, id) == nil }) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no outcome printed for each of %v (%v)", ids, err)
		}
	}
}

// metaNames lists the events Meta must receive from the case's page.
func (c shopCase) metaNames() []string {
	names := []string{"PageView"}
	if c.meta {
		names = append(names, c.eventName)
	}
	return append(names, c.also...)
}

// metaByPage groups Meta's events by the page they came from: the index
// after prefix in their event_source_url.
func metaByPage(events []metatest.Received, prefix string) map[int][]metatest.Received {
	out := map[int][]metatest.Received{}
	for _, r := range events {
		u, _ := r.Event["event_source_url"].(string)
		rest, ok := strings.CutPrefix(u, prefix)
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, "?")
		if i, err := strconv.Atoi(n); err == nil {
			out[i] = append(out[i], r)
		}
	}
	return out
}

// hasEvents reports whether got holds an event of each name.
func hasEvents(got []metatest.Received, names []string) bool {
	for _, n := range names {
		if !slices.ContainsFunc(got, func(r metatest.Received) bool { return r.EventName == n }) {
			return false
		}
	}
	return true
}

// outcomeLine returns the line tw.js printed for the event with id, or nil.
func outcomeLine(lines []browsertest.Message, id string) *browsertest.Message {
	if id == "" {
		return nil
	}
	for i := range lines {
		if strings.Contains(lines[i].Text, `"event_id":"`+id+`"`) {
			return &lines[i]
		}
	}
	return nil
}

func (c shopCase) checkMeta(t *testing.T, got []metatest.Received, start time.Time) {
	t.Helper()
	var names []string
	for _, r := range got {
		names = append(names, r.EventName)
	}
	want := c.metaNames()
	if !hasEvents(got, want) || len(got) != len(want) {
		t.Fatalf("Meta received %v from the page; want %v", names, want)
	}
	for _, r := range got {
		// The device's clock, whatever its error: the event's time at Meta
		// is the gateway's.
		if at := time.Unix(r.EventTime, 0); at.Before(start.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s event_time %v; want between %v and now", r.EventName, at, start)
		}
		if u, _ := r.Event["event_source_url"].(string); len(u) > 2048 {
			t.Errorf("%s event_source_url of %d characters", r.EventName, len(u))
		}
		if r.EventName != c.eventName {
			continue
		}
		if c.custom != nil {
			want := asJSON(c.custom)
			if m, ok := want.(map[string]any); ok && len(m) == 0 {
				want = nil // no custom_data reaches Meta
			}
			var cd any
			if r.CustomData != nil {
				cd = asJSON(r.CustomData)
			}
			if !reflect.DeepEqual(cd, want) {
				g, _ := json.Marshal(cd)
				w, _ := json.Marshal(want)
				t.Errorf("custom_data at Meta\n got %s\nwant %s", g, w)
			}
		}
		for _, k := range c.userKeys {
			if r.UserData[k] == nil {
				t.Errorf("user_data lacks %s: %v", k, r.UserData)
			}
		}
		for k, v := range c.hashed {
			if h := fmt.Sprint(r.UserData[k]); !strings.Contains(h, sha(v)) {
				t.Errorf("user_data.%s %s; want the hash of %q", k, h, v)
			}
		}
		for _, k := range c.absent {
			if r.UserData[k] != nil {
				t.Errorf("user_data.%s %v; want none", k, r.UserData[k])
			}
		}
	}
}

// checkOutcome checks the outcome tw.js printed in debug: its status and
// fixes, or its refusal, as the gateway answered them.
func (c shopCase) checkOutcome(t *testing.T, line *browsertest.Message) {
	t.Helper()
	if c.status == "" {
		return
	}
	if line == nil {
		t.Fatalf("tw.js printed no outcome for %s", c.eventID)
	}
	text := strings.TrimPrefix(line.Text, "tagway: ")
	var o struct {
		EventID string    `json:"event_id"`
		Status  string    `json:"status"`
		Fixes   []shopFix `json:"fixes"`
		Error   *shopFix  `json:"error"`
	}
	if err := json.Unmarshal([]byte(text), &o); err != nil {
		t.Fatalf("printed outcome %q: %v", line.Text, err)
	}
	wantLevel := "info"
	if c.status == "rejected" {
		wantLevel = "warn"
	}
	if o.Status != c.status || line.Level != wantLevel {
		t.Errorf("printed %s %q; want %s with status %s", line.Level, line.Text, wantLevel, c.status)
	}
	for _, f := range c.fixes {
		if !slices.ContainsFunc(o.Fixes, func(g shopFix) bool { return g.Field == f.Field && g.Reason == f.Reason }) {
			t.Errorf("printed fixes %+v lack %s (%s)", o.Fixes, f.Field, f.Reason)
		}
	}
	if c.errReason != "" && (o.Error == nil || o.Error.Reason != c.errReason) {
		t.Errorf("printed refusal %+v; want reason %s", o.Error, c.errReason)
	}
}
