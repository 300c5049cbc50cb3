package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
	"github.com/tagway/tagway/routing/queue"
)

func TestEnqueueDeliversEndToEnd(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), h.fastOptions())

	var ids []string
	for i := range 3 {
		batch := []destinations.Event{routingtest.Event(fmt.Sprint("a", i), "PageView"), routingtest.Event(fmt.Sprint("b", i), "Purchase")}
		batch[0].Context.SiteID = "forged" // Enqueue sets the site
		h.enqueue(batch...)
		ids = append(ids, batch[0].EventID, batch[1].EventID)
	}
	routingtest.WaitFor(t, "all events delivered and acknowledged", func() bool { return p.Total() == 6 && h.groupDone("meta") })
	for _, id := range ids {
		if n := p.Count(id); n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(p.Sites()) != 1 || !p.Sites()[routingtest.Site] {
		t.Errorf("events carried sites %v; want only %q", p.Sites(), routingtest.Site)
	}
	// Metrics count outcomes once recorded, just after the acknowledgement.
	routingtest.WaitFor(t, "the delivered metric", func() bool { return h.metric("meta", outcomeDelivered) == 6 })
}

func TestEnqueue(t *testing.T) {
	h := newHarness(t, routingtest.Config())
	ctx := context.Background()
	in := []destinations.Event{routingtest.Event("x", "Lead")}
	if err := h.queue.Enqueue(ctx, routingtest.Site, in); err != nil {
		t.Fatal(err)
	}
	if in[0].Context.SiteID != "" {
		t.Error("Enqueue changed the caller's events")
	}
	if err := h.queue.Enqueue(ctx, "Bad Site", in); err == nil {
		t.Error("an invalid site id was accepted")
	}
	if err := h.queue.Enqueue(ctx, routingtest.Site, nil); err != nil {
		t.Errorf("empty enqueue: %v", err)
	}
	msgs, err := h.rdb.XRange(ctx, routing.StreamKey(routingtest.Site), "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stream holds %d entries (%v); want 1", len(msgs), err)
	}
	evs, err := queue.NewCodec().Decode(msgs[0].Values)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Context.SiteID != routingtest.Site || evs[0].Context.ReceivedAt == 0 {
		t.Errorf("stored events = %+v", evs)
	}
}

// Entries written before versions existed (JSON, no v) are still
// delivered, next to compressed ones; an entry of an unknown version is
// dead-lettered with a reason instead of blocking the stream.
func TestDispatcherReadsEveryEntryVersion(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	ctx := context.Background()
	old, _ := json.Marshal([]destinations.Event{func() destinations.Event {
		ev := routingtest.Event("old-1", "Lead")
		ev.Context.SiteID = routingtest.Site
		return ev
	}()})
	if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.StreamKey(routingtest.Site), Values: []any{"e", old}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.StreamKey(routingtest.Site), Values: []any{"v", "9", "e", "?"}}).Err(); err != nil {
		t.Fatal(err)
	}
	var batch []destinations.Event
	for i := range 20 {
		batch = append(batch, routingtest.Event(fmt.Sprint("new-", i), "Purchase"))
	}
	h.enqueue(batch...)
	msgs, _ := h.rdb.XRange(ctx, routing.StreamKey(routingtest.Site), "-", "+").Result()
	if last := msgs[len(msgs)-1]; last.Values["v"] != "2" {
		t.Fatalf("a 20-event entry was stored as %v", last.Values["v"])
	}
	p := routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), h.fastOptions())
	routingtest.WaitFor(t, "old and new entries delivered", func() bool { return p.Total() == 21 && h.groupDone("meta") })
	if p.Count("old-1") != 1 || p.Count("new-19") != 1 {
		t.Errorf("deliveries: %v", p.Got())
	}
	dls := h.deadLetters("meta")
	if len(dls) != 1 || !strings.Contains(dls[0].Message, `unknown version "9"`) {
		t.Errorf("dead letters %+v; want the entry of version 9", dls)
	}
}

