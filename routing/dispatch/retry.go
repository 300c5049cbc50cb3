package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

// retryItem is one member of a retry schedule. Ref makes members unique: two
// identical events from different entries are two items.
type retryItem struct {
	// Ref names where the event came from: "<entry id>/<index>" for a queued
	// event, "dead/<id>" for a replayed dead letter.
	Ref   string             `json:"ref"`
	Event destinations.Event `json:"event"`
	// Attempts counts failed deliveries so far.
	Attempts int `json:"attempts"`
	// FirstFailure is when the first delivery failed, Unix ms (0 for a
	// replayed dead letter).
	FirstFailure int64  `json:"first_failure,omitempty"`
	LastError    string `json:"last_error,omitempty"`
}

func (it retryItem) member() (string, error) {
	b, err := json.Marshal(it)
	if err != nil {
		return "", fmt.Errorf("routing: encode retry item: %w", err)
	}
	return string(b), nil
}

// leaseScript takes up to ARGV[3] members of the schedule KEYS[1] due at
// ARGV[1] (Unix ms) and re-scores them to ARGV[2], the lease's end. A process
// that dies while delivering them leaves them due again when the lease ends;
// the holder removes or reschedules each one when it knows the outcome.
const leaseScript = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
end
return due
`

// replayScript moves dead letters back into a retry schedule. KEYS[1] is the
// dead-letter stream, KEYS[2] the schedule, ARGV[1] the due score, then pairs
// of (dead-letter id, retry member). A letter is scheduled only if this call
// deleted it, so concurrent replays never schedule one twice.
const replayScript = `
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i+1])
    n = n + 1
  end
end
return n
`

// lease takes up to count retry items of one destination due by dueBy,
// leasing them until until.
func lease(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, key string, dueBy, until time.Time, count int) ([]string, error) {
	res, err := script.Run(ctx, rdb, []string{key}, dueBy.UnixMilli(), until.UnixMilli(), count).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("routing: lease retries from %s: %w", key, err)
	}
	return res, nil
}

// RetryPolicy decides when a failed delivery is tried again.
type RetryPolicy struct {
	// Base is the first back-off step (default 1s); step n is Base·2ⁿ⁻¹,
	// capped at Max (default 1h), and the delay is drawn uniformly below it
	// (full jitter), but never shorter than the platform's Retry-After.
	Base, Max time.Duration
	// MaxAttempts is how many failed deliveries send an event to the dead
	// letters (default 20).
	MaxAttempts int
	// PauseFor is how long a destination rests after the platform refused
	// its credentials or permissions (default 5m).
	PauseFor time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Hour
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 20
	}
	if p.PauseFor <= 0 {
		p.PauseFor = 5 * time.Minute
	}
	return p
}

// backoff is the delay before retry number attempts (1 for the first
// retry), with full jitter drawn from rnd in [0,1), at least retryAfter.
func (p RetryPolicy) backoff(attempts int, retryAfter time.Duration, rnd float64) time.Duration {
	step := p.Base
	for i := 1; i < attempts && step < p.Max; i++ {
		step *= 2
	}
	step = min(step, p.Max)
	d := time.Duration(rnd * float64(step))
	return max(d, retryAfter)
}
