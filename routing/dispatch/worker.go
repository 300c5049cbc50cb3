package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// AdPlatform may be implemented by a Destination to say whether it is an
// advertising platform. A destination that does not implement it is treated
// as one, the safe default: it receives no event without marketing consent.
type AdPlatform interface {
	AdPlatform() bool
}

// commitTimeout bounds the MULTI/EXEC that records a round's outcomes.
const commitTimeout = 10 * time.Second

// worker delivers the events of one destination: it reads the destination's
// consumer group, claims entries other consumers left stale, leases due
// retries, and records every outcome.
//
// A worker without a destination drains a destination removed from the
// configuration: it dead-letters everything queued for it (reason
// unknown_destination, so it can be replayed should the destination return)
// and deletes the consumer group once nothing is left, so the group stops
// holding back trimming.
type worker struct {
	d        *Dispatcher
	site, id string
	dest     destinations.Destination // nil when draining
	maxBatch int
	log      *slog.Logger

	lastClaim time.Time // step only

	mu          sync.Mutex // guards pausedUntil (several batches may be in flight)
	pausedUntil time.Time

	limiter  *limiter      // nil: no rate limit
	circuit  circuit       // delivery.go
	slots    chan struct{} // one per batch allowed in flight
	inFlight sync.WaitGroup
	handed   bool // step passed its slot to a round (step only)
}

func newWorker(d *Dispatcher, spec model.Destination, dest destinations.Destination, log *slog.Logger) *worker {
	w := &worker{d: d, site: spec.SiteID, id: spec.ID, dest: dest, maxBatch: d.opts.ReadCount, log: log}
	if dest != nil {
		w.maxBatch = max(dest.MaxBatch(), 1)
	}
	l := d.opts.limitsFor(spec.ID, w.maxBatch)
	if dest == nil {
		l = Limits{Concurrency: 1}
	}
	w.limiter = newLimiter(l, d.opts.Now)
	w.slots = make(chan struct{}, l.Concurrency)
	return w
}

func (w *worker) draining() bool { return w.dest == nil }

// readCount is how many entries or retries one read takes: ReadCount, but
// no more than a batch holds (an entry holds at least one event), so that
// with Concurrency above one the next read forms the next batch.
func (w *worker) readCount() int { return min(w.d.opts.ReadCount, w.maxBatch) }

// run works until ctx is done. In-flight work gets ShutdownTimeout more to
// finish; a round still delivering then keeps what the platform already
// acknowledged and schedules the rest again (or, when nothing of it was
// resolved, is abandoned unrecorded: it stays pending, or leased, and is
// delivered by another consumer later). See deliverAll.
func (w *worker) run(ctx context.Context) {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.d.opts.ShutdownTimeout, cancelHard) })
	defer stop()

	if !w.draining() {
		if err := routing.EnsureGroup(hard, w.d.rdb, w.site, w.id); err != nil {
			w.log.Warn("cannot create consumer group; retrying", "err", err)
		}
	}
	defer w.inFlight.Wait()
	failures := 0
	for ctx.Err() == nil {
		if until, held := w.holding(ctx); held {
			w.sleep(ctx, min(until.Sub(w.d.opts.Now()), w.d.opts.Block))
			continue
		}
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		w.handed = false
		worked, err := w.step(ctx, hard)
		if !w.handed {
			<-w.slots
		}
		if w.draining() && (errNoGroup(err) || (err == nil && !worked && w.drained(hard))) {
			w.log.Info("removed destination drained; its consumer group is gone")
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			w.log.Warn("redis error; retrying", "err", err, "failures", failures)
			w.sleep(ctx, min(50*time.Millisecond<<min(failures, 7), 5*time.Second))
			continue
		}
		failures = 0
	}
	w.log.Info("destination worker stopped")
}