func TestRouteFilters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta", Events: []string{"Purchase", "PageView"}, Exclude: []string{"PageView"}}))
	p := routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), h.fastOptions())

	h.enqueue(routingtest.Event("pv", "PageView"), routingtest.Event("atc", "AddToCart"), routingtest.Event("buy", "Purchase"))
	routingtest.WaitFor(t, "the entry to be finished", func() bool { return h.groupDone("meta") })
	if p.Count("buy") != 1 || p.Total() != 1 {
		t.Errorf("platform got %v; want only the Purchase", p.Got())
	}
	routingtest.WaitFor(t, "the filtered metric", func() bool { return h.metric("meta", outcomeFiltered) == 2 })
}

func TestConsentWithholdsFromAdPlatforms(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "stats"}))
	ads, stats := routingtest.NewPlatform(), routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": ads.Accept(), "stats": analytics{stats.Accept()}}), h.fastOptions())

	denied := routingtest.Event("denied", "Purchase")
	denied.Context.Consent = destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Denied}
	unstated := routingtest.Event("unstated", "Purchase")
	unstated.Context.Consent = destinations.Consent{}
	h.enqueue(denied, unstated, routingtest.Event("granted", "Purchase"))

	routingtest.WaitFor(t, "both groups to finish", func() bool { return h.groupDone("meta") && h.groupDone("stats") })
	if ads.Total() != 1 || ads.Count("granted") != 1 {
		t.Errorf("the ad platform got %v; want only the consented event", ads.Got())
	}
	if stats.Total() != 3 {
		t.Errorf("the analytics destination got %v; want all three", stats.Got())
	}
	routingtest.WaitFor(t, "the withheld metric", func() bool { return h.metric("meta", outcomeWithheld) == 2 })
}

func TestRetryableThenDelivered(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	flaky := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		if p.Record(batch) <= 2 {
			return destinations.All(len(batch), destinations.RetryableError(0, "rate limited"))
		}
		return make([]error, len(batch))
	})
	// Retries an hour apart (no jitter), on a clock the test moves.
	clk := &clock{}
	opts := h.fastOptions()
	opts.Now, opts.Rand = clk.Now, func() float64 { return 0.999999 }
	opts.Retry = RetryPolicy{Base: time.Hour, Max: time.Hour}
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": flaky}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	for attempt := 1; attempt <= 2; attempt++ {
		routingtest.WaitFor(t, "the failed attempt to be scheduled", func() bool {
			return p.Calls() == attempt && h.retryCount("meta") == 1 && h.metric("meta", outcomeRetry) == float64(attempt)
		})
		time.Sleep(10 * opts.Block) // the worker looks for due retries every Block
		if p.Calls() != attempt {
			t.Fatalf("attempt %d came before its due time", attempt+1)
		}
		clk.Advance(time.Hour)
	}
	routingtest.WaitFor(t, "the third attempt to succeed", func() bool {
		return h.metric("meta", outcomeDelivered) == 1 && h.retryCount("meta") == 0
	})
	if p.Calls() != 3 || p.Count("e1") != 3 {
		t.Errorf("calls = %d, deliveries of e1 = %d; want 3 and 3", p.Calls(), p.Count("e1"))
	}
	if got := h.metric("meta", outcomeRetry); got != 2 {
		t.Errorf("retry metric = %v; want 2", got)
	}
	if dls := h.deadLetters("meta"); len(dls) != 0 {
		t.Errorf("dead letters = %+v", dls)
	}
	if !h.groupDone("meta") {
		t.Error("the entry is still pending although its event is resolved")
	}
}

