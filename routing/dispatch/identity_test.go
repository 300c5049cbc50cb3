package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
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
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// seen is an event of visitor fbp with marketing consent, received at ms.
func seen(fbp string, ms int64, ud destinations.UserData) *destinations.Event {
	ev := routingtest.Event("", "PageView")
	ud.Fbp = fbp
	ev.UserData = ud
	ev.Context.ReceivedAt = ms
	return &ev
}

// enrich runs one delivery round's enrichment of events (which stores
// their identifiers, then reads their visitors'); it fails the test on
// error.
func enrich(t testing.TB, store *IdentityStore, site string, events ...*destinations.Event) {
	t.Helper()
	if err := store.Enrich(context.Background(), site, events); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityStoreEnrich(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	const fbp = "fb.1.1732752000000.482913756104"
	em, ph, ext := digest("jane@example.com"), digest("16505551212"), digest("cust-9")

	// Round 1 (identify): em, ph and an external id, plus a raw value that
	// must never be stored.
	enrich(t, store, "shop",
		seen(fbp, 1000, destinations.UserData{Em: []string{em}, Ph: []string{ph, "+1 650 555 1212"}}),
		seen(fbp, 1001, destinations.UserData{ExternalID: []string{ext}}))

	// Round 2: an AddToCart with no identifiers, one with its own em, and
	// another visitor.
	cart := seen(fbp, 2000, destinations.UserData{ClientUserAgent: "UA"})
	own := seen(fbp, 2000, destinations.UserData{Em: []string{digest("other@example.com")}})
	other := seen("fb.1.1.999", 2000, destinations.UserData{})
	enrich(t, store, "shop", cart, own, other)
	// The cart gets ph and external_id from round 1, and em from its
	// sibling event (the newest identity of the visitor).
	if !slices.Equal(cart.UserData.Em, own.UserData.Em) || !slices.Equal(cart.UserData.Ph, []string{ph}) ||
		!slices.Equal(cart.UserData.ExternalID, []string{ext}) {
		t.Errorf("cart not enriched: %+v", cart.UserData)
	}
	if cart.UserData.ClientUserAgent != "UA" || len(cart.UserData.Fn) != 0 {
		t.Errorf("cart changed beyond the known fields: %+v", cart.UserData)
	}
	if !slices.Equal(own.UserData.Em, []string{digest("other@example.com")}) || !slices.Equal(own.UserData.Ph, []string{ph}) {
		t.Errorf("an event's own em must win; missing fields filled: %+v", own.UserData)
	}
	if u := other.UserData; len(u.Em)+len(u.Ph)+len(u.ExternalID) != 0 {
		t.Errorf("another visitor got this visitor's identity: %+v", u)
	}
	// The same visitor on another site is another visitor.
	foreign := seen(fbp, 3000, destinations.UserData{})
	enrich(t, store, "elsewhere", foreign)
	if len(foreign.UserData.Em) != 0 {
		t.Errorf("identity leaked across sites: %+v", foreign.UserData)
	}

	// In Redis: one hashed key per visitor, only digests, with a TTL.
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if strings.Contains(k, fbp) || strings.Contains(k, "482913756104") {
			t.Errorf("key %q holds the raw visitor id", k)
		}
	}
	key := routing.IdentityKey("shop", fbp)
	if !strings.HasPrefix(key, "tw:{shop}:id:") {
		t.Errorf("key %q lacks the site hash tag", key)
	}
	if matched, _ := rdb.Keys(ctx, routing.IdentityKeyPattern("shop")).Result(); !slices.Equal(matched, []string{key}) {
		t.Errorf("routing.IdentityKeyPattern matched %v; want [%s]", matched, key)
	}
	stored, _ := rdb.HGetAll(ctx, key).Result()
	for f, v := range stored {
		if !slices.Contains(identityFields[:], f) {
			t.Errorf("stored field %q is not an identifier", f)
		}
		for _, d := range strings.Split(v, ",") {
			if !isDigest(d) {
				t.Errorf("stored %s=%q is not a digest", f, v)
			}
		}
	}
	if stored["ph"] != ph {
		t.Errorf("ph stored as %q; the raw phone must be skipped", stored["ph"])
	}
	if stored["em"] != digest("other@example.com") {
		t.Errorf("em stored as %q; want round 2's", stored["em"])
	}
	if ttl, _ := rdb.TTL(ctx, key).Result(); ttl < DefaultIdentityTTL-time.Minute || ttl > DefaultIdentityTTL {
		t.Errorf("TTL %s; want %s", ttl, DefaultIdentityTTL)
	}
}

