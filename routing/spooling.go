package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A spool record is the site id, a newline, then the entry's JSON array.

func spoolRecord(e *entry) []byte {
	b := make([]byte, 0, len(e.site)+1+len(e.payload))
	b = append(b, e.site...)
	b = append(b, '\n')
	return append(b, e.payload...)
}

// spoolEntries stores entries Redis could not take in the spool, with one
// fsync, and answers their callers.
func (q *Queue) spoolEntries(entries []*entry, reason string) {
	recs := make([][]byte, len(entries))
	events := 0
	for i, e := range entries {
		recs[i] = spoolRecord(e)
		events += e.events
	}
	err := q.spool.Append(recs...)
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
	if q.redisDown.CompareAndSwap(true, false) {
		q.log.Info("redis is reachable again: writing to it directly", "spooled_entries_moved", n)
	} else if n > 0 {
		q.log.Info("spooled events moved into redis", "entries", n)
	}
}

// writeSpooled adds spooled entries to their streams in one pipeline; it
// fails unless every one was acknowledged.
func (q *Queue) writeSpooled(ctx context.Context, recs [][]byte) error {
	wctx, cancel := context.WithTimeout(ctx, q.opts.WriteTimeout)
	defer cancel()
	pipe := q.rdb.Pipeline()
	for _, rec := range recs {
		site, payload, ok := bytes.Cut(rec, []byte{'\n'})
		if !ok || len(site) == 0 {
			q.log.Error("skipping a spool record without a site; it cannot be delivered", "bytes", len(rec))
			continue
		}
		pipe.XAdd(wctx, &redis.XAddArgs{Stream: StreamKey(string(site)), Values: []any{"e", payload}})
	}
	cmds, err := pipe.Exec(wctx)
	for _, c := range cmds {
		if c.Err() != nil {
			return c.Err()
		}
	}
	if err != nil {
		return err
	}
	q.metrics.drained.Add(float64(len(recs)))
	return nil
}