func TestRetryScheduleHoldsAttemptsAndError(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	var calls atomic.Int32
	failing := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		calls.Add(1)
		return destinations.All(len(batch), &destinations.Error{Kind: destinations.Retryable, Status: 503, RetryAfter: time.Hour, Message: "busy"})
	})
	clk := &clock{}
	opts := h.fastOptions()
	opts.Now = clk.Now
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": failing}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the event to be scheduled", func() bool { return h.retryCount("meta") == 1 && h.groupDone("meta") })
	zs, err := h.rdb.ZRangeWithScores(context.Background(), routing.RetryKey(routingtest.Site, "meta"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var it retryItem
	if err := json.Unmarshal([]byte(zs[0].Member.(string)), &it); err != nil {
		t.Fatal(err)
	}
	if it.Event.EventID != "e1" || it.Attempts != 1 || it.FirstFailure == 0 || !strings.Contains(it.LastError, "busy") {
		t.Errorf("retry item = %+v", it)
	}
	// Retry-After (1h) beats the millisecond back-off.
	if due := time.UnixMilli(int64(zs[0].Score)); due.Before(clk.Now().Add(59 * time.Minute)) {
		t.Errorf("due at %v; want at least an hour away", due)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d; the event was retried before Retry-After", calls.Load())
	}
}

func TestPermanentFailureDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	refusing := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		errs := make([]error, len(batch))
		for i, ev := range batch {
			if ev.EventID == "bad" {
				errs[i] = &destinations.Error{Kind: destinations.Permanent, Status: 400, Code: "100", Message: "Invalid parameter"}
			}
		}
		return errs
	})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": refusing}), h.fastOptions())

	h.enqueue(routingtest.Event("good", "Purchase"), routingtest.Event("bad", "Purchase"))
	routingtest.WaitFor(t, "the entry to be finished", func() bool { return h.groupDone("meta") })
	dls := h.deadLetters("meta")
	if len(dls) != 1 {
		t.Fatalf("dead letters = %+v; want one", dls)
	}
	dl := dls[0]
	if dl.Event.EventID != "bad" || dl.Reason != ReasonPermanent || dl.Message != "Invalid parameter" || dl.Attempts != 1 || dl.FailedAt.IsZero() {
		t.Errorf("dead letter = %+v", dl)
	}
	routingtest.WaitFor(t, "metrics of one delivered and one dead", func() bool {
		return h.metric("meta", outcomeDelivered) == 1 && h.metric("meta", outcomeDead) == 1
	})
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	failing := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		p.Record(batch)
		return destinations.All(len(batch), fmt.Errorf("connection reset"))
	})
	opts := h.fastOptions()
	opts.Retry.MaxAttempts = 3
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": failing}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the dead letter", func() bool { return len(h.deadLetters("meta")) == 1 })
	dl := h.deadLetters("meta")[0]
	if dl.Reason != ReasonMaxAttempts || dl.Attempts != 3 || !strings.Contains(dl.Message, "connection reset") {
		t.Errorf("dead letter = %+v", dl)
	}
	if p.Calls() != 3 {
		t.Errorf("calls = %d; want 3", p.Calls())
	}
	if h.retryCount("meta") != 0 {
		t.Error("the event is still scheduled")
	}
}

func TestTooOldDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": ageLimited{p.Accept(), 7 * 24 * time.Hour}}), h.fastOptions())

	old := routingtest.Event("old", "Purchase")
	old.EventTime = time.Now().Add(-8 * 24 * time.Hour).Unix()
	h.enqueue(old, routingtest.Event("fresh", "Purchase"))
	routingtest.WaitFor(t, "the entry to be finished", func() bool { return h.groupDone("meta") })
	dls := h.deadLetters("meta")
	if len(dls) != 1 || dls[0].Event.EventID != "old" || dls[0].Reason != ReasonTooOld {
		t.Errorf("dead letters = %+v; want the old event with reason too_old", dls)
	}
	if p.Count("old") != 0 || p.Count("fresh") != 1 {
		t.Errorf("platform got %v; want only the fresh event", p.Got())
	}
}

func TestRetryPastAgeLimitDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	failing := ageLimited{routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		return destinations.All(len(batch), destinations.RetryableError(2*time.Hour, "throttled"))
	}), time.Hour}
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": failing}), h.fastOptions())

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the dead letter", func() bool { return len(h.deadLetters("meta")) == 1 })
	if dl := h.deadLetters("meta")[0]; dl.Reason != ReasonTooOld || dl.Message != "throttled" {
		t.Errorf("dead letter = %+v; want too_old with the platform's message", dl)
	}
}

