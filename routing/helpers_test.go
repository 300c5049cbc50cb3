package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing/model"
)

const testSite = "shop"

// deliverFunc is a fake destination: the function is its Deliver.
type deliverFunc func(ctx context.Context, batch []destinations.Event) []error

func (f deliverFunc) MaxBatch() int { return 50 }
func (f deliverFunc) Deliver(ctx context.Context, batch []destinations.Event) []error {
	return f(ctx, batch)
}

// smallBatch is a fake destination taking at most n events per call.
type smallBatch struct {
	deliverFunc
	n int
}

func (s smallBatch) MaxBatch() int { return s.n }

// ageLimited is a fake destination refusing events older than limit.
type ageLimited struct {
	deliverFunc
	limit time.Duration
}

func (a ageLimited) MaxEventAge(destinations.Event) time.Duration { return a.limit }

// analytics is a fake destination that is not an advertising platform.
type analytics struct{ deliverFunc }

func (analytics) AdPlatform() bool { return false }

var (
	_ destinations.Destination = deliverFunc(nil)
	_ destinations.AgeLimiter  = ageLimited{}
	_ AdPlatform               = analytics{}
)

// platform records what a fake destination received.
type platform struct {
	mu    sync.Mutex
	got   map[string]int // event_id → deliveries
	sites map[string]bool
	calls int
}

func newPlatform() *platform { return &platform{got: map[string]int{}, sites: map[string]bool{}} }

// record notes the batch and answers with outcome(call number).
func (p *platform) record(batch []destinations.Event) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	for _, ev := range batch {
		p.got[ev.EventID]++
		p.sites[ev.Context.SiteID] = true
	}
	return p.calls
}

// accept is a destination that accepts everything.
func (p *platform) accept() deliverFunc {
	return func(_ context.Context, batch []destinations.Event) []error {
		p.record(batch)
		return make([]error, len(batch))
	}
}

func (p *platform) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[id]
}

func (p *platform) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.got {
		n += c
	}
	return n
}

func (p *platform) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

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

// dest describes a destination of the test config.
type dest struct {
	id       string
	typ      string // default "fake"
	settings string // default {"name":"<id>"}
	events   []string
	exclude  []string
}

func testConfig(dests ...dest) model.Config {
	cfg := model.Config{Sites: []model.Site{{ID: testSite, Domains: []string{"shop.example"}}}}
	for _, d := range dests {
		typ, settings := d.typ, d.settings
		if typ == "" {
			typ = "fake"
		}
		if settings == "" {
			settings = fmt.Sprintf(`{"name":%q}`, d.id)
		}
		cfg.Destinations = append(cfg.Destinations, model.Destination{ID: d.id, SiteID: testSite, Type: typ, Settings: json.RawMessage(settings)})
		cfg.Routes = append(cfg.Routes, model.Route{ID: "to-" + d.id, SiteID: testSite, DestinationID: d.id, Events: d.events, ExcludeEvents: d.exclude})
	}
	return cfg
}

// fakes builds a registry whose "fake" type returns the destination named
// by the settings' name.
func fakes(byName map[string]destinations.Destination) destinations.Registry {
	return destinations.Registry{"fake": func(settings json.RawMessage, _ destinations.Deps) (destinations.Destination, error) {
		var s struct {
			Name  string `json:"name"`
			Token string `json:"token"`
		}
		if err := json.Unmarshal(settings, &s); err != nil {
			return nil, err
		}
		d, ok := byName[s.Name]
		if !ok {
			return nil, fmt.Errorf("no fake named %q", s.Name)
		}
		return d, nil
	}}
}

// harness is a Redis, a store with a config, and a queue.
type harness struct {
	t     *testing.T
	rdb   *redis.Client
	store *Store
	queue *Queue
	reg   *prometheus.Registry
}

func newHarness(t *testing.T, cfg model.Config) *harness {
	t.Helper()
	rdb := redistest.Start(t).Client()
	h := &harness{t: t, rdb: rdb, store: NewStore(rdb, nil), queue: NewQueue(rdb, QueueOptions{}), reg: prometheus.NewRegistry()}
	if err := h.store.Apply(context.Background(), cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return h
}

// fastOptions are dispatcher options for quick tests.
func (h *harness) fastOptions() DispatcherOptions {
	return DispatcherOptions{
		Block: 20 * time.Millisecond, Linger: 5 * time.Millisecond, TrimInterval: time.Hour,
		Retry:      RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond},
		Registerer: h.reg,
	}
}

// run starts a dispatcher and returns its stop function (also called at
// cleanup); stop waits for Run to return.
func (h *harness) run(registry destinations.Registry, opts DispatcherOptions) (*Dispatcher, func()) {
	h.t.Helper()
	d, err := NewDispatcher(h.rdb, h.store, registry, destinations.Deps{}, opts)
	if err != nil {
		h.t.Fatalf("NewDispatcher: %v", err)
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

func event(id, name string) destinations.Event {
	return destinations.Event{
		EventName: name, EventID: id, EventTime: time.Now().Unix(), ActionSource: "website",
		Context: destinations.Context{Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}},
	}
}

func (h *harness) enqueue(evs ...destinations.Event) {
	h.t.Helper()
	if err := h.queue.Enqueue(context.Background(), testSite, evs); err != nil {
		h.t.Fatalf("enqueue: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupDone reports whether the destination's group has read and
// acknowledged every entry of the site stream.
func (h *harness) groupDone(group string) bool {
	groups, err := h.rdb.XInfoGroups(context.Background(), StreamKey(testSite)).Result()
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
	n, err := h.rdb.ZCard(context.Background(), RetryKey(testSite, destID)).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) deadLetters(destID string) []DeadLetter {
	h.t.Helper()
	dls, err := h.queue.DeadLetters(context.Background(), testSite, destID, 0)
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
