package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Firefox is found at $FIREFOX_PATH, or as firefox-esr or firefox on PATH.
// It runs headless with its Remote Agent on a free port, and is driven over
// WebDriver BiDi through the agent's websocket (geckodriver is not needed).

// firefoxPrefs keep a test's Firefox off the network: every request to a
// host other than loopback goes to a proxy that refuses it (loopback never
// goes through a proxy), and the background services that would try are
// off.
const firefoxPrefs = `
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", 9);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", 9);
user_pref("network.proxy.allow_hijacking_localhost", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.region.network.url", "");
user_pref("browser.search.update", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("services.settings.server", "http://127.0.0.1:9/v1");
user_pref("dom.disable_open_during_load", false);
`

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

func findFirefox() string {
	if p := os.Getenv("FIREFOX_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// firefoxHost is one Firefox process and its BiDi session. Each Browser on
// it has a user context of its own (its own cookies, storage and cache, as
// a container tab has) with one window in it. It is safe for concurrent
// use.
type firefoxHost struct {
	bidi *bidi
	stop func() // asks the browser to close, then kills its processes
	dir  string // the profile, removed by stop

	mu   sync.Mutex
	tabs map[string]*firefox // by browsing context, for their consoles
}

// sharedHosts are the browsers the tests of one test binary share: one
// Firefox with the default Options. Shutdown stops them.
var sharedHosts struct {
	mu      sync.Mutex
	firefox *firefoxHost
}

// Main runs the tests of a package that starts browsers, then stops the
// browsers they shared, and exits: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops the browsers the tests of this binary shared. Without it
// (see Main), the kernel stops them when the test binary exits, and their
// profiles' directories stay.
func Shutdown() {
	sharedHosts.mu.Lock()
	defer sharedHosts.mu.Unlock()
	if h := sharedHosts.firefox; h != nil {
		h.stop()
		sharedHosts.firefox = nil
	}
}

// firefox is the Browser of one user context of a Firefox.
type firefox struct {
	ctx     context.Context
	bidi    *bidi
	context string // the window's browsing context id

	mu   sync.Mutex
	msgs []Message
}

func startFirefox(t testing.TB, o Options) (Browser, error) {
	t.Helper()
	bin := findFirefox()
	if bin == "" {
		missing(t, "no Firefox found (set FIREFOX_PATH or install firefox-esr)")
	}
	var host *firefoxHost
	if o == (Options{}) {
		sharedHosts.mu.Lock()
		if sharedHosts.firefox == nil {
			h, err := launchFirefox(bin, firefoxPrefs, true)
			if err != nil {
				sharedHosts.mu.Unlock()
				return nil, err
			}
			sharedHosts.firefox = h
		}
		host = sharedHosts.firefox
		sharedHosts.mu.Unlock()
	} else {
		// Other settings are the profile's: a browser of the test's own.
		prefs := firefoxPrefs
		if o.NoCookies {
			prefs += "user_pref(\"network.cookie.cookieBehavior\", 2);\n"
		}
		h, err := launchFirefox(bin, prefs, false)
		if err != nil {
			return nil, err
		}
		t.Cleanup(h.stop)
		host = h
	}
	return host.open(t)
}

// launchFirefox starts Firefox headless on a new profile with prefs, with
// its Remote Agent on a free port, and opens a BiDi session on it. With
// deathsig, the kernel kills it when the test binary dies.
func launchFirefox(bin, prefs string, deathsig bool) (*firefoxHost, error) {
	dir, err := os.MkdirTemp("", "browsertest-firefox-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*firefoxHost, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(prefs), 0o600); err != nil {
		return fail(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", dir, "--remote-debugging-port=0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fail(err)
	}
	// The browser is asked to close first (by stop, below); its process
	// group is killed if it has not exited 10 s later.
	exited, kill, err := startGroup(cmd, false, deathsig, 10*time.Second)
	if err != nil {
		return fail(err)
	}

	// The agent prints its websocket's address once it listens; the rest
	// of stderr is kept for an error message.
	found := make(chan string, 1)
	tail := &tailBuffer{max: 4096}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := bidiListening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			tail.write(line)
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-exited:
		kill()
		return fail(fmt.Errorf("%s exited before its Remote Agent listened: %s", bin, tail))
	case <-time.After(callTimeout):
		kill()
		return fail(fmt.Errorf("%s: no Remote Agent after %v: %s", bin, callTimeout, tail))
	}

	h := &firefoxHost{dir: dir, tabs: map[string]*firefox{}}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	h.bidi, err = dialBiDi(ctx, wsURL+"/session", h.event)
	if err != nil {
		kill()
		return fail(err)
	}
	h.stop = func() {
		closed, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if h.bidi.call(closed, "browser.close", nil, nil) != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
		_ = h.bidi.close()
		kill()
		_ = os.RemoveAll(dir)
	}
	if err := h.bidi.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		h.stop()
		return nil, err
	}
	if err := h.bidi.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

// open gives t a user context of its own on h, with one window, removed
// when t ends.
func (h *firefoxHost) open(t testing.TB) (*firefox, error) {
	ctx := sessionContext(t)
	var uc struct {
		UserContext string `json:"userContext"`
	}
	if err := h.bidi.call(ctx, "browser.createUserContext", nil, &uc); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		removed, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_ = h.bidi.call(removed, "browser.removeUserContext", map[string]any{"userContext": uc.UserContext}, nil)
	})
	var win struct {
		Context string `json:"context"`
	}
	if err := h.bidi.call(ctx, "browsingContext.create", map[string]any{"type": "window", "userContext": uc.UserContext}, &win); err != nil {
		return nil, err
	}
	f := &firefox{ctx: ctx, bidi: h.bidi, context: win.Context}
	h.mu.Lock()
	h.tabs[win.Context] = f
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		delete(h.tabs, win.Context)
		h.mu.Unlock()
	})
	return f, nil
}

