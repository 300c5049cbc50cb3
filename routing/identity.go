package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

// DefaultIdentityTTL is how long a visitor's hashed identifiers are kept
// after the visitor was last seen: 30 days, long enough to cover a
// consideration window (Meta attributes clicks for 7 days, views for 1) and
// short enough that a shared device soon forgets its last shopper.
const DefaultIdentityTTL = 30 * 24 * time.Hour

// identityFields are the user_data keys an IdentityStore keeps: the hashed
// customer-information parameters, and nothing else.
var identityFields = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// IdentityKey is the Redis hash holding the hashed identifiers of one
// visitor of a site. The visitor key (an _fbp value, a visitor seed) is
// itself SHA-256 hashed, so no first-party id appears in Redis either.
func IdentityKey(siteID, visitorKey string) string {
	sum := sha256.Sum256([]byte(visitorKey))
	return "tw:{" + siteID + "}:id:" + hex.EncodeToString(sum[:])
}

// identityScript remembers the identifiers given (ARGV[2..] as field,
// value pairs; a field's new value replaces the old), refreshes the TTL
// (ARGV[1] seconds) and returns everything known, in one round trip.
var identityScript = redis.NewScript(`
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
local all = redis.call('HGETALL', KEYS[1])
if #all > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return all
`)

// IdentityOptions configure an IdentityStore.
type IdentityOptions struct {
	// TTL is how long identifiers live after the visitor's last request;
	// default DefaultIdentityTTL.
	TTL time.Duration
	// Timeout bounds one pipelined round trip (default 2s).
	Timeout time.Duration
}

// Bounds of the identity store's group commit.
const (
	// identityMaxInFlight is how many pipelines may be in flight at once.
	identityMaxInFlight = 2
	// identityMaxBatch is the most Enrich calls one pipeline carries.
	identityMaxBatch = 256
)

// IdentityStore keeps, per visitor, the hashed identifiers (em, ph,
// external_id...) seen in any of the visitor's events, and adds them to
// later events that lack them: an AddToCart on the page after a login gets
// the e-mail the login identified, raising Meta's match quality as Meta
// recommends. Only SHA-256 digests are stored (values that are not digests
// are skipped), under a hashed visitor key, with a TTL. The caller decides
// consent: it must not pass events without marketing consent.
//
// Concurrent Enrich calls are group-committed: the calls that arrive while
// a round trip is in flight go to Redis together in the next pipeline, so
// a busy gateway pays one round trip for many requests, not one each.
//
// It is safe for concurrent use.
type IdentityStore struct {
	rdb     redis.UniversalClient
	ttl     string // seconds
	timeout time.Duration

	mu       sync.Mutex
	pending  []*identityReq
	inFlight int
}

// identityReq is one Enrich call waiting for its pipeline: one script call
// per visitor key, and their answers once done is closed.
type identityReq struct {
	keys  []string
	args  [][]any
	known [][]string
	err   error
	done  chan struct{}
}

// NewIdentityStore returns an IdentityStore on rdb.
func NewIdentityStore(rdb redis.UniversalClient, opts IdentityOptions) *IdentityStore {
	if opts.TTL <= 0 {
		opts.TTL = DefaultIdentityTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &IdentityStore{rdb: rdb, ttl: strconv.FormatInt(int64(opts.TTL/time.Second), 10), timeout: opts.Timeout}
}

// Enrich remembers, for each visitor key of visitors, the hashed
// identifiers its user data hold, and fills in each user data the fields it
// lacks from what is known of that visitor (earlier requests included).
// Within a visitor's own user data, the last one holding a field wins. Each
// visitor is one atomic script call; the calls of concurrent Enrich calls
// share pipelined round trips to Redis. On error (or when ctx ends first)
// the user data are left as they were.
func (s *IdentityStore) Enrich(ctx context.Context, siteID string, visitors map[string][]*destinations.UserData) error {
	if len(visitors) == 0 {
		return nil
	}
	r := &identityReq{keys: make([]string, 0, len(visitors)), done: make(chan struct{})}
	order := make([]string, 0, len(visitors))
	for k := range visitors {
		order = append(order, k)
		r.keys = append(r.keys, IdentityKey(siteID, k))
		r.args = append(r.args, append([]any{s.ttl}, remembered(visitors[k])...))
	}
	s.submit(r)
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("identity: %w", ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("identity: %w", r.err)
	}
	for i, k := range order {
		known := r.known[i]
		for j := 0; j+1 < len(known); j += 2 {
			values := strings.Split(known[j+1], ",")
			for _, ud := range visitors[k] {
				if slot := identitySlot(ud, known[j]); slot != nil && len(*slot) == 0 {
					*slot = append([]string(nil), values...)
				}
			}
		}
	}
	return nil
}

// submit queues r and, when a pipeline may start now, runs one on the
// caller's goroutine (no hand-off when the store is idle). Calls that
// arrived meanwhile are run by a goroutine that keeps going while any are
// waiting.
func (s *IdentityStore) submit(r *identityReq) {
	s.mu.Lock()
	s.pending = append(s.pending, r)
	if s.inFlight >= identityMaxInFlight {
		s.mu.Unlock() // a running pipeline takes it when it ends
		return
	}
	s.inFlight++
	batch := s.takeLocked()
	s.mu.Unlock()
	s.run(batch)
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.inFlight--
		s.mu.Unlock()
		return
	}
	batch = s.takeLocked()
	s.mu.Unlock()
	go func() {
		for batch != nil {
			s.run(batch)
			s.mu.Lock()
			batch = nil
			if len(s.pending) > 0 {
				batch = s.takeLocked()
			} else {
				s.inFlight--
			}
			s.mu.Unlock()
		}
	}()
}

