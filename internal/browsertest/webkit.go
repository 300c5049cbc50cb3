package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// WebKit is WebKitGTK's MiniBrowser, driven over W3C WebDriver by
// WebKitWebDriver (Debian: webkit2gtk-driver), both found at
// $WEBKIT_DRIVER_PATH and $WEBKIT_BROWSER_PATH or where Debian installs
// them. MiniBrowser has no headless mode: each browser gets its own Xvfb
// display. In automation mode its profile is ephemeral.

func findWebKit() (driver, browser string) {
	driver = os.Getenv("WEBKIT_DRIVER_PATH")
	if driver == "" {
		driver, _ = exec.LookPath("WebKitWebDriver")
	}
	browser = os.Getenv("WEBKIT_BROWSER_PATH")
	if browser == "" {
		for _, pattern := range []string{"/usr/lib/*/webkit2gtk-4.*/MiniBrowser", "/usr/libexec/webkit2gtk-4.*/MiniBrowser", "/usr/lib/webkit2gtk-4.*/MiniBrowser"} {
			if m, _ := filepath.Glob(pattern); len(m) > 0 {
				browser = m[len(m)-1]
				break
			}
		}
	}
	return driver, browser
}

// webkit is the Browser of one WebKitWebDriver session.
type webkit struct {
	base   string // the session's URL
	client *http.Client

	mu   sync.Mutex
	msgs []Message
}

func startWebKit(t testing.TB, o Options) (Browser, error) {
	t.Helper()
	driver, browser := findWebKit()
	if driver == "" || browser == "" {
		missing(t, "no WebKitWebDriver and MiniBrowser found (install webkit2gtk-driver)")
	}
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		missing(t, "no Xvfb found (install xvfb): WebKitGTK's MiniBrowser has no headless mode")
	}
	display, err := startXvfb(t, xvfb)
	if err != nil {
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port), "--host=local")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	tail := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = tailWriter{tail}, tailWriter{tail}
	// The driver, MiniBrowser and its web processes: one process group.
	exited, err := startGroupFor(t, cmd, true, 5*time.Second)
	if err != nil {
		return nil, err
	}

	w := &webkit{client: &http.Client{Timeout: callTimeout}}
	root := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(callTimeout); ; time.Sleep(20 * time.Millisecond) {
		if w.do(http.MethodGet, root+"/status", nil, nil) == nil {
			break
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited: %s", driver, tail)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: not ready after %v: %s", driver, callTimeout, tail)
		}
	}
	args := []string{"--automation"}
	if o.NoCookies {
		args = append(args, "--cookies-policy=never")
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"pageLoadStrategy":         "normal",
		"webkitgtk:browserOptions": map[string]any{"binary": browser, "args": args},
	}}}
	var session struct {
		SessionID string `json:"sessionId"`
	}
	if err := w.do(http.MethodPost, root+"/session", caps, &session); err != nil {
		return nil, fmt.Errorf("new session: %w: %s", err, tail)
	}
	w.base = root + "/session/" + session.SessionID
	t.Cleanup(func() { _ = w.do(http.MethodDelete, w.base, nil, nil) })
	ms := callTimeout.Milliseconds()
	if err := w.do(http.MethodPost, w.base+"/timeouts", map[string]any{"script": ms, "pageLoad": ms}, nil); err != nil {
		return nil, err
	}
	return w, nil
}

// startXvfb starts an X server on a free display for t and returns the
// display's name.
func startXvfb(t testing.TB, bin string) (string, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	// -displayfd: Xvfb picks a free display and writes its number to fd 3.
	cmd := exec.Command(bin, "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{wr}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return "", err
	}
	wr.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if _, err := strconv.Atoi(n); err != nil {
			return "", fmt.Errorf("xvfb gave no display (%q)", n)
		}
		return ":" + n, nil
	case <-time.After(callTimeout):
		return "", errors.New("xvfb gave no display")
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WebDriverError is an error a WebDriver remote end answered a command with.
type WebDriverError struct {
	Status         int
	Code, Message  string
	Method, Target string
}

func (e *WebDriverError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Target, e.Status, e.Code, e.Message)
}

// do sends a WebDriver command and decodes its value into out (nil:
// dropped).
func (w *webkit) do(method, target string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return fmt.Errorf("%s %s: %d: %w", method, target, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(r.Value, &e)
		return &WebDriverError{Status: resp.StatusCode, Code: e.Error, Message: e.Message, Method: method, Target: target}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Value, out)
}

func (w *webkit) Engine() string { return WebKit }

func (w *webkit) Navigate(u string) error {
	w.drain()
	return w.do(http.MethodPost, w.base+"/url", map[string]any{"url": u}, nil)
}

// evalScript runs arguments[0] as an expression in the page's global scope
// and passes its awaited value as JSON text, or its error, to the driver's
// callback. The JSON is made as Chromium's and Firefox's protocols make it
// (no toJSON, undefined properties left out), with the JSON.stringify the
// page had before its scripts ran when it has the ConsoleHook.
const evalScript = `var js = arguments[0], done = arguments[1], s = window.__browsertest_stringify || JSON.stringify;
new Promise(function (ok) { ok((0, eval)(js)) }).then(
  function (v) { done({ ok: true, v: s(v, function (k) { return this[k] }) }) },
  function (e) { done({ ok: false, e: String(e) + (e && e.stack ? ' ' + e.stack : '') }) });`

func (w *webkit) Eval(js string, out any) error {
	var res struct {
		OK bool    `json:"ok"`
		V  *string `json:"v"` // nil for undefined
		E  string  `json:"e"`
	}
	if err := w.do(http.MethodPost, w.base+"/execute/async", map[string]any{"script": evalScript, "args": []any{js}}, &res); err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("evaluate %s: %s", js, res.E)
	}
	if out == nil {
		return nil
	}
	if res.V == nil {
		return json.Unmarshal([]byte("null"), out)
	}
	return json.Unmarshal([]byte(*res.V), out)
}

// drain moves what the page's ConsoleHook recorded to the log.
func (w *webkit) drain() {
	var s string
	err := w.do(http.MethodPost, w.base+"/execute/sync", map[string]any{
		"script": `return typeof __browsertest_console == 'function' ? __browsertest_console() : '[]'`, "args": []any{},
	}, &s)
	if err != nil {
		return
	}
	var list []Message
	var raw []struct{ Level, Text string }
	if json.Unmarshal([]byte(s), &raw) != nil {
		return
	}
	for _, m := range raw {
		list = append(list, Message(m))
	}
	w.mu.Lock()
	w.msgs = append(w.msgs, list...)
	w.mu.Unlock()
}

func (w *webkit) Console() []Message {
	w.drain()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Message(nil), w.msgs...)
}

func (w *webkit) Cookies(u string) ([]Cookie, error) {
	target, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	var page string
	if err := w.do(http.MethodGet, w.base+"/url", nil, &page); err != nil {
		return nil, err
	}
	cur, err := url.Parse(page)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(cur.Hostname(), target.Hostname()) {
		return nil, fmt.Errorf("webkit reads the cookies of the page's host %s only, not %s", cur.Hostname(), target.Hostname())
	}
	var list []wireCookie
	if err := w.do(http.MethodGet, w.base+"/cookie", nil, &list); err != nil {
		return nil, err
	}
	return matching(u, list)
}
