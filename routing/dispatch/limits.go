package dispatch

import (
	"context"
	"sync"
	"time"
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
