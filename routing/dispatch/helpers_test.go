package dispatch

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
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
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

// smallBatch is a fake destination taking at most n events per call.
type smallBatch struct {
	routingtest.DeliverFunc
	n int
}

func (s smallBatch) MaxBatch() int { return s.n }

// ageLimited is a fake destination refusing events older than limit.
type ageLimited struct {
	routingtest.DeliverFunc
	limit time.Duration
}

func (a ageLimited) MaxEventAge(destinations.Event) time.Duration { return a.limit }

// analytics is a fake destination that is not an advertising platform.
type analytics struct{ routingtest.DeliverFunc }

func (analytics) AdPlatform() bool { return false }

var (
	_ destinations.AgeLimiter = ageLimited{}
	_ AdPlatform              = analytics{}
)

// clock is a controllable clock: real time plus an offset.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// harness is a Redis, a store with a config, and a queue.
type harness struct {
	t     *testing.T
	rdb   *redis.Client
	store *config.Store
	queue *queue.Queue
	dead  *DeadLetterStore
	reg   *prometheus.Registry
}

func newHarness(t *testing.T, cfg model.Config) *harness {
	t.Helper()
	rdb := redistest.Start(t).Client()
	h := &harness{t: t, rdb: rdb, store: config.NewStore(rdb, nil), queue: queue.New(rdb, queue.Options{}), dead: NewDeadLetterStore(rdb, nil), reg: prometheus.NewRegistry()}
	if err := h.store.Apply(context.Background(), cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return h
}

// fastOptions are dispatcher options for quick tests.
func (h *harness) fastOptions() Options {
	return Options{
		Block: 20 * time.Millisecond, Linger: 5 * time.Millisecond, TrimInterval: time.Hour,
		Retry:      RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond},
		Registerer: h.reg,
	}
}

// run starts a dispatcher and returns its stop function (also called at
// cleanup); stop waits for Run to return.
func (h *harness) run(registry destinations.Registry, opts Options) (*Dispatcher, func()) {
	h.t.Helper()
	d, err := New(h.rdb, h.store, registry, destinations.Deps{}, opts)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return d, stop
}

func (h *harness) enqueue(evs ...destinations.Event) {
	h.t.Helper()
	if err := h.queue.Enqueue(context.Background(), routingtest.Site, evs); err != nil {
		h.t.Fatalf("enqueue: %v", err)
	}
}

// groupDone reports whether the destination's group has read and
// acknowledged every entry of the site stream.
func (h *harness) groupDone(group string) bool {
	groups, err := h.rdb.XInfoGroups(context.Background(), routing.StreamKey(routingtest.Site)).Result()
	if err != nil {
		h.t.Fatalf("xinfo groups: %v", err)
	}
	for _, g := range groups {
		if g.Name == group {
			return g.Pending == 0 && g.Lag == 0
		}
	}
	h.t.Fatalf("no group %q", group)
	return false
}

func (h *harness) retryCount(destID string) int64 {
	n, err := h.rdb.ZCard(context.Background(), routing.RetryKey(routingtest.Site, destID)).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) deadLetters(destID string) []DeadLetter {
	h.t.Helper()
	dls, err := h.dead.DeadLetters(context.Background(), routingtest.Site, destID, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return dls
}

// metric reads tagway_deliveries_total for a destination and outcome.
func (h *harness) metric(destID, outcome string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tagway_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["destination"] == destID && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
