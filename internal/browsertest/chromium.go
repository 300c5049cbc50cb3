package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium is found at $CHROMIUM_PATH, /usr/bin/chromium, or as chromium,
// chromium-browser or google-chrome on PATH.

type consoleKey struct{}

// New starts a headless Chromium for t and returns a chromedp context bound to
// its first tab. The browser is stopped when the test ends.
func New(t testing.TB) context.Context {
	t.Helper()
	ctx, err := newChromium(t, Options{})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func newChromium(t testing.TB, o Options) (context.Context, error) {
	t.Helper()
	bin := findChromium()
	if bin == "" {
		missing(t, "no Chromium found (set CHROMIUM_PATH or install chromium)")
	}
	dir := t.TempDir()
	if o.NoCookies {
		// The profile's setting for "Block all cookies", which blocks site
		// storage too.
		prefs := `{"profile":{"default_content_setting_values":{"cookies":2}}}`
		if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
			return nil, err
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dir),
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
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	return bctx, nil
}

// findChromium returns the browser binary to run, or "" when there is none.
func findChromium() string {
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

// chromium is the Browser of a chromedp context.
type chromium struct{ ctx context.Context }

func startChromium(t testing.TB, o Options) (Browser, error) {
	ctx, err := newChromium(t, o)
	if err != nil {
		return nil, err
	}
	return &chromium{ctx: ctx}, nil
}

func (c *chromium) Engine() string { return Chromium }

func (c *chromium) run(actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

func (c *chromium) Navigate(url string) error { return c.run(chromedp.Navigate(url)) }

func (c *chromium) Eval(js string, out any) error {
	var raw json.RawMessage
	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	if err := c.run(chromedp.Evaluate(js, &raw, await)); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func (c *chromium) Console() []Message { return Console(c.ctx).Messages() }

func (c *chromium) Cookies(url string) ([]Cookie, error) {
	var list []*network.Cookie
	err := c.run(chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		list, err = network.GetCookies().WithURLs([]string{url}).Do(ctx)
		return err
	}))
	if err != nil {
		return nil, err
	}
	out := make([]Cookie, 0, len(list))
	for _, k := range list {
		ck := Cookie{Name: k.Name, Value: k.Value, Domain: k.Domain, Path: k.Path, HTTPOnly: k.HTTPOnly, Secure: k.Secure, SameSite: string(k.SameSite)}
		if !k.Session {
			ck.Expires = time.Unix(int64(k.Expires), 0)
		}
		out = append(out, ck)
	}
	return out, nil
}

// ConsoleLog collects what a Chromium tab reported. It is safe for
// concurrent use.
type ConsoleLog struct {
	mu   sync.Mutex
	msgs []Message
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
	var out []string
	for _, m := range c.Messages() {
		if m.Level == "error" {
			out = append(out, m.Text)
		}
	}
	return out
}

// Messages returns a copy of every entry seen so far, oldest first.
func (c *ConsoleLog) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

func (c *ConsoleLog) add(level, msg string) {
	c.mu.Lock()
	c.msgs = append(c.msgs, Message{Level: level, Text: msg})
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
		c.add("error", fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *runtime.EventConsoleAPICalled:
		level := string(ev.Type)
		switch ev.Type {
		case runtime.APITypeError, runtime.APITypeAssert:
			level = "error"
		case runtime.APITypeWarning:
			level = "warn"
		case runtime.APITypeInfo, runtime.APITypeLog, runtime.APITypeDebug:
		default:
			return
		}
		var parts []string
		for _, a := range ev.Args {
			switch {
			case len(a.Value) > 0:
				var s string
				if json.Unmarshal(a.Value, &s) != nil {
					s = string(a.Value)
				}
				parts = append(parts, s)
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		if level == "error" {
			c.add(level, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
			return
		}
		c.add(level, strings.Join(parts, " "))
	case *log.EventEntryAdded:
		if e := ev.Entry; e.Level == log.LevelError {
			c.add("error", fmt.Sprintf("browser log (%s): %s %s", e.Source, e.Text, e.URL))
		}
	}
}
