package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
)

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
	open := 0.0
	if c.known {
		open = 1
	}
	w.d.metrics.circuitOpen.WithLabelValues(w.id).Set(open)
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
				w.d.metrics.circuitOpen.WithLabelValues(w.id).Set(0)
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
		w.d.metrics.circuitOpen.WithLabelValues(w.id).Set(1)
		w.d.metrics.circuitOpened.WithLabelValues(w.id).Inc()
		w.log.Warn("circuit open: the destination keeps failing; every replica holds its events", "until", c.until)
	default:
		// A permanent or paused answer says nothing about availability.
	}
}