func TestPausedDestination(t *testing.T) {
	const token = "EAAB-secret-token-value"
	cfg := routingtest.Config(routingtest.Dest{ID: "meta", Settings: `{"name":"meta","token":"` + token + `"}`})
	h := newHarness(t, cfg)
	p := routingtest.NewPlatform()
	var revoked atomic.Bool
	revoked.Store(true)
	dst := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		p.Record(batch)
		if revoked.Load() {
			return destinations.All(len(batch), &destinations.Error{Kind: destinations.Paused, Status: 401, Code: "190",
				Message: "Error validating access token: Session has expired"})
		}
		return make([]error, len(batch))
	})
	clk := &clock{}
	logs := &logBuffer{}
	opts := h.fastOptions()
	opts.Now, opts.Logger = clk.Now, logs.logger()
	opts.Retry.PauseFor = time.Hour
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": dst}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the event to be kept in the schedule", func() bool { return h.retryCount("meta") == 1 && h.groupDone("meta") })
	zs, _ := h.rdb.ZRangeWithScores(context.Background(), routing.RetryKey(routingtest.Site, "meta"), 0, -1).Result()
	if due := time.UnixMilli(int64(zs[0].Score)); due.Before(clk.Now().Add(59 * time.Minute)) {
		t.Errorf("kept until %v; want the pause's end, an hour away", due)
	}
	var it retryItem
	_ = json.Unmarshal([]byte(zs[0].Member.(string)), &it)
	if it.Attempts != 0 {
		t.Errorf("a pause counted %d attempts against the event", it.Attempts)
	}
	out := logs.String()
	if !strings.Contains(out, "ALERT destination paused") || !strings.Contains(out, "destination=meta") ||
		!strings.Contains(out, "Session has expired") {
		t.Errorf("no alert naming the destination and Meta's message in:\n%s", out)
	}
	if strings.Contains(out, token) {
		t.Error("the access token reached the log")
	}

	// Paused: a new entry stays unread until the pause ends.
	h.enqueue(routingtest.Event("e2", "Purchase"))
	revoked.Store(false)
	clk.Advance(time.Hour + time.Minute)
	routingtest.WaitFor(t, "both events after the pause", func() bool { return p.Count("e1") == 2 && p.Count("e2") == 1 })
	routingtest.WaitFor(t, "the schedule to empty", func() bool { return h.retryCount("meta") == 0 })
	if p.Calls() > 3 {
		t.Errorf("calls = %d; the paused destination was called during its pause", p.Calls())
	}
}

func TestFailingOrHangingDestinationDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "hang"}, routingtest.Dest{ID: "broken"}, routingtest.Dest{ID: "good"}))
	hung := make(chan struct{}, 1)
	hang := routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		select {
		case hung <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return destinations.All(len(batch), ctx.Err())
	})
	broken := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		return destinations.All(len(batch), destinations.RetryableError(0, "HTTP 500"))
	})
	good := routingtest.NewPlatform()
	opts := h.fastOptions()
	opts.ShutdownTimeout = 50 * time.Millisecond
	h.run(routingtest.Fakes(map[string]destinations.Destination{"hang": hang, "broken": broken, "good": good.Accept()}), opts)

	h.enqueue(routingtest.Event("first", "Purchase"))
	<-hung // the hanging destination now holds its first batch
	for i := range 20 {
		h.enqueue(routingtest.Event(strconv.Itoa(i), "Purchase"))
	}
	routingtest.WaitFor(t, "the good destination to get everything", func() bool { return good.Total() == 21 && h.groupDone("good") })
	if h.groupDone("hang") {
		t.Error("the hanging destination finished; the test proves nothing")
	}
}

