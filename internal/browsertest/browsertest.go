// Package browsertest runs real browsers for tests: Chromium, Firefox and
// WebKit, each test with a browser state of its own (cookies, storage,
// cache), stopped when the test ends.
//
// Start returns an engine-neutral Browser: one tab to navigate, evaluate
// JavaScript in, read the console and the cookies of. It drives each engine
// with its own protocol, written against the specs: Chromium over the Chrome
// DevTools Protocol (through chromedp), Firefox over WebDriver BiDi (its
// Remote Agent's websocket), WebKit over W3C WebDriver (WebKitWebDriver
// driving MiniBrowser, on an Xvfb display). Run runs a test once per engine.
// Chromium and WebKit start a browser per test; the tests of a binary share
// one Firefox (the slowest to start), each in a user context of its own, and
// Main (from TestMain) or Shutdown stops it.
//
// New is the Chromium-only path for tests that need chromedp itself (clicks,
// network emulation): it returns a chromedp context bound to the first tab,
// and Console returns the errors that tab reported.
//
// A missing browser skips the test, except under CI (CI set), where it
// fails: CI must never silently skip the browser tests. Binaries are looked
// up as each engine's file says, and may be named with $CHROMIUM_PATH,
// $FIREFOX_PATH, $WEBKIT_DRIVER_PATH and $WEBKIT_BROWSER_PATH.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"
)

// The engines Start knows.
const (
	Chromium = "chromium"
	Firefox  = "firefox"
	WebKit   = "webkit"
)

// Engines returns every engine Start knows, in the order Run runs them.
func Engines() []string { return []string{Chromium, Firefox, WebKit} }

// guard bounds a whole browser session, so that a test waiting for something
// that never happens fails with a message instead of hanging until the go
// test timeout. It is a deadline for failure, never a speed assertion.
const guard = 2 * time.Minute

// callTimeout bounds one command to a browser.
const callTimeout = 60 * time.Second

// Browser is one browser with one tab. Its methods are safe for use by one
// goroutine at a time.
type Browser interface {
	// Engine returns the engine's name: Chromium, Firefox or WebKit.
	Engine() string
	// Navigate loads url in the tab and waits for its load event.
	Navigate(url string) error
	// Eval evaluates the JavaScript expression js in the page, awaits it
	// when it is a promise, and decodes its value, as JSON, into out (nil:
	// the value is dropped). An exception is an error.
	Eval(js string, out any) error
	// Console returns what the pages printed (console.*) and threw, oldest
	// first. WebKit sees only pages served through Hook (see there).
	Console() []Message
	// Cookies returns the browser's cookies for url. WebKit can read only
	// the cookies of the page loaded in the tab: url must be on its host.
	Cookies(url string) ([]Cookie, error)
}

// Message is one console entry or uncaught error.
type Message struct {
	// Level is "error" (console.error, an uncaught exception or rejection,
	// a browser error such as a failed load), "warn", "info", "log" or
	// "debug".
	Level string
	Text  string
}

// Cookie is one cookie of the browser's jar.
type Cookie struct {
	Name, Value, Domain, Path string
	HTTPOnly, Secure          bool
	// SameSite is "Strict", "Lax" or "None", or "" when the browser does
	// not say.
	SameSite string
	// Expires is the zero time for a session cookie.
	Expires time.Time
}

// Options are the browser settings a test may change.
type Options struct {
	// NoCookies starts the browser with cookies blocked, as a visitor who
	// turned them off has it (Chromium and Firefox then block site storage
	// too).
	NoCookies bool
}

// Start starts engine for t, with o, and stops it when t ends.
func Start(t testing.TB, engine string, o Options) Browser {
	t.Helper()
	var (
		b   Browser
		err error
	)
	switch engine {
	case Chromium:
		b, err = startChromium(t, o)
	case Firefox:
		b, err = startFirefox(t, o)
	case WebKit:
		b, err = startWebKit(t, o)
	default:
		t.Fatalf("browsertest: unknown engine %q", engine)
	}
	if err != nil {
		t.Fatalf("start %s: %v", engine, err)
	}
	return b
}

// Run runs test once per engine, each as a subtest named for the engine.
func Run(t *testing.T, test func(t *testing.T, engine string)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run(e, func(t *testing.T) { test(t, e) })
	}
}

// missing skips t, or fails it under CI, for want of an engine's binary.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must run the browser tests", what)
	}
	t.Skip(what)
}

// Errors returns the error messages of b's console.
func Errors(b Browser) []string {
	var out []string
	for _, m := range b.Console() {
		if m.Level == "error" {
			out = append(out, m.Text)
		}
	}
	return out
}

// Wait evaluates the JavaScript condition cond every 20 ms until it is
// true, or fails after timeout. The polling runs in the test, not in the
// page, so that it works whatever the page did to its timers.
func Wait(b Browser, cond string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := b.Eval(`!!(`+cond+`)`, &ok)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return &timeoutError{cond: cond, after: timeout}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type timeoutError struct {
	cond  string
	after time.Duration
}

func (e *timeoutError) Error() string {
	return "still false after " + e.after.String() + ": " + e.cond
}

// sessionContext returns the context bounding a browser session.
func sessionContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}
