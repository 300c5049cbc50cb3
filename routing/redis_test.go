package routing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/redistest"
)

// Unreachable tells the replies of a Redis that cannot take writes now
// from refusals that would fail again, by the kind of error go-redis reads
// from the reply.
func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	if err := rdb.Set(ctx, "str", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wrongType := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "str", Values: []any{"e", "x"}}).Err()
	noGroup := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{"nostream", ">"}, Block: -1}).Err()
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	oom := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []any{"e", "x"}}).Err()
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	closed := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond}).Ping(ctx).Err()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"out of memory", oom, true},
		{"connection refused", closed, true},
		{"wrong type", wrongType, false},
		{"no group", noGroup, false},
	} {
		if tc.err == nil {
			t.Fatalf("%s: Redis took the command", tc.name)
		}
		if got := Unreachable(fmt.Errorf("wrapped: %w", tc.err)); got != tc.want {
			t.Errorf("%s (%v): Unreachable = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
