package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	randv2 "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

// Options configure a Dispatcher. Zero values take the defaults
// named on each field.
type Options struct {
	// Consumer names this process in every consumer group; it must be
	// unique per process (default hostname-pid-random).
	Consumer string
	// ReadCount is how many stream entries one read takes (default 100).
	ReadCount int
	// Block is how long an idle read waits for new entries (default 1s). It
	// also bounds how late due retries and a stop are noticed.
	Block time.Duration
	// Linger is how long a worker waits for more events to fill a batch
	// before sending a short one (default 200ms; negative: no wait).
	Linger time.Duration
	// VisibilityTimeout is how long an entry may stay pending with a
	// consumer, or a retry stay leased, before another process takes it
	// over (default 30s).
	VisibilityTimeout time.Duration
	// DeliverTimeout bounds one Deliver call (default two thirds of
	// VisibilityTimeout); it must be shorter than VisibilityTimeout.
	DeliverTimeout time.Duration
	// ShutdownTimeout is how long in-flight deliveries may finish once Run's
	// context is done (default 10s); work still running then is handed
	// back: it stays pending and another consumer claims it.
	ShutdownTimeout time.Duration
	// TrimInterval is the period of the trim loop (default 10s).
	TrimInterval time.Duration
	// Retry is the retry and pause policy.
	Retry RetryPolicy
	// Circuit is the circuit breaker of every destination.
	Circuit CircuitPolicy
	// Limits are every destination's concurrency and rate limits;
	// DestinationLimits, by destination id, override them field by field.
	Limits            Limits
	DestinationLimits map[string]Limits
	// PoisonClaims: an entry taken over from stopped consumers more than
	// this many times goes to the dead letters with reason poison instead
	// of being tried again (default 5; negative: never).
	PoisonClaims int
	// DeadLetters caps every destination's dead-letter stream.
	DeadLetters DeadLetterCaps
	// Identity, when set, stores the hashed identifiers of each round's
	// events and enriches them with those known of their visitors, before
	// policy and delivery (see IdentityStore); nil: no enrichment.
	Identity *IdentityStore
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger defaults to deps.Logger, then to a discarding logger.
	Logger *slog.Logger
	// Now is the dispatcher's one clock: event ages, due times, leases,
	// circuits, rate limits (default time.Now). Adapters get it too
	// (destinations.Deps.Now) unless deps set their own.
	Now func() time.Time
	// Rand returns a float in [0,1) for back-off jitter; it must be safe for
	// concurrent use (default math/rand/v2.Float64).
	Rand func() float64
}

