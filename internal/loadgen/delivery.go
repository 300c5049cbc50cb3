package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/meta"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue"
)

// Bounds of the delivery benchmark.
const (
	// MaxDeliveryEvents bounds the events one delivery run queues.
	MaxDeliveryEvents = 2_000_000
	deliverySite      = "bench"
	deliveryDest      = "meta"
	deliveryPixel     = "100200300400500"
	deliveryToken     = "bench-token-not-a-secret"
)

// DeliveryOptions describe one delivery run.
type DeliveryOptions struct {
	// Redis is the server the queue lives on. Its database must be empty:
	// the run stores its own configuration and deletes every key when
	// it ends.
	Redis redis.UniversalClient
	// Events is how many events are queued, then delivered (default
	// 100,000).
	Events int
	// Timeout bounds the whole run (default 3 minutes).
	Timeout time.Duration
	// Dispatcher are the dispatcher's options; zero values are the
	// defaults `tagway serve` runs with.
	Dispatcher dispatch.Options
	// Identity, when set, is the identity store the dispatcher writes and
	// reads each round, as in `tagway serve`.
	Identity *dispatch.IdentityStore
	// Logger receives the dispatcher's logs (default: discarded).
	Logger *slog.Logger
}

// DeliveryResult is the outcome of a delivery run.
type DeliveryResult struct {
	Events int `json:"events"`
	// EventJSONBytes is the size of one queued event's JSON.
	EventJSONBytes int `json:"event_json_bytes"`
	// FillTime is how long queueing took (one Enqueue per event, 64 at a
	// time, as concurrent /collect requests do).
	FillTime time.Duration `json:"fill_ns"`
	// UsedMemoryDelta is Redis's INFO used_memory after queueing minus
	// before; BytesPerEvent is that divided by Events.
	UsedMemoryDelta int64   `json:"used_memory_delta"`
	BytesPerEvent   float64 `json:"bytes_per_event"`
	// IdentityKeys is how many visitor identity hashes delivery stored
	// (with Identity set; every queued event is a new identified visitor),
	// and BytesPerIdentity their share of used_memory each: measured once
	// the stream is deleted, against the memory before queueing.
	IdentityKeys     int64   `json:"identity_keys,omitempty"`
	BytesPerIdentity float64 `json:"bytes_per_identity,omitempty"`
	// DeliverTime is from the dispatcher's start until the fake platform
	// had every event; EventsPerSec is Events over it.
	DeliverTime  time.Duration `json:"deliver_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
	// Requests is how many requests the fake platform answered, and
	// MeanBatch the mean events per request.
	Requests  int64   `json:"requests"`
	MeanBatch float64 `json:"mean_batch"`
}

// FakeMeta is a minimal, fast stand-in for Meta's events edge for
// throughput runs: it counts the events of each request and answers 200
// with events_received, checking nothing else (metatest is the strict
// fake; its validation would dominate a throughput run).
type FakeMeta struct {
	URL      string
	events   atomic.Int64
	requests atomic.Int64
	srv      *http.Server
}

// StartFakeMeta serves a FakeMeta on a free loopback port.
func StartFakeMeta() (*FakeMeta, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &FakeMeta{URL: "http://" + ln.Addr().String()}
	marker := []byte(`"event_name":`)
	f.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, `{"error":{"message":"read","code":1,"is_transient":true}}`, http.StatusInternalServerError)
			return
		}
		n := bytes.Count(body, marker)
		f.events.Add(int64(n))
		f.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"events_received":`+strconv.Itoa(n)+`,"messages":[],"fbtrace_id":"bench"}`)
	})}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// Events is how many events the fake has accepted.
func (f *FakeMeta) Events() int64 { return f.events.Load() }

// Requests is how many requests the fake has answered.
func (f *FakeMeta) Requests() int64 { return f.requests.Load() }

// Close stops the fake.
func (f *FakeMeta) Close() error { return f.srv.Close() }

// DeliveryEvent is the canonical event the delivery run queues for number
// n: what the gateway makes of one Body (hashed e-mail, phone and customer
// id, IP, user agent, _fbp, custom data).
func DeliveryEvent(n int, now time.Time) destinations.Event {
	h := func(s string) []string {
		sum := sha256.Sum256([]byte(s))
		return []string{hex.EncodeToString(sum[:])}
	}
	value, items := 42.5+float64(n%100), 2
	id := AppendEventID(nil, 7, uint64(n))
	return destinations.Event{
		EventName:      "Purchase",
		EventTime:      now.Unix(),
		EventID:        string(id),
		EventSourceURL: "https://shop.example/checkout/thank-you?utm_source=bench&utm_medium=cpc",
		ReferrerURL:    "https://www.google.com/",
		ActionSource:   "website",
		UserData: destinations.UserData{
			Em:              h("jane.doe+" + strconv.Itoa(n) + "@example.com"),
			Ph:              h("1650555" + strconv.Itoa(1000+n%9000)),
			ExternalID:      h("cust-" + strconv.Itoa(n)),
			ClientIPAddress: "203.0.113." + strconv.Itoa(n%250+1),
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			Fbp:             "fb.1." + strconv.FormatInt(now.UnixMilli(), 10) + "." + strconv.Itoa(100000000000+n),
		},
		CustomData: &destinations.CustomData{
			Value: &value, Currency: "EUR", ContentIDs: []string{"sku-" + strconv.Itoa(n%1000), "sku-42"},
			Contents:    []destinations.Content{{ID: "sku-42", Quantity: &items}},
			ContentType: "product", NumItems: &items, OrderID: "order-" + strconv.Itoa(n),
		},
		Context: destinations.Context{
			Source: "browser",
			Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted,
				AdPersonalization: destinations.Granted, AnalyticsStorage: destinations.Granted},
		},
	}
}

