package redistest

import (
	"context"
	"testing"
)

func TestStartKillRestartWithAOF(t *testing.T) {
	s := Start(t, WithAOF())
	if s.dir == "" {
		t.Skip("REDIS_URL set: restart needs a server of our own")
	}
	ctx := context.Background()
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	s.Restart()
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart with AOF: %q, %v; want v", got, err)
	}
}
