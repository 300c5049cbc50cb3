// Package e2e holds the whole-app tests: complete gateways (internal/app)
// on a real redis-server started by internal/redistest, delivering to a
// strict fake of Meta's Graph API, driven over HTTP, through the CLI, in
// real browsers (internal/browsertest) and through the tagway binary
// itself. Every test that needs a running gateway starts it with
// startGateway, below; TestServeLogsOnlyJSON runs the serve command itself.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/app"
	"github.com/tagway/tagway/internal/browsertest"
	"github.com/tagway/tagway/internal/cli"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/internal/testlog"
)

// TestMain stops the browsers the tests shared, and removes the binary
// tagwayBinary built, once the tests have run.
func TestMain(m *testing.M) {
	code := m.Run()
	browsertest.Shutdown()
	binary.remove()
	os.Exit(code)
}

const (
	// The fake Graph API knows testPixel with testToken; gatewayOptions.meta
	// gives the quick start's Meta destination both, and testIngestKey.
	testPixel     = "111222333444555"
	testToken     = "EAAtesttokenSECRET123"
	testIngestKey = "ingest-key-0123456789"
	// testMetricsToken is every gateway's TAGWAY_METRICS_TOKEN.
	testMetricsToken = "metrics-token-0123456789"
	// adminToken and secretKey turn the admin API on (TAGWAY_ADMIN_TOKEN,
	// TAGWAY_SECRET_KEY) where a test sets them.
	adminToken = "admin-root-token-0123456789"
	secretKey  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testlog.Buffer

// gatewayOptions say what a test's gateway runs. Every gateway also gets a
// fake Graph API of its own (testGateway.Graph, knowing testPixel) as the
// operator's TAGWAY_META_GRAPH_URL, TAGWAY_METRICS_TOKEN, short retries,
// and a debug-level log in testGateway.Logs.
type gatewayOptions struct {
	// config is the test's sites, destinations and routes (TAGWAY_CONFIG:
	// YAML or JSON). Empty: the quick start's one site, "default", on
	// localhost and 127.0.0.1, routing every event to a Meta destination.
	config string
	// meta gives the quick start's Meta destination testPixel and
	// testToken, and its site testIngestKey; without it that destination
	// is a dry run.
	meta bool
	// env adds settings, or overrides the harness's ("" unsets one).
	env map[string]string
	// redis is a Redis shared with other gateways (replicas); nil: one of
	// the gateway's own. embedded: no REDIS_URL at all, the in-process
	// Redis of `go run .`.
	redis    *redistest.Server
	embedded bool
	// ops opens the private listener of /metrics, /healthz and /readyz
	// (TAGWAY_METRICS_ADDR) at testGateway.OpsURL.
	ops bool
}

// testGateway is a gateway running in the test's process.
type testGateway struct {
	URL    string // the public listener
	OpsURL string // the private listener, with gatewayOptions.ops
	Redis  *redistest.Server
	Graph  *metatest.Server
	Logs   *syncBuffer
	App    *app.App

	stop     context.CancelFunc
	ran      chan error
	waitOnce sync.Once
	runErr   error
}

// neverLogged are the harness's secrets: no gateway may log them.
var neverLogged = []string{testToken, testIngestKey, adminToken, secretKey, testMetricsToken}

// startGateway runs a complete gateway on free loopback ports until the
// test ends, as o says.
func startGateway(t *testing.T, o gatewayOptions) *testGateway {
	t.Helper()
	g := &testGateway{Graph: metatest.NewServer(t), Logs: &syncBuffer{}, ran: make(chan error, 1)}
	g.Graph.AddPixel(testPixel, testToken)
	env := map[string]string{
		"TAGWAY_ADDR":           "127.0.0.1:0",
		"TAGWAY_META_GRAPH_URL": g.Graph.URL(),
		"TAGWAY_METRICS_TOKEN":  testMetricsToken,
		"TAGWAY_RETRY_BASE":     "10ms",
		"TAGWAY_RETRY_MAX":      "50ms",
	}
	if !o.embedded {
		g.Redis = o.redis
		if g.Redis == nil {
			g.Redis = redistest.Start(t)
		}
		env["REDIS_URL"] = g.Redis.URL
	}
	if o.ops {
		env["TAGWAY_METRICS_ADDR"] = "127.0.0.1:0"
	}
	if o.config != "" {
		env["TAGWAY_CONFIG"] = writeFile(t, "tagway.yaml", o.config)
	}
	if o.meta {
		env["TAGWAY_META_PIXEL_ID"] = testPixel
		env["TAGWAY_META_ACCESS_TOKEN"] = testToken
		env["TAGWAY_INGEST_KEY"] = testIngestKey
	}
	for k, v := range o.env {
		env[k] = v
	}
	s, err := app.ReadSettings(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the gateway's own clean-up, so it runs after the
	// gateway has stopped.
	t.Cleanup(func() {
		for _, secret := range neverLogged {
			if strings.Contains(g.Logs.String(), secret) {
				t.Errorf("the gateway logged the secret %.8s…", secret)
			}
		}
	})
	logger := slog.New(slog.NewJSONHandler(g.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	g.App, err = app.New(ctx, s, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g.stop = cancel
	g.URL = "http://" + g.App.Addr()
	if o.ops {
		g.OpsURL = "http://" + g.App.OpsAddr()
	}
	go func() { g.ran <- g.App.Run(ctx) }()
	t.Cleanup(func() {
		g.Shutdown()
		if err := g.Wait(); err != nil {
			t.Errorf("run: %v", err)
		}
		g.App.Close()
	})
	return g
}

// metaSite is a configuration of one site, "default", on 127.0.0.1 and
// localhost with testIngestKey and the given site settings (YAML lines such
// as "consent_default: granted"), routing every event to a Meta destination
// "meta" for testPixel.
func metaSite(settings ...string) string {
	site := "sites:\n  - id: default\n    domains: [127.0.0.1, localhost]\n    ingest_keys: [" + testIngestKey + "]\n"
	for _, s := range settings {
		site += "    " + s + "\n"
	}
	return site + `destinations:
  - id: meta
    site: default
    type: meta
    settings: {pixel_id: "` + testPixel + `", access_token: ` + testToken + `}
routes:
  - {id: default-meta, site: default, destination: meta}
`
}

// Shutdown starts the gateway's shutdown, as SIGTERM does, and returns at
// once.
func (g *testGateway) Shutdown() { g.stop() }

// Wait waits until the gateway has stopped and returns what its Run did.
func (g *testGateway) Wait() error {
	g.waitOnce.Do(func() { g.runErr = <-g.ran })
	return g.runErr
}

// envOf is a getenv reading m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a file name in a temporary directory of the
// test and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// post sends body to url with header and returns the answer, decoded when
// it has a body.
func post(t *testing.T, url string, header map[string]string, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.StatusCode == http.StatusNoContent && len(raw) == 0 {
		return resp, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not JSON (%d): %q", resp.StatusCode, raw)
	}
	return resp, out
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// getMetrics fetches /metrics from g's public port with the metrics token.
func getMetrics(t *testing.T, g *testGateway) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return resp
}

// withheldMetric reads tagway_events_withheld_total for a destination and
// reason from the gateway's /metrics (0 when absent).
func withheldMetric(t *testing.T, g *testGateway, dest, reason string) float64 {
	t.Helper()
	resp := getMetrics(t, g)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf(`tagway_events_withheld_total{destination=%q,reason=%q} `, dest, reason)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// canon re-encodes a JSON value so that two encodings compare equal.
func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(x)
	return string(out)
}

// tryCLI runs a control-plane command of tagway (internal/cli) against url
// with token and returns its output and exit code.
func tryCLI(t *testing.T, url, token string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"TAGWAY_URL": url, "TAGWAY_TOKEN": token})
	code := cli.Admin(context.Background(), args[0], args[1:], env, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), code
}

// mustCLI is tryCLI for a command that must succeed.
func mustCLI(t *testing.T, url, token string, args ...string) string {
	t.Helper()
	out, code := tryCLI(t, url, token, args...)
	if code != 0 {
		t.Fatalf("tagway %v: exit %d: %s", args, code, out)
	}
	return out
}

// binary is the tagway binary, built once for the tests that run it.
var binary builtBinary

// builtBinary builds the module's main package at most once.
type builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// tagwayBinary returns the path of the tagway binary, built from the
// repository's main package on first use.
func tagwayBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "tagway-e2e-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "tagway")
		out, err := exec.Command("go", "build", "-o", binary.path, "github.com/tagway/tagway").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// remove deletes the built binary.
func (b *builtBinary) remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