// Identifiers are stored in the order of rounds, and within a round in
// the order of its events: a visitor's newest value of a field wins,
// fields it does not restate are kept.
func TestIdentityStoreNewestWins(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	a, b, c := digest("a@example.com"), digest("b@example.com"), digest("c@example.com")
	ph := digest("16505551212")
	enrich(t, store, "shop", seen("v", 1, destinations.UserData{Em: []string{a}, Ph: []string{ph}}))
	enrich(t, store, "shop", seen("v", 2, destinations.UserData{Em: []string{b}}), seen("v", 3, destinations.UserData{Em: []string{c}}))
	got, _ := rdb.HGetAll(ctx, routing.IdentityKey("shop", "v")).Result()
	if len(got) != 2 || got["em"] != c || got["ph"] != ph {
		t.Errorf("stored %v; want em of the last event and the first call's ph", got)
	}
}

// Only events with marketing consent that are not anonymous take part, in
// either direction, keyed by _fbp, else the visitor id.
func TestIdentityStoreTakesPart(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	em := digest("jane@example.com")
	enrich(t, store, "shop", seen("fbp", 1, destinations.UserData{Em: []string{em}}))
	vid := routingtest.Event("", "Lead")
	vid.Context.VisitorID, vid.UserData.Em = "vid", []string{em}
	enrich(t, store, "shop", &vid)

	rows := []struct {
		name   string
		change func(*destinations.Event)
		takes  bool
	}{
		{"consented, by fbp", func(*destinations.Event) {}, true},
		{"by visitor id", func(ev *destinations.Event) { ev.UserData.Fbp, ev.Context.VisitorID = "", "vid" }, true},
		{"fbp before visitor id", func(ev *destinations.Event) { ev.Context.VisitorID = "vid-unknown" }, true},
		{"ad_user_data denied", func(ev *destinations.Event) { ev.Context.Consent.AdUserData = destinations.Denied }, false},
		{"ad_storage unstated", func(ev *destinations.Event) { ev.Context.Consent.AdStorage = "" }, false},
		{"anonymous", func(ev *destinations.Event) { ev.Context.Anonymous = true }, false},
		{"no visitor key", func(ev *destinations.Event) { ev.UserData.Fbp = "" }, false},
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			// Reading: does the event get the known em?
			ev := seen("fbp", 2, destinations.UserData{})
			r.change(ev)
			enrich(t, store, "shop", ev)
			if got := len(ev.UserData.Em) > 0; got != r.takes {
				t.Errorf("enriched %v; want %v", got, r.takes)
			}
			// Writing: is its own em remembered, under its key?
			visitor := "w" + strconv.Itoa(i)
			ev = seen("fbp", 2, destinations.UserData{Em: []string{em}})
			r.change(ev)
			if ev.UserData.Fbp != "" {
				ev.UserData.Fbp = visitor
			} else if ev.Context.VisitorID != "" {
				ev.Context.VisitorID = visitor
			}
			enrich(t, store, "shop", ev)
			n, _ := rdb.Exists(ctx, routing.IdentityKey("shop", visitor)).Result()
			if (n == 1) != r.takes {
				t.Errorf("stored %v; want %v", n == 1, r.takes)
			}
		})
	}
}

func TestIdentityStoreTTL(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{TTL: time.Hour})
	enrich(t, store, "shop", seen("v", 1, destinations.UserData{Em: []string{digest("a@b.co")}}))
	if ttl, _ := rdb.TTL(ctx, routing.IdentityKey("shop", "v")).Result(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL %s; want at most 1h", ttl)
	}
	// Nothing known and nothing to remember: no key is created.
	enrich(t, store, "shop", seen("w", 1, destinations.UserData{ClientUserAgent: "UA", Em: []string{"not a digest"}}))
	if n, _ := rdb.Exists(ctx, routing.IdentityKey("shop", "w")).Result(); n != 0 {
		t.Error("an empty identity was stored")
	}
}

