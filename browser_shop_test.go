package main

// Shop data as stores really send it, through tw.js in each browser engine,
// the whole gateway and the strict fake of Meta's Graph API: every row of
// testdata/browser_shop_data.json (the cases issue 19 lists, and the
// dataLayers and tracking calls of WooCommerce, Shopify and Magento shops)
// must reach Meta with the values the gateway fixed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/browsertest"
)

// shopRow is one case: what a page does, and what Meta must receive.
type shopRow struct {
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
		CustomData map[string]any `json:"custom_data"`
		// UserData lists keys Meta's user_data must hold.
		UserData []string `json:"user_data"`
		// Also lists more events of the page Meta must receive.
		Also []string `json:"also"`
	} `json:"want"`
}

func readShopRows(t *testing.T) []shopRow {
	t.Helper()
	raw, err := os.ReadFile("testdata/browser_shop_data.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var rows []shopRow
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("browser_shop_data.json: %v", err)
	}
	for _, r := range rows {
		if r.Name == "" || r.EventName == "" || (r.CustomData == nil) == (r.DataLayer == nil) {
			t.Fatalf("row %q: needs a name, an event_name and one of custom_data and datalayer", r.Name)
		}
	}
	return rows
}

// shopPage is the page of row i: the queue stub and consent, the row's
// setup and clock, its tracking call, then tw.js from the gateway.
func shopPage(gateway string, row shopRow) string {
	track := "tagway('track', " + strconv.Quote(row.EventName) + ", " + string(row.CustomData) + ");"
	if row.DataLayer != nil {
		track = "window.dataLayer = window.dataLayer || []; dataLayer.push(" + string(row.DataLayer) + ");"
	}
	clock := ""
	if row.Page.ClockMS != 0 {
		clock = fmt.Sprintf(`(function(){ var now = Date.now; Date.now = function(){ return now() + %d } })();`, row.Page.ClockMS)
	}
	return `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
` + browsertest.ConsoleHook + `
<script>` + row.Page.Setup + clock + `</script>
<script>window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)};
tagway('consent', {ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted', analytics_storage: 'granted'});
` + track + row.Page.Also + `</script>
<script async src="` + gateway + `/tw.js"></script>
</head><body><p>shop</p></body></html>`
}

// shopURL returns the URL of row i's page: /shop/<i>, padded as the row
// says.
func shopURL(base string, i int, row shopRow) string {
	u := fmt.Sprintf("%s/shop/%d?utm_source=test", base, i)
	if n := row.Page.URLLength - len(u) - len(row.Page.QueryEnd); n > len("&filter=") {
		u += "&filter=" + strings.Repeat("x", n-len("&filter="))
	}
	return u + row.Page.QueryEnd
}

// numbersAsFloats decodes Meta's json.Numbers as encoding/json would.
func numbersAsFloats(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

func TestBrowserShopData(t *testing.T) {
	rows := readShopRows(t)
	browsertest.Run(t, func(t *testing.T, engine string) {
		g := startGateway(t, map[string]string{"TAGWAY_CONSENT_DEFAULT": "granted", "TAGWAY_GA4_DATALAYER": "on"})
		pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/shop/"))
			if err != nil || i < 0 || i >= len(rows) {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, shopPage(g.URL, rows[i]))
		}))
		t.Cleanup(pages.Close)
		b := browsertest.Start(t, engine, browsertest.Options{})

		start := time.Now()
		for i, row := range rows {
			if err := b.Navigate(shopURL(pages.URL, i, row)); err != nil {
				t.Fatalf("%s: %v", row.Name, err)
			}
			// The page's events have left once it has no request in flight.
			if err := browsertest.Wait(b, `window.tagway && tagway.tw`, 30*time.Second); err != nil {
				t.Fatalf("%s: %v", row.Name, err)
			}
		}

		// Meta's events, by page: each row's event (and its also-events)
		// must be there, once.
		byPage := func(got []metatest.Received) map[int][]metatest.Received {
			out := map[int][]metatest.Received{}
			for _, r := range got {
				u, _ := r.Event["event_source_url"].(string)
				rest, ok := strings.CutPrefix(u, pages.URL+"/shop/")
				if !ok {
					continue
				}
				n, _, _ := strings.Cut(rest, "?")
				i, err := strconv.Atoi(n)
				if err == nil {
					out[i] = append(out[i], r)
				}
			}
			return out
		}
		var got map[int][]metatest.Received
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			got = byPage(g.Graph.Events(testPixel))
			complete := true
			for i, row := range rows {
				if !hasEvents(got[i], append([]string{"PageView", row.EventName}, row.Want.Also...)) {
					complete = false
				}
			}
			if complete || time.Now().After(deadline) {
				break
			}
		}
		for i, row := range rows {
			t.Run(row.Name, func(t *testing.T) {
				checkShopRow(t, row, got[i], start)
			})
		}
		if errs := browsertest.Errors(b); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})
}

// hasEvents reports whether got holds an event of each name.
func hasEvents(got []metatest.Received, names []string) bool {
	for _, n := range names {
		found := false
		for _, r := range got {
			found = found || r.EventName == n
		}
		if !found {
			return false
		}
	}
	return true
}

func checkShopRow(t *testing.T, row shopRow, got []metatest.Received, start time.Time) {
	t.Helper()
	var names []string
	for _, r := range got {
		names = append(names, r.EventName)
	}
	want := append([]string{"PageView", row.EventName}, row.Want.Also...)
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
		if r.EventName != row.EventName {
			continue
		}
		if cd := numbersAsFloats(r.CustomData); !reflect.DeepEqual(cd, numbersAsFloats(row.Want.CustomData)) {
			g, _ := json.Marshal(cd)
			w, _ := json.Marshal(row.Want.CustomData)
			t.Errorf("custom_data at Meta\n got %s\nwant %s", g, w)
		}
		for _, k := range row.Want.UserData {
			if r.UserData[k] == nil {
				t.Errorf("user_data lacks %s: %v", k, r.UserData)
			}
		}
	}
}
