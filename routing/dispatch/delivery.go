package dispatch

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
)

// Limits bound how hard the dispatcher drives one destination, per
// process: a gateway of three replicas with Rate 100 sends up to 300
// events/s.
type Limits struct {
	// Concurrency is how many batches may be in flight to the destination
	// at once (default 1).
	Concurrency int
	// Rate caps the events per second sent to the destination (token
	// bucket; default 0: no cap).
	Rate float64
	// Burst is the bucket's size in events (default: the larger of Rate and
	// the destination's batch size, so a full batch can always go).
	Burst int
}

// limitsFor returns the limits of a destination: its entry in
// DestinationLimits over the dispatcher-wide Limits, field by field.
func (o Options) limitsFor(destID string, maxBatch int) Limits {
	l := o.Limits
	if d, ok := o.DestinationLimits[destID]; ok {
		if d.Concurrency > 0 {
			l.Concurrency = d.Concurrency
		}
		if d.Rate > 0 {
			l.Rate = d.Rate
		}
		if d.Burst > 0 {
			l.Burst = d.Burst
		}
	}
	l.Concurrency = max(l.Concurrency, 1)
	if l.Rate > 0 && l.Burst <= 0 {
		l.Burst = max(int(l.Rate), maxBatch)
	}
	return l
}

// limiter is a token bucket of events; nil means no limit.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(l Limits, now func() time.Time) *limiter {
	if l.Rate <= 0 {
		return nil
	}
	return &limiter{rate: l.Rate, burst: float64(l.Burst), now: now, tokens: float64(l.Burst), last: now()}
}

