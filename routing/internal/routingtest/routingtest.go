// Package routingtest holds what the tests of routing's packages share: a
// one-site configuration, events, fake destinations that record what they
// receive, the queue's Redis client and spool, and polling.
package routingtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue/spool"
)

// Site is the id of the site of Config.
const Site = "shop"

// Dest describes a destination of Config and its route.
type Dest struct {
	ID       string
	Type     string // default "fake" (see Fakes)
	Settings string // default {"name":"<ID>"}
	Events   []string
	Exclude  []string
}

// Config is Site with a destination, and a route to it, per dest.
func Config(dests ...Dest) model.Config {
	cfg := model.Config{Sites: []model.Site{{ID: Site, Domains: []string{"shop.example"}}}}
	for _, d := range dests {
		typ, settings := d.Type, d.Settings
		if typ == "" {
			typ = "fake"
		}
		if settings == "" {
			settings = fmt.Sprintf(`{"name":%q}`, d.ID)
		}
		cfg.Destinations = append(cfg.Destinations, model.Destination{ID: d.ID, SiteID: Site, Type: typ, Settings: json.RawMessage(settings)})
		cfg.Routes = append(cfg.Routes, model.Route{ID: "to-" + d.ID, SiteID: Site, DestinationID: d.ID, Events: d.Events, ExcludeEvents: d.Exclude})
	}
	return cfg
}

// Event is a website event of this second with marketing consent.
func Event(id, name string) destinations.Event {
	return destinations.Event{
		EventName: name, EventID: id, EventTime: time.Now().Unix(), ActionSource: "website",
		Context: destinations.Context{Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}},
	}
}

// WaitFor polls cond until it holds, failing the test after a generous
// deadline.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DeliverFunc is a fake destination: the function is its Deliver. It
// takes batches of up to 50 events.
type DeliverFunc func(ctx context.Context, batch []destinations.Event) []error

// MaxBatch implements destinations.Destination.
func (f DeliverFunc) MaxBatch() int { return 50 }

// Deliver implements destinations.Destination.
func (f DeliverFunc) Deliver(ctx context.Context, batch []destinations.Event) []error {
	return f(ctx, batch)
}

var _ destinations.Destination = DeliverFunc(nil)

// Fakes is a registry whose type "fake" builds the destination its
// settings name ({"name": ...}; a "token" setting is allowed and ignored).
func Fakes(byName map[string]destinations.Destination) destinations.Registry {
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

// Platform records what a fake destination received. It is safe for
// concurrent use.
type Platform struct {
	mu    sync.Mutex
	got   map[string]int // event_id → deliveries
	sites map[string]bool
	calls int
}

// NewPlatform returns a Platform that has received nothing.
func NewPlatform() *Platform { return &Platform{got: map[string]int{}, sites: map[string]bool{}} }

// Record notes a batch and returns the number of the call (1 for the
// first).
func (p *Platform) Record(batch []destinations.Event) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	for _, ev := range batch {
		p.got[ev.EventID]++
		p.sites[ev.Context.SiteID] = true
	}
	return p.calls
}

// Accept is a destination that records and accepts everything.
func (p *Platform) Accept() DeliverFunc {
	return func(_ context.Context, batch []destinations.Event) []error {
		p.Record(batch)
		return make([]error, len(batch))
	}
}

// Count is how many times the event with this id was received.
func (p *Platform) Count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[id]
}

// Total is how many events were received, repeats included.
func (p *Platform) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.got {
		n += c
	}
	return n
}

// Calls is how many batches were received.
func (p *Platform) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// Got returns how many times each event id was received.
func (p *Platform) Got() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.got)
}

// Sites returns the site ids the received events carried.
func (p *Platform) Sites() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.sites)
}

// NoRetryClient is a client to addr as the gateway's queue has one: it
// never retries a command on its own (a retried XADD can add the events
// twice). It is closed at the end of the test.
func NoRetryClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	return c
}

// OpenSpool opens the spool in dir, closed at the end of the test.
func OpenSpool(t testing.TB, dir string, opts spool.Options) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run calls run (a Run method) on its own goroutine until the end of the
// test, then cancels its context and waits for it.
func Run(t testing.TB, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
