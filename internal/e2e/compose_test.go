package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of compose.yaml the durable setup depends on.
type composeFile struct {
	Services map[string]struct {
		Build       any               `json:"build"`
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		DependsOn   map[string]struct {
			Condition string `json:"condition"`
		} `json:"depends_on"`
		Healthcheck *struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// TestComposeIsTheDurableSetup parses compose.yaml and checks that it runs
// Redis the way README's Durability section says: append-only file fsync'd
// on every write, no eviction, data on a named volume; and the gateway on
// that Redis with its spool on a volume.
func TestComposeIsTheDurableSetup(t *testing.T) {
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Strict YAML (duplicate keys refused); keys this test does not know
	// are fine, compose has many.
	if _, err := yaml.YAMLToJSONStrict(raw); err != nil {
		t.Fatalf("compose.yaml is not valid YAML: %v", err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml does not have compose's shape: %v", err)
	}
	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	args := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis command %q lacks %q", args, want)
		}
	}
	if !hasNamedVolume(redis.Volumes, "/data", c.Volumes) {
		t.Errorf("redis keeps /data on no named volume: %v", redis.Volumes)
	}
	if redis.Healthcheck == nil {
		t.Error("redis has no healthcheck for the gateway to wait on")
	}

	gw, ok := c.Services["tagway"]
	if !ok {
		t.Fatal("no tagway service")
	}
	if gw.Build == nil {
		t.Error("tagway service is not built from this repository")
	}
	if got := gw.Environment["REDIS_URL"]; !strings.HasPrefix(got, "redis://redis:") {
		t.Errorf("tagway REDIS_URL = %q, want the redis service", got)
	}
	dir := gw.Environment["TAGWAY_DATA_DIR"]
	if dir == "" || !hasNamedVolume(gw.Volumes, dir, c.Volumes) {
		t.Errorf("the spool (TAGWAY_DATA_DIR=%q) is not on a named volume: %v", dir, gw.Volumes)
	}
	if gw.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("tagway does not wait for a healthy redis: %+v", gw.DependsOn)
	}
}

// hasNamedVolume reports whether mounts holds "<name>:<path>" for a volume
// the file declares.
func hasNamedVolume(mounts []string, path string, declared map[string]any) bool {
	return slices.ContainsFunc(mounts, func(m string) bool {
		name, p, ok := strings.Cut(m, ":")
		_, isDeclared := declared[name]
		return ok && isDeclared && strings.TrimSuffix(p, ":rw") == path
	})
}
