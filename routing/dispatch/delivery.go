package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
)

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
			w.d.metrics.splits.WithLabelValues(w.id).Inc()
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
		w.d.metrics.renewals.WithLabelValues(w.id).Inc()
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
		if claims, ok := poisoned[entryOf(j.ref)]; ok {
			j.out = outcome{kind: outDead, reason: ReasonPoison,
				message: "queue entry taken over " + strconv.FormatInt(claims, 10) + " times after consumers stopped while holding it"}
		}
	}
	w.log.Error("dead-lettering queue entries every consumer stopped on", "entries", len(poisoned))
	return r
}

// entryOf returns the stream entry id of a job's ref ("<entry id>/<index>").
func entryOf(ref string) string {
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		return ref[:i]
	}
	return ref
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

// commitTimeout bounds the MULTI/EXEC that records a round's outcomes.
const commitTimeout = 10 * time.Second

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