// drained reports whether a removed destination has nothing left, and if so
// deletes its consumer group. Nothing pending with any consumer and nothing
// unread means no replica is still working on it.
func (w *worker) drained(ctx context.Context) bool {
	groups, err := w.d.rdb.XInfoGroups(ctx, routing.StreamKey(w.site)).Result()
	if err != nil {
		return false
	}
	for _, g := range groups {
		if g.Name != w.id {
			continue
		}
		if g.Pending != 0 || g.Lag != 0 {
			return false
		}
		if n, err := w.d.rdb.ZCard(ctx, routing.RetryKey(w.site, w.id)).Result(); err != nil || n != 0 {
			return false
		}
		return w.d.rdb.XGroupDestroy(ctx, routing.StreamKey(w.site), w.id).Err() == nil
	}
	return true
}

func (w *worker) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dispatch hands a round and the step's slot to a goroutine (or, with one
// slot, processes it at once), so up to Concurrency rounds are in flight.
func (w *worker) dispatch(hard context.Context, r round) {
	if cap(w.slots) == 1 {
		w.process(hard, r)
		return
	}
	w.handed = true
	w.inFlight.Add(1)
	go func() {
		defer w.inFlight.Done()
		defer func() { <-w.slots }()
		w.process(hard, r)
	}()
}

// step does one unit of work: stale pending entries first, then due
// retries, then new entries. It reports whether there was any.
func (w *worker) step(ctx, hard context.Context) (bool, error) {
	if claimedAt := w.d.opts.Now(); claimedAt.Sub(w.lastClaim) >= w.d.opts.VisibilityTimeout/2 {
		msgs, more, err := w.claim(hard)
		if err != nil {
			return false, err
		}
		if !more {
			w.lastClaim = w.d.opts.Now()
		}
		if len(msgs) > 0 {
			w.log.Info("claimed entries left pending by another consumer", "entries", len(msgs))
			r := w.markPoison(hard, msgs, w.entryJobs(msgs))
			r.leasedAt = claimedAt
			w.dispatch(hard, r)
			return true, nil
		}
	}
	now, dueBy := w.d.opts.Now(), w.d.opts.Now()
	if w.draining() {
		dueBy = time.UnixMilli(1 << 53) // everything, due or not
	}
	members, err := lease(hard, w.d.rdb, w.d.lease, routing.RetryKey(w.site, w.id), dueBy, now.Add(w.d.opts.VisibilityTimeout), w.readCount())
	if err != nil {
		return false, err
	}
	if len(members) > 0 {
		r := w.retryJobs(members)
		r.leasedAt = now
		w.dispatch(hard, r)
		return true, nil
	}
	r, err := w.read(ctx, hard)
	if err != nil {
		return false, err
	}
	if len(r.jobs) > 0 || len(r.entries) > 0 {
		w.dispatch(hard, r)
		return true, nil
	}
	return false, nil
}

// claim takes entries of this group that have been pending with any
// consumer for longer than VisibilityTimeout.
func (w *worker) claim(ctx context.Context) ([]redis.XMessage, bool, error) {
	msgs, next, err := w.d.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: routing.StreamKey(w.site), Group: w.id, Consumer: w.d.opts.Consumer,
		MinIdle: w.d.opts.VisibilityTimeout, Start: "0-0", Count: int64(w.readCount()),
	}).Result()
	if errNoGroup(err) {
		return nil, false, w.noGroup(ctx, err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("xautoclaim: %w", err)
	}
	return msgs, next != "0-0" && next != "", nil
}

// read takes new entries, waiting up to Block for the first and up to Linger
// for more while the batch is not full.
func (w *worker) read(ctx, hard context.Context) (round, error) {
	msgs, err := w.readOnce(hard, w.d.opts.Block)
	if err != nil || len(msgs) == 0 {
		return round{}, err
	}
	r := w.entryJobs(msgs)
	r.leasedAt = w.d.opts.Now()
	deadline := r.leasedAt.Add(w.d.opts.Linger)
	for len(r.jobs) < w.maxBatch && ctx.Err() == nil {
		left := deadline.Sub(w.d.opts.Now())
		if left < time.Millisecond {
			break
		}
		more, err := w.readOnce(hard, left)
		if err != nil {
			// What was read is pending with us; deliver it now and let the
			// next step report the error.
			break
		}
		if len(more) == 0 {
			break
		}
		m := w.entryJobs(more)
		r.entries = append(r.entries, m.entries...)
		r.jobs = append(r.jobs, m.jobs...)
	}
	return r, nil
}

