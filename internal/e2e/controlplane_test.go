package e2e

// The control plane end to end: gateways sharing one real Redis, changed
// through the admin API and the CLI, delivering to the fake Graph API.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/redistest"
)

const (
	shopToken = "EAAshop2SECRETtoken-5678"
	shopPixel = "555666777"
)

// eventuallyStatus waits until do returns want, for 10s at most.
func eventuallyStatus(t *testing.T, what string, want int, do func() int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := do()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d, want %d", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func collectStatus(t *testing.T, url, origin string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/collect", strings.NewReader(
		`{"url":"`+origin+`/p","events":[{"event_name":"Purchase","custom_data":{"value":5,"currency":"EUR"}}]}`))
	req.Header.Set("Origin", origin)
	req.Header.Set("User-Agent", "Mozilla/5.0 (admin e2e)")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const shopConfig = `
tenants:
  - id: agency
    name: Agency
sites:
  - id: shop2
    tenant: agency
    domains: [shop2.example]
    region_rules:
      - name: eea-no-ip
        regions: [EEA]
        drop: [client_ip_address]
      - name: ccpa
        regions: [US-CA]
        limited_data_use: true
destinations:
  - id: shop2-meta
    site: shop2
    type: meta
    settings:
      pixel_id: "` + shopPixel + `"
      access_token: "` + shopToken + `"
      graph_url: "%s"
routes:
  - id: shop2-to-meta
    site: shop2
    destination: shop2-meta
    test_mode: true
    test_event_code: TEST55
`

// TestControlPlaneAcrossTwoGateways: a change made through one gateway's
// admin API is live on the other (pub/sub; the periodic reload is 30s
// away), test mode and send-test go through the real path, and the region
// policy acts on the country the gateway recorded. No secret reaches a log
// or an answer.
func TestControlPlaneAcrossTwoGateways(t *testing.T) {
	rs := redistest.Start(t)
	graph := metatest.NewServer(t)
	graph.AddPixel(shopPixel, shopToken)
	env := map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey,
		"TAGWAY_COUNTRY_HEADER": "CF-IPCountry", "TAGWAY_REGION_HEADER": "CF-Region-Code", "TAGWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
	a, b := startGateway(t, gatewayOptions{redis: rs, env: env}), startGateway(t, gatewayOptions{redis: rs, env: env})
	urlA, urlB := a.URL, b.URL

	if got := collectStatus(t, urlB, "https://shop2.example"); got != http.StatusForbidden {
		t.Fatalf("before the change, B answered %d for the new site", got)
	}
	file := writeFile(t, "config.yaml", fmt.Sprintf(shopConfig, graph.URL()))
	out := mustCLI(t, urlA, adminToken, "apply", "-f", file)
	if !strings.Contains(out, "+ site shop2") || !strings.Contains(out, "+ destination shop2-meta") {
		t.Errorf("apply output: %s", out)
	}
	// Live on B.
	eventuallyStatus(t, "B accepts the new site", http.StatusNoContent, func() int { return collectStatus(t, urlB, "https://shop2.example") })
	got := graph.WaitEvents(shopPixel, 1, 10*time.Second)
	if len(got) != 1 || got[0].TestEventCode != "TEST55" {
		t.Fatalf("graph got %+v; want one event on the test channel", got)
	}

	// Region policy: an EEA visitor's IP is not sent; a Californian's
	// event carries Limited Data Use 1/1000.
	if s := collectStatus(t, urlB, "https://shop2.example", "CF-IPCountry", "DE"); s != http.StatusNoContent {
		t.Fatal(s)
	}
	if s := collectStatus(t, urlA, "https://shop2.example", "CF-IPCountry", "US", "CF-Region-Code", "CA"); s != http.StatusNoContent {
		t.Fatal(s)
	}
	got = graph.WaitEvents(shopPixel, 3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("graph got %d events", len(got))
	}
	var sawDE, sawCA bool
	for _, r := range got[1:] {
		_, hasIP := r.UserData["client_ip_address"]
		dpo := fmt.Sprintf("%v %v %v", r.Event["data_processing_options"], r.Event["data_processing_options_country"], r.Event["data_processing_options_state"])
		switch {
		case !hasIP && dpo == "<nil> <nil> <nil>":
			sawDE = true
		case hasIP && dpo == "[LDU] 1 1000":
			sawCA = true
		default:
			t.Errorf("event %v: ip %v, dpo %s", r.EventID, hasIP, dpo)
		}
	}
	if !sawDE || !sawCA {
		t.Errorf("region policy: EEA without IP %v, California LDU %v", sawDE, sawCA)
	}

	// send-test through B fires a synthetic event through the real path;
	// its outcome shows in the route's test results.
	out = mustCLI(t, urlB, adminToken, "send-test", "--site", "shop2", "--event", "AddToCart")
	if !strings.Contains(out, "shop2-to-meta") {
		t.Errorf("send-test: %s", out)
	}
	got = graph.WaitEvents(shopPixel, 4, 10*time.Second)
	if len(got) != 4 || got[3].EventName != "AddToCart" || !strings.HasPrefix(got[3].EventID, "tw-test-") || got[3].TestEventCode != "TEST55" {
		t.Fatalf("synthetic event: %+v", got[len(got)-1])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = mustCLI(t, urlA, adminToken, "test-results", "shop2-to-meta")
		if strings.Contains(out, "AddToCart") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, "event_name: AddToCart") || !strings.Contains(out, "outcome: delivered") {
		t.Errorf("test results: %s", out)
	}

	// Disabling the route on A stops delivery on both.
	route := mustCLI(t, urlA, adminToken, "routes", "get", "shop2-to-meta")
	mustCLI(t, urlA, adminToken, "routes", "apply", "-f", writeFile(t, "route.yaml", route+"disabled: true\n"))
	eventuallyStatus(t, "B sees the route disabled", 1, func() int {
		out := mustCLI(t, urlB, adminToken, "routes", "list")
		if strings.Contains(out, "disabled") {
			return 1
		}
		return 0
	})

	for name, logs := range map[string]*syncBuffer{"A": a.Logs, "B": b.Logs} {
		if strings.Contains(logs.String(), shopToken) || strings.Contains(logs.String(), adminToken) {
			t.Errorf("gateway %s logged a secret", name)
		}
	}
	export := mustCLI(t, urlA, adminToken, "export")
	if strings.Contains(export, shopToken) || !strings.Contains(export, "set: true") {
		t.Errorf("export: %s", export)
	}
}

