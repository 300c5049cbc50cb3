package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	randv2 "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
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
	// Now is the clock for event ages and due times (default time.Now).
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
	engine   *engineMetrics
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
	em, err := newEngineMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Dispatcher{
		rdb: rdb, store: store, registry: registry, deps: deps, opts: opts,
		log: log.With("consumer", opts.Consumer), metrics: m, engine: em,
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
// dead letters, unless their site was deleted too (its keys are erased:
// routing/purge.go).
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

// trimLoop trims site streams and refreshes the depth gauges every
// TrimInterval until ctx is done.
func (d *Dispatcher) trimLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.trimAll(ctx)
		}
	}
}

func (d *Dispatcher) trimAll(ctx context.Context) {
	snap := d.store.Snapshot()
	for _, site := range snap.Config().Sites {
		if _, err := d.trimSite(ctx, snap, site.ID); err != nil && ctx.Err() == nil {
			d.log.Warn("trim failed", "site", site.ID, "err", err)
		}
	}
	for _, dest := range snap.Config().Destinations {
		if n, err := d.rdb.ZCard(ctx, routing.RetryKey(dest.SiteID, dest.ID)).Result(); err == nil {
			d.metrics.retries.WithLabelValues(dest.ID).Set(float64(n))
		}
	}
}

// trimSite removes the entries of a site stream that every consumer group
// has finished: it trims to the smallest id any group still needs (its
// lowest pending id, or the entry after its last-delivered id when nothing
// is pending). Group positions only move forward, so an entry older than
// that bound can never be needed again. With no group at all, no
// destination needs any entry. It returns how many entries were removed.
func (d *Dispatcher) trimSite(ctx context.Context, snap *model.Snapshot, siteID string) (int64, error) {
	key := routing.StreamKey(siteID)
	groups, exists, err := streamGroups(ctx, d.rdb, key)
	if err != nil || !exists {
		return 0, err
	}
	var minID streamID
	have := false
	for _, g := range groups {
		need, err := parseStreamID(g.LastDeliveredID)
		if err != nil {
			return 0, err
		}
		need = need.next()
		if g.Pending > 0 {
			p, err := d.rdb.XPending(ctx, key, g.Name).Result()
			if err != nil {
				return 0, fmt.Errorf("xpending %s: %w", g.Name, err)
			}
			if p.Count > 0 {
				if need, err = parseStreamID(p.Lower); err != nil {
					return 0, err
				}
			}
		}
		if !have || need.less(minID) {
			minID, have = need, true
		}
		if dest, ok := snap.Destination(g.Name); !ok || dest.SiteID != siteID {
			if !d.warnedOrphans[key+" "+g.Name] {
				d.warnedOrphans[key+" "+g.Name] = true
				d.log.Warn("a consumer group whose destination is not configured holds back trimming until it is drained; if no dispatcher drains it, re-add the destination or delete the group (XGROUP DESTROY)",
					"site", siteID, "group", g.Name, "pending", g.Pending, "lag", g.Lag)
			}
		}
	}
	if !have {
		last, err := d.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil {
			return 0, fmt.Errorf("xrevrange: %w", err)
		}
		if len(last) == 0 {
			return 0, nil
		}
		if minID, err = parseStreamID(last[0].ID); err != nil {
			return 0, err
		}
		minID = minID.next()
	}
	n, err := d.rdb.XTrimMinID(ctx, key, minID.String()).Result()
	if err != nil {
		return 0, fmt.Errorf("xtrim: %w", err)
	}
	if depth, err := d.rdb.XLen(ctx, key).Result(); err == nil {
		d.metrics.depth.WithLabelValues(siteID).Set(float64(depth))
	}
	return n, nil
}

// streamGroups returns the consumer groups of the stream key, and whether
// the stream exists: XINFO GROUPS fails on a missing key, so EXISTS asks
// first, in the same MULTI/EXEC.
func streamGroups(ctx context.Context, rdb redis.UniversalClient, key string) ([]redis.XInfoGroup, bool, error) {
	var exists *redis.IntCmd
	var groups *redis.XInfoGroupsCmd
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		groups = p.XInfoGroups(ctx, key)
		return nil
	})
	if exists.Err() == nil && exists.Val() == 0 {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("xinfo groups: %w", err)
	}
	return groups.Val(), true, nil
}

// streamID is a parsed stream entry id.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, errors.New("routing: bad stream id " + strconv.Quote(s))
	}
	return streamID{ms, seq}, nil
}

func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}