func (s *IdentityStore) takeLocked() []*identityReq {
	n := min(len(s.pending), identityMaxBatch)
	batch := make([]*identityReq, n)
	copy(batch, s.pending)
	rest := copy(s.pending, s.pending[n:])
	clear(s.pending[rest:])
	s.pending = s.pending[:rest]
	return batch
}

// run sends the script calls of batch in one pipeline (the script itself
// on first use of a server, which then caches it) and answers every call.
func (s *IdentityStore) run(batch []*identityReq) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var cmds []*redis.Cmd
	pipe := s.rdb.Pipeline()
	for _, r := range batch {
		for i, key := range r.keys {
			cmds = append(cmds, identityScript.EvalSha(ctx, pipe, []string{key}, r.args[i]...))
		}
	}
	_, _ = pipe.Exec(ctx)
	var missing []int
	for i, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			missing = append(missing, i) // not run: send the script itself
		}
	}
	if len(missing) > 0 {
		pipe := s.rdb.Pipeline()
		n := 0
		for _, r := range batch {
			for i, key := range r.keys {
				if len(missing) > 0 && missing[0] == n {
					cmds[n] = identityScript.Eval(ctx, pipe, []string{key}, r.args[i]...)
					missing = missing[1:]
				}
				n++
			}
		}
		_, _ = pipe.Exec(ctx)
	}
	n := 0
	for _, r := range batch {
		r.known = make([][]string, len(r.keys))
		for i := range r.keys {
			known, err := cmds[n].StringSlice()
			n++
			if err != nil && r.err == nil {
				r.err = err
			}
			r.known[i] = known
		}
		close(r.done)
	}
}

// remembered returns the field, value pairs to store for one visitor: per
// field, the digests of the last user data that holds it, comma-joined.
func remembered(uds []*destinations.UserData) []any {
	var out []any
	for _, f := range identityFields {
		for i := len(uds) - 1; i >= 0; i-- {
			slot := identitySlot(uds[i], f)
			if slot == nil || len(*slot) == 0 {
				continue
			}
			var digests []string
			for _, v := range *slot {
				if isDigest(v) {
					digests = append(digests, v)
				}
			}
			if len(digests) > 0 {
				out = append(out, f, strings.Join(digests, ","))
			}
			break
		}
	}
	return out
}

// isDigest reports whether v is a lowercase hex SHA-256 digest, optionally
// followed by Meta's parameter-builder appendix (".AQQCAQMC"); commas, which
// would break the stored list, cannot occur in either.
func isDigest(v string) bool {
	if len(v) < 64 || len(v) > 64+17 || (len(v) > 64 && v[64] != '.') {
		return false
	}
	for i := 0; i < 64; i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return !strings.ContainsAny(v[64:], ", ")
}

// identitySlot returns the field of u holding the hashed key f.
func identitySlot(u *destinations.UserData, f string) *[]string {
	switch f {
	case "em":
		return &u.Em
	case "ph":
		return &u.Ph
	case "fn":
		return &u.Fn
	case "ln":
		return &u.Ln
	case "ge":
		return &u.Ge
	case "db":
		return &u.Db
	case "ct":
		return &u.Ct
	case "st":
		return &u.St
	case "zp":
		return &u.Zp
	case "country":
		return &u.Country
	case "external_id":
		return &u.ExternalID
	}
	return nil
}