func (o Options) withDefaults() (Options, error) {
	if o.Consumer == "" {
		o.Consumer = consumerName()
	}
	if o.ReadCount <= 0 {
		o.ReadCount = 100
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.Linger == 0 {
		o.Linger = 200 * time.Millisecond
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.DeliverTimeout <= 0 {
		o.DeliverTimeout = o.VisibilityTimeout * 2 / 3
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.TrimInterval <= 0 {
		o.TrimInterval = 10 * time.Second
	}
	o.Retry = o.Retry.withDefaults()
	o.DeadLetters = o.DeadLetters.withDefaults()
	o.Circuit = o.Circuit.withDefaults()
	if o.PoisonClaims == 0 {
		o.PoisonClaims = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = randv2.Float64
	}
	if o.DeliverTimeout >= o.VisibilityTimeout {
		return o, fmt.Errorf("routing: DeliverTimeout (%s) must be shorter than VisibilityTimeout (%s), or another consumer takes over deliveries still running",
			o.DeliverTimeout, o.VisibilityTimeout)
	}
	return o, nil
}

// consumerName is hostname-pid-random: unique per process, readable in
// XINFO CONSUMERS.
func consumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "tagway"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// Dispatcher fans queued events out to the configured destinations. It runs
// one worker per destination, each reading its own consumer group, so every
// destination progresses on its own: one that fails or hangs never delays
// another.
type Dispatcher struct {
	rdb      redis.UniversalClient
	store    *config.Store
	registry destinations.Registry
	deps     destinations.Deps
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	lease    *redis.Script

	circuitOpen *redis.Script
	codec       *queue.Codec // reads stream entries

	warnedOrphans map[string]bool // trim loop only
}

// New returns a Dispatcher delivering the destinations of store's
// configuration with adapters built from registry. It fails on invalid
// options or when the metrics cannot be registered.
func New(rdb redis.UniversalClient, store *config.Store, registry destinations.Registry, deps destinations.Deps, opts Options) (*Dispatcher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = deps.Logger
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Logger == nil {
		deps.Logger = log
	}
	if deps.Now == nil {
		deps.Now = opts.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Dispatcher{
		rdb: rdb, store: store, registry: registry, deps: deps, opts: opts,
		log: log.With("consumer", opts.Consumer), metrics: m,
		lease:         redis.NewScript(leaseScript),
		circuitOpen:   redis.NewScript(circuitOpenScript),
		warnedOrphans: map[string]bool{}, codec: queue.NewCodec(),
	}, nil
}

// workerHandle is a running (or idle) worker and the destination it was
// built for.
type workerHandle struct {
	spec   model.Destination
	cancel context.CancelFunc // nil for an idle destination
	drain  bool               // draining a removed destination
}

// Run delivers until ctx is done. It starts and stops workers as the
// configuration changes. When ctx is done it stops reading, lets in-flight
// deliveries finish within ShutdownTimeout and hands back what is still
// running then (the entries stay pending; another consumer claims them
// after VisibilityTimeout). It returns nil once every worker has stopped.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	workers := map[string]*workerHandle{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.trimLoop(ctx)
	}()
	for {
		changed := d.store.Changed()
		d.reconcile(ctx, d.store.Snapshot(), workers, &wg)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-changed:
		}
	}
}

// reconcile makes the running workers match snap: new destinations start,
// changed ones are rebuilt, removed ones stop and are drained into their
// dead letters, unless their site was deleted too (config.Store erases its
// keys).
func (d *Dispatcher) reconcile(ctx context.Context, snap *model.Snapshot, workers map[string]*workerHandle, wg *sync.WaitGroup) {
	want := map[string]model.Destination{}
	for _, dest := range snap.Config().Destinations {
		want[dest.ID] = dest
	}
	for id, h := range workers {
		spec, ok := want[id]
		if (ok && !h.drain && sameDestination(spec, h.spec)) || (!ok && h.drain) {
			continue
		}
		if h.cancel != nil {
			h.cancel()
		}
		delete(workers, id)
		if _, siteKept := snap.Site(h.spec.SiteID); !ok && siteKept {
			workers[id] = d.startDrain(ctx, h.spec, wg)
		}
	}
	for id, spec := range want {
		if _, ok := workers[id]; !ok {
			workers[id] = d.start(ctx, spec, wg)
		}
	}
}

// start builds the destination's adapter and runs its worker. A destination
// whose type is unknown or whose settings are refused stays idle: its events
// wait in its consumer group until the configuration is fixed.
func (d *Dispatcher) start(ctx context.Context, spec model.Destination, wg *sync.WaitGroup) *workerHandle {
	h := &workerHandle{spec: spec}
	log := d.log.With("site", spec.SiteID, "destination", spec.ID, "type", spec.Type)
	factory, ok := d.registry[spec.Type]
	if !ok {
		log.Error("destination has an unknown type; it stays idle and its events wait until the config is fixed")
		return h
	}
	dest, err := factory(spec.Settings, d.deps)
	if err != nil {
		log.Error("destination settings refused; it stays idle and its events wait until the config is fixed",
			"err", config.RedactSettings(err.Error(), spec.Settings))
		return h
	}
	h.cancel = d.launch(ctx, newWorker(d, spec, dest, log), wg)
	log.Info("destination worker started")
	return h
}

// startDrain runs a worker that dead-letters what is still queued for a
// removed destination, with reason unknown_destination, so an operator can
// replay it should the destination come back.
func (d *Dispatcher) startDrain(ctx context.Context, spec model.Destination, wg *sync.WaitGroup) *workerHandle {
	log := d.log.With("site", spec.SiteID, "destination", spec.ID, "type", spec.Type)
	log.Warn("destination removed from the configuration; what is still queued for it goes to its dead letters (reason unknown_destination)")
	return &workerHandle{spec: spec, drain: true, cancel: d.launch(ctx, newWorker(d, spec, nil, log), wg)}
}

func (d *Dispatcher) launch(ctx context.Context, w *worker, wg *sync.WaitGroup) context.CancelFunc {
	wctx, cancel := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(wctx)
	}()
	return cancel
}

// sameDestination reports whether a running worker built for b still fits a.
func sameDestination(a, b model.Destination) bool {
	if a.SiteID != b.SiteID || a.Type != b.Type {
		return false
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a.Settings) != nil || json.Compact(&cb, b.Settings) != nil {
		return bytes.Equal(a.Settings, b.Settings)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