func TestCrashRecoveryByAnotherConsumer(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	held := make(chan int, 1)
	crashed := routingtest.NewPlatform()
	stuck := smallBatch{routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		crashed.Record(batch)
		select {
		case held <- len(batch):
		default:
		}
		<-ctx.Done() // blocks until the process dies
		return destinations.All(len(batch), ctx.Err())
	}), 5}
	optsA := h.fastOptions()
	optsA.Consumer, optsA.ShutdownTimeout, optsA.Linger = "replica-a", 20*time.Millisecond, 100*time.Millisecond
	_, stopA := h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": stuck}), optsA)

	var ids []string
	for i := range 12 {
		ids = append(ids, "e"+strconv.Itoa(i))
	}
	for _, id := range ids {
		h.enqueue(routingtest.Event(id, "Purchase"))
	}
	inFlight := <-held
	stopA() // the replica dies mid-delivery, without acknowledging anything

	// Handed back: the entries read stay pending (one event per entry, so
	// at least the in-flight ones), nothing was recorded.
	pend, err := h.rdb.XPending(context.Background(), routing.StreamKey(routingtest.Site), "meta").Result()
	if err != nil || pend.Count < int64(inFlight) {
		t.Fatalf("%d entries pending after the crash (%v); want at least the %d in flight", pend.Count, err, inFlight)
	}
	if n := h.retryCount("meta"); n != 0 {
		t.Fatalf("the dying replica scheduled %d retries; in-flight work must be handed back untouched", n)
	}

	survivor := routingtest.NewPlatform()
	optsB := h.fastOptions()
	optsB.Consumer, optsB.VisibilityTimeout, optsB.DeliverTimeout = "replica-b", 200*time.Millisecond, 100*time.Millisecond
	optsB.Registerer = nil
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": survivor.Accept()}), optsB)

	routingtest.WaitFor(t, "the survivor to deliver everything", func() bool { return survivor.Total() >= len(ids) && h.groupDone("meta") })
	for _, id := range ids {
		if n := survivor.Count(id); n != 1 {
			t.Errorf("event %s delivered %d times by the survivor; want exactly once", id, n)
		}
	}
	if crashed.Total() != inFlight {
		t.Errorf("the crashed replica saw %d events; want only the %d in flight", crashed.Total(), inFlight)
	}
}

func TestReplayDeadLetters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	var fixed atomic.Bool
	dst := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		if !fixed.Load() {
			return destinations.All(len(batch), destinations.PermanentError("Invalid parameter"))
		}
		p.Record(batch)
		return make([]error, len(batch))
	})
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": dst}), h.fastOptions())

	h.enqueue(routingtest.Event("e1", "Purchase"), routingtest.Event("e2", "Purchase"), routingtest.Event("e3", "Purchase"))
	routingtest.WaitFor(t, "three dead letters", func() bool { return len(h.deadLetters("meta")) == 3 })
	dls := h.deadLetters("meta")
	fixed.Store(true)

	ctx := context.Background()
	n, err := h.dead.Replay(ctx, routingtest.Site, "meta", []string{dls[0].ID, dls[1].ID, "1-1"})
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	if n, _ := h.dead.Replay(ctx, routingtest.Site, "meta", []string{dls[0].ID}); n != 0 {
		t.Errorf("a second replay of the same letter moved %d", n)
	}
	routingtest.WaitFor(t, "the replayed events", func() bool { return p.Count("e1") == 1 && p.Count("e2") == 1 && h.retryCount("meta") == 0 })
	if rest := h.deadLetters("meta"); len(rest) != 1 || rest[0].Event.EventID != "e3" {
		t.Errorf("dead letters left = %+v; want only e3", rest)
	}
	if p.Count("e3") != 0 {
		t.Error("a letter that was not replayed was delivered")
	}
}