// pipelineCounter counts the pipelines a client sends, but for connection
// handshakes (HELLO, CLIENT SETINFO), which go-redis sends as pipelines too.
type pipelineCounter struct{ n atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if name := cmds[0].Name(); name != "hello" && name != "client" {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// A round of many visitors is stored and read in one pipeline, and each
// visitor gets its own identity (and only that).
func TestIdentityStoreManyVisitorsOneRoundTrip(t *testing.T) {
	rdb := redistest.Start(t).Client()
	counter := &pipelineCounter{}
	rdb.AddHook(counter)
	store := NewIdentityStore(rdb, IdentityOptions{})
	const visitors = 450
	visitor := func(i int) string { return "fb.1.1." + strconv.Itoa(i) }
	var identify, later []*destinations.Event
	for i := range visitors {
		identify = append(identify, seen(visitor(i), 1, destinations.UserData{Em: []string{digest(strconv.Itoa(i))}}))
		later = append(later, seen(visitor(i), 2, destinations.UserData{}))
	}
	enrich(t, store, "shop", identify...)
	if n := counter.n.Load(); n != 1 {
		t.Errorf("storing and reading %d visitors took %d pipelines; want 1", visitors, n)
	}
	counter.n.Store(0)
	enrich(t, store, "shop", later...)
	for i, ev := range later {
		if !slices.Equal(ev.UserData.Em, []string{digest(strconv.Itoa(i))}) {
			t.Fatalf("visitor %d got em %v", i, ev.UserData.Em)
		}
	}
	if n := counter.n.Load(); n != 1 {
		t.Errorf("%d visitors took %d pipelines; want 1", visitors, n)
	}
}

// A field holds at most identityMaxValues digests.
func TestIdentityStoreBoundsValues(t *testing.T) {
	rdb := redistest.Start(t).Client()
	store := NewIdentityStore(rdb, IdentityOptions{})
	var many []string
	for i := range identityMaxValues + 5 {
		many = append(many, digest(strconv.Itoa(i)))
	}
	enrich(t, store, "shop", seen("v", 1, destinations.UserData{Em: many}))
	ev := seen("v", 2, destinations.UserData{})
	enrich(t, store, "shop", ev)
	if !slices.Equal(ev.UserData.Em, many[:identityMaxValues]) {
		t.Errorf("em holds %d values; want the first %d", len(ev.UserData.Em), identityMaxValues)
	}
}

// silentRedis returns the address of a server that accepts connections and
// never answers, as a hung Redis would.
func silentRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// When Redis does not answer, Enrich fails within its timeout and leaves
// the events as they were.
func TestIdentityStoreUnreachable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: silentRedis(t)})
	defer rdb.Close()
	store := NewIdentityStore(rdb, IdentityOptions{Timeout: 200 * time.Millisecond})
	ev := seen("v", 1, destinations.UserData{ClientUserAgent: "UA"})
	start := time.Now()
	if err := store.Enrich(context.Background(), "shop", []*destinations.Event{ev}); err == nil {
		t.Error("no error without Redis")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Enrich took %s without Redis", d)
	}
	if ev.UserData.ClientUserAgent != "UA" || len(ev.UserData.Em) != 0 {
		t.Errorf("event changed: %+v", ev.UserData)
	}
}

// A site's identity keys share its slot: storing and reading work on a
// Redis Cluster, for sites on different masters.
func TestIdentityStoreCluster(t *testing.T) {
	rdb := redistest.StartCluster(t).Client()
	store := NewIdentityStore(rdb, IdentityOptions{})
	for _, site := range []string{"shop", "other", "third"} {
		var identify, later []*destinations.Event
		for i := range 20 {
			v := site + strconv.Itoa(i)
			identify = append(identify, seen(v, 1, destinations.UserData{Em: []string{digest(v)}}))
			later = append(later, seen(v, 2, destinations.UserData{}))
		}
		enrich(t, store, site, identify...)
		enrich(t, store, site, later...)
		for i, ev := range later {
			if !slices.Equal(ev.UserData.Em, []string{digest(site + strconv.Itoa(i))}) {
				t.Fatalf("site %s visitor %d got em %v", site, i, ev.UserData.Em)
			}
		}
	}
}

