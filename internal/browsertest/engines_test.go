package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/browsertest"
)

// pages serves the test pages: each starts with the console hook, and
// /cookie sets a cookie.
func pages(t *testing.T) *httptest.Server {
	t.Helper()
	body := map[string]string{
		"/clean":  `<p>ok</p><script>console.log("fine"); console.info("info", 1); console.warn("careful")</script>`,
		"/noisy":  `<script>console.error("boom", 42)</script><script>throw new Error("uncaught-here")</script><p>ok</p>`,
		"/cookie": `<p>cookie</p>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cookie" {
			http.SetCookie(w, &http.Cookie{Name: "jar", Value: "v1", Path: "/", MaxAge: 3600, SameSite: http.SameSiteLaxMode})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html><head><link rel="icon" href="data:,">` + browsertest.ConsoleHook + `</head><body>` + body[r.URL.Path] + `</body></html>`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEngines(t *testing.T) {
	srv := pages(t)
	browsertest.Run(t, func(t *testing.T, engine string) {
		b := browsertest.Start(t, engine, browsertest.Options{})
		if b.Engine() != engine {
			t.Errorf("Engine() = %q", b.Engine())
		}
		if err := b.Navigate(srv.URL + "/clean"); err != nil {
			t.Fatal(err)
		}

		// Values come back as JSON would carry them; promises are awaited.
		var got map[string]any
		if err := b.Eval(`({s: 'x"y', n: 1.5, b: true, z: null, a: [1, 'two', {c: 3}], o: {d: {e: 'deep'}}})`, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"s": `x"y`, "n": 1.5, "b": true, "z": nil, "a": []any{1.0, "two", map[string]any{"c": 3.0}}, "o": map[string]any{"d": map[string]any{"e": "deep"}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("object: %v, want %v", got, want)
		}
		var n int
		if err := b.Eval(`new Promise(function(ok){ setTimeout(function(){ ok(42) }, 10) })`, &n); err != nil || n != 42 {
			t.Errorf("promise: %d, %v", n, err)
		}
		if err := b.Eval(`undefined`, nil); err != nil {
			t.Errorf("undefined: %v", err)
		}
		if err := b.Eval(`(function(){ throw new Error('nope') })()`, nil); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("exception: %v, want an error naming it", err)
		}
		if err := browsertest.Wait(b, `document.querySelector('p').textContent == 'ok'`, 5*time.Second); err != nil {
			t.Error(err)
		}
		if err := browsertest.Wait(b, `false`, 100*time.Millisecond); err == nil {
			t.Error("Wait for false returned nil")
		}

		// The console: levels kept, no error on a clean page.
		if errs := browsertest.Errors(b); len(errs) != 0 {
			t.Errorf("clean page: errors %q", errs)
		}
		levels := map[string]string{}
		for _, m := range b.Console() {
			levels[m.Text] = m.Level
		}
		for text, level := range map[string]string{"fine": "log", "info 1": "info", "careful": "warn"} {
			if levels[text] != level {
				t.Errorf("console %q: level %q, want %q (all: %v)", text, levels[text], level, levels)
			}
		}
		if err := b.Navigate(srv.URL + "/noisy"); err != nil {
			t.Fatal(err)
		}
		errs := strings.Join(browsertest.Errors(b), "\n")
		for _, want := range []string{"boom 42", "uncaught-here"} {
			if !strings.Contains(errs, want) {
				t.Errorf("errors %q: missing %q", errs, want)
			}
		}

		// Cookies the server set.
		if err := b.Navigate(srv.URL + "/cookie"); err != nil {
			t.Fatal(err)
		}
		jar, err := b.Cookies(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		if len(jar) != 1 || jar[0].Name != "jar" || jar[0].Value != "v1" || jar[0].Path != "/" {
			t.Fatalf("cookies %+v, want jar=v1", jar)
		}
		if ttl := time.Until(jar[0].Expires); ttl < 50*time.Minute || ttl > 61*time.Minute {
			t.Errorf("cookie expires in %v, want an hour", ttl)
		}
	})
}

func TestEnginesNoCookies(t *testing.T) {
	srv := pages(t)
	browsertest.Run(t, func(t *testing.T, engine string) {
		b := browsertest.Start(t, engine, browsertest.Options{NoCookies: true})
		if err := b.Navigate(srv.URL + "/cookie"); err != nil {
			t.Fatal(err)
		}
		var doc string
		if err := b.Eval(`document.cookie`, &doc); err != nil {
			t.Fatal(err)
		}
		jar, err := b.Cookies(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		if len(jar) != 0 || doc != "" {
			t.Errorf("cookies off: jar %+v, document.cookie %q", jar, doc)
		}
		// Chromium and Firefox block site storage with cookies; WebKit's
		// cookie policy leaves it.
		var storage string
		if err := b.Eval(`(function(){ try { localStorage.setItem('k', 'v'); return 'usable' } catch (e) { return e.name } })()`, &storage); err != nil {
			t.Fatal(err)
		}
		if usable := engine == browsertest.WebKit; (storage == "usable") != usable {
			t.Errorf("cookies off: localStorage %s; usable should be %v", storage, usable)
		}
	})
}
