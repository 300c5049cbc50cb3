package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/queue/spool"
)

func TestSpoolFullRefusesAndSpoolSurvivesRestart(t *testing.T) {
	rs := redistest.Start(t)
	if os.Getenv("REDIS_URL") != "" {
		t.Skip("kills and restarts Redis: needs a redis-server of its own")
	}
	rdb := routingtest.NoRetryClient(t, rs.Addr)
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q := New(rdb, Options{Spool: sp, WriteTimeout: time.Second})
	rs.Kill()
	ctx := context.Background()
	accepted := 0
	var full error
	for i := range 50 {
		err := q.Enqueue(ctx, routingtest.Site, []destinations.Event{routingtest.Event(fmt.Sprint("s", i), "Lead")})
		if err != nil {
			full = err
			break
		}
		accepted++
	}
	if !errors.Is(full, ErrSpoolFull) || accepted == 0 {
		t.Fatalf("after %d spooled events: %v; want ErrSpoolFull", accepted, full)
	}
	if _, err := spool.Open(dir, spool.Options{}); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("a second process opened the spool: %v", err)
	}
	sp.Close() // the process stops with events in the spool

	rs.Restart()
	sp2 := routingtest.OpenSpool(t, dir, spool.Options{})
	q2 := New(rdb, Options{Spool: sp2, ProbeInterval: 20 * time.Millisecond})
	routingtest.Run(t, q2.Run)
	routingtest.WaitFor(t, "the restarted process to drain its spool", func() bool { return sp2.Empty() })
	n, err := rdb.XLen(ctx, routing.StreamKey(routingtest.Site)).Result()
	if err != nil || int(n) != accepted {
		t.Fatalf("stream holds %d entries (%v); want the %d spooled", n, err, accepted)
	}
}