// BenchmarkIdentityEnrichRound measures one delivery round's enrichment (a
// read) on a real Redis: 100 events of 50 visitors, half of them carrying
// an e-mail, against identities already stored.
func BenchmarkIdentityEnrichRound(b *testing.B) {
	rdb := redistest.Start(b).Client()
	store := NewIdentityStore(rdb, IdentityOptions{})
	round := func() []*destinations.Event {
		evs := make([]*destinations.Event, 100)
		for i := range evs {
			var ud destinations.UserData
			if i%2 == 0 {
				ud.Em = []string{digest(strconv.Itoa(i % 50))}
			}
			evs[i] = seen("fb.1.1."+strconv.Itoa(i%50), int64(i), ud)
		}
		return evs
	}
	enrich(b, store, "shop", round()...)
	b.ReportAllocs()
	for b.Loop() {
		if err := store.Enrich(context.Background(), "shop", round()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}

// received is a fake destination keeping the last delivery of each event;
// fail, when set, answers a call's events (nil: accepted).
type received struct {
	mu   sync.Mutex
	evs  map[string]destinations.Event
	fail func(call int) error
	call int
}

func newReceived() *received { return &received{evs: map[string]destinations.Event{}} }

func (r *received) destination() routingtest.DeliverFunc {
	return func(_ context.Context, batch []destinations.Event) []error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.call++
		if r.fail != nil {
			if err := r.fail(r.call); err != nil {
				return destinations.All(len(batch), err)
			}
		}
		for _, ev := range batch {
			r.evs[ev.EventID] = ev
		}
		return make([]error, len(batch))
	}
}

func (r *received) get(id string) (destinations.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev, ok := r.evs[id]
	return ev, ok
}

// visit is an event of visitor fbp with marketing consent.
func visit(id, name, fbp string, ud destinations.UserData) destinations.Event {
	ev := routingtest.Event(id, name)
	ud.Fbp = fbp
	ev.UserData = ud
	return ev
}

// The dispatcher stores and reads identities each round before delivery:
// an event of a later round gets what an earlier round's event identified,
// and an event of the same round gets it too, whatever its place in the
// round, for every destination.
func TestDispatcherEnrichesIdentity(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "tiktok"}))
	meta, tiktok := newReceived(), newReceived()
	opts := h.fastOptions()
	opts.Identity = NewIdentityStore(h.rdb, IdentityOptions{})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": meta.destination(), "tiktok": tiktok.destination()}), opts)
	em, ext := digest("jane@example.com"), digest("cust-9")

	h.enqueue(visit("lead", "Lead", "fb.1.1.1", destinations.UserData{Em: []string{em}, ExternalID: []string{ext}}))
	routingtest.WaitFor(t, "the Lead", func() bool { _, ok := tiktok.get("lead"); return ok })
	h.enqueue(visit("cart", "AddToCart", "fb.1.1.1", destinations.UserData{ClientUserAgent: "UA"}))
	// One entry: one round. The cart comes first in it.
	h.enqueue(visit("view", "PageView", "fb.1.1.2", destinations.UserData{}),
		visit("login", "Lead", "fb.1.1.2", destinations.UserData{Em: []string{digest("joe@example.com")}}),
		visit("stranger", "PageView", "fb.1.1.3", destinations.UserData{}))
	routingtest.WaitFor(t, "every delivery", func() bool { return h.groupDone("meta") && h.groupDone("tiktok") })

	for _, p := range []*received{meta, tiktok} {
		cart, _ := p.get("cart")
		if !slices.Equal(cart.UserData.Em, []string{em}) || !slices.Equal(cart.UserData.ExternalID, []string{ext}) || cart.UserData.ClientUserAgent != "UA" {
			t.Errorf("AddToCart delivered with %+v; want the Lead's em and external_id", cart.UserData)
		}
		if view, _ := p.get("view"); !slices.Equal(view.UserData.Em, []string{digest("joe@example.com")}) {
			t.Errorf("PageView delivered with %+v; want the em of its round's Lead", view.UserData)
		}
		if stranger, _ := p.get("stranger"); len(stranger.UserData.Em) != 0 {
			t.Errorf("another visitor's event got %+v", stranger.UserData)
		}
	}
}

