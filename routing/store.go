package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing/model"
)

// defaultReloadEvery is the safety-net period of Store.Run's full reload.
const defaultReloadEvery = 30 * time.Second

// Store keeps the configuration in Redis and an immutable snapshot of it in
// memory. Readers call Snapshot on every request without locking; Apply and
// the reloads of Run swap the snapshot atomically.
type Store struct {
	rdb         redis.UniversalClient
	log         *slog.Logger
	reloadEvery time.Duration

	state atomic.Pointer[storeState]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every swap
}

// storeState pairs a snapshot with the config version it was read at.
type storeState struct {
	snap    *model.Snapshot
	version int64
}

// StoreOption changes a Store built by NewStore.
type StoreOption func(*Store)

// ReloadEvery sets the period of the full reload Run does as a safety net
// for missed pub/sub messages (default 30s).
func ReloadEvery(d time.Duration) StoreOption {
	return func(s *Store) {
		if d > 0 {
			s.reloadEvery = d
		}
	}
}

// NewStore returns a Store holding an empty configuration; call Load to read
// the stored one. A nil logger discards logs.
func NewStore(rdb redis.UniversalClient, logger *slog.Logger, opts ...StoreOption) *Store {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{rdb: rdb, log: logger, reloadEvery: defaultReloadEvery, changed: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	empty, err := model.NewSnapshot(model.Config{})
	if err != nil {
		panic("routing: the empty configuration does not validate: " + err.Error())
	}
	s.state.Store(&storeState{snap: empty})
	return s
}

// Snapshot returns the current configuration. It is never nil.
func (s *Store) Snapshot() *model.Snapshot { return s.state.Load().snap }

// Version returns the version of the current snapshot (0 before any config
// was stored).
func (s *Store) Version() int64 { return s.state.Load().version }

// Changed returns a channel that is closed at the next snapshot swap.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Apply validates cfg and makes it the configuration everywhere: it creates
// the consumer group of every destination on its site stream, stores the
// normalized config with a new version (MULTI/EXEC), announces the version on
// ConfigChannel and swaps the local snapshot. An invalid config is refused
// whole and changes nothing.
//
// Groups are created before the config is stored so that no replica can
// accept events for a new destination before its group exists: a group
// created with "$" would skip them.
func (s *Store) Apply(ctx context.Context, cfg model.Config) error {
	snap, err := model.NewSnapshot(cfg)
	if err != nil {
		return fmt.Errorf("routing: invalid config: %w", err)
	}
	data, err := json.Marshal(snap.Config())
	if err != nil {
		return fmt.Errorf("routing: encode config: %w", err)
	}
	for _, d := range snap.Config().Destinations {
		if err := ensureGroup(ctx, s.rdb, d.SiteID, d.ID); err != nil {
			return err
		}
	}
	var incr *redis.IntCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.HIncrBy(ctx, ConfigKey, "version", 1)
		p.HSet(ctx, ConfigKey, "json", data)
		return nil
	})
	if err != nil {
		return fmt.Errorf("routing: store config: %w", err)
	}
	version := incr.Val()
	if err := s.rdb.Publish(ctx, ConfigChannel, strconv.FormatInt(version, 10)).Err(); err != nil {
		// Stored but not announced: other replicas catch up on their
		// periodic reload.
		s.log.Warn("config stored but not announced; replicas pick it up on their next reload",
			"version", version, "err", err)
	}
	s.swap(&storeState{snap: snap, version: version}, func(cur *storeState) bool { return version > cur.version })
	s.log.Info("config applied", "version", version, "sites", len(snap.Config().Sites),
		"destinations", len(snap.Config().Destinations), "routes", len(snap.Config().Routes))
	return nil
}

// Load reads the stored configuration into the snapshot. An absent config is
// the empty one. A stored config that does not validate is an error and the
// current snapshot is kept.
func (s *Store) Load(ctx context.Context) error {
	vals, err := s.rdb.HMGet(ctx, ConfigKey, "json", "version").Result()
	if err != nil {
		return fmt.Errorf("routing: load config: %w", err)
	}
	var cfg model.Config
	var version int64
	if raw, ok := vals[0].(string); ok {
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return fmt.Errorf("routing: decode stored config: %w", err)
		}
	}
	if v, ok := vals[1].(string); ok {
		if version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("routing: stored config version %q: %w", v, err)
		}
	}
	if version == s.Version() {
		return nil
	}
	snap, err := model.NewSnapshot(cfg)
	if err != nil {
		return fmt.Errorf("routing: stored config (version %d) is invalid: %w", version, err)
	}
	if s.swap(&storeState{snap: snap, version: version}, func(cur *storeState) bool { return version != cur.version }) {
		s.log.Info("config loaded", "version", version)
	}
	return nil
}

// swap installs next when replace(current) holds, and wakes Changed waiters.
func (s *Store) swap(next *storeState, replace func(cur *storeState) bool) bool {
	for {
		cur := s.state.Load()
		if !replace(cur) {
			return false
		}
		if s.state.CompareAndSwap(cur, next) {
			break
		}
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return true
}

// Run keeps the snapshot current until ctx is done: it reloads when
// ConfigChannel announces a version and, as a safety net for messages lost
// while disconnected, every reload period. Reload failures are logged and the
// current snapshot kept. It returns nil when ctx is done.
func (s *Store) Run(ctx context.Context) error {
	sub := s.rdb.Subscribe(ctx, ConfigChannel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("config subscription not confirmed; relying on periodic reloads until it is", "err", err)
	}
	msgs := sub.Channel()
	// A change applied before the subscription was active is caught here.
	s.reload(ctx)
	tick := time.NewTicker(s.reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-msgs:
			if !ok {
				return nil
			}
			s.reload(ctx)
		case <-tick.C:
			s.reload(ctx)
		}
	}
}

func (s *Store) reload(ctx context.Context) {
	if err := s.Load(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("config reload failed; keeping the current config", "version", s.Version(), "err", err)
	}
}

// ensureGroup creates the consumer group of destination destID on the stream
// of siteID, starting at the stream's end; an existing group is left alone.
func ensureGroup(ctx context.Context, rdb redis.UniversalClient, siteID, destID string) error {
	err := rdb.XGroupCreateMkStream(ctx, StreamKey(siteID), destID, "$").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("routing: create consumer group %q on site %q: %w", destID, siteID, err)
	}
	return nil
}

// errNoGroup reports whether err is Redis's NOGROUP (the stream or group is
// missing).
func errNoGroup(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOGROUP") }
