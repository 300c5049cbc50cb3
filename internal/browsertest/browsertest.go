// Package browsertest runs a real headless Chromium for tests, through
// chromedp.
//
// New starts a private browser for one test, with a fresh profile, and stops
// it when the test ends. It looks for $CHROMIUM_PATH, then /usr/bin/chromium,
// then chromium, chromium-browser or google-chrome on PATH. When no browser is
// found the test is skipped, except under CI (CI set), where it fails: CI must
// never silently skip the browser tests.
//
// Console returns what the page reported as errors (uncaught exceptions,
// console.error, browser log entries of level error such as failed loads), so
// a test can assert that a page ran cleanly.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// guard bounds a whole browser session, so that a test waiting for something
// that never happens fails with a message instead of hanging until the go
// test timeout. It is a deadline for failure, never a speed assertion.
const guard = 2 * time.Minute

type consoleKey struct{}

// New starts a headless Chromium for t and returns a chromedp context bound to
// its first tab. The browser is stopped when the test ends.
func New(t testing.TB) context.Context {
	t.Helper()
	bin := findBrowser()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium found (set CHROMIUM_PATH or install chromium); CI must run the browser tests")
		}
		t.Skip("no Chromium found; set CHROMIUM_PATH or install chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
	}
	// Headless, no sandbox (containers run as root), and no background
	// traffic, so that nothing in a test reaches the internet.
	for _, f := range []string{
		"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync",
		"disable-dev-shm-usage",
	} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), guard)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	cl := &ConsoleLog{}
	bctx, cancelBrowser := chromedp.NewContext(context.WithValue(actx, consoleKey{}, cl))
	t.Cleanup(func() {
		// Close the browser gracefully first, so that it has stopped writing
		// to its profile before the test removes the profile directory.
		_ = chromedp.Cancel(bctx)
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	chromedp.ListenTarget(bctx, cl.listen)
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return bctx
}

// findBrowser returns the browser binary to run, or "" when there is none.
func findBrowser() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// ConsoleLog collects the errors a browser tab reported. It is safe for
// concurrent use.
type ConsoleLog struct {
	mu   sync.Mutex
	errs []string
}

// Console returns the log of the browser started by New. It panics when ctx
// does not come from New, which is a bug in the test.
func Console(ctx context.Context) *ConsoleLog {
	cl, ok := ctx.Value(consoleKey{}).(*ConsoleLog)
	if !ok {
		panic("browsertest.Console: context does not come from browsertest.New")
	}
	return cl
}

// Errors returns a copy of the errors seen so far, oldest first.
func (c *ConsoleLog) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *ConsoleLog) add(msg string) {
	c.mu.Lock()
	c.errs = append(c.errs, msg)
	c.mu.Unlock()
}

// listen is a chromedp target listener; it must not block.
func (c *ConsoleLog) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		c.add(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				parts = append(parts, a.Description)
			case len(a.Value) > 0:
				var s string
				if json.Unmarshal(a.Value, &s) != nil {
					s = string(a.Value)
				}
				parts = append(parts, s)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		c.add("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
	case *log.EventEntryAdded:
		if e := ev.Entry; e.Level == log.LevelError {
			c.add(fmt.Sprintf("browser log (%s): %s %s", e.Source, e.Text, e.URL))
		}
	}
}
