package pixeljs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// The script loads on every page of every store: growth must be a decision,
// not an accident. budget is the most it may weigh on the wire (3 KB, as
// the README promises), both as browsers download it over HTTPS (brotli)
// and for a client that takes only gzip.
const budget = 3072

var consentDefaults = []string{ConsentGranted, ConsentDenied, ConsentWait}

// allOptions lists every variant a site can get (Collect aside, which only
// changes a short string).
func allOptions() []Options {
	var all []Options
	for _, d := range consentDefaults {
		for _, spa := range []bool{true, false} {
			for _, dl := range []bool{false, true} {
				all = append(all, Options{ConsentDefault: d, Collect: "../a1b2c3d4/e5f6a7b8", SPAPageViews: spa, DataLayer: dl})
			}
		}
	}
	return all
}

func TestBuild(t *testing.T) {
	for _, o := range allOptions() {
		t.Run(fmt.Sprintf("%s/spa=%v/datalayer=%v", o.ConsentDefault, o.SPAPageViews, o.DataLayer), func(t *testing.T) {
			t.Parallel()
			testBuild(t, o)
		})
	}
	for _, bad := range []string{"", "Granted", "yes"} {
		if _, err := Build(bad); err == nil || !strings.Contains(err.Error(), "consent default") {
			t.Errorf("Build(%q): err %v, want a consent default error", bad, err)
		}
	}
	for _, bad := range []string{"", "/collect", "https://evil.example/c", "a//b", `c";alert(1);"`, "c d"} {
		if _, err := BuildFor(Options{ConsentDefault: ConsentGranted, Collect: bad}); err == nil || !strings.Contains(err.Error(), "relative path") {
			t.Errorf("BuildFor(Collect: %q): err %v, want a relative path error", bad, err)
		}
	}
}

func testBuild(t *testing.T, o Options) {
	js, err := BuildFor(o)
	if err != nil {
		t.Fatal(err)
	}
	// Compressed as the server does (newVariant).
	v, err := newVariant(js)
	if err != nil {
		t.Fatal(err)
	}
	br, gz := len(v.encodings[brotlied].body), len(v.encodings[gzipped].body)
	t.Logf("tw.js %+v: %d bytes, %d brotli, %d gzip (budget %d)", o, len(js), br, gz, budget)
	if br > budget {
		t.Errorf("brotli script is %d bytes, over the %d budget", br, budget)
	}
	if gz > budget {
		t.Errorf("gzipped script is %d bytes, over the %d budget", gz, budget)
	}

	s := string(js)
	if !strings.HasPrefix(s, "(()=>{") || !strings.HasSuffix(s, "})();\n") {
		t.Errorf("not one IIFE: starts %q, ends %q", s[:min(20, len(s))], s[max(0, len(s)-20):])
	}
	if n := strings.Count(strings.TrimSuffix(s, "\n"), "\n"); n != 0 {
		t.Errorf("not minified: %d line breaks", n)
	}
	// Comments, indentation and the source's long local names are gone, and
	// the options were replaced by their values.
	for _, leftover := range []string{"/*", "  ", "createTracker", "visitorSeed", "randomWords", "__TW_"} {
		if strings.Contains(s, leftover) {
			t.Errorf("not minified: output contains %q", leftover)
		}
	}
	// ES2017 target: no syntax newer than that survives (esbuild would have
	// lowered it, so finding it means the target is wrong).
	for _, modern := range []string{"?.", "??", "import ", "export "} {
		if strings.Contains(s, modern) {
			t.Errorf("output contains %q, which ES2017 lacks or an IIFE must not hold", modern)
		}
	}
	// The wire names the contract fixes are kept as they are.
	for _, name := range []string{"event_name", "event_id", "custom_data", "user_data", "_tw_vid", "_tw_q",
		"tagway:event", "keepalive", "sendBeacon", "sent_at", "debug", "tw_debug", "trackCustom", "eventID",
		"client_dedup_id", "conversionId", "__tcfapi", "dataLayer", `"` + o.Collect + `"`} {
		if !strings.Contains(s, name) {
			t.Errorf("output lacks %q", name)
		}
	}
	// A feature the site has off is not in its script at all.
	for feature, marker := range map[bool]string{o.SPAPageViews: "pushState", o.DataLayer: "begin_checkout"} {
		if strings.Contains(s, marker) != feature {
			t.Errorf("feature marked by %q: on %v, in the script %v", marker, feature, strings.Contains(s, marker))
		}
	}

	again, err := BuildFor(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js, again) {
		t.Error("two builds differ: replicas would serve different ETags")
	}
}

