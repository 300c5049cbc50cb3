package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/queue/spool"
)

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// realisticEvent is a browser Purchase as the gateway queues it: hashed
// e-mail, phone and external id, cookies, IP and user agent, about 600
// bytes of JSON (more with the shared context).
func realisticEvent(i int) destinations.Event {
	value := 42.5
	return destinations.Event{
		EventName: "Purchase", EventTime: time.Now().Unix(), ActionSource: "website",
		EventID:        fmt.Sprintf("3f0c2a9e-%04x-4b1d-9c2e-%012d", i%65536, i),
		EventSourceURL: "https://shop.example/checkout/thank-you?order=1001",
		UserData: destinations.UserData{
			Em: []string{hash("jane@example.com")}, Ph: []string{hash("16505551212")},
			ExternalID:      []string{hash("cust-9")},
			ClientIPAddress: "203.0.113.42",
			ClientUserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			Fbp:             "fb.1.1732752000000.482913756104",
			Fbc:             "fb.1.1732752000000.IwAR2xyzABCDEF",
		},
		CustomData: &destinations.CustomData{Value: &value, Currency: "EUR", ContentIDs: []string{"sku-1"}, OrderID: "1001"},
		Context: destinations.Context{Source: "browser", Consent: destinations.Consent{
			AdStorage: destinations.Granted, AdUserData: destinations.Granted,
			AdPersonalization: destinations.Granted, AnalyticsStorage: destinations.Granted}},
	}
}