// noGroup handles a missing consumer group: a live destination recreates
// it; a drain is over.
func (w *worker) noGroup(ctx context.Context, err error) error {
	if w.draining() {
		return err
	}
	return routing.EnsureGroup(ctx, w.d.rdb, w.site, w.id)
}

func (w *worker) readOnce(ctx context.Context, block time.Duration) ([]redis.XMessage, error) {
	res, err := w.d.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: w.id, Consumer: w.d.opts.Consumer, Streams: []string{routing.StreamKey(w.site), ">"},
		Count: int64(w.readCount()), Block: max(block, time.Millisecond),
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case errNoGroup(err):
		return nil, w.noGroup(ctx, err)
	case err != nil:
		return nil, fmt.Errorf("xreadgroup: %w", err)
	}
	var out []redis.XMessage
	for _, s := range res {
		out = append(out, s.Messages...)
	}
	return out, nil
}

// round is one unit of recorded work: stream entries to acknowledge once
// all their events are resolved, and the events (jobs) themselves.
type round struct {
	entries []string
	jobs    []*job
	// leasedAt is when the round's entries (or retries) became this
	// consumer's: another consumer may take them VisibilityTimeout later,
	// unless the lease is renewed (worker.renew).
	leasedAt time.Time
}

// job is one event on its way to the destination.
type job struct {
	ref    string // unique: "<entry id>/<index>", or the retry item's ref
	member string // the leased retry member; empty for a stream event
	event  destinations.Event
	raw    string // set when the stored form did not decode

	attempts     int
	firstFailure int64
	lastError    string

	out outcome
}

type outcomeKind int

const (
	outDelivered outcomeKind = iota + 1
	outFiltered
	outWithheld
	outRetry
	outDead
)

// outcome is how a job was resolved.
type outcome struct {
	kind    outcomeKind
	due     time.Time // outRetry
	reason  string    // outDead
	message string    // outDead
}

func (w *worker) entryJobs(msgs []redis.XMessage) round {
	var r round
	for _, m := range msgs {
		r.entries = append(r.entries, m.ID)
		evs, err := w.d.codec.Decode(m.Values)
		if err != nil {
			raw, _ := m.Values["e"].(string)
			r.jobs = append(r.jobs, &job{ref: m.ID + "/0", raw: raw,
				out: outcome{kind: outDead, reason: ReasonPermanent, message: "queue entry does not decode: " + err.Error()}})
			continue
		}
		for i, ev := range evs {
			r.jobs = append(r.jobs, &job{ref: m.ID + "/" + strconv.Itoa(i), event: ev})
		}
	}
	return r
}

func (w *worker) retryJobs(members []string) round {
	var r round
	for _, m := range members {
		var it retryItem
		if err := json.Unmarshal([]byte(m), &it); err != nil {
			r.jobs = append(r.jobs, &job{ref: "retry", member: m, raw: m,
				out: outcome{kind: outDead, reason: ReasonPermanent, message: "retry item does not decode: " + err.Error()}})
			continue
		}
		r.jobs = append(r.jobs, &job{ref: it.Ref, member: m, event: it.Event,
			attempts: it.Attempts, firstFailure: it.FirstFailure, lastError: it.LastError})
	}
	return r
}

