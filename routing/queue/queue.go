package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
	"github.com/tagway/tagway/routing/queue/spool"
)

// Options configure a Queue. Zero values take the defaults named on
// each field.
type Options struct {
	// Now stamps Context.ReceivedAt when it is zero (default time.Now).
	Now func() time.Time
	// MaxBatch is the most Enqueue calls written in one pipeline (default
	// 512).
	MaxBatch int
	// Linger is how long the first call of an idle queue waits for others
	// before its pipeline goes (default 0: it goes at once, and the calls
	// arriving while a pipeline is in flight form the next one).
	Linger time.Duration
	// BusyLinger is how long, at most, a busy queue's next pipeline waits
	// for more calls when fewer than BusyBatch were waiting as the previous
	// one returned; it goes as soon as BusyBatch wait (default 200µs,
	// negative: never). Redis and the gateway pay per pipeline far more
	// than per call. An idle queue writes at once (see Linger).
	BusyLinger time.Duration
	// BusyBatch is the number of waiting calls under which BusyLinger
	// applies (default 24).
	BusyBatch int
	// MaxInFlight is how many pipelines may be in flight at once (default
	// 1: calls arriving meanwhile make the next pipeline larger).
	MaxInFlight int
	// MaxEntryBytes caps the payload of one stream entry when calls for the
	// same site are merged into one (default 64 KiB; one call is never
	// split).
	MaxEntryBytes int
	// WriteTimeout bounds one pipeline (default 5s).
	WriteTimeout time.Duration
	// Spool, when set, takes the writes Redis cannot take: Enqueue then
	// returns once the spool has fsync'd them, and Run moves them into
	// Redis when it answers again. The caller opens and closes it.
	Spool *spool.Spool
	// ProbeInterval is how often Run checks whether Redis is back while
	// the spool holds events (default 500ms).
	ProbeInterval time.Duration
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1
	}
	if o.BusyLinger == 0 {
		o.BusyLinger = 200 * time.Microsecond
	}
	if o.BusyBatch <= 0 {
		o.BusyBatch = 24
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 64 << 10
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// ErrSpoolFull is returned (wrapped) by Enqueue when Redis is unreachable
// and the local spool has no room left: the sender should retry later.
var ErrSpoolFull = spool.ErrFull

// Queue is the durable intake: the gateway hands it accepted events and
// answers the sender only once Enqueue has returned nil. It is safe for
// concurrent use; concurrent calls are group-committed.
type Queue struct {
	rdb       redis.UniversalClient
	opts      Options
	now       func() time.Time
	log       *slog.Logger
	spool     *spool.Spool
	commit    committer
	codec     *Codec  // writes stream entries
	bufs      bufPool // buffers of the write path
	metrics   *queueMetrics
	redisDown atomic.Bool // set by a failed write, cleared by Run

	// With a spool: this process's writer id in marker keys, the sequence
	// of its flushes and spool records, the order of its spool appends,
	// and the flushes that may be writing to Redis.
	writer        string
	seq           atomic.Uint64
	spoolMu       sync.Mutex
	redisWrites   atomic.Int64
	enqueueScript *redis.Script
	drainScript   *redis.Script
}

// New returns a Queue writing to rdb. The client should not retry
// failed commands on its own (MaxRetries -1): a retried XADD whose first try
// reached Redis adds the events twice.
func New(rdb redis.UniversalClient, opts Options) *Queue {
	opts = opts.withDefaults()
	q := &Queue{
		rdb: rdb, opts: opts, now: opts.Now, log: opts.Logger, spool: opts.Spool,
		metrics: newQueueMetrics(), writer: randomHex(8), codec: NewCodec(),
		enqueueScript: redis.NewScript(enqueueScript), drainScript: redis.NewScript(drainScript),
	}
	q.commit.q = q
	q.commit.kick = make(chan struct{}, opts.MaxInFlight)
	q.commit.gathered = make(chan struct{}, 1)
	for i := range opts.MaxInFlight {
		q.commit.slots = append(q.commit.slots, i)
	}
	return q
}

// Enqueue stores events for siteID and returns once Redis has acknowledged
// the write (or, when Redis is unreachable, the spool has fsync'd it). It
// sets each event's Context.SiteID (and ReceivedAt when zero) on its own
// copy; the caller's slice is not changed. No events is a no-op. When ctx
// ends first, Enqueue returns ctx's error and the events may or may not be
// stored.
func (q *Queue) Enqueue(ctx context.Context, siteID string, events []destinations.Event) error {
	if !model.ValidID(siteID) {
		return fmt.Errorf("routing: enqueue: invalid site id %q", siteID)
	}
	if len(events) == 0 {
		return nil
	}
	payload, err := encodeEvents(q.bufs.get(len(events)*1100), siteID, events, q.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("routing: enqueue: encode events: %w", err)
	}
	r := &enqueueReq{site: siteID, payload: payload, events: len(events), done: make(chan error, 1)}
	q.commit.submit(r)
	done := ctx.Done()
	if done == nil {
		// A context that never ends (context.WithoutCancel, say): the
		// write's own bounds (WriteTimeout, the spool) end the wait.
		return <-r.done
	}
	select {
	case err := <-r.done:
		return err
	case <-done:
		return fmt.Errorf("routing: enqueue to site %q: %w", siteID, ctx.Err())
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
