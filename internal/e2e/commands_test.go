package e2e

// The tagway binary's command line, run as a process: the dispatch in the
// root main.go, with the environment it is given and nothing else.

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
)

// runTagway runs the tagway binary with args and only env, and returns
// its stdout, stderr and exit code.
func runTagway(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), tagwayBinary(t), args...)
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("tagway %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestHelpFlagsPrintUsage: tagway -h and --help print what tagway help
// prints, and exit 0, instead of being taken as arguments of serve; an
// unknown command exits 2 with the usage.
func TestHelpFlagsPrintUsage(t *testing.T) {
	want, _, code := runTagway(t, nil, "help")
	if code != 0 || !strings.Contains(want, "Usage: tagway") || !strings.Contains(want, "deadletters") {
		t.Fatalf("tagway help: exit %d: %q", code, want)
	}
	for _, flag := range []string{"-h", "-help", "--help"} {
		out, errOut, code := runTagway(t, nil, flag)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("tagway %s: exit %d, stdout %q, stderr %q", flag, code, out, errOut)
		}
	}
	if _, errOut, code := runTagway(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) ||
		!strings.Contains(errOut, "Usage: tagway") {
		t.Errorf("tagway frobnicate: exit %d: %q", code, errOut)
	}
	if out, _, code := runTagway(t, nil, "version"); code != 0 || out != "tagway dev\n" {
		t.Errorf("tagway version: exit %d: %q", code, out)
	}
}

func TestDeadlettersNeedsRedisURL(t *testing.T) {
	_, stderr, code := runTagway(t, nil, "deadletters", "list")
	if code != 2 || !strings.Contains(stderr, "REDIS_URL") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestDeadlettersUseTheServeRedisSetup: tagway deadletters reaches a Redis
// Cluster with TAGWAY_REDIS_MODE=cluster, as serve does, and finds the dead
// letters of sites whose keys live on different nodes.
func TestDeadlettersUseTheServeRedisSetup(t *testing.T) {
	cluster := redistest.StartCluster(t)
	cc := cluster.Client()
	sites := []string{"alpha", "bravo", "charlie", "delta"}
	for _, site := range sites {
		err := cc.XAdd(t.Context(), &redis.XAddArgs{Stream: routing.DeadKey(site, "meta"), Values: []any{
			"event", `{"event_name":"Purchase","event_id":"ev-` + site + `"}`, "reason", "permanent",
			"message", "refused", "attempts", "1", "failed_at", "1764300000000"}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"REDIS_URL": cluster.URL(), "TAGWAY_REDIS_MODE": "cluster"}
	for _, site := range sites {
		out, errOut, code := runTagway(t, env, "deadletters", "list", "--site", site)
		if code != 0 || !strings.Contains(out, "ev-"+site) || !strings.Contains(out, "1 dead letters") {
			t.Errorf("site %s: exit %d: %s%s", site, code, out, errOut)
		}
	}
}
