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
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

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
	circuit  circuit       // circuit.go
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
		w.enrich(hard, r.jobs) // before policy, which may drop fields
	}
	var send []*job
	for _, j := range r.jobs {
		switch {
		case j.out.kind != 0: // decided while decoding
		case w.draining() || !configured:
			j.out = outcome{kind: outDead, reason: ReasonUnknownDestination, message: "the destination was removed from the configuration"}
		case !w.admit(snap, routes, j): // route, consent, region, test mode
		case w.tooOld(j.event, now):
			j.out = outcome{kind: outDead, reason: ReasonTooOld, message: orDefault(j.lastError, "event older than the platform accepts")}
		default:
			send = append(send, j)
		}
	}
	if !w.deliverAll(hard, send, &r) { // limits, circuit, batch splitting, lease
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

// enrich runs the dispatcher's identity store (if any) over the round's
// jobs that are still to be decided and have not been through a route's
// policy: stream events, and replayed dead letters that never reached a
// route. A retry already went through its route's policy, which may have
// dropped identifiers (a region rule): enriching it again would add them
// back, so it goes as it is (it was enriched on its first attempt). A
// failure is logged and the round goes out unenriched.
func (w *worker) enrich(ctx context.Context, jobs []*job) {
	id := w.d.opts.Identity
	if id == nil {
		return
	}
	var evs []*destinations.Event
	for _, j := range jobs {
		if j.out.kind == 0 && j.event.Context.Route == "" {
			evs = append(evs, &j.event)
		}
	}
	if len(evs) == 0 {
		return
	}
	if err := id.Enrich(ctx, w.site, evs); err != nil {
		w.log.Warn("identity enrichment failed; the events go out without it", "events", len(evs), "err", err)
	}
}

// admit is the dispatcher's call into ApplyPolicy for one job: it picks the
// first route of the destination accepting the event, applies the policy and
// resolves the job as filtered or withheld when it is not to be sent. An
// event that already went through a route's policy (a retry) is only checked
// to still have that route.
func (w *worker) admit(snap *model.Snapshot, routes []model.Route, j *job) bool {
	if id := j.event.Context.Route; id != "" {
		for _, r := range routes {
			if r.ID == id && !r.Disabled {
				return true
			}
		}
		j.out = outcome{kind: outFiltered}
		return false
	}
	var route *model.Route
	for i := range routes {
		if routes[i].Accepts(j.event.EventName) {
			route = &routes[i]
			break
		}
	}
	if route == nil {
		j.out = outcome{kind: outFiltered}
		return false
	}
	var site model.Site
	if s, ok := snap.Site(w.site); ok {
		site = *s
	}
	to := Recipient{AdPlatform: true}
	if p, ok := w.dest.(AdPlatform); ok {
		to.AdPlatform = p.AdPlatform()
	}
	if a, ok := w.dest.(destinations.AnonymousAcceptor); ok {
		to.RefusesAnonymous = !a.AcceptsAnonymous()
	}
	if a, ok := w.dest.(destinations.IncompleteAcceptor); ok {
		to.RefusesIncomplete = !a.AcceptsIncomplete()
	}
	ev := j.event
	if send, reason := ApplyPolicy(*route, site, to, &ev); !send {
		j.out = outcome{kind: outWithheld}
		w.d.metrics.withheld.WithLabelValues(w.id, reason).Inc()
		w.log.Debug("event withheld by policy", "route", route.ID, "event_id", j.event.EventID,
			"event_name", j.event.EventName, "reason", reason)
		return false
	}
	j.event = ev
	return true
}

// recordTestResults keeps the outcomes of the round's test-mode deliveries
// in each route's capped list. It is best effort: a failure is logged.
func (w *worker) recordTestResults(r round) {
	snap := w.d.store.Snapshot()
	lists := map[string][]any{}
	for _, j := range r.jobs {
		route, ok := snap.Route(j.event.Context.Route)
		if !ok || !route.TestMode {
			continue
		}
		res := config.TestResult{At: w.d.opts.Now().UTC(), EventName: j.event.EventName, EventID: j.event.EventID,
			TestEventCode: j.event.Context.TestEventCode}
		switch j.out.kind {
		case outDelivered:
			res.Outcome = outcomeDelivered
		case outRetry:
			res.Outcome, res.Message = outcomeRetry, j.lastError
		case outDead:
			res.Outcome, res.Message = outcomeDead, j.out.message
		default:
			continue
		}
		b, err := json.Marshal(res)
		if err != nil {
			continue
		}
		key := routing.TestResultsKey(w.site, route.ID)
		lists[key] = append(lists[key], string(b))
	}
	if len(lists) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	_, err := w.d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, items := range lists {
			p.LPush(ctx, key, items...)
			p.LTrim(ctx, key, 0, config.TestResultsKept-1)
		}
		return nil
	})
	if err != nil {
		w.log.Warn("recording test-mode results failed", "err", err)
	}
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

// errNoGroup reports whether err is Redis's NOGROUP (the stream or group is
// missing).
func errNoGroup(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOGROUP") }
