package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"fmt"
	"strconv"
	"strings"
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
}

// IdentityStore keeps, per visitor, the hashed identifiers (em, ph,
// external_id...) seen in any of the visitor's events, and adds them to
// later events that lack them: an AddToCart on the page after a login gets
// the e-mail the login identified, raising Meta's match quality as Meta
// recommends. Only SHA-256 digests are stored (values that are not digests
// are skipped), under a hashed visitor key, with a TTL. The caller decides
// consent: it must not pass events without marketing consent.
//
// It is safe for concurrent use.
type IdentityStore struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewIdentityStore returns an IdentityStore on rdb.
func NewIdentityStore(rdb redis.UniversalClient, opts IdentityOptions) *IdentityStore {
	if opts.TTL <= 0 {
		opts.TTL = DefaultIdentityTTL
	}
	return &IdentityStore{rdb: rdb, ttl: opts.TTL}
}

// Enrich remembers, for each visitor key of visitors, the hashed
// identifiers its user data hold, and fills in each user data the fields it
// lacks from what is known of that visitor (earlier requests included).
// Within a visitor's own user data, the last one holding a field wins. All
// visitors go in one pipelined round trip to Redis; on error the user data
// are left as they were.
func (s *IdentityStore) Enrich(ctx context.Context, siteID string, visitors map[string][]*destinations.UserData) error {
	if len(visitors) == 0 {
		return nil
	}
	keys := make([]string, 0, len(visitors))
	for k := range visitors {
		keys = append(keys, k)
	}
	ttl := strconv.FormatInt(int64(s.ttl/time.Second), 10)
	run := func(load bool) ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			args := append([]any{ttl}, remembered(visitors[k])...)
			if load {
				cmds[i] = identityScript.Eval(ctx, pipe, []string{IdentityKey(siteID, k)}, args...)
			} else {
				cmds[i] = identityScript.EvalSha(ctx, pipe, []string{IdentityKey(siteID, k)}, args...)
			}
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run(false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// First use on this server: send the script itself (Redis caches it).
		cmds, err = run(true)
	}
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	for i, k := range keys {
		known, err := cmds[i].StringSlice()
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
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
