package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/secrets"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// defaultReloadEvery is the safety-net period of Store.Run's full reload.
const defaultReloadEvery = 30 * time.Second

// Store keeps the configuration in Redis and an immutable snapshot of it in
// memory. Readers call Snapshot on every request without locking; Apply and
// the reloads of Run swap the snapshot atomically.
type Store struct {
	rdb          redis.UniversalClient
	log          *slog.Logger
	reloadEvery  time.Duration
	now          func() time.Time
	keyring      *secrets.Keyring
	secretFields model.SecretFields
	validateDest func(model.Destination) error
	reuseDelay   time.Duration // purge.go
	tombstoneCAS *redis.Script

	localMu      sync.Mutex
	localSecrets map[string]map[string]string // destination id → setting → clear secret

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

// WithKeyring encrypts destination secrets at rest with k (AES-GCM under
// TAGWAY_SECRET_KEY). Without one, secrets from the operator's config file
// stay in process memory and the admin API refuses new ones.
func WithKeyring(k *secrets.Keyring) StoreOption { return func(s *Store) { s.keyring = k } }

// WithSecretFields names the secret settings of each destination type (see
// model.SecretFields; naming conventions apply on top).
func WithSecretFields(f model.SecretFields) StoreOption {
	return func(s *Store) { s.secretFields = f }
}

// WithDestinationValidator checks every created or changed destination's
// settings (main passes the adapter factory's strict decoding).
func WithDestinationValidator(v func(model.Destination) error) StoreOption {
	return func(s *Store) { s.validateDest = v }
}

// WithClock sets the clock of audit entries and ingest-key expiry.
func WithClock(now func() time.Time) StoreOption {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// HasKeyring reports whether secrets are encrypted into Redis.
func (s *Store) HasKeyring() bool { return s.keyring != nil }

// SecretFields returns the registry of secret settings.
func (s *Store) SecretFields() model.SecretFields { return s.secretFields }

// NewStore returns a Store holding an empty configuration; call Load to read
// the stored one. A nil logger discards logs.
func NewStore(rdb redis.UniversalClient, logger *slog.Logger, opts ...StoreOption) *Store {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{rdb: rdb, log: logger, reloadEvery: defaultReloadEvery, changed: make(chan struct{}),
		now: time.Now, localSecrets: map[string]map[string]string{}, reuseDelay: DefaultSiteReuseDelay,
		tombstoneCAS: redis.NewScript(tombstoneCAS)}
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

// Apply makes cfg the configuration of tenants, sites, destinations and
// routes everywhere (API keys are kept): what is not in cfg is deleted. It
// is Update with the actor "config": it refuses an invalid result whole,
// creates the consumer groups of new destinations before storing them (a
// group created with "$" after events were accepted would skip them), and
// announces the new version. Secrets in cfg are kept in process memory when
// no keyring is set.
func (s *Store) Apply(ctx context.Context, cfg model.Config) error {
	_, err := s.Update(ctx, Actor{ID: "config"}, UpdateOptions{LocalSecrets: true}, func(st *State) error {
		st.Config = cfg
		return nil
	})
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	return nil
}

// Load reads the stored configuration into the snapshot. An absent config is
// the empty one. A stored config that does not validate is an error and the
// current snapshot is kept.
func (s *Store) Load(ctx context.Context) error {
	v, err := s.rdb.HGet(ctx, routing.ConfigKey, "version").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("routing: load config: %w", err)
	}
	if v != "" && v == strconv.FormatInt(s.Version(), 10) {
		return nil
	}
	st, err := s.Read(ctx)
	if err != nil {
		return err
	}
	version := st.version
	if version == s.Version() {
		return nil
	}
	snap, err := model.NewSnapshotAt(st.Config, s.now)
	if err != nil {
		return fmt.Errorf("routing: stored config (version %d) is invalid: %w", version, err)
	}
	if s.swap(&storeState{snap: snap, version: version}, func(cur *storeState) bool { return version != cur.version }) {
		s.log.Info("config loaded", "version", version)
		if err := st.Config.ValidateClaims(func(string) bool { return true }); err != nil {
			s.log.Warn("the stored configuration holds claims refused for new changes (public-suffix or IP domains on tenants' sites, shared ingest keys); fix them",
				"problems", err.Error())
		}
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
// routing.ConfigChannel announces a version and, as a safety net for
// messages lost while disconnected, every reload period. Reload failures
// are logged and the current snapshot kept. It returns nil when ctx is
// done.
func (s *Store) Run(ctx context.Context) error {
	sub := s.rdb.Subscribe(ctx, routing.ConfigChannel)
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
			if _, err := s.FinishPurges(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("erasing deleted sites failed; tried again at the next reload", "err", err)
			}
		}
	}
}

func (s *Store) reload(ctx context.Context) {
	if err := s.Load(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("config reload failed; keeping the current config", "version", s.Version(), "err", err)
	}
}

// Key returns the stored API key with this id, read from Redis (not the
// snapshot) so a deleted key stops working at once.
func (s *Store) Key(ctx context.Context, id string) (model.APIKey, bool, error) {
	raw, err := s.rdb.HGet(ctx, routing.ConfigKey, field(KindKey, id)).Result()
	if errors.Is(err, redis.Nil) {
		return model.APIKey{}, false, nil
	}
	if err != nil {
		return model.APIKey{}, false, err
	}
	var k model.APIKey
	if err := strictJSON(raw, &k); err != nil {
		return model.APIKey{}, false, fmt.Errorf("routing: stored key %q does not decode: %w", id, err)
	}
	return k, true, nil
}
