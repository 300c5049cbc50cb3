package dispatch

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
)

func TestConcurrencyKeepsSeveralBatchesInFlight(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	var cur, peak atomic.Int32
	release := make(chan struct{})
	slow := smallBatch{routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		n := cur.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		cur.Add(-1)
		p.Record(batch)
		return make([]error, len(batch))
	}), 2}
	opts := h.fastOptions()
	opts.DestinationLimits = map[string]Limits{"meta": {Concurrency: 3}}
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": slow}), opts)

	for i := range 12 {
		h.enqueue(routingtest.Event("c"+strconv.Itoa(i), "Purchase"))
	}
	routingtest.WaitFor(t, "three batches in flight at once", func() bool { return peak.Load() == 3 })
	close(release)
	routingtest.WaitFor(t, "everything delivered", func() bool { return p.Total() == 12 && h.groupDone("meta") })
	if got := peak.Load(); got != 3 {
		t.Errorf("peak in-flight batches = %d; want the limit, 3", got)
	}
	for i := range 12 {
		if n := p.Count("c" + strconv.Itoa(i)); n != 1 {
			t.Errorf("event c%d delivered %d times", i, n)
		}
	}
}

func TestLimiterHoldsTheRate(t *testing.T) {
	// 20 events/s with a burst of 5: 25 events need at least a second.
	l := newLimiter(Limits{Rate: 20, Burst: 5}, time.Now)
	start := time.Now()
	for range 5 {
		if err := l.wait(context.Background(), 5); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("25 events passed a 20/s limiter (burst 5) in %s; want at least 1s", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 5); err == nil {
		t.Error("wait with an empty bucket and a cancelled context returned nil")
	}
	if newLimiter(Limits{}, time.Now) != nil {
		t.Error("no rate built a limiter")
	}
	var none *limiter
	if err := none.wait(ctx, 1000); err != nil {
		t.Errorf("nil limiter: %v", err)
	}
}

// The limiter's tokens accrue on the dispatcher's clock: with the clock
// standing still none do, however long the wait, and moving it forward
// releases the waiter.
func TestLimiterTakesTimeFromItsClock(t *testing.T) {
	frozen := time.Now()
	var step atomic.Int64
	now := func() time.Time { return frozen.Add(time.Duration(step.Load())) }
	// 1,000 events/s: on the wall clock a token comes back every millisecond.
	l := newLimiter(Limits{Rate: 1000, Burst: 1}, now)
	if err := l.wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.wait(context.Background(), 1) }()
	select {
	case err := <-done:
		t.Fatalf("a token came back while the clock stood still (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	step.Store(int64(time.Millisecond))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the clock moved a token's worth and the waiter stayed blocked")
	}
}

func TestLimitsFor(t *testing.T) {
	o := Options{Limits: Limits{Concurrency: 2, Rate: 100}, DestinationLimits: map[string]Limits{"tt": {Rate: 10}}}
	if got := o.limitsFor("meta", 1000); got != (Limits{Concurrency: 2, Rate: 100, Burst: 1000}) {
		t.Errorf("meta limits = %+v", got)
	}
	if got := o.limitsFor("tt", 50); got != (Limits{Concurrency: 2, Rate: 10, Burst: 50}) {
		t.Errorf("tt limits = %+v", got)
	}
	if got := (Options{}).limitsFor("x", 10); got != (Limits{Concurrency: 1}) {
		t.Errorf("default limits = %+v", got)
	}
}

// rejectsPoison is a platform that refuses any batch holding a poisoned
// event as a whole, as Meta does, naming no event.
func rejectsPoison(p *routingtest.Platform, calls *atomic.Int32) routingtest.DeliverFunc {
	return func(_ context.Context, batch []destinations.Event) []error {
		calls.Add(1)
		for _, ev := range batch {
			if strings.HasPrefix(ev.EventID, "poison") {
				return destinations.All(len(batch), &destinations.Error{Kind: destinations.Permanent, Status: 400, Code: "100",
					Message: "Invalid parameter", WholeBatch: true})
			}
		}
		p.Record(batch)
		return make([]error, len(batch))
	}
}

func TestWholeBatchRejectionIsSplitToIsolateBadEvents(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	var calls atomic.Int32
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": rejectsPoison(p, &calls)}), h.fastOptions())

	var evs []destinations.Event
	for i := range 40 {
		id := "good-" + strconv.Itoa(i)
		if i == 7 || i == 30 {
			id = "poison-" + strconv.Itoa(i)
		}
		evs = append(evs, routingtest.Event(id, "Purchase"))
	}
	h.enqueue(evs...) // one entry of 40 events: one batch (MaxBatch 50)

	routingtest.WaitFor(t, "the entry to be finished", func() bool { return h.groupDone("meta") })
	if p.Total() != 38 {
		t.Errorf("platform got %d events; want the 38 good ones", p.Total())
	}
	for _, ev := range evs {
		want := 1
		if strings.HasPrefix(ev.EventID, "poison") {
			want = 0
		}
		if n := p.Count(ev.EventID); n != want {
			t.Errorf("event %s delivered %d times; want %d", ev.EventID, n, want)
		}
	}
	dls := h.deadLetters("meta")
	got := map[string]DeadLetter{}
	for _, dl := range dls {
		got[dl.Event.EventID] = dl
	}
	if len(dls) != 2 || got["poison-7"].Reason != ReasonPermanent || got["poison-30"].Reason != ReasonPermanent {
		t.Fatalf("dead letters = %+v; want poison-7 and poison-30, reason permanent", dls)
	}
	if dl := got["poison-7"]; dl.Attempts != 1 || !strings.Contains(dl.Message, "Invalid parameter") {
		t.Errorf("dead letter = %+v; want 1 attempt and the platform's message", dl)
	}
	if n := h.retryCount("meta"); n != 0 {
		t.Errorf("%d retries scheduled; splitting must not schedule retries", n)
	}
	// Two bad events among 40 take a few dozen calls at most, not 40.
	if c := calls.Load(); c > 25 {
		t.Errorf("%d delivery calls to isolate 2 bad events of 40", c)
	}
	t.Logf("%d calls to isolate 2 bad events among 40", calls.Load())
}