// wait takes n tokens (at most the burst), waiting for them to accrue; it
// returns ctx's error if ctx ends first, taking nothing.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	need := min(float64(n), l.burst)
	for {
		l.mu.Lock()
		now := l.now()
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		if l.tokens >= need {
			l.tokens -= need
			l.mu.Unlock()
			return nil
		}
		wait := time.Duration((need - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// CircuitPolicy is the circuit breaker of every destination. After
// Failures consecutive batches failed with retryable errors, the circuit
// opens for every replica (the state lives in a small Redis key): nothing
// is read or sent for Delay. Then one replica sends one batch as a probe
// (half-open): if any event of it is delivered the circuit closes, else it
// opens again for twice as long, up to MaxDelay.
type CircuitPolicy struct {
	// Failures opens the circuit (default 5; negative: never).
	Failures int
	// Delay is the first open period (default 30s).
	Delay time.Duration
	// MaxDelay caps the doubling open period (default 10m).
	MaxDelay time.Duration
}

func (p CircuitPolicy) withDefaults() CircuitPolicy {
	if p.Failures == 0 {
		p.Failures = 5
	}
	if p.Delay <= 0 {
		p.Delay = 30 * time.Second
	}
	if p.MaxDelay < p.Delay {
		p.MaxDelay = max(10*time.Minute, p.Delay)
	}
	return p
}

// circuitOpenScript opens (or, after a failed probe, re-opens with twice the
// delay) the circuit KEYS[1] at ARGV[1] (Unix ms) with first delay ARGV[2]
// and cap ARGV[3], and releases the probe KEYS[2]. A circuit already open
// stays as it is. It returns the time the circuit stays open until.
const circuitOpenScript = `
local now = tonumber(ARGV[1])
local untilMs = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if untilMs > now then return untilMs end
local delay = tonumber(redis.call('HGET', KEYS[1], 'delay') or '0')
if delay == 0 then delay = tonumber(ARGV[2]) else delay = math.min(delay * 2, tonumber(ARGV[3])) end
untilMs = now + delay
redis.call('HSET', KEYS[1], 'until', untilMs, 'delay', delay)
redis.call('PEXPIRE', KEYS[1], delay + 3600000)
redis.call('DEL', KEYS[2])
return untilMs
`

// circuit is one worker's view of its destination's circuit.
type circuit struct {
	mu       sync.Mutex
	failures int       // consecutive failed batches seen by this worker
	until    time.Time // open until (zero: closed), as last read from Redis
	known    bool      // the key existed at the last read
	checked  time.Time // last read of the key
	probing  bool      // this worker holds the probe
}

// holding reports whether the worker must not send now, and until when:
// the destination is paused, or its circuit is open (or half-open with
// another replica probing).
func (w *worker) holding(ctx context.Context) (time.Time, bool) {
	now := w.d.opts.Now()
	w.mu.Lock()
	paused := w.pausedUntil
	w.mu.Unlock()
	if now.Before(paused) {
		return paused, true
	}
	if w.d.opts.Circuit.Failures < 0 || w.draining() {
		return time.Time{}, false
	}
	c := &w.circuit
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probing {
		return time.Time{}, false
	}
	if now.Sub(c.checked) >= w.d.opts.Block || (c.known && !now.Before(c.until)) {
		c.checked = now
		ms, err := w.d.rdb.HGet(ctx, routing.CircuitKey(w.site, w.id), "until").Int64()
		switch {
		case errors.Is(err, redis.Nil):
			c.known, c.until = false, time.Time{}
		case err == nil:
			c.known, c.until = true, time.UnixMilli(ms)
		}
	}
	w.d.engine.circuitOpen.WithLabelValues(w.id).Set(b2f(c.known))
	if !c.known {
		return time.Time{}, false
	}
	if now.Before(c.until) {
		return c.until, true
	}
	// Half-open: one replica sends a probe.
	ok, err := w.d.rdb.SetNX(ctx, routing.CircuitProbeKey(w.site, w.id), w.d.opts.Consumer, 2*w.d.opts.VisibilityTimeout).Result()
	if err == nil && ok {
		c.probing = true
		w.log.Info("circuit half-open: sending a probe batch")
		return time.Time{}, false
	}
	return now.Add(w.d.opts.Block), true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// recordCircuit feeds one batch's outcome to the circuit: a batch with a
// delivered event closes it; a batch that failed only with retryable
// errors counts toward opening it.
func (w *worker) recordCircuit(ctx context.Context, errs []error) {
	pol := w.d.opts.Circuit
	if pol.Failures < 0 {
		return
	}
	delivered, retryable := false, true
	for _, err := range errs {
		kind, _ := destinations.Classify(err)
		delivered = delivered || kind == 0
		retryable = retryable && kind == destinations.Retryable
	}
	c := &w.circuit
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case delivered:
		c.failures = 0
		if c.known || c.probing {
			if err := w.d.rdb.Del(ctx, routing.CircuitKey(w.site, w.id), routing.CircuitProbeKey(w.site, w.id)).Err(); err == nil {
				w.log.Info("circuit closed: the destination delivers again")
				c.known, c.until, c.probing = false, time.Time{}, false
				w.d.engine.circuitOpen.WithLabelValues(w.id).Set(0)
			}
		}
	case retryable:
		c.failures++
		if c.failures < pol.Failures && !c.probing {
			return
		}
		now := w.d.opts.Now()
		ms, err := w.d.circuitOpen.Run(ctx, w.d.rdb, []string{routing.CircuitKey(w.site, w.id), routing.CircuitProbeKey(w.site, w.id)},
			now.UnixMilli(), pol.Delay.Milliseconds(), pol.MaxDelay.Milliseconds()).Int64()
		if err != nil {
			w.log.Warn("cannot open the circuit", "err", err)
			return
		}
		c.failures, c.probing, c.known, c.until, c.checked = 0, false, true, time.UnixMilli(ms), now
		w.d.engine.circuitOpen.WithLabelValues(w.id).Set(1)
		w.d.engine.circuitOpened.WithLabelValues(w.id).Inc()
		w.log.Warn("circuit open: the destination keeps failing; every replica holds its events", "until", c.until)
	default:
		// A permanent or paused answer says nothing about availability.
	}
}

// wholeBatchRejected reports whether the platform refused a batch of
// several events as a whole, without naming the bad event.
func wholeBatchRejected(errs []error) bool {
	if len(errs) < 2 {
		return false
	}
	for _, err := range errs {
		var de *destinations.Error
		if !errors.As(err, &de) || de.Kind != destinations.Permanent || !de.WholeBatch {
			return false
		}
	}
	return true
}

// deliverAll sends the jobs to the destination in batches of at most
// maxBatch, within the rate limit, and resolves every job. A batch the
// platform refused as a whole is split in halves, re-sent at once without
// counting an attempt, until the bad events are alone and dead-lettered.
// While the destination is paused or its circuit open, jobs are scheduled
// for when it ends, without counting an attempt.
//
// When hard ends mid-round (the shutdown bound), the outcomes known so far
// are kept: delivered events stay delivered (never sent again), and the
// rest are scheduled due now with their attempt count unchanged. Only when
// nothing at all was resolved does deliverAll return false: the round is
// then handed back unrecorded (entries stay pending, retries leased).
//
// A round must be recorded before its lease ends, or another consumer
// takes its entries over and sends again what the platform already
// acknowledged. A round that splits batches against a slow platform can
// outlast it, so before a batch that might not be answered in time the
// lease is renewed (renew); if that fails, the batch and the rest are
// scheduled again, due now, without counting an attempt.
func (w *worker) deliverAll(hard context.Context, send []*job, r *round) bool {
	var queue [][]*job
	for len(send) > 0 {
		n := min(len(send), w.maxBatch)
		queue, send = append(queue, send[:n]), send[n:]
	}
	resolved := false
	leaseEnd := w.leaseEnd(r.leasedAt)
	for len(queue) > 0 {
		batch := queue[0]
		queue = queue[1:]
		if at := w.d.opts.Now(); !r.leasedAt.IsZero() && leaseEnd.Sub(at) < w.d.opts.DeliverTimeout {
			if err := w.renew(hard, r); err != nil {
				w.reschedule(append(queue, batch))
				w.log.Warn("could not renew a long round's lease; the rest is scheduled again", "events", len(batch), "err", err)
				return true
			}
			leaseEnd = w.leaseEnd(at)
		}
		if until, held := w.holding(hard); held {
			for _, j := range batch {
				j.out = outcome{kind: outRetry, due: until}
			}
			resolved = true
			continue
		}
		var errs []error
		if w.limiter.wait(hard, len(batch)) == nil {
			errs = w.deliver(hard, batch)
		}
		if hard.Err() != nil {
			return w.stopped(batch, errs, queue, resolved)
		}
		if wholeBatchRejected(errs) {
			h := len(batch) / 2
			queue = append([][]*job{batch[:h], batch[h:]}, queue...)
			w.d.engine.splits.WithLabelValues(w.id).Inc()
			continue
		}
		now := w.d.opts.Now()
		for i, j := range batch {
			w.resolve(j, errs[i], now)
		}
		resolved = true
		w.recordCircuit(hard, errs)
	}
	return true
}

// leaseEnd is when a round leased at leasedAt must be recorded by: its
// lease, less a tenth of it for the commit.
func (w *worker) leaseEnd(leasedAt time.Time) time.Time {
	v := w.d.opts.VisibilityTimeout
	return leasedAt.Add(v - v/10)
}

// renew extends the lease of a round's stream entries (claimed again by
// this consumer, which resets their idle time) and retries (their lease
// moved to VisibilityTimeout from now), in one pipeline.
func (w *worker) renew(ctx context.Context, r *round) error {
	until := w.d.opts.Now().Add(w.d.opts.VisibilityTimeout)
	pipe := w.d.rdb.Pipeline()
	if len(r.entries) > 0 {
		pipe.XClaimJustID(ctx, &redis.XClaimArgs{Stream: routing.StreamKey(w.site), Group: w.id, Consumer: w.d.opts.Consumer,
			MinIdle: 0, Messages: r.entries})
	}
	key := routing.RetryKey(w.site, w.id)
	for _, j := range r.jobs {
		if j.member != "" {
			pipe.ZAddXX(ctx, key, redis.Z{Score: float64(until.UnixMilli()), Member: j.member})
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		w.d.engine.renewals.WithLabelValues(w.id).Inc()
	}
	return err
}

// reschedule makes the undecided jobs of batches due again now, their
// attempt counts unchanged.
func (w *worker) reschedule(batches [][]*job) {
	now := w.d.opts.Now()
	for _, b := range batches {
		for _, j := range b {
			if j.out.kind == 0 {
				j.out = outcome{kind: outRetry, due: now}
			}
		}
	}
}

// stopped resolves a round cut short by the shutdown bound: see deliverAll.
func (w *worker) stopped(batch []*job, errs []error, queue [][]*job, resolved bool) bool {
	for i, j := range batch {
		if i < len(errs) && errs[i] == nil {
			j.out = outcome{kind: outDelivered}
			resolved = true
		}
	}
	if !resolved {
		w.log.Warn("stopped while delivering; the work is handed back to be delivered again", "events", len(batch))
		return false
	}
	w.reschedule(append(queue, batch))
	w.log.Warn("stopped while delivering; what the platform acknowledged is recorded, the rest is scheduled again")
	return true
}

// markPoison dead-letters the events of claimed entries that have been
// taken over more than PoisonClaims times: an entry that every consumer
// dies on must not stop the destination forever.
func (w *worker) markPoison(ctx context.Context, msgs []redis.XMessage, r round) round {
	if len(msgs) == 0 || w.d.opts.PoisonClaims < 0 {
		return r
	}
	first, last := msgs[0].ID, msgs[len(msgs)-1].ID
	pend, err := w.d.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: routing.StreamKey(w.site), Group: w.id, Start: first, End: last,
		Count: int64(len(msgs)) * 2, Consumer: w.d.opts.Consumer,
	}).Result()
	if err != nil {
		w.log.Warn("cannot read claim counts", "err", err)
		return r
	}
	poisoned := map[string]int64{}
	for _, p := range pend {
		// The first read counts one delivery; every claim adds one.
		if claims := p.RetryCount - 1; claims > int64(w.d.opts.PoisonClaims) {
			poisoned[p.ID] = claims
		}
	}
	if len(poisoned) == 0 {
		return r
	}
	for _, j := range r.jobs {
		id, _, _ := cutRef(j.ref)
		if claims, ok := poisoned[id]; ok {
			j.out = outcome{kind: outDead, reason: ReasonPoison,
				message: "queue entry taken over " + strconv.FormatInt(claims, 10) + " times after consumers stopped while holding it"}
		}
	}
	w.log.Error("dead-lettering queue entries every consumer stopped on", "entries", len(poisoned))
	return r
}

func cutRef(ref string) (string, string, bool) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], true
		}
	}
	return ref, "", false
}

// commitRetrying records a round, trying again while Redis is unreachable
// (what was delivered must not be delivered again because Redis restarted
// at the wrong moment), until the shutdown bound. It reports whether the
// round was recorded; if not, its entries stay pending and are delivered
// again after the visibility timeout.
func (w *worker) commitRetrying(hard context.Context, r round) bool {
	for attempt := 0; ; attempt++ {
		err := w.commit(r)
		if err == nil {
			return true
		}
		if hard.Err() != nil || !routing.Unreachable(err) {
			w.log.Error("recording delivery outcomes failed; the events will be delivered again", "err", err, "events", len(r.jobs))
			return false
		}
		if attempt == 0 {
			w.log.Warn("recording delivery outcomes failed; retrying until redis answers", "err", err)
		}
		w.sleep(hard, min(20*time.Millisecond<<min(attempt, 7), 2*time.Second))
	}
}
