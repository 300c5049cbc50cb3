package config

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// siteKeys writes a key of every kind a site has, plus one a later
// feature might add, under site's hash tag; and one key of another site.
func siteKeys(t *testing.T, rdb redis.UniversalClient, site string) []string {
	t.Helper()
	ctx := context.Background()
	keys := []string{routing.StreamKey(site), routing.RetryKey(site, "d1"), routing.DeadKey(site, "d1"), routing.IdentityKey(site, "fb.1.1.1"),
		routing.TestResultsKey(site, "r1"), routing.CircuitKey(site, "d1"), routing.MarkerKey(site, "w1"), "tw:{" + site + "}:orders:1001"}
	for _, k := range keys {
		if err := rdb.Set(ctx, k+"-probe", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.DeadKey(site, "d1"), Values: []any{"event", `{"event_id":"old-owner"}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, routing.IdentityKey(site, "fb.1.1.1"), "em", "digest").Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func keysOf(t *testing.T, rdb redis.UniversalClient, site string) []string {
	t.Helper()
	var out []string
	if err := routing.ScanSite(context.Background(), rdb, site, routing.SiteKeyPattern(site), func(keys []string) error {
		out = append(out, keys...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func twoTenants() model.Config {
	return model.Config{
		Tenants: []model.Tenant{{ID: "ta"}, {ID: "tb"}},
		Sites: []model.Site{
			{ID: "sa", Tenant: "ta", Domains: []string{"a.example"}},
			{ID: "sb", Tenant: "tb", Domains: []string{"b.example"}},
		},
	}
}

func setSites(sites ...model.Site) func(*State) error {
	return func(st *State) error {
		st.Config.Sites = sites
		return nil
	}
}

// TestDeletedSiteLeavesNothing: deleting a site erases every key under its
// hash tag, at once and again once its id may be reused; only its former
// tenant takes the id back before then, and a re-created site starts with
// none of the old keys, on a single Redis and on a Cluster.
func TestDeletedSiteLeavesNothing(t *testing.T) {
	for name, rdb := range map[string]redis.UniversalClient{
		"single":  redistest.Start(t).Client(),
		"cluster": redistest.StartCluster(t).Client(),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			store := NewStore(rdb, nil, WithClock(clk.Now))
			if err := store.Apply(ctx, twoTenants()); err != nil {
				t.Fatal(err)
			}
			siteKeys(t, rdb, "sb")
			siteKeys(t, rdb, "sa")
			sa := twoTenants().Sites[0]
			sbOfA := model.Site{ID: "sb", Tenant: "ta", Domains: []string{"a2.example"}}
			sbOfB := twoTenants().Sites[1]

			// tb deletes its site: every key of sb goes, sa keeps its own.
			if _, err := store.Update(ctx, Actor{ID: "k", Tenant: "tb"}, UpdateOptions{}, setSites(sa)); err != nil {
				t.Fatal(err)
			}
			if left := keysOf(t, rdb, "sb"); len(left) != 0 {
				t.Fatalf("keys of the deleted site left: %v", left)
			}
			if len(keysOf(t, rdb, "sa")) == 0 {
				t.Fatal("the other site's keys were erased")
			}
			// Work in flight writes a straggler: another tenant cannot take
			// the id yet.
			siteKeys(t, rdb, "sb")
			_, err := store.Update(ctx, Actor{ID: "k", Tenant: "ta"}, UpdateOptions{}, setSites(sa, sbOfA))
			var unavailable *IDUnavailableError
			if !errors.As(err, &unavailable) || unavailable.ID != "sb" || unavailable.RetryAfter <= 0 || unavailable.RetryAfter > DefaultSiteReuseDelay {
				t.Fatalf("another tenant re-creating sb at once: %v", err)
			}
			// The final erase is not due yet.
			if n, err := store.FinishPurges(ctx); err != nil || n != 0 {
				t.Fatalf("FinishPurges before the delay: %d, %v", n, err)
			}
			clk.Advance(DefaultSiteReuseDelay)
			if n, err := store.FinishPurges(ctx); err != nil || n != 1 {
				t.Fatalf("FinishPurges after the delay: %d, %v", n, err)
			}
			if left := keysOf(t, rdb, "sb"); len(left) != 0 {
				t.Fatalf("the final erase left %v", left)
			}
			if n, _ := rdb.HExists(ctx, routing.ConfigKey, purgeField("sb")).Result(); n {
				t.Fatal("the tombstone stayed")
			}
			// Now ta takes the id, and starts with nothing.
			if _, err := store.Update(ctx, Actor{ID: "k", Tenant: "ta"}, UpdateOptions{}, setSites(sa, sbOfA)); err != nil {
				t.Fatal(err)
			}
			if left := keysOf(t, rdb, "sb"); len(left) != 0 {
				t.Fatalf("a re-created site inherited %v", left)
			}
			// The former tenant takes its id back at once (its own keys).
			if _, err := store.Update(ctx, Actor{ID: "k", Tenant: "ta"}, UpdateOptions{}, setSites(sa)); err != nil {
				t.Fatal(err)
			}
			siteKeys(t, rdb, "sb")
			if _, err := store.Update(ctx, Actor{ID: "root"}, UpdateOptions{}, setSites(sa, sbOfB)); !errors.As(err, &unavailable) {
				t.Fatalf("a third owner within the delay: %v", err)
			}
			if _, err := store.Update(ctx, Actor{ID: "k", Tenant: "ta"}, UpdateOptions{}, setSites(sa, sbOfA)); err != nil {
				t.Fatalf("the former tenant re-creating its site: %v", err)
			}
			if left := keysOf(t, rdb, "sb"); len(left) != 0 {
				t.Fatalf("re-created by its tenant, it kept %v", left)
			}
		})
	}
}