func TestCircuitOpensForEveryReplicaAndProbeClosesIt(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	clk := &clock{}
	p := routingtest.NewPlatform()
	var healthy atomic.Bool
	var calls atomic.Int32
	dst := smallBatch{routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		calls.Add(1)
		if !healthy.Load() {
			return destinations.All(len(batch), destinations.RetryableError(0, "HTTP 503"))
		}
		p.Record(batch)
		return make([]error, len(batch))
	}), 1}
	reg := routingtest.Fakes(map[string]destinations.Destination{"meta": dst})
	regB := prometheus.NewRegistry() // either replica may be the one to open the circuit
	opts := func(name string) Options {
		o := h.fastOptions()
		o.Consumer, o.Now = name, clk.Now
		o.Circuit = CircuitPolicy{Failures: 3, Delay: time.Hour}
		if name != "a" {
			o.Registerer = regB
		}
		return o
	}
	h.run(reg, opts("a"))
	h.run(reg, opts("b"))

	for i := range 6 {
		h.enqueue(routingtest.Event("e"+strconv.Itoa(i), "Purchase"))
	}
	ctx := context.Background()
	routingtest.WaitFor(t, "the circuit to open", func() bool {
		return h.rdb.Exists(ctx, routing.CircuitKey(routingtest.Site, "meta")).Val() == 1
	})
	// Open: once both replicas have read the key (every Block), neither
	// sends anything, however long we look.
	time.Sleep(200 * time.Millisecond)
	before := calls.Load()
	for i := range 6 {
		h.enqueue(routingtest.Event("late"+strconv.Itoa(i), "Purchase"))
	}
	time.Sleep(300 * time.Millisecond)
	if after := calls.Load(); after != before {
		t.Fatalf("%d delivery calls while the circuit was open", after-before)
	}
	// After the delay one replica probes; the platform is back, the circuit
	// closes and everything queued is delivered.
	healthy.Store(true)
	clk.Advance(2 * time.Hour)
	routingtest.WaitFor(t, "everything delivered after the probe", func() bool {
		return p.Total() == 12 && h.groupDone("meta") && h.retryCount("meta") == 0
	})
	if n := h.rdb.Exists(ctx, routing.CircuitKey(routingtest.Site, "meta"), routing.CircuitProbeKey(routingtest.Site, "meta")).Val(); n != 0 {
		t.Errorf("circuit keys left after it closed: %d", n)
	}
	routingtest.WaitFor(t, "the opened metric", func() bool {
		return counterValue(t, h.reg, "tagway_circuit_opened_total")+counterValue(t, regB, "tagway_circuit_opened_total") >= 1
	})
	if dls := h.deadLetters("meta"); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
}

func TestStopKeepsWhatThePlatformAcknowledged(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	started := make(chan struct{}, 1)
	p := routingtest.NewPlatform()
	// The platform accepts the batch just as the shutdown bound cuts the
	// call: the outcome must be recorded, never sent again.
	acksLate := routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		p.Record(batch)
		return make([]error, len(batch))
	})
	opts := h.fastOptions()
	opts.ShutdownTimeout = 20 * time.Millisecond
	_, stop := h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": acksLate}), opts)
	h.enqueue(routingtest.Event("a", "Purchase"), routingtest.Event("b", "Purchase"))
	<-started
	stop()
	if !h.groupDone("meta") {
		t.Fatal("the acknowledged entry is still pending: it would be sent again")
	}
	if n := h.retryCount("meta"); n != 0 {
		t.Fatalf("%d retries scheduled for acknowledged events", n)
	}
	if p.Total() != 2 {
		t.Fatalf("platform got %d events; want 2", p.Total())
	}
}

func TestPoisonEntryGoesToDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	held := make(chan struct{}, 1)
	// Every consumer stops while holding the entry (as a crash would).
	hangs := routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		select {
		case held <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return destinations.All(len(batch), ctx.Err())
	})
	h.enqueue(routingtest.Event("poison", "Purchase"))
	opts := func(name string) Options {
		o := h.fastOptions()
		o.Consumer, o.ShutdownTimeout, o.PoisonClaims = name, 10*time.Millisecond, 1
		o.VisibilityTimeout, o.DeliverTimeout = time.Second, 500*time.Millisecond
		o.Registerer = nil
		return o
	}
	reg := routingtest.Fakes(map[string]destinations.Destination{"meta": hangs})
	for _, name := range []string{"first", "second"} { // read, then claimed once
		_, stop := h.run(reg, opts(name))
		<-held
		stop()
	}
	// The third consumer claims it a second time: more than PoisonClaims.
	p := routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), opts("third"))
	routingtest.WaitFor(t, "the poison entry to be dead-lettered", func() bool { return len(h.deadLetters("meta")) == 1 })
	dl := h.deadLetters("meta")[0]
	if dl.Reason != ReasonPoison || dl.Event.EventID != "poison" {
		t.Fatalf("dead letter = %+v; want the event, reason poison", dl)
	}
	routingtest.WaitFor(t, "the entry to be acknowledged", func() bool { return h.groupDone("meta") })
	if p.Total() != 0 {
		t.Errorf("the poison entry was delivered")
	}
}