// TestCLIApplyExportRoundTrip: apply is idempotent, --dry-run writes
// nothing, an export applies back with no change, --prune deletes.
func TestCLIApplyExportRoundTrip(t *testing.T) {
	g := startGateway(t, gatewayOptions{env: map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SECRET_KEY": secretKey}})
	url := g.URL
	file := writeFile(t, "config.yaml", fmt.Sprintf(shopConfig, "https://graph.example"))

	out := mustCLI(t, url, adminToken, "apply", "--dry-run", "-f", file)
	if !strings.Contains(out, "dry run: 4 changes") {
		t.Errorf("dry run: %s", out)
	}
	if out := mustCLI(t, url, adminToken, "sites", "list"); strings.Contains(out, "shop2") {
		t.Fatalf("the dry run wrote: %s", out)
	}
	mustCLI(t, url, adminToken, "apply", "-f", file)
	if out := mustCLI(t, url, adminToken, "apply", "-f", file); !strings.Contains(out, "no changes") {
		t.Errorf("second apply: %s", out)
	}
	exported := filepath.Join(t.TempDir(), "export.yaml")
	mustCLI(t, url, adminToken, "export", "-o", exported)
	data, _ := os.ReadFile(exported)
	if strings.Contains(string(data), shopToken) {
		t.Fatal("the export holds the token")
	}
	if out := mustCLI(t, url, adminToken, "apply", "-f", exported); !strings.Contains(out, "no changes") {
		t.Errorf("applying the export: %s", out)
	}
	// An edit shows as an update naming the field, never its value.
	edited := strings.Replace(string(data), "test_event_code: TEST55", "test_event_code: TEST56", 1)
	out = mustCLI(t, url, adminToken, "apply", "--dry-run", "-f", writeFile(t, "edited.yaml", edited))
	if !strings.Contains(out, "~ route shop2-to-meta (test_event_code)") {
		t.Errorf("diff of an edit: %s", out)
	}
	// Prune: the quick start's default site is not in the file.
	out = mustCLI(t, url, adminToken, "apply", "--prune", "-f", file)
	if !strings.Contains(out, "- site default") || !strings.Contains(out, "- destination meta") {
		t.Errorf("prune: %s", out)
	}
	// Errors name the field.
	out, code := tryCLI(t, url, adminToken, "apply", "-f", writeFile(t, "bad.yaml", "sites: [{id: x, domains: ['bad host']}]"))
	if code != 1 || !strings.Contains(out, "sites[0].domains[0]") {
		t.Errorf("bad config: exit %d: %s", code, out)
	}
	out, code = tryCLI(t, url, adminToken, "apply", "-f", writeFile(t, "unknown.yaml", "sites: [{id: x, colour: red}]"))
	if code != 1 || !strings.Contains(out, `unknown field "colour"`) {
		t.Errorf("unknown field: exit %d: %s", code, out)
	}
	if out, code := tryCLI(t, url, "wrong-token-0123456789", "sites", "list"); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("wrong token: exit %d: %s", code, out)
	}
	if strings.Contains(g.Logs.String(), shopToken) {
		t.Error("the token is in the log")
	}
}

// TestAdminAPISeedsOnlyAnEmptyStore: with the admin API on, a restart does
// not undo changes made through it.
func TestAdminAPISeedsOnlyAnEmptyStore(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken, "TAGWAY_SITE_DOMAINS": "first.example"}
	url := startGateway(t, gatewayOptions{redis: rs, env: env}).URL
	mustCLI(t, url, adminToken, "sites", "apply", "-f", writeFile(t, "site.yaml", "id: default\ndomains: [changed.example]\n"))
	env["TAGWAY_SITE_DOMAINS"] = "second.example"
	url2 := startGateway(t, gatewayOptions{redis: rs, env: env}).URL
	if out := mustCLI(t, url2, adminToken, "sites", "get", "default"); !strings.Contains(out, "changed.example") {
		t.Errorf("a restart undid an admin change: %s", out)
	}
}

