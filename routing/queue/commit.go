package queue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
)

// enqueueReq is one Enqueue call waiting for its write.
type enqueueReq struct {
	site    string
	payload []byte // JSON array of events
	events  int
	done    chan error // buffered 1
}

// entry is one stream entry of a flush: the payloads of one or more calls
// for the same site, merged into one JSON array, in its stored form
// (Codec).
type entry struct {
	site    string
	payload []byte
	reqs    []*enqueueReq
	events  int
	size    int // bytes of the calls' payloads, while grouping
	// owned are the buffers of this entry (the merged JSON, the stored
	// form) that go back to the queue's pool once the flush is done.
	owned [][]byte
}

// committer is the group commit behind Enqueue: calls that arrive while a
// write is in flight (or within Linger of the first) wait together and go
// to Redis in one pipeline, calls of the same site merged into one stream
// entry. Each caller is answered when the command holding its events is
// acknowledged (or spooled).
//
// Under load the writes run on flusher goroutines that stay a moment
// (flusherLinger) after their last write, so a busy queue hands calls to a
// waiting flusher instead of writing on the callers' goroutines, and no
// goroutine is started per burst.
type committer struct {
	q *Queue

	mu       sync.Mutex
	pending  []*enqueueReq
	inFlight int
	slots    []int       // free flush slots; a running flush holds one
	timer    *time.Timer // armed linger timer, nil when none
	// idle counts flushers waiting for work, less the wake-ups already
	// sent them on kick; each holds a slot.
	idle int
	kick chan struct{}
	// gathering is set while a flusher waits BusyLinger for more calls;
	// gathered ends the wait once BusyBatch calls are waiting.
	gathering bool
	gathered  chan struct{}
}

// flusherLinger is how long a flusher waits for more calls after its last
// write before it ends and gives back its slot.
const flusherLinger = 50 * time.Millisecond

// submit queues r and starts a flush when one may start now: on a waiting
// flusher if there is one, else on the caller's goroutine (no hand-off
// when the queue is idle); flushes of calls that arrived meanwhile
// continue on a flusher goroutine so that caller returns at once.
func (c *committer) submit(r *enqueueReq) {
	o := &c.q.opts
	c.mu.Lock()
	c.pending = append(c.pending, r)
	switch {
	case c.idle > 0 && o.Linger <= 0:
		c.idle--
		c.mu.Unlock()
		c.kick <- struct{}{}
	case c.inFlight >= o.MaxInFlight:
		// The next flush starts when a running one ends (or, gathering,
		// once enough calls wait).
		if c.gathering && len(c.pending) >= o.BusyBatch {
			c.gathering = false
			select {
			case c.gathered <- struct{}{}:
			default:
			}
		}
		c.mu.Unlock()
	case o.Linger > 0 && len(c.pending) < o.MaxBatch:
		if c.timer == nil {
			c.timer = time.AfterFunc(o.Linger, c.lingerDone)
		}
		c.mu.Unlock()
	default:
		batch, slot := c.beginLocked()
		c.mu.Unlock()
		c.q.flush(batch, slot)
		c.next(slot)
	}
}

func (c *committer) lingerDone() {
	c.mu.Lock()
	c.timer = nil
	if len(c.pending) == 0 || c.inFlight >= c.q.opts.MaxInFlight {
		c.mu.Unlock()
		return
	}
	batch, slot := c.beginLocked()
	c.mu.Unlock()
	c.q.flush(batch, slot)
	c.next(slot)
}

// beginLocked takes up to MaxBatch waiting calls for a flush about to start.
func (c *committer) beginLocked() ([]*enqueueReq, int) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.inFlight++
	slot := c.slots[len(c.slots)-1]
	c.slots = c.slots[:len(c.slots)-1]
	return c.takeLocked(), slot
}

// next ends a flush; calls that arrived meanwhile are flushed by a new
// flusher goroutine holding the slot.
func (c *committer) next(slot int) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.endLocked(slot)
		c.mu.Unlock()
		return
	}
	batch := c.takeLocked()
	c.mu.Unlock()
	go c.flusher(batch, slot)
}