// event receives the BiDi events subscribed to, and hands each console
// entry to the tab it came from.
func (h *firefoxHost) event(method string, params json.RawMessage) {
	if method != "log.entryAdded" {
		return
	}
	var src struct {
		Source struct {
			Context string `json:"context"`
		} `json:"source"`
	}
	if json.Unmarshal(params, &src) != nil {
		return
	}
	h.mu.Lock()
	f := h.tabs[src.Source.Context]
	h.mu.Unlock()
	if f != nil {
		f.event(params)
	}
}

// event records one log entry of the tab.
func (f *firefox) event(params json.RawMessage) {
	var e struct {
		Type   string `json:"type"`
		Level  string `json:"level"`
		Method string `json:"method"`
		Text   string `json:"text"`
	}
	if json.Unmarshal(params, &e) != nil {
		return
	}
	m := Message{Level: e.Level, Text: e.Text}
	switch {
	case e.Type == "javascript":
		m = Message{Level: "error", Text: "uncaught exception: " + e.Text}
	case e.Type == "console" && (e.Method == "error" || e.Method == "assert"):
		m = Message{Level: "error", Text: "console." + e.Method + ": " + e.Text}
	case e.Type == "console" && e.Method != "":
		m.Level = e.Method
		if e.Method == "warning" {
			m.Level = "warn"
		}
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.mu.Unlock()
}

func (f *firefox) Engine() string { return Firefox }

func (f *firefox) Navigate(u string) error {
	return f.bidi.call(f.ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": u, "wait": "complete"}, nil)
}

func (f *firefox) Eval(js string, out any) error {
	var res struct {
		Type             string          `json:"type"`
		Result           json.RawMessage `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := f.bidi.call(f.ctx, "script.evaluate", map[string]any{
		"expression":           js,
		"target":               map[string]any{"context": f.context},
		"awaitPromise":         true,
		"resultOwnership":      "none",
		"serializationOptions": map[string]any{"maxObjectDepth": 32},
	}, &res)
	if err != nil {
		return err
	}
	if res.Type == "exception" {
		return fmt.Errorf("evaluate %s: %s", js, res.ExceptionDetails.Text)
	}
	if out == nil {
		return nil
	}
	v, err := remoteValue(res.Result)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

func (f *firefox) Console() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.msgs...)
}

func (f *firefox) Cookies(u string) ([]Cookie, error) {
	var res struct {
		Cookies []wireCookie `json:"cookies"`
	}
	err := f.bidi.call(f.ctx, "storage.getCookies", map[string]any{"partition": map[string]any{"type": "context", "context": f.context}}, &res)
	if err != nil {
		return nil, err
	}
	return matching(u, res.Cookies)
}