// process resolves every job of r and records the outcomes. If the hard
// context ends while delivering, deliverAll decides what is recorded.
//
// The one window in which the platform receives an event twice: a crash
// (or a failed commit) after Deliver returned and before the commit's
// MULTI/EXEC. The entry is then still pending and is delivered again after
// the visibility timeout, with the same event_id, which platforms
// deduplicate on.
func (w *worker) process(hard context.Context, r round) {
	now := w.d.opts.Now()
	snap := w.d.store.Snapshot()
	routes := w.routes(snap)
	// A worker finishing its last round after its destination was removed
	// treats it like a drain: its routes are gone, but the events were not
	// filtered, they lost their destination.
	_, configured := snap.Destination(w.id)
	if !w.draining() && configured {
		w.enrich(hard, r.jobs) // identity.go: before policy, which may drop fields
	}
	var send []*job
	for _, j := range r.jobs {
		switch {
		case j.out.kind != 0: // decided while decoding
		case w.draining() || !configured:
			j.out = outcome{kind: outDead, reason: ReasonUnknownDestination, message: "the destination was removed from the configuration"}
		case !w.admit(snap, routes, j): // policy.go: route, consent, region, test mode
		case w.tooOld(j.event, now):
			j.out = outcome{kind: outDead, reason: ReasonTooOld, message: orDefault(j.lastError, "event older than the platform accepts")}
		default:
			send = append(send, j)
		}
	}
	if !w.deliverAll(hard, send, &r) { // delivery.go: limits, circuit, batch splitting, lease
		return
	}
	if !w.commitRetrying(hard, r) {
		return
	}
	for _, j := range r.jobs {
		w.d.metrics.deliveries.WithLabelValues(w.id, j.out.label()).Inc()
	}
	w.recordTestResults(r)
}

