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
)

// TestDeadLetterStreamsAreCapped: a platform refusing everything fills its
// destination's dead letters only up to the caps (length, then age), and
// tagway_deadletters_trimmed_total counts every letter they removed.
func TestDeadLetterStreamsAreCapped(t *testing.T) {
	// Small stream nodes, so that approximate trimming trims small streams.
	rdb := redistest.Start(t, redistest.WithArgs("--stream-node-max-entries", "2")).Client()
	h := &harness{t: t, rdb: rdb, store: config.NewStore(rdb, nil), queue: queue.New(rdb, queue.Options{}), dead: NewDeadLetterStore(rdb, nil), reg: prometheus.NewRegistry()}
	if err := h.store.Apply(context.Background(), routingtest.Config(routingtest.Dest{ID: "meta"})); err != nil {
		t.Fatal(err)
	}
	// Five letters from long ago.
	for i := 1; i <= 5; i++ {
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: routing.DeadKey(routingtest.Site, "meta"), ID: itoa(i) + "-0",
			Values: []any{"event", "{}", "reason", ReasonPermanent}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	opts := h.fastOptions()
	opts.DeadLetters = DeadLetterCaps{MaxLen: 10, MaxAge: time.Hour}
	refuse := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		return destinations.All(len(batch), destinations.PermanentError("refused"))
	})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": refuse}), opts)
	trimmed := func(cap string) float64 {
		return h.labelled("tagway_deadletters_trimmed_total", "destination", "meta", "cap", cap)
	}

	const sent = 40
	for i := range sent {
		h.enqueue(routingtest.Event("e"+itoa(i), "Purchase"))
	}
	routingtest.WaitFor(t, "all refused", func() bool { return h.metric("meta", outcomeDead) == sent })
	left := h.deadLetters("meta")
	if n := len(left); n < 10 || n > 12 {
		t.Errorf("%d dead letters kept; want about 10", n)
	}
	for _, dl := range left {
		if dl.Event.EventID == "" {
			t.Errorf("a letter from long ago was kept: %+v", dl)
		}
	}
	// Redis trims whole stream nodes (2 entries here): the age cap may
	// leave an old letter in a node with a new one, for the length cap.
	if got := trimmed("max_age"); got < 4 {
		t.Errorf("max_age trimmed %v; want the old letters", got)
	}
	if got := trimmed("max_age") + trimmed("max_len"); got != float64(5+sent-len(left)) {
		t.Errorf("the caps trimmed %v; %d were written and %d kept", got, 5+sent, len(left))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// labelled reads a counter or gauge of h's registry with these label pairs
// (0 when absent).
func (h *harness) labelled(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestIdentitiesAreCappedPerSite: a flood of new visitors with identifiers
// (anyone can post /collect) keeps at most MaxPerSite of them: the ones
// written longest ago are evicted and counted; another site is untouched;
// on a single Redis and on a Cluster.
func TestIdentitiesAreCappedPerSite(t *testing.T) {
	for name, rdb := range map[string]redis.UniversalClient{
		"single":  redistest.Start(t).Client(),
		"cluster": redistest.StartCluster(t).Client(),
	} {
		t.Run(name, func(t *testing.T) { testIdentityCap(t, rdb) })
	}
}

func testIdentityCap(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	var ms atomic.Int64
	ms.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	store := NewIdentityStore(rdb, IdentityOptions{MaxPerSite: 5, Rewrite: -1, Now: func() time.Time { return time.UnixMilli(ms.Load()) }})
	reg := prometheus.NewRegistry()
	if err := store.Register(reg); err != nil {
		t.Fatal(err)
	}
	enrich(t, store, "other", seen("fb.1.1.0", 1, destinations.UserData{Em: []string{digest("keep@example.com")}}))
	const visitors = 12
	for i := range visitors {
		ms.Add(1000)
		enrich(t, store, "shop", seen("fb.1.1."+itoa(i), 1, destinations.UserData{Em: []string{digest(itoa(i) + "@example.com")}}))
	}
	evicted := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "tagway_identities_evicted_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	routingtest.WaitFor(t, "the evictions", func() bool { return evicted() == visitors-5 })
	for i := range visitors {
		n, err := rdb.Exists(ctx, routing.IdentityKey("shop", "fb.1.1."+itoa(i))).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(0); i >= visitors-5 {
			want = 1
			if n != want {
				t.Errorf("visitor %d (among the newest) has no identity", i)
			}
		} else if n != want {
			t.Errorf("visitor %d (among the oldest) kept its identity", i)
		}
	}
	if n, _ := rdb.ZCard(ctx, routing.IdentityIndexKey("shop")).Result(); n != 5 {
		t.Errorf("index holds %d", n)
	}
	if n, _ := rdb.Exists(ctx, routing.IdentityKey("other", "fb.1.1.0")).Result(); n != 1 {
		t.Error("another site's visitor was evicted")
	}
}
