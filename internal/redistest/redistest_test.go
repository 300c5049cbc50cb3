package redistest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
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

func TestStartCluster(t *testing.T) {
	c := StartCluster(t)
	cc := c.Client()
	ctx := context.Background()
	// Keys in all three masters' slots are writable through the client.
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := cc.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	var masters atomic.Int32
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if masters := masters.Load(); masters != 3 {
		t.Fatalf("%d masters; want 3", masters)
	}
}