// A round whose write is left out because another round of the process
// has the same one in flight (two destinations of a site read the same
// entry) still sees its own identifiers, though Redis does not hold them
// yet; an older round's fill sees them only where Redis has none.
func TestEnrichSeesItsRoundWhileItsWriteIsInFlight(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	joe, jim, ext := digest("joe@example.com"), digest("jim@example.com"), digest("cust-1")
	round := func(ms int64, em string) []*destinations.Event {
		return []*destinations.Event{
			seen("fb.1.1.2", ms, destinations.UserData{}),
			seen("fb.1.1.2", ms, destinations.UserData{Em: []string{em}}),
		}
	}
	// The other destination's round: begun, not yet run.
	if w := store.writes(roundVisitors(routingtest.Site, round(100, joe))); len(w) != 1 || w[0].kind != writeSet {
		t.Fatalf("the first round's writes: %+v", w)
	}
	evs := round(100, joe)
	if err := store.Enrich(ctx, routingtest.Site, evs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(evs[0].UserData.Em, []string{joe}) {
		t.Errorf("the round's PageView got em %v; want its Lead's", evs[0].UserData.Em)
	}

	// An older round is a fill: Redis's value wins where it has one, the
	// round's fills what it lacks.
	if err := rdb.HSet(ctx, routing.IdentityKey(routingtest.Site, "fb.1.1.2"), "external_id", ext).Err(); err != nil {
		t.Fatal(err)
	}
	evs = round(50, jim)
	evs[1].UserData.ExternalID = []string{digest("cust-2")}
	if err := store.Enrich(ctx, routingtest.Site, evs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(evs[0].UserData.Em, []string{jim}) || !slices.Equal(evs[0].UserData.ExternalID, []string{ext}) {
		t.Errorf("the older round's PageView got %+v; want em %s (its round's) and external_id %s (stored)", evs[0].UserData, jim, ext)
	}
}

// A retry went through its route's policy on its first attempt, which may
// have dropped identifiers: it is not enriched again, so what a region rule
// dropped stays dropped.
func TestDispatcherRetryNotEnrichedAgain(t *testing.T) {
	cfg := routingtest.Config(routingtest.Dest{ID: "meta"})
	cfg.Routes[0].RegionRules = []model.RegionRule{{Name: "no-em", Regions: []string{"DE"}, Drop: []string{"em"}}}
	h := newHarness(t, cfg)
	meta := newReceived()
	meta.fail = func(call int) error {
		if call == 1 {
			return destinations.RetryableError(0, "HTTP 503")
		}
		return nil
	}
	opts := h.fastOptions()
	opts.Identity = NewIdentityStore(h.rdb, IdentityOptions{})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": meta.destination()}), opts)

	ev := visit("lead", "Lead", "fb.1.1.1", destinations.UserData{Em: []string{digest("jane@example.com")}})
	ev.Context.Country = "DE"
	h.enqueue(ev)
	routingtest.WaitFor(t, "the retry delivered", func() bool { _, ok := meta.get("lead"); return ok && h.retryCount("meta") == 0 })
	if got, _ := meta.get("lead"); len(got.UserData.Em) != 0 {
		t.Errorf("the retry went out with em %v, which the region rule drops", got.UserData.Em)
	}
}

// Enrichment is best effort: when its Redis does not answer, the round is
// delivered as it is, once the store's timeout passes.
func TestDispatcherDeliversWhenEnrichmentFails(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	meta := newReceived()
	var logs logBuffer
	opts := h.fastOptions()
	opts.Logger = logs.logger()
	down := redis.NewClient(&redis.Options{Addr: silentRedis(t)})
	defer down.Close()
	opts.Identity = NewIdentityStore(down, IdentityOptions{Timeout: 100 * time.Millisecond})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": meta.destination()}), opts)

	h.enqueue(visit("lead", "Lead", "fb.1.1.1", destinations.UserData{Em: []string{digest("jane@example.com")}}),
		visit("cart", "AddToCart", "fb.1.1.1", destinations.UserData{}))
	routingtest.WaitFor(t, "the round delivered", func() bool { return h.groupDone("meta") })
	if _, ok := meta.get("lead"); !ok {
		t.Error("the Lead was not delivered")
	}
	if cart, ok := meta.get("cart"); !ok || len(cart.UserData.Em) != 0 {
		t.Errorf("AddToCart delivered %v with %+v; want it as it was", ok, cart.UserData)
	}
	if !strings.Contains(logs.String(), "identity enrichment failed") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
	routingtest.WaitFor(t, "the delivered metric", func() bool { return h.metric("meta", outcomeDelivered) == 2 })
}

// Ingest writes the entry and nothing else: a visitor's identifiers are
// stored at delivery (Enrich), so a gateway without an enriching
// destination never pays for them, and events spooled while Redis was down
// are stored like any other.
func TestEnqueueWritesOnlyTheEntry(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{})
	if err := q.Enqueue(ctx, routingtest.Site, []destinations.Event{
		visit("a", "Lead", "fb.1.1.1", destinations.UserData{Em: []string{digest("jane@example.com")}}),
	}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rdb.Keys(ctx, "*").Result(); !slices.Equal(keys, []string{routing.StreamKey(routingtest.Site)}) {
		t.Errorf("Enqueue wrote keys %v; want the stream only", keys)
	}
}

// A visitor's unchanged identifiers are stored once per Rewrite window; a
// change is stored at once, and a write Redis did not apply is not
// remembered.
func TestEnrichSkipsUnchangedIdentities(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	store := NewIdentityStore(rdb, IdentityOptions{Rewrite: time.Minute, Now: func() time.Time { return now }})
	key := routing.IdentityKey(routingtest.Site, "fb.1.1.1")
	a, b := digest("a@example.com"), digest("b@example.com")
	var received int64
	round := func(visitor, em string) error {
		received++
		return store.Enrich(ctx, routingtest.Site, []*destinations.Event{seen(visitor, received, destinations.UserData{Em: []string{em}})})
	}
	send := func(em string) {
		t.Helper()
		if err := round("fb.1.1.1", em); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() string {
		t.Helper()
		v, _ := rdb.HGet(ctx, key, "em").Result()
		return v
	}

	send(a)
	if stored() != a {
		t.Fatalf("first write: em %q", stored())
	}
	// The key goes away behind the store's back: an unchanged repeat
	// within the window is not written again...
	rdb.Del(ctx, key)
	now = now.Add(30 * time.Second)
	send(a)
	if v := stored(); v != "" {
		t.Fatalf("an unchanged repeat within the window was written (em %q)", v)
	}
	// ...a change is,
	send(b)
	if stored() != b {
		t.Fatalf("a changed value was not written: em %q", stored())
	}
	// and so is the old value again, since it is not the last one written.
	send(a)
	if stored() != a {
		t.Fatalf("a value written before the last one was skipped: em %q", stored())
	}
	// After the window the same value is written again (and its TTL set).
	rdb.Del(ctx, key)
	now = now.Add(time.Minute)
	send(a)
	if stored() != a {
		t.Fatal("an unchanged value was not written again after the window")
	}
	if ttl, _ := rdb.TTL(ctx, key).Result(); ttl < DefaultIdentityTTL-time.Minute {
		t.Errorf("TTL %s after a rewrite", ttl)
	}

	// A write Redis refuses is not remembered: once Redis takes writes
	// again, the same value is written.
	now = now.Add(2 * time.Minute)
	other := routing.IdentityKey(routingtest.Site, "fb.1.1.2")
	if err := rdb.Set(ctx, other, "a string, so HSET fails", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := round("fb.1.1.2", a); err == nil {
		t.Fatal("a round whose HSET (and HGETALL) failed reported no error")
	}
	rdb.Del(ctx, other)
	if err := round("fb.1.1.2", a); err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.HGet(ctx, other, "em").Result(); v != a {
		t.Errorf("after a refused write the repeat was skipped (em %q)", v)
	}
}

// Destinations progress independently, so one catching up stores a
// visitor's older events after another stored newer ones: those writes
// only fill in fields Redis lacks (HSETNX), and the older events are still
// enriched, their own fields winning.
func TestEnrichOlderEventsOnlyFill(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{})
	key := routing.IdentityKey(routingtest.Site, "v")
	a, b, ph, fn := digest("a@example.com"), digest("b@example.com"), digest("16505551212"), digest("jane")

	enrich(t, store, routingtest.Site, seen("v", 100, destinations.UserData{Em: []string{a}}), seen("v", 200, destinations.UserData{Em: []string{b}, Ph: []string{ph}}))
	// The lagging destination's round holds the older event, with a first
	// name no newer event had.
	late := seen("v", 100, destinations.UserData{Em: []string{a}, Fn: []string{fn}})
	enrich(t, store, routingtest.Site, late)
	got, _ := rdb.HGetAll(ctx, key).Result()
	if got["em"] != b || got["ph"] != ph || got["fn"] != fn {
		t.Errorf("stored %v after a lagging round; want the newest em, and the older event's fn filled in", got)
	}
	if !slices.Equal(late.UserData.Em, []string{a}) || !slices.Equal(late.UserData.Ph, []string{ph}) {
		t.Errorf("the lagging event became %+v; want its own em and the stored ph", late.UserData)
	}
	// A newer event is stored as usual.
	enrich(t, store, routingtest.Site, seen("v", 300, destinations.UserData{Em: []string{a}}))
	if v, _ := rdb.HGet(ctx, key, "em").Result(); v != a {
		t.Errorf("em %q after a newer event; want its own", v)
	}
	// Events spooled while Redis was down reach the stream after newer
	// ones: their fields are filled in, the newer values kept.
	other := routing.IdentityKey(routingtest.Site, "w")
	enrich(t, store, routingtest.Site, seen("w", 500, destinations.UserData{Em: []string{a}}))
	enrich(t, store, routingtest.Site, seen("w", 400, destinations.UserData{Em: []string{b}, Ph: []string{ph}}), seen("w", 450, destinations.UserData{Em: []string{fn}}))
	if got, _ := rdb.HGetAll(ctx, other).Result(); got["em"] != a || got["ph"] != ph {
		t.Errorf("stored %v; want em of the newest event and the spooled ph", got)
	}
}

// Rewrite < 0 stores every time.
func TestIdentityRewriteOff(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	store := NewIdentityStore(rdb, IdentityOptions{Rewrite: -1})
	for range 2 {
		rdb.Del(ctx, routing.IdentityKey("shop", "v"))
		enrich(t, store, "shop", seen("v", 1, destinations.UserData{Em: []string{digest("a@example.com")}}))
		if n, _ := rdb.Exists(ctx, routing.IdentityKey("shop", "v")).Result(); n != 1 {
			t.Fatal("a repeat was skipped with Rewrite < 0")
		}
	}
}

// tried reports whether r leaves out the write (key, sum); a write it would
// send is reported as not sent.
func tried(r *recentWrites, key, sum uint64) (leftOut bool) {
	seq, kind := r.begin(key, sum, 0)
	if kind == writeSet {
		r.stored(key, sum, seq, false)
	}
	return kind == writeSkip
}

func TestRecentWritesGenerations(t *testing.T) {
	now := time.Unix(0, 0)
	r := newRecentWrites(time.Hour, 2, func() time.Time { return now })
	store := func(key, sum uint64) {
		t.Helper()
		seq, kind := r.begin(key, sum, 0)
		if kind != writeSet {
			t.Fatalf("write %d/%d: kind %d; want an HSET", key, sum, kind)
		}
		r.stored(key, sum, seq, true)
	}
	store(1, 10)
	store(2, 20)
	store(3, 30) // cur {1,2} becomes prev
	for _, tt := range []struct {
		key, sum uint64
		want     bool
	}{{1, 10, true}, {2, 20, true}, {3, 30, true}, {4, 40, false}, {3, 31, false}} {
		if got := tried(r, tt.key, tt.sum); got != tt.want {
			t.Errorf("left out (%d, %d) = %v; want %v", tt.key, tt.sum, got, tt.want)
		}
	}
	// A tried write that was not sent leaves its visitor not stored.
	if tried(r, 3, 30) {
		t.Error("after a failed try of another value, the old one still counts as stored")
	}
	store(5, 50)
	store(6, 60)
	store(7, 70) // rotations: 1 and 2 are forgotten
	if tried(r, 1, 10) || !tried(r, 7, 70) {
		t.Error("the oldest generation was not dropped")
	}
	now = now.Add(time.Hour)
	if tried(r, 7, 70) {
		t.Error("a write a window ago is still fresh")
	}
}

// The newest value wins even when a repeat of an older one arrives while
// the newer one is queued, and when writes of one visitor are in flight
// together (their order in Redis is not known).
func TestRecentWritesNewestWins(t *testing.T) {
	now := time.Unix(0, 0)
	r := newRecentWrites(time.Hour, 100, func() time.Time { return now })
	const v, a, b = 1, 10, 20
	seq, _ := r.begin(v, a, 0)
	r.stored(v, a, seq, true) // Redis holds A
	seqB, kindB := r.begin(v, b, 0)
	seqA, kindA := r.begin(v, a, 0) // A again, B not yet written
	if kindB != writeSet || kindA != writeSet {
		t.Fatalf("B goes as %d, A again as %d; want both as HSETs", kindB, kindA)
	}
	r.stored(v, b, seqB, true)
	r.stored(v, a, seqA, true)
	if tried(r, v, a) {
		t.Error("A was taken as stored, though B and A were in flight together")
	}
	// Alone in flight, a stored write is remembered; a failed one is not.
	seq, _ = r.begin(v, b, 0)
	r.stored(v, b, seq, true)
	if !tried(r, v, b) {
		t.Error("a lone stored write was not remembered")
	}
	seq, _ = r.begin(v, a, 0)
	r.stored(v, a, seq, false)
	if tried(r, v, a) {
		t.Error("a failed write was remembered")
	}
}

// Two destinations reading the same entries at once begin the same write
// together: the second is left out, and the first, alone in flight, is
// remembered once stored.
func TestRecentWritesSameWriteInFlight(t *testing.T) {
	r := newRecentWrites(time.Hour, 100, time.Now)
	const v, a = 1, 10
	seq, first := r.begin(v, a, 5)
	_, second := r.begin(v, a, 5)
	if first != writeSet || second != writeSkip {
		t.Fatalf("first write %d, the same one in flight %d; want an HSET and a skip", first, second)
	}
	r.stored(v, a, seq, true)
	if !tried(r, v, a) {
		t.Error("the write was not remembered")
	}
}

// A write of events older than those of a write begun before only fills in
// missing fields, whether that one is still in flight, stored or failed;
// receive time 0 (unknown) is never taken as older.
func TestRecentWritesOlderEvents(t *testing.T) {
	r := newRecentWrites(time.Hour, 100, time.Now)
	const v = 1
	for _, tt := range []struct {
		sum     uint64
		at      int64
		want    writeKind
		applied bool // for an HSET: what Redis did with it
	}{
		{10, 200, writeSet, true},
		{20, 100, writeFill, false}, {21, 199, writeFill, false}, {22, 0, writeSet, true},
		{30, 200, writeSet, true}, {40, 201, writeSet, true}, {50, 200, writeFill, false},
		{40, 150, writeSkip, false}, // repeats the one stored
		{60, 300, writeSet, false},  // fails, and still makes older writes fills
		{70, 250, writeFill, false},
	} {
		seq, kind := r.begin(v, tt.sum, tt.at)
		if kind != tt.want {
			t.Errorf("write of %d at %d: kind %d; want %d", tt.sum, tt.at, kind, tt.want)
		}
		if kind == writeSet {
			r.stored(v, tt.sum, seq, tt.applied)
		}
	}
}
