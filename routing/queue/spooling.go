package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
)

// markerTTL is how long a writer's marker hash lives after its last write:
// longer than any spool may wait for Redis.
const markerTTL = 7 * 24 * time.Hour

// enqueueScript adds one entry (KEYS[1] the stream, ARGV[1] the payload,
// ARGV[5] its version, empty for none: Codec) and records ARGV[3],
// the flush sequence, under field f<ARGV[2]> (the flush slot) of the
// writer's marker hash KEYS[2], which lives ARGV[4] ms.
const enqueueScript = `
local id
if ARGV[5] ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[5], 'e', ARGV[1])
else
  id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
end
redis.call('HSET', KEYS[2], 'f' .. ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return id
`

// drainScript adds a spooled entry unless it is already in the stream:
// written by a flush whose answer was lost (field f<ARGV[3]> of the
// writer's marker KEYS[2] holds its flush sequence ARGV[4]), or drained
// before (field d, the writer's highest drained spool sequence, is at least
// ARGV[2]). A writer's records are drained in spool-sequence order. ARGV[6]
// is the payload's version (empty for none: Codec).
const drainScript = `
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'f' .. ARGV[3]) == ARGV[4] then return 0 end
local done = tonumber(redis.call('HGET', KEYS[2], 'd') or '0')
if tonumber(ARGV[2]) <= done then return 0 end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'v', ARGV[6], 'e', ARGV[1])
else
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
end
redis.call('HSET', KEYS[2], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
`

// writeMark names a flush that reached for Redis: its slot and sequence.
type writeMark struct{ slot, seq string }

// spoolRec is a spooled entry. Encoded, it is five header lines (site,
// writer, spool sequence, flush slot and flush sequence, the last two
// empty when the flush never reached for Redis) then the JSON array.
type spoolRec struct {
	site, writer, seq, slot, flushSeq string
	payload                           []byte
}

func (r spoolRec) encode() []byte {
	b := make([]byte, 0, len(r.payload)+64)
	for _, f := range []string{r.site, r.writer, r.seq, r.slot, r.flushSeq} {
		b = append(b, f...)
		b = append(b, '\n')
	}
	return append(b, r.payload...)
}

func decodeSpoolRec(b []byte) (spoolRec, bool) {
	var f [5]string
	for i := range f {
		line, rest, ok := bytes.Cut(b, []byte{'\n'})
		if !ok {
			return spoolRec{}, false
		}
		f[i], b = string(line), rest
	}
	r := spoolRec{site: f[0], writer: f[1], seq: f[2], slot: f[3], flushSeq: f[4], payload: b}
	return r, r.site != "" && r.writer != "" && r.seq != ""
}

// spoolEntries stores entries Redis could not take in the spool, with one
// fsync, and answers their callers. mark names the flush when it reached
// for Redis (nil when it did not).
func (q *Queue) spoolEntries(entries []*entry, reason string, mark *writeMark) {
	recs := make([][]byte, len(entries))
	events := 0
	q.spoolMu.Lock() // spool order is spool-sequence order
	for i, e := range entries {
		r := spoolRec{site: e.site, writer: q.writer, seq: strconv.FormatUint(q.seq.Add(1), 10), payload: e.payload}
		if mark != nil {
			r.slot, r.flushSeq = mark.slot, mark.seq
		}
		recs[i] = r.encode()
		events += e.events
	}
	err := q.spool.Append(recs...)
	q.spoolMu.Unlock()
	if err != nil {
		q.metrics.spoolRefused.Add(float64(events))
		if errors.Is(err, ErrSpoolFull) {
			err = fmt.Errorf("routing: redis is unreachable and the local spool is full: %w", err)
		} else {
			err = fmt.Errorf("routing: redis is unreachable and the local spool failed: %w", err)
		}
	} else {
		q.metrics.spooled.WithLabelValues(reason).Add(float64(events))
	}
	q.metrics.spoolBytes.Set(float64(q.spool.Bytes()))
	for _, e := range entries {
		e.answer(err)
	}
}

// Run moves spooled events into Redis whenever the spool holds some and
// Redis answers, including events a previous process left in the spool,
// and clears the unreachable state so Enqueue writes to Redis again. It
// returns when ctx is done (at once, with nil, when the Queue has no
// spool). A spool segment is deleted only after Redis acknowledged every
// entry in it; a crash mid-drain adds that segment's entries again (at
// least once: platforms deduplicate on event_id).
func (q *Queue) Run(ctx context.Context) error {
	if q.spool == nil {
		return nil
	}
	t := time.NewTicker(q.opts.ProbeInterval)
	defer t.Stop()
	for {
		if !q.spool.Empty() || q.redisDown.Load() {
			q.drainSpool(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// drainSpool drains the spool once if Redis answers.
func (q *Queue) drainSpool(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, q.opts.ProbeInterval)
	err := q.rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return
	}
	n, err := q.spool.Drain(func(recs [][]byte) error { return q.writeSpooled(ctx, recs) })
	q.metrics.spoolBytes.Set(float64(q.spool.Bytes()))
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn("moving spooled events into redis failed; will retry", "err", err, "entries_moved", n)
		}
		return
	}
	// Direct writes resume only once the spool is empty and no flush that
	// reached for Redis before the outage is still running (its record,
	// spooled later, is checked against its slot, which no other flush may
	// have used in between).
	if q.redisWrites.Load() == 0 && q.spool.Empty() && q.redisDown.CompareAndSwap(true, false) {
		q.log.Info("redis is reachable again: writing to it directly", "spooled_entries_moved", n)
	} else if n > 0 {
		q.log.Info("spooled events moved into redis", "entries", n)
	}
}

// writeSpooled adds spooled entries to their streams, each unless it is
// already there (drainScript), in one pipeline; it fails unless every one
// was acknowledged.
func (q *Queue) writeSpooled(ctx context.Context, recs [][]byte) error {
	wctx, cancel := context.WithTimeout(ctx, q.opts.WriteTimeout)
	defer cancel()
	type item struct {
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	var items []*item
	pipe := q.rdb.Pipeline()
	for _, raw := range recs {
		r, ok := decodeSpoolRec(raw)
		if !ok {
			q.log.Error("skipping an unreadable spool record; it cannot be delivered", "bytes", len(raw))
			continue
		}
		it := &item{keys: []string{routing.StreamKey(r.site), routing.MarkerKey(r.site, r.writer)},
			args: []any{r.payload, r.seq, r.slot, r.flushSeq, markerTTL.Milliseconds(), entryVersion(r.payload)}}
		it.cmd = q.drainScript.EvalSha(wctx, pipe, it.keys, it.args...)
		items = append(items, it)
	}
	_, _ = pipe.Exec(wctx)
	for _, it := range items {
		err := it.cmd.Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Not run, and later items of this writer depend on it: run it
			// now, then the rest in order.
			err = q.drainScript.Run(wctx, q.rdb, it.keys, it.args...).Err()
		}
		if err != nil {
			return err
		}
	}
	q.metrics.drained.Add(float64(len(items)))
	return nil
}