func TestConcurrentEnqueueIsGroupCommitted(t *testing.T) {
	rdb := redistest.Start(t).Client()
	q := New(rdb, Options{})
	ctx := context.Background()
	const callers = 200
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			site := routingtest.Site
			if i%2 == 1 {
				site = "other"
			}
			if err := q.Enqueue(ctx, site, []destinations.Event{routingtest.Event("c"+strconv.Itoa(i), "Lead"), routingtest.Event("d"+strconv.Itoa(i), "Lead")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Every acknowledged event is in its site's stream, exactly once, and
	// calls were merged into fewer entries than calls.
	entries := 0
	seen := map[string]int{}
	for _, site := range []string{routingtest.Site, "other"} {
		msgs, err := rdb.XRange(ctx, routing.StreamKey(site), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		entries += len(msgs)
		for _, m := range msgs {
			evs, err := NewCodec().Decode(m.Values)
			if err != nil {
				t.Fatalf("entry %s does not decode: %v", m.ID, err)
			}
			for _, ev := range evs {
				if ev.Context.SiteID != site {
					t.Errorf("event %s of site %s stored in the stream of %s", ev.EventID, ev.Context.SiteID, site)
				}
				seen[ev.EventID]++
			}
		}
	}
	if len(seen) != 2*callers {
		t.Fatalf("%d distinct events stored; want %d", len(seen), 2*callers)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if entries >= callers {
		t.Errorf("%d entries for %d concurrent calls: no call was merged", entries, callers)
	}
	t.Logf("%d concurrent calls stored as %d entries", callers, entries)
}

// slowRedis delays every command and pipeline a client sends by d, as a
// loaded or distant Redis would.
type slowRedis struct{ d time.Duration }

func (slowRedis) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s slowRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(s.d)
		return next(ctx, cmd)
	}
}
func (s slowRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(s.d)
		return next(ctx, cmds)
	}
}

// trickle makes calls one-event Enqueue calls to a new queue with opts, one
// started per millisecond on its own goroutine, against a Redis answering
// in 3ms; it returns that Redis and how long each call took, sorted.
func trickle(t *testing.T, opts Options, calls int) (*redis.Client, []time.Duration) {
	t.Helper()
	rdb := redistest.Start(t).Client()
	rdb.AddHook(slowRedis{3 * time.Millisecond})
	q := New(rdb, opts)
	took := make([]time.Duration, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := q.Enqueue(context.Background(), routingtest.Site, []destinations.Event{routingtest.Event("c"+strconv.Itoa(i), "Lead")}); err != nil {
				t.Error(err)
			}
			took[i] = time.Since(start)
		}()
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	slices.Sort(took)
	return rdb, took
}

// A busy queue's next pipeline waits BusyLinger for more calls when only a
// few are waiting: calls trickling in one per millisecond while each write
// takes 3ms go in a few large entries rather than in entries of the three
// or four calls that arrive during one write.
func TestBusyQueueGathersCalls(t *testing.T) {
	const calls = 60
	rdb, _ := trickle(t, Options{BusyLinger: 30 * time.Millisecond, BusyBatch: 1000}, calls)
	entries, err := rdb.XLen(context.Background(), routing.StreamKey(routingtest.Site)).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Without the linger: 15-20 entries. With it, about one per 30ms.
	if entries > 12 {
		t.Errorf("%d calls over %d entries; want at most 12", calls, entries)
	}
	t.Logf("%d calls stored as %d entries", calls, entries)
}

// The gathering ends as soon as BusyBatch calls wait, however long
// BusyLinger is: calls every millisecond against a 3ms Redis leave 2-3
// waiting as each write returns, and the fourth ends the wait. Only the
// last calls, with no fourth to come, wait BusyLinger out.
func TestBusyQueueGoesOnceBatchWaits(t *testing.T) {
	const calls = 60
	_, took := trickle(t, Options{BusyLinger: 2 * time.Second, BusyBatch: 4}, calls)
	if median := took[calls/2]; median > 500*time.Millisecond {
		t.Errorf("median call took %s; want far below BusyLinger (2s): the gathering did not end once 4 calls waited", median)
	}
	t.Logf("calls took %s (median) to %s", took[calls/2], took[calls-1])
}

// Bursts of calls separated by pauses shorter and longer than a flusher
// lingers: calls handed to a waiting flusher, to one that is about to end,
// and to the callers' own goroutines are all written exactly once, and
// every flusher gives its slot back (the queue does not stall).
func TestEnqueueBurstsAcrossFlusherLifetimes(t *testing.T) {
	rdb := redistest.Start(t).Client()
	q := New(rdb, Options{})
	ctx := context.Background()
	pauses := []time.Duration{0, time.Millisecond, flusherLinger / 2, flusherLinger, flusherLinger + 5*time.Millisecond, 2 * flusherLinger}
	want := 0
	for round := range 3 {
		for p, pause := range pauses {
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(1)
				want++
				id := fmt.Sprintf("r%d-p%d-%d", round, p, i)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					if err := q.Enqueue(ctx, routingtest.Site, []destinations.Event{routingtest.Event(id, "Lead")}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			time.Sleep(pause)
		}
	}
	msgs, err := rdb.XRange(ctx, routing.StreamKey(routingtest.Site), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		evs, err := NewCodec().Decode(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			seen[ev.EventID]++
		}
	}
	if len(seen) != want {
		t.Fatalf("%d distinct events stored; want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// Once idle, every flusher ends and gives back its slot.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.commit.mu.Lock()
		inFlight, idle, free := q.commit.inFlight, q.commit.idle, len(q.commit.slots)
		q.commit.mu.Unlock()
		if inFlight == 0 && idle == 0 && free == q.opts.MaxInFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle queue: %d flushes in flight, %d idle flushers, %d free slots", inFlight, idle, free)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEnqueueFailsWithoutRedis(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1})
	defer rdb.Close()
	q := New(rdb, Options{WriteTimeout: time.Second})
	rs.Stop()
	if err := q.Enqueue(context.Background(), routingtest.Site, []destinations.Event{routingtest.Event("x", "Lead")}); err == nil {
		t.Fatal("Enqueue returned nil with Redis down and no spool")
	}
}

// typicalEvent is a browser AddToCart about 600 bytes long once queued:
// a hashed e-mail, _fbp, IP, user agent, a value and the consent state.
func typicalEvent(i int) destinations.Event {
	ev := realisticEvent(i)
	ev.EventName = "AddToCart"
	ev.EventSourceURL = "https://shop.example/product/1"
	ev.UserData.Ph, ev.UserData.ExternalID, ev.UserData.Fbc = nil, nil, ""
	ev.CustomData.OrderID = ""
	return ev
}

// TestRedisMemoryPerQueuedEvent measures what one queued event costs in
// Redis (used_memory delta over many events): at most 1 KB for a typical
// ~600-byte browser event even alone in its entry (entries are stored
// compressed), and the stream's own overhead per event small.
func TestRedisMemoryPerQueuedEvent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		event    func(int) destinations.Event
		perEntry int // events per stream entry
	}{
		{"typical/one per entry", typicalEvent, 1},
		{"typical/eight per entry", typicalEvent, 8},
		{"purchase/one per entry", realisticEvent, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := redistest.Start(t)
			rdb := rs.Client()
			q := New(rdb, Options{})
			ctx := context.Background()
			size, _ := encodeEvents(nil, routingtest.Site, []destinations.Event{tc.event(0)}, time.Now().UnixMilli())
			before := usedMemory(t, rdb)
			const n = 20000
			for i := 0; i < n; i += tc.perEntry {
				evs := make([]destinations.Event, tc.perEntry)
				for j := range evs {
					evs[j] = tc.event(i + j)
				}
				if err := q.Enqueue(ctx, routingtest.Site, evs); err != nil {
					t.Fatal(err)
				}
			}
			per := float64(usedMemory(t, rdb)-before) / n
			json := float64(len(size) - 2)
			t.Logf("queued event JSON %.0f bytes; Redis memory per queued event %.0f bytes (overhead %.0f)", json, per, per-json)
			if per-json > 128 {
				t.Errorf("stream overhead per event = %.0f bytes; want at most 128", per-json)
			}
			if per > 1024 {
				t.Errorf("Redis memory per queued event = %.0f bytes; budget 1024", per)
			}
		})
	}
}

func usedMemory(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}

// BenchmarkEnqueue compares the group-committed Enqueue with one XADD per
// call (the naive intake), serially and with many concurrent callers, one
// realistic event per call, against a real redis-server.
func BenchmarkEnqueue(b *testing.B) {
	rs := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, PoolSize: 256})
	defer rdb.Close()
	ctx := context.Background()
	q := New(rdb, Options{})
	naive := func(ctx context.Context, site string, evs []destinations.Event) error {
		payload, err := json.Marshal(evs)
		if err != nil {
			return err
		}
		return rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.StreamKey(site), Values: []any{"e", payload}}).Err()
	}
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	qs := New(rdb, Options{Spool: sp}) // marker script per entry
	impls := []struct {
		name    string
		enqueue func(context.Context, string, []destinations.Event) error
	}{
		{"xadd-per-call", naive},
		{"group-commit", q.Enqueue},
		{"group-commit-spool", qs.Enqueue},
	}
	evs := []destinations.Event{realisticEvent(1)}
	for _, impl := range impls {
		b.Run(impl.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if err := impl.enqueue(ctx, routingtest.Site, evs); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, callers := range []int{64, 256} {
			b.Run(fmt.Sprintf("%s/parallel-%d", impl.name, callers), func(b *testing.B) {
				b.SetParallelism(max(callers/max(1, runtimeProcs()), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := impl.enqueue(ctx, routingtest.Site, evs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
		if err := rdb.Del(ctx, routing.StreamKey(routingtest.Site)).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func TestBufPoolClasses(t *testing.T) {
	var p bufPool
	for _, n := range []int{0, 1, 1024, 1025, 5000, 128 << 10} {
		b := p.get(n)
		if len(b) != 0 || cap(b) < n || cap(b) > 2*max(n, 1024) {
			t.Errorf("get(%d): len %d cap %d", n, len(b), cap(b))
		}
		p.put(b)
	}
	if b := p.get(1 << 20); cap(b) < 1<<20 {
		t.Errorf("get(1 MiB): cap %d", cap(b))
	}
	// A buffer of another capacity (grown by append) is not kept, and a
	// small request never gets a large buffer.
	p.put(make([]byte, 0, 3000))
	p.put(make([]byte, 0, 64<<10))
	if b := p.get(900); cap(b) != 1024 {
		t.Errorf("get(900) after putting large buffers: cap %d; want 1024", cap(b))
	}
}

// Large buffers outlive garbage collections (a sync.Pool would drop them),
// and no more than bufKeep of a class are kept.
func TestBufPoolKeepsLargeBuffersAcrossGC(t *testing.T) {
	var p bufPool
	c := bufClass(100 << 10)
	var held [][]byte
	for range bufKeep + 2 {
		held = append(held, p.get(100<<10))
	}
	for _, b := range held {
		p.put(b)
	}
	if n := len(p.kept[c]); n != bufKeep {
		t.Fatalf("kept %d buffers of the class; want %d", n, bufKeep)
	}
	last := unsafe.SliceData(held[bufKeep-1]) // the last one kept
	runtime.GC()
	runtime.GC()
	if b := p.get(100 << 10); unsafe.SliceData(b) != last {
		t.Errorf("after two collections get returned another buffer than the last one kept")
	}
}

// A flush merges each site's calls into entries of at most MaxEntryBytes
// of payload, in arrival order; a call larger than that is an entry alone.
func TestEntriesCapMergedSize(t *testing.T) {
	q := New(nil, Options{MaxEntryBytes: 3000})
	call := func(site string, n int) *enqueueReq {
		return &enqueueReq{site: site, events: 1, payload: []byte(`["` + strings.Repeat("x", n-4) + `"]`)}
	}
	batch := []*enqueueReq{call("a", 1200), call("a", 1200), call("b", 500), call("a", 1200), call("a", 5000), call("a", 100)}
	entries := q.entries(batch)
	defer q.release(entries)
	type got struct {
		site  string
		calls int
		size  int
	}
	var gots []got
	for _, e := range entries {
		gots = append(gots, got{e.site, len(e.reqs), e.size})
	}
	want := []got{{"a", 2, 2400}, {"b", 1, 500}, {"a", 1, 1200}, {"a", 1, 5000}, {"a", 1, 100}}
	if !slices.Equal(gots, want) {
		t.Fatalf("entries %v; want %v", gots, want)
	}
}

// Enqueue returns when its context ends first (the events may still be
// written); a context that never ends waits for the write itself, as the
// gateway's does (context.WithoutCancel: the write outlives the browser).
func TestEnqueueContextEndsFirst(t *testing.T) {
	rdb := redistest.Start(t).Client()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(slowRedis{200 * time.Millisecond})
	q := New(rdb, Options{})
	first := make(chan error, 1)
	go func() {
		first <- q.Enqueue(context.Background(), routingtest.Site, []destinations.Event{routingtest.Event("first", "Lead")})
	}()
	time.Sleep(20 * time.Millisecond) // the first call's write is in flight: the next ones wait
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := q.Enqueue(ctx, routingtest.Site, []destinations.Event{routingtest.Event("early", "Lead")})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) >= 150*time.Millisecond {
		t.Fatalf("Enqueue with a 20ms context: %v after %s; want the deadline, before the write ends", err, time.Since(start))
	}
	ended, cancelEnded := context.WithCancel(context.Background())
	cancelEnded()
	if err := q.Enqueue(context.WithoutCancel(ended), routingtest.Site, []destinations.Event{routingtest.Event("late", "Lead")}); err != nil {
		t.Fatalf("Enqueue with a context that never ends: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(context.Background(), routing.StreamKey(routingtest.Site), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		evs, err := NewCodec().Decode(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			ids = append(ids, ev.EventID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"early", "first", "late"}) {
		t.Errorf("stored %v; want all three (the early call's events went on after its caller left)", ids)
	}
}