func TestCLIKeys(t *testing.T) {
	url := startGateway(t, gatewayOptions{env: map[string]string{"TAGWAY_ADMIN_TOKEN": adminToken}}).URL
	mustCLI(t, url, adminToken, "tenants", "apply", "-f", writeFile(t, "t.yaml", "id: agency\nname: Agency\n"))
	out := mustCLI(t, url, adminToken, "keys", "apply", "-f", writeFile(t, "k.yaml", "id: agency-ci\ntenant: agency\nrole: editor\n"))
	_, token, ok := strings.Cut(out, "token (shown once): ")
	token = strings.TrimSpace(token)
	if !ok || !strings.HasPrefix(token, "twk_agency-ci_") {
		t.Fatalf("keys apply: %s", out)
	}
	// The tenant key works, and sees only its tenant.
	mustCLI(t, url, token, "sites", "apply", "-f", writeFile(t, "s.yaml", "id: a-shop\ndomains: [a.example]\n"))
	if out := mustCLI(t, url, token, "sites", "list"); !strings.Contains(out, "a-shop") || strings.Contains(out, "default") {
		t.Errorf("tenant sites: %s", out)
	}
	if out, code := tryCLI(t, url, token, "keys", "list"); code != 1 || !strings.Contains(out, "403") {
		t.Errorf("an editor listed keys: %d %s", code, out)
	}
	if out := mustCLI(t, url, adminToken, "keys", "list"); !strings.Contains(out, "agency-ci") || strings.Contains(out, token) {
		t.Errorf("keys list: %s", out)
	}
	if out := mustCLI(t, url, adminToken, "keys", "get", "agency-ci"); !strings.Contains(out, "role: editor") || strings.Contains(out, "hash") {
		t.Errorf("keys get: %s", out)
	}
	mustCLI(t, url, adminToken, "keys", "delete", "agency-ci")
	if out, code := tryCLI(t, url, token, "sites", "list"); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("a deleted key still works: %d %s", code, out)
	}
	if out := mustCLI(t, url, adminToken, "audit"); !strings.Contains(out, "create  key agency-ci") || !strings.Contains(out, "delete  key agency-ci") {
		t.Errorf("audit: %s", out)
	}
}