func (k outcome) label() string {
	switch k.kind {
	case outDelivered:
		return outcomeDelivered
	case outFiltered:
		return outcomeFiltered
	case outWithheld:
		return outcomeWithheld
	case outRetry:
		return outcomeRetry
	}
	return outcomeDead
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// routes returns the routes from this worker's site to its destination.
func (w *worker) routes(snap *model.Snapshot) []model.Route {
	var out []model.Route
	for _, r := range snap.Routes(w.site) {
		if r.DestinationID == w.id {
			out = append(out, r)
		}
	}
	return out
}

// tooOld reports whether the event will be past the platform's age limit at
// time at.
func (w *worker) tooOld(ev destinations.Event, at time.Time) bool {
	lim, ok := w.dest.(destinations.AgeLimiter)
	if !ok {
		return false
	}
	limit := lim.MaxEventAge(ev)
	return limit > 0 && at.Sub(time.Unix(ev.EventTime, 0)) > limit
}

// deliver sends one batch, turning a panic or a wrong number of outcomes
// into retryable errors.
func (w *worker) deliver(ctx context.Context, batch []*job) (errs []error) {
	evs := make([]destinations.Event, len(batch))
	for i, j := range batch {
		evs[i] = j.event
	}
	dctx, cancel := context.WithTimeout(ctx, w.d.opts.DeliverTimeout)
	defer cancel()
	start := w.d.opts.Now()
	defer func() {
		w.d.metrics.seconds.WithLabelValues(w.id).Observe(w.d.opts.Now().Sub(start).Seconds())
		if p := recover(); p != nil {
			w.log.Error("destination panicked while delivering", "panic", fmt.Sprint(p))
			errs = destinations.All(len(batch), destinations.RetryableError(0, "destination panicked"))
		}
	}()
	errs = w.dest.Deliver(dctx, evs)
	if len(errs) != len(batch) {
		w.log.Error("destination returned the wrong number of outcomes", "events", len(batch), "outcomes", len(errs))
		errs = destinations.All(len(batch), destinations.RetryableError(0, "destination returned %d outcomes for %d events", len(errs), len(batch)))
	}
	return errs
}

// resolve decides what happens to a delivered job.
func (w *worker) resolve(j *job, err error, now time.Time) {
	kind, de := destinations.Classify(err)
	if kind == 0 {
		j.out = outcome{kind: outDelivered}
		return
	}
	msg := de.Message
	if msg == "" {
		msg = de.Error()
	}
	j.lastError = de.Error()
	if j.firstFailure == 0 {
		j.firstFailure = now.UnixMilli()
	}
	pol := w.d.opts.Retry
	switch kind {
	case destinations.Permanent:
		j.attempts++
		j.out = outcome{kind: outDead, reason: ReasonPermanent, message: msg}
	case destinations.Paused:
		// Not the event's fault: the attempt is not counted.
		w.mu.Lock()
		if !now.Before(w.pausedUntil) {
			w.pausedUntil = now.Add(pol.PauseFor)
			w.log.Error("ALERT destination paused: the platform refused its credentials or permissions; fix the destination's settings",
				"pause", pol.PauseFor, "status", de.Status, "code", de.Code, "message", de.Message)
		}
		j.out = outcome{kind: outRetry, due: w.pausedUntil}
		w.mu.Unlock()
	default:
		j.attempts++
		due := now.Add(pol.backoff(j.attempts, de.RetryAfter, w.d.opts.Rand()))
		switch {
		case j.attempts >= pol.MaxAttempts:
			j.out = outcome{kind: outDead, reason: ReasonMaxAttempts, message: msg}
		case w.tooOld(j.event, due):
			j.out = outcome{kind: outDead, reason: ReasonTooOld, message: msg}
		default:
			j.out = outcome{kind: outRetry, due: due}
		}
	}
}

// commit records a round in one MULTI/EXEC: retries scheduled, dead letters
// written, leased retries removed, and the entries acknowledged. A crash
// before it leaves everything to be redone; after it, nothing is.
func (w *worker) commit(r round) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	retryKey, deadKey := routing.RetryKey(w.site, w.id), routing.DeadKey(w.site, w.id)
	now := w.d.opts.Now()
	failedAt := strconv.FormatInt(now.UnixMilli(), 10)
	var trims []*redis.IntCmd
	_, err := w.d.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range r.jobs {
			switch j.out.kind {
			case outRetry:
				member, err := retryItem{Ref: j.ref, Event: j.event, Attempts: j.attempts,
					FirstFailure: j.firstFailure, LastError: j.lastError}.member()
				if err != nil {
					return err
				}
				if j.member != "" && j.member != member {
					p.ZRem(ctx, retryKey, j.member)
				}
				p.ZAdd(ctx, retryKey, redis.Z{Score: float64(j.out.due.UnixMilli()), Member: member})
			case outDead:
				event := j.raw
				if event == "" {
					b, err := json.Marshal(j.event)
					if err != nil {
						return err
					}
					event = string(b)
				}
				p.XAdd(ctx, &redis.XAddArgs{Stream: deadKey, Values: []any{
					"event", event, "reason", j.out.reason, "message", j.out.message,
					"attempts", j.attempts, "failed_at", failedAt,
				}})
				if j.member != "" {
					p.ZRem(ctx, retryKey, j.member)
				}
			default:
				if j.member != "" {
					p.ZRem(ctx, retryKey, j.member)
				}
			}
		}
		if len(r.entries) > 0 {
			p.XAck(ctx, routing.StreamKey(w.site), w.id, r.entries...)
		}
		if r.dead() {
			trims = w.d.opts.DeadLetters.trim(ctx, p, deadKey, now)
		}
		return nil
	})
	if err == nil && trims != nil {
		w.d.opts.DeadLetters.count(w.d.metrics.deadTrimmed, w.id, trims)
	}
	return err
}

// dead reports whether the round writes a dead letter.
func (r round) dead() bool {
	for _, j := range r.jobs {
		if j.out.kind == outDead {
			return true
		}
	}
	return false
}

// errNoGroup reports whether err is Redis's NOGROUP (the stream or group is
// missing).
func errNoGroup(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOGROUP") }
