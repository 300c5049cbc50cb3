package main

// The package rules of STYLE.md, kept true by the build graph rather than by
// review: the contract imports nothing of ours, adapters know only the
// contract, the gateway never talks to Redis or a platform directly, and
// routing never reaches up into HTTP.

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tagway/tagway"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestPackageDependencies(t *testing.T) {
	rules := []struct {
		pkg       string
		forbidden []string // import path prefixes
		allowed   []string // project packages it may import (nil: any not forbidden)
	}{
		{pkg: module + "/destinations", allowed: []string{module + "/internal/jsonscan"}},
		{pkg: module + "/destinations/pii", allowed: []string{module + "/destinations", module + "/internal/jsonscan"}},
		// Every destinations/<platform> package: TestAdapterDependencies.
		{pkg: module + "/routing/model", allowed: []string{}},
		// routing's three jobs: the configuration store and the queue know
		// nothing of each other or of dispatch, which reads both; all three
		// share routing's key layout.
		{pkg: module + "/routing", allowed: []string{}},
		{pkg: module + "/routing/config", allowed: []string{module + "/routing", module + "/routing/model", module + "/internal/secrets"}},
		{pkg: module + "/routing/queue", allowed: []string{module + "/routing", module + "/routing/model", module + "/routing/queue/spool",
			module + "/destinations", module + "/internal/jsonscan"}},
		{pkg: module + "/routing/dispatch", forbidden: []string{module + "/gateway", module + "/destinations/", "net/http/httptest"}},
		{pkg: module + "/gateway", forbidden: []string{"github.com/redis/", module + "/routing", module + "/destinations/meta"},
			allowed: []string{module + "/destinations", module + "/destinations/pii", module + "/routing/model", module + "/internal/jsonscan",
				module + "/internal/httproute"}},
		// The control plane speaks to the store and the contract only: it
		// never reaches into HTTP intake or a platform (routing/queue and its
		// spool come in through routing/dispatch).
		{pkg: module + "/admin", forbidden: []string{module + "/gateway", module + "/destinations/"},
			allowed: []string{module + "/routing", module + "/routing/config", module + "/routing/dispatch", module + "/routing/model", module + "/routing/queue", module + "/routing/queue/spool",
				module + "/destinations", module + "/internal/secrets", module + "/internal/jsonscan", module + "/internal/httproute"}},
		{pkg: module + "/internal/secrets", allowed: []string{}},
		{pkg: module + "/internal/gctune", allowed: []string{}},
		{pkg: module + "/internal/authlimit", allowed: []string{}},
		{pkg: module + "/internal/jsonscan", allowed: []string{}},
		{pkg: module + "/routing/queue/spool", allowed: []string{}},
		{pkg: module + "/internal/httproute", allowed: []string{}},
		{pkg: module + "/pixeljs", allowed: []string{}},
		{pkg: module + "/static", allowed: []string{}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			for _, d := range deps(t, r.pkg) {
				if d == r.pkg {
					continue
				}
				allowed := false
				for _, a := range r.allowed {
					allowed = allowed || d == a
				}
				for _, f := range r.forbidden {
					if !allowed && (d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f))) {
						t.Errorf("%s imports %s", r.pkg, d)
					}
				}
				if r.allowed != nil && strings.HasPrefix(d, module) && !allowed {
					t.Errorf("%s imports project package %s; allowed: %v", r.pkg, d, r.allowed)
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
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}",
		module+"/destinations/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	contract, internal, kit := module+"/destinations", module+"/destinations/internal/", module+"/destinations/destinationstest"
	platforms := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		pkg, imports, all := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		rel := strings.TrimPrefix(pkg, contract+"/")
		var allowed func(string) bool
		switch {
		case pkg == contract || rel == "pii" || rel == "destinationstest":
			continue // the contract and its helpers have rules of their own
		case strings.HasPrefix(pkg, internal):
			allowed = func(d string) bool { return d == contract || strings.HasPrefix(d, internal) }
		case !strings.Contains(rel, "/"):
			platforms++
			allowed = func(d string) bool { return d == contract || strings.HasPrefix(d, internal) }
		case strings.HasSuffix(rel, "test") && strings.Count(rel, "/") == 1:
			allowed = func(d string) bool { return d == contract || d == kit }
		default:
			t.Errorf("%s: a package under destinations/ that no rule covers", pkg)
			continue
		}
		for _, d := range imports {
			if strings.HasPrefix(d, module+"/") && !allowed(d) {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
		for _, d := range all {
			for _, f := range []string{"github.com/redis/", module + "/gateway", module + "/routing", module + "/admin"} {
				if d == strings.TrimSuffix(f, "/") || strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
	if platforms < 8 {
		t.Errorf("found %d platform packages under destinations/, want at least 8", platforms)
	}
}