// flusher writes batch, then keeps writing while calls are waiting (when
// fewer than BusyBatch are, after up to BusyLinger), and waits
// flusherLinger for more before it gives back its slot.
func (c *committer) flusher(batch []*enqueueReq, slot int) {
	o := &c.q.opts
	wait := time.NewTimer(flusherLinger)
	defer wait.Stop()
	gather := time.NewTimer(o.BusyLinger)
	gather.Stop()
	defer gather.Stop()
	for {
		if len(batch) > 0 {
			c.q.flush(batch, slot)
		}
		c.mu.Lock()
		if n := len(c.pending); n > 0 && n < o.BusyBatch && o.BusyLinger > 0 {
			// Busy: let the next pipeline gather more calls, until
			// BusyBatch wait or BusyLinger passed.
			c.gathering = true
			select {
			case <-c.gathered: // a wake-up left by an earlier wait
			default:
			}
			c.mu.Unlock()
			gather.Reset(o.BusyLinger)
			select {
			case <-gather.C:
			case <-c.gathered:
			}
			c.mu.Lock()
			c.gathering = false
		}
		if len(c.pending) > 0 {
			batch = c.takeLocked()
			c.mu.Unlock()
			continue
		}
		if c.q.opts.Linger > 0 {
			c.endLocked(slot)
			c.mu.Unlock()
			return
		}
		c.idle++
		c.mu.Unlock()
		wait.Reset(flusherLinger)
		select {
		case <-c.kick:
		case <-wait.C:
			c.mu.Lock()
			if c.idle > 0 {
				// No wake-up is owed to a waiting flusher: this one ends.
				c.idle--
				c.endLocked(slot)
				c.mu.Unlock()
				return
			}
			// A caller counted on this flusher: its wake-up is coming.
			c.mu.Unlock()
			<-c.kick
		}
		c.mu.Lock()
		batch = c.takeLocked()
		c.mu.Unlock()
	}
}

// endLocked gives back the slot of a flush that found nothing more to do.
func (c *committer) endLocked(slot int) {
	c.inFlight--
	c.slots = append(c.slots, slot)
}

func (c *committer) takeLocked() []*enqueueReq {
	n := min(len(c.pending), c.q.opts.MaxBatch)
	if n == 0 {
		return nil
	}
	batch := make([]*enqueueReq, n)
	copy(batch, c.pending)
	rest := copy(c.pending, c.pending[n:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	return batch
}

// entries groups a flush by site, merging payloads up to MaxEntryBytes per
// entry, in arrival order.
func (q *Queue) entries(batch []*enqueueReq) []*entry {
	var out []*entry
	open := map[string]*entry{}
	for _, r := range batch {
		e := open[r.site]
		if e == nil || e.size+len(r.payload) > q.opts.MaxEntryBytes {
			e = &entry{site: r.site}
			open[r.site] = e
			out = append(out, e)
		}
		e.reqs = append(e.reqs, r)
		e.events += r.events
		e.size += len(r.payload)
	}
	for _, e := range out {
		merged := q.mergeArrays(e.reqs)
		if len(e.reqs) > 1 {
			e.owned = append(e.owned, merged)
		}
		e.payload = merged
		if len(merged) >= compressMinBytes {
			e.payload = q.codec.compress(q.bufs.get(s2.MaxEncodedLen(len(merged))), merged)
			e.owned = append(e.owned, e.payload)
		}
	}
	return out
}

// release returns the buffers of a flush's entries and calls to the pool:
// every write and answer that used them is done.
func (q *Queue) release(entries []*entry) {
	for _, e := range entries {
		for _, b := range e.owned {
			q.bufs.put(b)
		}
		for _, r := range e.reqs {
			q.bufs.put(r.payload)
			r.payload = nil
		}
	}
}

// mergeArrays concatenates the JSON arrays of reqs into one array (the
// payload of a lone call as it is).
func (q *Queue) mergeArrays(reqs []*enqueueReq) []byte {
	if len(reqs) == 1 {
		return reqs[0].payload
	}
	n := 1
	for _, r := range reqs {
		n += len(r.payload) - 1
	}
	b := q.bufs.get(n)
	b = append(b, '[')
	for i, r := range reqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r.payload[1:len(r.payload)-1]...)
	}
	return append(b, ']')
}

