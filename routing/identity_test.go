package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestIdentityStoreEnrich(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	const fbp = "fb.1.1732752000000.482913756104"
	em, ph, ext := digest("jane@example.com"), digest("16505551212"), digest("cust-9")

	// Request 1 (identify): em, ph and an external id, plus a raw value that
	// must never be stored.
	login := &destinations.UserData{Em: []string{em}, Ph: []string{ph, "+1 650 555 1212"}, Fbp: fbp}
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{fbp: {login}}); err != nil {
		t.Fatal(err)
	}
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{fbp: {{ExternalID: []string{ext}}}}); err != nil {
		t.Fatal(err)
	}

	// Request 2: an AddToCart with no identifiers, and one with its own em.
	cart := &destinations.UserData{Fbp: fbp, ClientUserAgent: "UA"}
	own := &destinations.UserData{Em: []string{digest("other@example.com")}}
	other := &destinations.UserData{Fbp: "fb.1.1.999"}
	err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{fbp: {cart, own}, "fb.1.1.999": {other}})
	if err != nil {
		t.Fatal(err)
	}
	// The cart gets ph and external_id from earlier requests, and em from
	// its sibling event of this request (the newest identity of the visitor).
	if !slices.Equal(cart.Em, own.Em) || !slices.Equal(cart.Ph, []string{ph}) || !slices.Equal(cart.ExternalID, []string{ext}) {
		t.Errorf("cart not enriched: %+v", cart)
	}
	if cart.ClientUserAgent != "UA" || len(cart.Fn) != 0 {
		t.Errorf("cart changed beyond the known fields: %+v", cart)
	}
	if !slices.Equal(own.Em, []string{digest("other@example.com")}) || !slices.Equal(own.Ph, []string{ph}) {
		t.Errorf("an event's own em must win; missing fields filled: %+v", own)
	}
	if len(other.Em)+len(other.Ph)+len(other.ExternalID) != 0 {
		t.Errorf("another visitor got this visitor's identity: %+v", other)
	}
	// The same visitor on another site is another visitor.
	foreign := &destinations.UserData{}
	if err := store.Enrich(ctx, "elsewhere", map[string][]*destinations.UserData{fbp: {foreign}}); err != nil || len(foreign.Em) != 0 {
		t.Errorf("identity leaked across sites: %+v %v", foreign, err)
	}

	// In Redis: one hashed key per visitor, only digests, with a TTL.
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if strings.Contains(k, fbp) || strings.Contains(k, "482913756104") {
			t.Errorf("key %q holds the raw visitor id", k)
		}
	}
	key := IdentityKey("shop", fbp)
	if !strings.HasPrefix(key, "tw:{shop}:id:") {
		t.Errorf("key %q lacks the site hash tag", key)
	}
	stored, _ := rdb.HGetAll(ctx, key).Result()
	for f, v := range stored {
		for _, d := range strings.Split(v, ",") {
			if len(d) != 64 || strings.Trim(d, "0123456789abcdef") != "" {
				t.Errorf("stored %s=%q is not a digest", f, v)
			}
		}
	}
	if stored["ph"] != ph {
		t.Errorf("ph stored as %q; the raw phone must be skipped", stored["ph"])
	}
	if ttl, _ := rdb.TTL(ctx, key).Result(); ttl < DefaultIdentityTTL-time.Minute || ttl > DefaultIdentityTTL {
		t.Errorf("TTL %s; want %s", ttl, DefaultIdentityTTL)
	}

	// A newer identify replaces the field; the script survives a flush.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	newEm := digest("jane.new@example.com")
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{fbp: {{Em: []string{newEm}}}}); err != nil {
		t.Fatal(err)
	}
	later := &destinations.UserData{}
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{fbp: {later}}); err != nil || !slices.Equal(later.Em, []string{newEm}) {
		t.Errorf("later em %v, %v; want the newest", later.Em, err)
	}
}

func TestIdentityStoreTTL(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{TTL: time.Hour})
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{"v": {{Em: []string{digest("a@b.co")}}}}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.TTL(ctx, IdentityKey("shop", "v")).Result(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL %s; want at most 1h", ttl)
	}
	// Nothing known and nothing to remember: no key is created.
	if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{"w": {{ClientUserAgent: "UA"}}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, IdentityKey("shop", "w")).Result(); n != 0 {
		t.Error("an empty identity was stored")
	}
}

// BenchmarkIdentityEnrich measures one request's round trip (one visitor,
// two events) on a real Redis.
func BenchmarkIdentityEnrich(b *testing.B) {
	rs := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	em := digest("jane@example.com")
	b.ReportAllocs()
	for b.Loop() {
		uds := []*destinations.UserData{{Em: []string{em}}, {}}
		if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{"fb.1.1.2": uds}); err != nil {
			b.Fatal(err)
		}
	}
}

// pipelineCounter counts the pipelines a client sends.
type pipelineCounter struct{ n atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// Concurrent Enrich calls share pipelines, and each still gets its own
// visitor's identity (and only that).
func TestIdentityStoreGroupCommit(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 4})
	defer rdb.Close()
	counter := &pipelineCounter{}
	rdb.AddHook(counter)
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	const visitors = 200
	visitor := func(i int) string { return "fb.1.1." + strconv.Itoa(i) }
	for i := range visitors { // remember one e-mail per visitor
		if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{
			visitor(i): {{Em: []string{digest(strconv.Itoa(i))}}}}); err != nil {
			t.Fatal(err)
		}
	}
	counter.n.Store(0)
	var wg sync.WaitGroup
	got := make([]*destinations.UserData, visitors)
	start := make(chan struct{})
	for i := range visitors {
		got[i] = &destinations.UserData{}
		wg.Go(func() {
			<-start
			if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{visitor(i): {got[i]}}); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, ud := range got {
		if !slices.Equal(ud.Em, []string{digest(strconv.Itoa(i))}) {
			t.Fatalf("visitor %d got em %v", i, ud.Em)
		}
	}
	if n := counter.n.Load(); n >= visitors {
		t.Errorf("%d concurrent calls took %d pipelines; want them shared", visitors, n)
	} else {
		t.Logf("%d concurrent calls in %d pipelines", visitors, n)
	}
}

// BenchmarkIdentityEnrichParallel measures requests of 64 concurrent
// senders (distinct visitors), as a busy gateway makes them.
func BenchmarkIdentityEnrichParallel(b *testing.B) {
	rs := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 64})
	defer rdb.Close()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	em := digest("jane@example.com")
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			uds := []*destinations.UserData{{Em: []string{em}}, {}}
			key := "fb.1.1." + strconv.FormatInt(next.Add(1), 10)
			if err := store.Enrich(ctx, "shop", map[string][]*destinations.UserData{key: uds}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
