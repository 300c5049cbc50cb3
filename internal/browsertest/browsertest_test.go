package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/tagway/tagway/internal/browsertest"
)

func TestConsoleCollectsErrors(t *testing.T) {
	pages := map[string]string{
		"/clean": `<!doctype html><link rel="icon" href="data:,"><script>console.log("fine")</script><p>ok</p>`,
		"/noisy": `<!doctype html><link rel="icon" href="data:,"><script>console.error("boom", 42)</script>` +
			`<script>throw new Error("uncaught-here")</script><p>ok</p>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(pages[r.URL.Path]))
	}))
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t)
	var text string
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/clean"), chromedp.Text("p", &text)); err != nil {
		t.Fatal(err)
	}
	if errs := browsertest.Console(ctx).Errors(); len(errs) != 0 {
		t.Fatalf("clean page: errors %q", errs)
	}
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/noisy"), chromedp.Text("p", &text)); err != nil {
		t.Fatal(err)
	}
	errs := strings.Join(browsertest.Console(ctx).Errors(), "\n")
	for _, want := range []string{"console.error: boom 42", "uncaught-here"} {
		if !strings.Contains(errs, want) {
			t.Errorf("errors %q: missing %q", errs, want)
		}
	}
}