// flush writes a batch of calls: one XADD per entry in one pipeline, or,
// when Redis is unreachable and a spool is configured, one spool append.
//
// With a spool, each XADD runs in a script that also stores (slot, flush
// sequence) in the writer's marker hash of the site, so that the drainer
// can tell whether a write that failed without an answer (Redis died after
// applying it) is already in the stream: spooled events reach the stream
// exactly once.
func (q *Queue) flush(batch []*enqueueReq, slot int) {
	entries := q.entries(batch)
	defer q.release(entries)
	q.metrics.observeFlush(len(batch), len(entries))
	if q.spool == nil {
		q.writeEntries(entries)
		return
	}
	q.redisWrites.Add(1)
	defer q.redisWrites.Add(-1)
	if q.redisDown.Load() {
		q.spoolEntries(entries, "redis_down", nil)
		return
	}
	seq := strconv.FormatUint(q.seq.Add(1), 10)
	mark := &writeMark{slot: strconv.Itoa(slot), seq: seq}
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.WriteTimeout)
	defer cancel()
	run := func(p redis.Scripter, e *entry) *redis.Cmd {
		return q.enqueueScript.EvalSha(ctx, p, []string{routing.StreamKey(e.site), routing.MarkerKey(e.site, q.writer)},
			e.payload, mark.slot, mark.seq, markerTTL.Milliseconds(), entryVersion(e.payload))
	}
	cmds := make([]*redis.Cmd, len(entries))
	pipe := q.rdb.Pipeline()
	for i, e := range entries {
		cmds[i] = run(pipe, e)
	}
	_, _ = pipe.Exec(ctx)
	var failed []*entry
	var failErr error
	for i, e := range entries {
		err := cmds[i].Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Not run: the server lost its scripts (a restart); load and run.
			err = q.enqueueScript.Run(ctx, q.rdb, []string{routing.StreamKey(e.site), routing.MarkerKey(e.site, q.writer)},
				e.payload, mark.slot, mark.seq, markerTTL.Milliseconds(), entryVersion(e.payload)).Err()
		}
		switch {
		case err == nil:
			e.answer(nil)
		case !routing.Unreachable(err):
			e.answer(fmt.Errorf("routing: enqueue to site %q: %w", e.site, err))
		default:
			failed, failErr = append(failed, e), err
		}
	}
	if len(failed) > 0 {
		if q.redisDown.CompareAndSwap(false, true) {
			q.log.Warn("redis is unreachable: accepting events into the local spool until it returns", "err", failErr)
		}
		q.spoolEntries(failed, "write_failed", mark)
	}
}

// writeEntries writes entries without a spool: a failure is the caller's.
func (q *Queue) writeEntries(entries []*entry) {
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.WriteTimeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(entries))
	if len(entries) == 1 {
		cmds[0] = q.rdb.XAdd(ctx, xaddArgs(entries[0]))
	} else {
		pipe := q.rdb.Pipeline()
		for i, e := range entries {
			cmds[i] = pipe.XAdd(ctx, xaddArgs(e))
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, e := range entries {
		if err := cmds[i].Err(); err != nil {
			e.answer(fmt.Errorf("routing: enqueue to site %q: %w", e.site, err))
		} else {
			e.answer(nil)
		}
	}
}

func xaddArgs(e *entry) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: routing.StreamKey(e.site), Values: entryValues(e.payload)}
}

func (e *entry) answer(err error) {
	for _, r := range e.reqs {
		r.done <- err
	}
}

// encodeEvents appends to b events as one JSON array, each with siteID
// and a received time, without changing the caller's slice. HTML escaping
// is off (Event.AppendJSON writes what a json.Encoder without it writes):
// the payload is never embedded in a page, and URLs stay shorter.
func encodeEvents(b []byte, siteID string, events []destinations.Event, nowMs int64) ([]byte, error) {
	b = append(b, '[')
	for i := range events {
		ev := events[i] // a copy: the caller's event is not changed
		ev.Context.SiteID = siteID
		if ev.Context.ReceivedAt == 0 {
			ev.Context.ReceivedAt = nowMs
		}
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = ev.AppendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}
