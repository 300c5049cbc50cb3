package dispatch

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/queue"
	"github.com/tagway/tagway/routing/queue/spool"
)

// TestRedisCluster runs the engine against a real 3-master Redis Cluster:
// enqueue, delivery, retries, dead letters and their replay, trimming, and
// a spool drain. Every multi-key command and script touches one site's keys
// only, which share a slot through the {site} hash tag; Redis Cluster
// refuses anything else (CROSSSLOT).
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	rdb := c.Client()
	ctx := context.Background()
	sites := []string{routingtest.Site, "other", "third"}
	cfg := routingtest.Config(routingtest.Dest{ID: "meta"})
	for _, s := range sites[1:] {
		cfg.Sites = append(cfg.Sites, cfg.Sites[0])
		cfg.Sites[len(cfg.Sites)-1].ID = s
		cfg.Sites[len(cfg.Sites)-1].Domains = []string{s + ".example"}
		d := cfg.Destinations[0]
		d.ID, d.SiteID = "meta-"+s, s
		cfg.Destinations = append(cfg.Destinations, d)
		r := cfg.Routes[0]
		r.ID, r.SiteID, r.DestinationID = "to-meta-"+s, s, d.ID
		cfg.Routes = append(cfg.Routes, r)
	}
	// The sites' keys must spread over several masters for the test to mean
	// anything.
	slots := map[string]bool{}
	for _, s := range sites {
		m, err := rdb.MasterForKey(ctx, routing.StreamKey(s))
		if err != nil {
			t.Fatal(err)
		}
		slots[m.Options().Addr] = true
	}
	t.Logf("%d sites on %d masters", len(sites), len(slots))

	h := &harness{t: t, store: config.NewStore(rdb, nil), queue: queue.New(rdb, queue.Options{}), dead: NewDeadLetterStore(rdb, nil), reg: prometheus.NewRegistry()}
	if err := h.store.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	p := routingtest.NewPlatform()
	var failures atomic.Int32
	dst := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		errs := make([]error, len(batch))
		var ok []destinations.Event
		for i, ev := range batch {
			switch {
			case ev.EventName == "Bad":
				errs[i] = destinations.PermanentError("Invalid parameter")
			case ev.EventName == "Flaky" && failures.Add(1) <= 2:
				errs[i] = destinations.RetryableError(0, "HTTP 503")
			default:
				ok = append(ok, ev)
			}
		}
		p.Record(ok)
		return errs
	})
	opts := h.fastOptions()
	opts.TrimInterval = 50 * time.Millisecond
	d, err := New(rdb, h.store, routingtest.Fakes(map[string]destinations.Destination{"meta": dst}), destinations.Deps{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()

	want := 0
	for _, s := range sites {
		for i := range 5 {
			if err := h.queue.Enqueue(ctx, s, []destinations.Event{routingtest.Event(s+"-ok-"+strconv.Itoa(i), "Purchase")}); err != nil {
				t.Fatal(err)
			}
			want++
		}
		if err := h.queue.Enqueue(ctx, s, []destinations.Event{routingtest.Event(s+"-bad", "Bad"), routingtest.Event(s+"-flaky", "Flaky")}); err != nil {
			t.Fatal(err)
		}
		want++
	}
	routingtest.WaitFor(t, "delivery on every site", func() bool { return p.Total() == want })
	for _, s := range sites {
		destID := "meta"
		if s != routingtest.Site {
			destID = "meta-" + s
		}
		routingtest.WaitFor(t, "the dead letter of "+s, func() bool {
			dls, err := h.dead.ListDeadLetters(ctx, DeadLetterFilter{Site: s})
			return err == nil && len(dls) == 1 && dls[0].Destination == destID && dls[0].Event.EventID == s+"-bad"
		})
		routingtest.WaitFor(t, "trimming of "+s, func() bool {
			n, err := rdb.XLen(ctx, routing.StreamKey(s)).Result()
			return err == nil && n == 0
		})
		if n, err := h.dead.ReplayDeadLetters(ctx, DeadLetterFilter{Site: s}); err != nil || n != 1 {
			t.Fatalf("replay on %s: %d, %v", s, n, err)
		}
	}
	for _, s := range sites {
		if p.Count(s+"-flaky") != 1 {
			t.Errorf("%s-flaky delivered %d times", s, p.Count(s+"-flaky"))
		}
	}

	// The spool's scripts too: write spooled entries for every site into
	// the cluster.
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	down := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	qDown := queue.New(down, queue.Options{Spool: sp, WriteTimeout: time.Second})
	for _, s := range sites {
		if err := qDown.Enqueue(ctx, s, []destinations.Event{routingtest.Event(s+"-spooled", "Purchase")}); err != nil {
			t.Fatalf("spooled enqueue: %v", err)
		}
	}
	qUp := queue.New(rdb, queue.Options{Spool: sp, ProbeInterval: 10 * time.Millisecond})
	drainCtx, stopDrain := context.WithCancel(ctx)
	drained := make(chan error, 1)
	go func() { drained <- qUp.Run(drainCtx) }()
	routingtest.WaitFor(t, "the spool drained into the cluster", sp.Empty)
	stopDrain()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "spooled events delivered", func() bool {
		for _, s := range sites {
			if p.Count(s+"-spooled") != 1 {
				return false
			}
		}
		return true
	})
}
