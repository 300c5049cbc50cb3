package main

import (
	"io"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
)

// TestHelpFlagsPrintUsage: tagway -h and --help print what tagway help
// prints, and exit 0, instead of being taken as arguments of serve.
func TestHelpFlagsPrintUsage(t *testing.T) {
	var want strings.Builder
	if code := run(t.Context(), []string{"help"}, func(string) string { return "" }, &want, io.Discard); code != 0 {
		t.Fatalf("tagway help: exit %d", code)
	}
	for _, flag := range []string{"-h", "-help", "--help"} {
		var out, errOut strings.Builder
		code := run(t.Context(), []string{flag}, func(string) string { return "" }, &out, &errOut)
		if code != 0 || out.String() != want.String() || errOut.Len() != 0 {
			t.Errorf("tagway %s: exit %d, stdout %q, stderr %q", flag, code, out.String(), errOut.String())
		}
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
		var out, errOut strings.Builder
		code := run(t.Context(), []string{"deadletters", "list", "--site", site}, envOf(env), &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), "ev-"+site) || !strings.Contains(out.String(), "1 dead letters") {
			t.Errorf("site %s: exit %d: %s%s", site, code, out.String(), errOut.String())
		}
	}
}