func TestVariants(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// Each default has its own bytes and its own ETags.
	tags := map[string]string{}
	for _, d := range consentDefaults {
		v, _ := s.get(Defaults(d))
		want, err := Build(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.encodings[identity].body, want) {
			t.Errorf("%s variant does not hold Build(%q)", d, d)
		}
		for _, e := range v.encodings {
			if other, seen := tags[e.etag]; seen {
				t.Errorf("%s and %s share the ETag %s", d, other, e.etag)
			}
			tags[e.etag] = d
		}
	}

	// ForConsentDefault serves the variant of the default; anything else
	// gets wait, the most private. ServeHTTP serves granted.
	etagOf := func(h http.Handler) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/tw.js", nil))
		return rec.Header().Get("ETag")
	}
	for _, c := range []struct{ in, want string }{
		{ConsentGranted, ConsentGranted},
		{ConsentDenied, ConsentDenied},
		{ConsentWait, ConsentWait},
		{"", ConsentWait},
		{"GRANTED", ConsentWait},
		{"bogus", ConsentWait},
	} {
		if got := tags[etagOf(s.ForConsentDefault(c.in))]; got != c.want {
			t.Errorf("ForConsentDefault(%q) serves the %s variant, want %s", c.in, got, c.want)
		}
	}
	if got := tags[etagOf(s)]; got != ConsentGranted {
		t.Errorf("ServeHTTP serves the %s variant, want granted", got)
	}
}

func TestServeHTTP(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := s.get(Defaults(ConsentGranted))
	raw := v.encodings[identity].body
	etag := v.encodings[identity].etag
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("etag %s: want a quoted strong hash", etag)
	}
	tag := strings.Trim(etag, `"`)

	tests := []struct {
		name       string
		method     string
		header     http.Header
		wantStatus int
		wantEnc    string // Content-Encoding
		wantETag   string
		wantBody   bool
	}{
		{"identity", "GET", nil, 200, "", etag, true},
		{"gzip", "GET", http.Header{"Accept-Encoding": {"gzip"}}, 200, "gzip", `"` + tag + `-gz"`, true},
		{"x-gzip", "GET", http.Header{"Accept-Encoding": {"x-gzip"}}, 200, "gzip", `"` + tag + `-gz"`, true},
		{"br preferred", "GET", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}, 200, "br", `"` + tag + `-br"`, true},
		{"br refused by q=0", "GET", http.Header{"Accept-Encoding": {"br;q=0, gzip;q=0.5"}}, 200, "gzip", `"` + tag + `-gz"`, true},
		{"star", "GET", http.Header{"Accept-Encoding": {"*"}}, 200, "br", `"` + tag + `-br"`, true},
		{"star but not br", "GET", http.Header{"Accept-Encoding": {"*, br;q=0"}}, 200, "gzip", `"` + tag + `-gz"`, true},
		{"nothing acceptable but identity", "GET", http.Header{"Accept-Encoding": {"deflate"}}, 200, "", etag, true},
		{"head", "HEAD", http.Header{"Accept-Encoding": {"br"}}, 200, "br", `"` + tag + `-br"`, false},
		{"304 identity", "GET", http.Header{"If-None-Match": {etag}}, 304, "", etag, false},
		{"304 br", "GET", http.Header{"Accept-Encoding": {"br"}, "If-None-Match": {`"x", ` + `"` + tag + `-br"`}}, 304, "", `"` + tag + `-br"`, false},
		{"304 weak", "GET", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {`W/"` + tag + `-gz"`}}, 304, "", `"` + tag + `-gz"`, false},
		{"304 star", "HEAD", http.Header{"If-None-Match": {"*"}}, 304, "", etag, false},
		{"other encoding's tag is no match", "GET", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {etag}}, 200, "gzip", `"` + tag + `-gz"`, true},
		{"stale tag", "GET", http.Header{"If-None-Match": {`"0123"`}}, 200, "", etag, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/tw.js", nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			v.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			h := res.Header
			if got := h.Get("ETag"); got != tt.wantETag {
				t.Errorf("ETag %s, want %s", got, tt.wantETag)
			}
			if got := h.Get("Cache-Control"); got != "public, max-age=300" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := h.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary %q", got)
			}
			if got := h.Get("Content-Encoding"); got != tt.wantEnc {
				t.Errorf("Content-Encoding %q, want %q", got, tt.wantEnc)
			}
			body, _ := io.ReadAll(res.Body)
			if !tt.wantBody {
				if len(body) != 0 {
					t.Errorf("body of %d bytes, want none", len(body))
				}
				if tt.wantStatus == 200 && h.Get("Content-Length") == "" {
					t.Error("HEAD without Content-Length")
				}
				return
			}
			if got := h.Get("Content-Type"); got != "application/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := decode(t, tt.wantEnc, body); !bytes.Equal(got, raw) {
				t.Errorf("decoded body (%d bytes) is not the script (%d bytes)", len(got), len(raw))
			}
		})
	}

	t.Run("method not allowed", func(t *testing.T) {
		rec := httptest.NewRecorder()
		v.ServeHTTP(rec, httptest.NewRequest("POST", "/tw.js", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Fatalf("status %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
		}
		if !strings.Contains(rec.Body.String(), `"code":"method_not_allowed"`) {
			t.Errorf("body %s", rec.Body)
		}
	})
}

func decode(t *testing.T, enc string, body []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return out
}
