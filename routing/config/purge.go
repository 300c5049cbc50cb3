package config

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
)

// DefaultSiteReuseDelay is how long a deleted site's id stays reserved for
// its former tenant: longer than the config takes to reach every replica
// (pub/sub, or the 30s reload) plus a delivery round in flight (bounded by
// the 30s visibility timeout).
const DefaultSiteReuseDelay = 2 * time.Minute

// purgeLease is how long a replica erasing a deleted site's keys holds its
// tombstone before another may take the work over.
const purgeLease = 5 * time.Minute

const purgeFieldPrefix = "purge:"

func purgeField(siteID string) string { return purgeFieldPrefix + siteID }

// tombstone is the stored mark of a deleted site, the field purge:<site>
// of routing.ConfigKey: work in flight when the site was deleted may write
// a few keys after the first erase, so until the reuse delay has passed
// only the site's former tenant may take the id again; then one replica
// erases the keys a second time (FinishPurges) and removes the tombstone.
type tombstone struct {
	Tenant    string `json:"tenant"`
	DeletedAt int64  `json:"deleted_at"`           // Unix ms
	PurgingAt int64  `json:"purging_at,omitempty"` // Unix ms: a replica is erasing the keys
}

func (t tombstone) encode() string {
	b, _ := json.Marshal(t)
	return string(b)
}

func decodeTombstone(raw string) (tombstone, bool) {
	var t tombstone
	return t, json.Unmarshal([]byte(raw), &t) == nil && t.DeletedAt > 0
}

// IDUnavailableError refuses to create a site whose id another tenant's
// site had until moments ago: its last keys may still be being written and
// erased. The id is free again after RetryAfter.
type IDUnavailableError struct {
	ID         string
	RetryAfter time.Duration
}

func (e *IDUnavailableError) Error() string {
	return fmt.Sprintf("the site id %q was deleted moments ago and is not free yet; retry in %s or choose another id",
		e.ID, e.RetryAfter.Round(time.Second))
}

// WithSiteReuseDelay sets how long a deleted site's id stays reserved for
// its former tenant (default DefaultSiteReuseDelay; negative: none).
func WithSiteReuseDelay(d time.Duration) StoreOption {
	return func(s *Store) {
		if d != 0 {
			s.reuseDelay = max(d, 0)
		}
	}
}

// PurgeSite erases every key of a site (routing.SiteKeyPattern), whatever
// feature wrote it, and returns how many there were.
func PurgeSite(ctx context.Context, rdb redis.UniversalClient, siteID string) (int, error) {
	n := 0
	err := routing.ScanSite(ctx, rdb, siteID, routing.SiteKeyPattern(siteID), func(keys []string) error {
		// One slot: a single UNLINK also works on a Cluster.
		d, err := rdb.Unlink(ctx, keys...).Result()
		n += int(d)
		if err != nil {
			return fmt.Errorf("routing: erase the keys of site %q: %w", siteID, err)
		}
		return nil
	})
	return n, err
}

// reuseOf decides, for the sites an update creates, whether their ids are
// free: it returns the ids whose former keys are to be erased before the
// update is stored (those with a tombstone), or an *IDUnavailableError.
func (s *Store) reuseOf(cur *State, next *State, changes []Change) ([]string, error) {
	var out []string
	now := s.now().UnixMilli()
	for _, c := range changes {
		if c.Kind != KindSite || c.Op != "create" {
			continue
		}
		raw, ok := cur.raw[purgeField(c.ID)]
		if !ok {
			continue
		}
		t, ok := decodeTombstone(raw)
		tenant := ""
		for _, site := range next.Config.Sites {
			if site.ID == c.ID {
				tenant = site.Tenant
			}
		}
		switch {
		case ok && t.PurgingAt > 0 && now-t.PurgingAt < purgeLease.Milliseconds():
			return nil, &IDUnavailableError{ID: c.ID, RetryAfter: 10 * time.Second}
		case !ok || t.Tenant == tenant || now >= t.DeletedAt+s.reuseDelay.Milliseconds():
			out = append(out, c.ID)
		default:
			return nil, &IDUnavailableError{ID: c.ID, RetryAfter: time.Duration(t.DeletedAt+s.reuseDelay.Milliseconds()-now) * time.Millisecond}
		}
	}
	return out, nil
}

// purgeDeleted erases the keys of sites an update deleted, at once; what
// fails, or is written later by work in flight, the final purge erases
// (FinishPurges).
func (s *Store) purgeDeleted(ctx context.Context, ids []string) {
	for _, id := range ids {
		n, err := PurgeSite(ctx, s.rdb, id)
		if err != nil {
			s.log.Warn("deleted site: its keys could not all be erased now; a replica erases them later", "site", id, "err", err)
			continue
		}
		s.log.Info("deleted site: its keys were erased", "site", id, "keys", n)
	}
}

// tombstoneCAS replaces field ARGV[1] of KEYS[1] by ARGV[3] (or deletes it
// when ARGV[3] is empty) if it still holds ARGV[2].
const tombstoneCAS = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`

// FinishPurges does the final erase of every deleted site whose reuse
// delay has passed, and removes its tombstone; Run calls it at every
// periodic reload. One replica does each site: it marks the tombstone
// first (a replica that dies meanwhile leaves it to another after
// purgeLease). It returns how many sites it finished.
func (s *Store) FinishPurges(ctx context.Context) (int, error) {
	fields := map[string]string{}
	iter := s.rdb.HScan(ctx, routing.ConfigKey, 0, purgeFieldPrefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		f := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		fields[f] = iter.Val()
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("routing: read tombstones: %w", err)
	}
	done := 0
	for f, raw := range fields {
		id, ok := strings.CutPrefix(f, purgeFieldPrefix)
		if !ok || id == "" {
			continue
		}
		t, ok := decodeTombstone(raw)
		now := s.now().UnixMilli()
		if ok && (now < t.DeletedAt+s.reuseDelay.Milliseconds() || (t.PurgingAt > 0 && now-t.PurgingAt < purgeLease.Milliseconds())) {
			continue
		}
		t.PurgingAt = now
		mark := t.encode()
		if won, err := s.tombstoneCAS.Run(ctx, s.rdb, []string{routing.ConfigKey}, f, raw, mark).Int(); err != nil || won == 0 {
			continue
		}
		// A tombstone goes when its id is taken again; should a site hold
		// the id anyway, its keys are its own.
		if exists, err := s.rdb.HExists(ctx, routing.ConfigKey, field(KindSite, id)).Result(); err == nil && !exists {
			n, err := PurgeSite(ctx, s.rdb, id)
			if err != nil {
				s.log.Warn("deleted site: the final erase failed; it is tried again later", "site", id, "err", err)
				continue
			}
			s.log.Info("deleted site: final erase done; its id is free", "site", id, "keys", n)
		}
		if err := s.tombstoneCAS.Run(ctx, s.rdb, []string{routing.ConfigKey}, f, mark, "").Err(); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}
