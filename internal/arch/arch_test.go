// Package arch states tagway's layering and keeps it true with the build
// graph (the dependencies `go list -deps` walks) rather than by review.
// From the bottom up:
//
//	destinations/...  the canonical event, the adapter contract and one adapter per
//	                  platform: nothing else of ours (two leaves aside), no Redis
//	routing/model     sites, destinations, routes: nothing of ours
//	routing/...       Redis: the configuration store (routing/config), the durable queue
//	                  (routing/queue) and dispatch (routing/dispatch); never HTTP or an adapter
//	gateway/...       HTTP intake: the contract, PII hashing, the model; never Redis, routing or an adapter
//	admin             the admin API: routing and the contract; never HTTP intake or an adapter
//	internal/app      the gateway wired together; imported by main alone (and the whole-app tests)
//	internal/cli      every command but serve; the only user of the load generator (internal/loadgen)
//	main              signals and the choice of command
package arch

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tagway/tagway"

// pkg is one package of the module as go list sees it.
type pkg struct {
	path        string
	deps        []string // every package it links, transitively (go list -deps)
	imports     []string // its direct imports
	testImports []string // the direct imports of its tests
}

// modulePackages lists every package of the module.
func modulePackages(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}	{{join .Deps " "}}	{{join .Imports " "}}	{{join .TestImports " "}} {{join .XTestImports " "}}`,
		module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("go list line %q", line)
		}
		pkgs[f[0]] = pkg{path: f[0], deps: strings.Fields(f[1]), imports: strings.Fields(f[2]), testImports: strings.Fields(f[3])}
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; the checks would prove nothing", len(pkgs))
	}
	return pkgs
}

// matches reports whether path is the module's package p, or below it when
// p ends in "/...".
func matches(path, p string) bool {
	if tree, ok := strings.CutSuffix(p, "/..."); ok {
		return path == module+"/"+tree || strings.HasPrefix(path, module+"/"+tree+"/")
	}
	return path == module+"/"+p
}

// selectPkgs returns the packages of pkgs that match pattern, failing when
// none does (a rule about nothing is a typo).
func selectPkgs(t *testing.T, pkgs map[string]pkg, pattern string) []pkg {
	t.Helper()
	var out []pkg
	for path, p := range pkgs {
		if matches(path, pattern) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no package matches %s", pattern)
	}
	return out
}

// isAdapter reports whether path is a platform's adapter (or its test
// fake): a package under destinations/ other than the shared PII hashing.
func isAdapter(path string) bool {
	return matches(path, "destinations/...") && !matches(path, "destinations") && !matches(path, "destinations/pii")
}

func TestPackageDependencies(t *testing.T) {
	pkgs := modulePackages(t)
	rules := []struct {
		pkgs      string   // a package, or a tree ending in /...
		forbidden []string // import path prefixes, outside the module unless they start with "./"
		allowed   []string // the module's packages they may link (nil: any not forbidden)
	}{
		// The contract and its adapters: each other only, and no Redis
		// (two leaves aside: the JSON scanner, and the test kit's log sink).
		{pkgs: "destinations/...", forbidden: []string{"github.com/redis/"}, allowed: []string{"destinations/...", "internal/jsonscan", "internal/testlog"}},
		{pkgs: "routing/model", allowed: []string{}},
		// Redis, never HTTP intake, the control plane or a platform.
		{pkgs: "routing/...", forbidden: []string{"./gateway", "./admin", "./internal/app", "net/http/httptest"}},
		// routing's three jobs: the configuration store and the queue know
		// nothing of each other or of dispatch, which reads both; all three
		// share routing's key layout.
		{pkgs: "routing", allowed: []string{}},
		{pkgs: "routing/config", allowed: []string{"routing", "routing/model", "internal/secrets"}},
		{pkgs: "routing/queue", allowed: []string{"routing", "routing/model", "routing/queue/spool", "destinations", "internal/jsonscan"}},
		{pkgs: "routing/dispatch", forbidden: []string{"./destinations/"}},
		// HTTP intake declares the small interfaces it needs and never
		// talks to Redis or the engine directly.
		{pkgs: "gateway/...", forbidden: []string{"github.com/redis/", "./routing"},
			allowed: []string{"gateway/...", "destinations", "destinations/pii", "routing/model", "internal/jsonscan", "internal/httproute"}},
		// The control plane speaks to the store and the contract only: it
		// never reaches into HTTP intake or a platform (routing/queue and
		// its spool come in through routing/dispatch).
		{pkgs: "admin", forbidden: []string{"./gateway"},
			allowed: []string{"routing", "routing/config", "routing/dispatch", "routing/model", "routing/queue", "routing/queue/spool",
				"destinations", "internal/secrets", "internal/jsonscan", "internal/httproute"}},
		{pkgs: "internal/secrets", allowed: []string{}},
		{pkgs: "internal/gctune", allowed: []string{}},
		{pkgs: "internal/authlimit", allowed: []string{}},
		{pkgs: "internal/jsonscan", allowed: []string{}},
		{pkgs: "internal/testlog", allowed: []string{}},
		{pkgs: "routing/queue/spool", allowed: []string{}},
		{pkgs: "internal/httproute", allowed: []string{}},
		{pkgs: "pixeljs", allowed: []string{}},
		{pkgs: "static", allowed: []string{}},
	}
	for _, r := range rules {
		t.Run(r.pkgs, func(t *testing.T) {
			for _, p := range selectPkgs(t, pkgs, r.pkgs) {
				for _, d := range p.deps {
					allowed := false
					for _, a := range r.allowed {
						allowed = allowed || matches(d, a)
					}
					for _, f := range r.forbidden {
						if local, ok := strings.CutPrefix(f, "./"); ok {
							f = module + "/" + local
						}
						if !allowed && (d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f))) {
							t.Errorf("%s imports %s", p.path, d)
						}
					}
					if r.allowed != nil && strings.HasPrefix(d, module+"/") && !allowed {
						t.Errorf("%s imports project package %s; allowed: %v", p.path, d, r.allowed)
					}
				}
			}
		})
	}
}

// TestAdapterDependencies keeps the adapters to the contract: every
// destinations/<platform> package, and the internal helpers they share,
// imports of this project only destinations and destinations/internal/...,
// and reaches neither Redis nor the gateway, routing or admin; a
// platform's strict fake (<platform>/<name>test) imports only the contract
// and the shared test kit, never the adapter it checks.
func TestAdapterDependencies(t *testing.T) {
	contract, internal, kit := module+"/destinations", module+"/destinations/internal/", module+"/destinations/destinationstest"
	platforms := 0
	for _, p := range selectPkgs(t, modulePackages(t), "destinations/...") {
		rel := strings.TrimPrefix(p.path, contract+"/")
		var allowed func(string) bool
		switch {
		case p.path == contract || rel == "pii" || rel == "destinationstest":
			continue // the contract and its helpers have rules of their own
		case strings.HasPrefix(p.path, internal):
			allowed = func(d string) bool { return d == contract || strings.HasPrefix(d, internal) }
		case !strings.Contains(rel, "/"):
			platforms++
			allowed = func(d string) bool { return d == contract || strings.HasPrefix(d, internal) }
		case strings.HasSuffix(rel, "test") && strings.Count(rel, "/") == 1:
			allowed = func(d string) bool { return d == contract || d == kit }
		default:
			t.Errorf("%s: a package under destinations/ that no rule covers", p.path)
			continue
		}
		for _, d := range p.imports {
			if strings.HasPrefix(d, module+"/") && !allowed(d) {
				t.Errorf("%s imports %s", p.path, d)
			}
		}
		for _, d := range p.deps {
			for _, f := range []string{"github.com/redis/", module + "/gateway", module + "/routing", module + "/admin"} {
				if d == strings.TrimSuffix(f, "/") || strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", p.path, d)
				}
			}
		}
	}
	if platforms < 8 {
		t.Errorf("found %d platform packages under destinations/, want at least 8", platforms)
	}
}

// Nothing but the adapters and the gateway's wiring knows a platform: the
// gateway, routing and the admin API link no adapter.
func TestNoAdapterBelowTheWiring(t *testing.T) {
	pkgs := modulePackages(t)
	for _, tree := range []string{"gateway/...", "routing/...", "admin/..."} {
		for _, p := range selectPkgs(t, pkgs, tree) {
			for _, d := range p.deps {
				if isAdapter(d) {
					t.Errorf("%s links the adapter %s", p.path, d)
				}
			}
		}
	}
}

// The app is the top of the serving graph: main imports it, the whole-app
// tests drive it, and nothing else does (internal/cli gets what it needs
// of it from main).
func TestOnlyMainImportsTheApp(t *testing.T) {
	app := module + "/internal/app"
	pkgs := modulePackages(t)
	for _, p := range pkgs {
		if slices.Contains(p.imports, app) && p.path != module {
			t.Errorf("%s imports %s; only main may", p.path, app)
		}
		if slices.Contains(p.testImports, app) && p.path != module+"/internal/e2e" && p.path != app {
			t.Errorf("the tests of %s import %s; only the whole-app tests (internal/e2e) may", p.path, app)
		}
	}
	if !slices.Contains(pkgs[module].imports, app) {
		t.Errorf("main does not import %s: the rule above proves nothing", app)
	}
}

// The load generator is the bench command's: the serving path (the app and
// everything it links) does not link it, and no package but internal/cli
// imports it.
func TestLoadGeneratorOffTheServingPath(t *testing.T) {
	loadgen := module + "/internal/loadgen"
	pkgs := modulePackages(t)
	app := pkgs[module+"/internal/app"]
	for _, d := range append([]string{app.path}, app.deps...) {
		if d == loadgen || d == module+"/internal/cli" {
			t.Errorf("the serving path links %s", d)
		}
	}
	for _, p := range pkgs {
		if slices.Contains(p.imports, loadgen) && p.path != module+"/internal/cli" {
			t.Errorf("%s imports the load generator; only internal/cli may", p.path)
		}
	}
	if !slices.Contains(pkgs[module+"/internal/cli"].imports, loadgen) {
		t.Errorf("internal/cli does not import %s: the rule above proves nothing", loadgen)
	}
}