func TestIdleDestinationKeepsEventsUntilFixed(t *testing.T) {
	const secret = "tok-very-secret-1234"
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta", Type: "nope", Settings: `{"name":"meta","token":"` + secret + `"}`}))
	p := routingtest.NewPlatform()
	logs := &logBuffer{}
	opts := h.fastOptions()
	opts.Logger = logs.logger()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the unknown type to be logged", func() bool { return strings.Contains(logs.String(), "unknown type") })

	// Settings the factory refuses: logged without the secret.
	bad := routingtest.Config(routingtest.Dest{ID: "meta", Settings: `{"name":"` + secret + `","token":"` + secret + `"}`})
	if err := h.store.Apply(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the refused settings to be logged", func() bool { return strings.Contains(logs.String(), "settings refused") })
	if strings.Contains(logs.String(), secret) {
		t.Errorf("a secret reached the log:\n%s", logs.String())
	}

	if err := h.store.Apply(context.Background(), routingtest.Config(routingtest.Dest{ID: "meta"})); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the waiting event to be delivered once fixed", func() bool { return p.Count("e1") == 1 && h.groupDone("meta") })
}

func TestRemovedDestinationIsDrainedToDeadLetters(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "keep"}))
	throttled := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		return destinations.All(len(batch), destinations.RetryableError(time.Hour, "throttled"))
	})
	kept := routingtest.NewPlatform()
	opts := h.fastOptions()
	opts.TrimInterval = 10 * time.Millisecond
	logs := &logBuffer{}
	opts.Logger = logs.logger()
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": throttled, "keep": kept.Accept()}), opts)

	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "e1 to be scheduled for a retry", func() bool { return h.retryCount("meta") == 1 && h.groupDone("meta") })
	h.enqueue(routingtest.Event("e2", "Purchase"))
	if err := h.store.Apply(ctx, routingtest.Config(routingtest.Dest{ID: "keep"})); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the removed destination's group to go", func() bool {
		groups, _ := h.rdb.XInfoGroups(ctx, routing.StreamKey(routingtest.Site)).Result()
		return len(groups) == 1 && groups[0].Name == "keep"
	})
	dls := h.deadLetters("meta")
	got := map[string]string{}
	for _, dl := range dls {
		got[dl.Event.EventID] = dl.Reason
	}
	if len(dls) != 2 || got["e1"] != ReasonUnknownDestination || got["e2"] != ReasonUnknownDestination {
		t.Errorf("dead letters = %+v; want e1 and e2 with reason unknown_destination", dls)
	}
	if h.retryCount("meta") != 0 {
		t.Error("the removed destination still has scheduled retries")
	}
	routingtest.WaitFor(t, "the stream to be trimmed", func() bool {
		n, _ := h.rdb.XLen(ctx, routing.StreamKey(routingtest.Site)).Result()
		return n == 0 && kept.Total() == 2
	})
}

