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
		{pkg: module + "/destinations/meta", allowed: []string{module + "/destinations", module + "/internal/jsonscan"},
			forbidden: []string{"github.com/redis/"}},
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