// Delivery queues opts.Events events for one Meta destination, measures the
// Redis memory they take, then runs a Dispatcher until a local FakeMeta has
// received them all, and reports the rate.
func Delivery(ctx context.Context, opts DeliveryOptions) (res DeliveryResult, err error) {
	if opts.Redis == nil {
		return res, errors.New("loadgen: delivery needs a Redis client")
	}
	if opts.Events == 0 {
		opts.Events = 100_000
	}
	if opts.Events < 1 || opts.Events > MaxDeliveryEvents {
		return res, fmt.Errorf("loadgen: events %d is not in 1..%d", opts.Events, MaxDeliveryEvents)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	rdb := opts.Redis
	if n, err := rdb.DBSize(ctx).Result(); err != nil {
		return res, fmt.Errorf("loadgen: redis: %w", err)
	} else if n != 0 {
		return res, fmt.Errorf("loadgen: the Redis database holds %d keys; the delivery run needs an empty one (e.g. redis://127.0.0.1:6379/15)", n)
	}
	defer func() {
		// The database was empty: every key now in it is this run's.
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		iter := rdb.Scan(cctx, 0, "*", 1000).Iterator()
		for iter.Next(cctx) {
			if derr := rdb.Del(cctx, iter.Val()).Err(); derr != nil {
				err = errors.Join(err, fmt.Errorf("loadgen: clean up %s: %w", iter.Val(), derr))
			}
		}
		if ierr := iter.Err(); ierr != nil {
			err = errors.Join(err, fmt.Errorf("loadgen: clean up: %w", ierr))
		}
	}()

	fake, err := StartFakeMeta()
	if err != nil {
		return res, err
	}
	defer fake.Close()

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	settings, _ := json.Marshal(map[string]any{"pixel_id": deliveryPixel, "access_token": deliveryToken, "graph_url": fake.URL})
	cfg := model.Config{
		Sites:        []model.Site{{ID: deliverySite, Domains: []string{"bench.invalid"}}},
		Destinations: []model.Destination{{ID: deliveryDest, SiteID: deliverySite, Type: "meta", Settings: settings}},
		Routes:       []model.Route{{ID: "bench-meta", SiteID: deliverySite, DestinationID: deliveryDest}},
	}
	store := config.NewStore(rdb, logger)
	if err := store.Apply(ctx, cfg); err != nil {
		return res, err
	}

	now := time.Now()
	sample, _ := json.Marshal(DeliveryEvent(0, now))
	res.Events, res.EventJSONBytes = opts.Events, len(sample)
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return res, err
	}
	q := queue.New(rdb, queue.Options{})
	start := time.Now()
	if err := fill(ctx, q, opts.Events, now); err != nil {
		return res, err
	}
	res.FillTime = time.Since(start)
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return res, err
	}
	res.UsedMemoryDelta = after - before
	res.BytesPerEvent = float64(res.UsedMemoryDelta) / float64(opts.Events)

	deps := destinations.Deps{HTTP: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, Logger: logger, Now: time.Now}
	dopts := opts.Dispatcher
	dopts.Identity = opts.Identity
	if dopts.Logger == nil {
		dopts.Logger = logger
	}
	d, err := dispatch.New(rdb, store, destinations.Registry{"meta": meta.New}, deps, dopts)
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- d.Run(runCtx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for fake.Events() < int64(opts.Events) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	res.DeliverTime = time.Since(start)
	stop()
	<-done
	res.Requests = fake.Requests()
	if res.Requests > 0 {
		res.MeanBatch = float64(fake.Events()) / float64(res.Requests)
	}
	if got := fake.Events(); got < int64(opts.Events) {
		return res, fmt.Errorf("loadgen: only %d of %d events delivered before the timeout: %w", got, opts.Events, ctx.Err())
	}
	res.EventsPerSec = float64(opts.Events) / res.DeliverTime.Seconds()
	if opts.Identity != nil {
		if err := identityMemory(ctx, rdb, before, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// identityMemory fills in res's identity figures: the stream (the queued
// events and their consumer group) is deleted, and what used_memory still
// holds over before is the identity hashes.
func identityMemory(ctx context.Context, rdb redis.UniversalClient, before int64, res *DeliveryResult) error {
	if err := rdb.Del(ctx, routing.StreamKey(deliverySite)).Err(); err != nil {
		return fmt.Errorf("loadgen: delete the stream: %w", err)
	}
	// One SCAN: the delivery run measures a single redis-server (a
	// cluster client would scan one node only).
	iter := rdb.Scan(ctx, 0, routing.IdentityKeyPattern(deliverySite), 1000).Iterator()
	for iter.Next(ctx) {
		res.IdentityKeys++
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("loadgen: count identities: %w", err)
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	if res.IdentityKeys > 0 {
		res.BytesPerIdentity = float64(after-before) / float64(res.IdentityKeys)
	}
	return nil
}

// fill queues n events, one per Enqueue, from 64 goroutines.
func fill(ctx context.Context, q *queue.Queue, n int, now time.Time) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := q.Enqueue(ctx, deliverySite, []destinations.Event{DeliveryEvent(i, now)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ctx.Err())
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("loadgen: INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("loadgen: INFO memory has no used_memory")
}