func TestTrimKeepsUnfinishedEntries(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "fast"}, routingtest.Dest{ID: "slow"}))
	d, err := New(h.rdb, h.store, nil, destinations.Deps{}, Options{Registerer: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	key := routing.StreamKey(routingtest.Site)
	var ids []string
	for i := range 6 {
		h.enqueue(routingtest.Event(strconv.Itoa(i), "Purchase"))
		msgs, _ := h.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
		ids = append(ids, msgs[0].ID)
	}
	read := func(group string, n int64) []string {
		res, err := h.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{key, ">"}, Count: n, Block: -1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range res[0].Messages {
			out = append(out, m.ID)
		}
		return out
	}
	remaining := func() []string {
		msgs, _ := h.rdb.XRange(ctx, key, "-", "+").Result()
		var out []string
		for _, m := range msgs {
			out = append(out, m.ID)
		}
		return out
	}
	trim := func() {
		if _, err := d.trimSite(ctx, h.store.Snapshot(), routingtest.Site); err != nil {
			t.Fatal(err)
		}
	}
	// A site with no stream yet has nothing to trim, and that is no error.
	if n, err := d.trimSite(ctx, h.store.Snapshot(), "nostream"); n != 0 || err != nil {
		t.Fatalf("trim of a site without a stream: %d, %v", n, err)
	}

	// fast finished everything; slow read four entries, acked 0 and 2.
	h.rdb.XAck(ctx, key, "fast", read("fast", 100)...)
	read("slow", 4)
	h.rdb.XAck(ctx, key, "slow", ids[0], ids[2])
	trim()
	if got := remaining(); fmt.Sprint(got) != fmt.Sprint(ids[1:]) {
		t.Errorf("after trim: %v; want %v (slow still holds entry 1 pending)", got, ids[1:])
	}

	// slow acks what it read: it still needs the two entries it never read.
	h.rdb.XAck(ctx, key, "slow", ids[1], ids[3])
	trim()
	if got := remaining(); fmt.Sprint(got) != fmt.Sprint(ids[4:]) {
		t.Errorf("after trim: %v; want %v (slow has not read them)", got, ids[4:])
	}

	h.rdb.XAck(ctx, key, "slow", read("slow", 100)...)
	trim()
	if got := remaining(); len(got) != 0 {
		t.Errorf("after trim: %v; want nothing (every group finished)", got)
	}
	if n, _ := h.rdb.XLen(ctx, key).Result(); n != 0 {
		t.Errorf("XLEN = %d", n)
	}
}

func TestTrimAfterDelivery(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	p := routingtest.NewPlatform()
	opts := h.fastOptions()
	opts.TrimInterval = 10 * time.Millisecond
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": p.Accept()}), opts)
	for i := range 10 {
		h.enqueue(routingtest.Event(strconv.Itoa(i), "Purchase"))
	}
	routingtest.WaitFor(t, "delivery and trimming", func() bool {
		n, _ := h.rdb.XLen(context.Background(), routing.StreamKey(routingtest.Site)).Result()
		return p.Total() == 10 && n == 0
	})
}

func TestBackoff(t *testing.T) {
	pol := RetryPolicy{}.withDefaults()
	tests := []struct {
		attempts   int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{1, 0, 0.5, 500 * time.Millisecond},
		{2, 0, 0.5, time.Second},
		{4, 0, 0.999, 7992 * time.Millisecond},
		{30, 0, 0.5, 30 * time.Minute}, // capped at 1h before jitter
		{1000, 0, 0.5, 30 * time.Minute},
		{1, 0, 0, 0},
		{1, 90 * time.Second, 0.5, 90 * time.Second}, // Retry-After is a floor
	}
	for _, tt := range tests {
		if got := pol.backoff(tt.attempts, tt.retryAfter, tt.rnd); got != tt.want {
			t.Errorf("backoff(%d, %v, %v) = %v; want %v", tt.attempts, tt.retryAfter, tt.rnd, got, tt.want)
		}
	}
}

func TestDispatcherOptions(t *testing.T) {
	h := newHarness(t, routingtest.Config())
	_, err := New(h.rdb, h.store, nil, destinations.Deps{}, Options{VisibilityTimeout: time.Second, DeliverTimeout: time.Second})
	if err == nil {
		t.Error("a DeliverTimeout as long as the VisibilityTimeout was accepted")
	}
	if _, err := New(h.rdb, h.store, nil, destinations.Deps{}, Options{Registerer: h.reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(h.rdb, h.store, nil, destinations.Deps{}, Options{Registerer: h.reg}); err == nil {
		t.Error("registering the metrics twice on one registry did not fail")
	}
}

// A round that splits batch after batch against a slow platform must not
// outlive its lease: another consumer would take its entries over and send
// again what the platform already acknowledged. With two dispatchers on one
// group, a lease of 1.2s and a platform taking 250ms per request, finding
// the bad event among 32 takes eleven requests (~2.7s): the round renews its
// lease, every good event is delivered exactly once, and the bad one is
// dead-lettered once.
func TestLongRoundRenewsItsLease(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	var mu sync.Mutex
	delivered := map[string]int{}
	slow := routingtest.DeliverFunc(func(ctx context.Context, batch []destinations.Event) []error {
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return destinations.All(len(batch), destinations.RetryableError(0, "timeout"))
		}
		for _, ev := range batch {
			if ev.EventID == "bad" {
				err := &destinations.Error{Kind: destinations.Permanent, WholeBatch: len(batch) > 1, Message: "invalid parameter"}
				return destinations.All(len(batch), err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range batch {
			delivered[ev.EventID]++
		}
		return make([]error, len(batch))
	})
	opts := h.fastOptions()
	opts.VisibilityTimeout, opts.DeliverTimeout = 1200*time.Millisecond, 400*time.Millisecond
	var evs []destinations.Event
	for i := range 32 {
		id := fmt.Sprint("ev-", i)
		if i == 21 {
			id = "bad"
		}
		evs = append(evs, routingtest.Event(id, "Lead"))
	}
	h.enqueue(evs...)
	a := opts
	a.Consumer = "a"
	b := opts
	b.Consumer, b.Registerer = "b", prometheus.NewRegistry()
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": slow}), a)
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": slow}), b)
	routingtest.WaitFor(t, "every event resolved", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 31 && len(h.deadLetters("meta")) == 1 && h.retryCount("meta") == 0 && h.groupDone("meta")
	})
	time.Sleep(2 * opts.VisibilityTimeout) // a late takeover would resend now
	mu.Lock()
	defer mu.Unlock()
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if dls := h.deadLetters("meta"); len(dls) != 1 {
		t.Errorf("%d dead letters; want the bad event once", len(dls))
	}
}

// The lease of a round's retries is renewed on the dispatcher's clock, the
// clock their due times and leases are scored on: renewed on another, a
// lease would end at once (or hours late) and the retry go out twice.
func TestRenewLeasesRetriesOnTheClock(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	ctx := context.Background()
	clk := &clock{}
	clk.Advance(24 * time.Hour)
	opts := h.fastOptions()
	opts.Now = clk.Now
	d, err := New(h.rdb, h.store, nil, destinations.Deps{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := h.store.Snapshot().Destination("meta")
	w := newWorker(d, *spec, routingtest.NewPlatform().Accept(), d.log)
	key := routing.RetryKey(routingtest.Site, "meta")
	member, err := retryItem{Ref: "1-0/0", Event: routingtest.Event("e1", "Purchase"), Attempts: 1}.member()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.ZAdd(ctx, key, redis.Z{Score: float64(clk.Now().UnixMilli()), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	if leased, err := lease(ctx, h.rdb, d.lease, key, clk.Now(), clk.Now().Add(time.Second), 10); err != nil || len(leased) != 1 {
		t.Fatalf("lease: %v, %v", leased, err)
	}
	r := round{jobs: []*job{{ref: "1-0/0", member: member}}, leasedAt: clk.Now()}
	if err := w.renew(ctx, &r); err != nil {
		t.Fatal(err)
	}
	score, err := h.rdb.ZScore(ctx, key, member).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := clk.Now().Add(d.opts.VisibilityTimeout)
	if got := time.UnixMilli(int64(score)); got.Before(want.Add(-time.Second)) || got.After(want.Add(time.Second)) {
		t.Errorf("renewed lease ends at %v; want VisibilityTimeout after the dispatcher's now, %v", got, want)
	}
}

// tagway_delivery_seconds measures a Deliver call on the dispatcher's
// clock.
func TestDeliverySecondsOnTheClock(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}))
	clk := &clock{}
	p := routingtest.NewPlatform()
	slow := routingtest.DeliverFunc(func(_ context.Context, batch []destinations.Event) []error {
		clk.Advance(3 * time.Second) // the platform takes three seconds, by the clock
		p.Record(batch)
		return make([]error, len(batch))
	})
	opts := h.fastOptions()
	opts.Now = clk.Now
	h.run(routingtest.Fakes(map[string]destinations.Destination{"meta": slow}), opts)
	h.enqueue(routingtest.Event("e1", "Purchase"))
	routingtest.WaitFor(t, "the delivery", func() bool { return h.metric("meta", outcomeDelivered) == 1 })
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "tagway_delivery_seconds" {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	if sum < 3 || sum > 4 {
		t.Errorf("tagway_delivery_seconds sums %.3fs; want the 3s the clock moved", sum)
	}
}
