package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// QueueOptions configure a Queue.
type QueueOptions struct {
	// Now stamps Context.ReceivedAt when it is zero and dates replays
	// (default time.Now).
	Now func() time.Time
}

// Queue is the durable intake: the gateway hands it accepted events and
// answers the sender only once Enqueue has returned nil. It also serves the
// dead-letter operations of the admin API and CLI.
//
// Streams have no length cap: a cap would drop events that a destination has
// not delivered yet. The Dispatcher trims entries once every destination is
// done with them (see the package documentation).
type Queue struct {
	rdb    redis.UniversalClient
	now    func() time.Time
	replay *redis.Script
}

// NewQueue returns a Queue writing to rdb.
func NewQueue(rdb redis.UniversalClient, opts QueueOptions) *Queue {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Queue{rdb: rdb, now: opts.Now, replay: redis.NewScript(replayScript)}
}

// Enqueue appends events to the stream of siteID as one entry and returns
// once Redis has acknowledged the write. It sets each event's
// Context.SiteID (and ReceivedAt when zero) on its own copy; the caller's
// slice is not changed. No events is a no-op.
func (q *Queue) Enqueue(ctx context.Context, siteID string, events []destinations.Event) error {
	if !model.ValidID(siteID) {
		return fmt.Errorf("routing: enqueue: invalid site id %q", siteID)
	}
	if len(events) == 0 {
		return nil
	}
	now := q.now().UnixMilli()
	evs := make([]destinations.Event, len(events))
	for i, ev := range events {
		ev.Context.SiteID = siteID
		if ev.Context.ReceivedAt == 0 {
			ev.Context.ReceivedAt = now
		}
		evs[i] = ev
	}
	payload, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("routing: enqueue: encode events: %w", err)
	}
	if err := q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(siteID), Values: []any{"e", payload}}).Err(); err != nil {
		return fmt.Errorf("routing: enqueue to site %q: %w", siteID, err)
	}
	return nil
}

// Dead-letter reasons.
const (
	// ReasonPermanent: the platform refused the event for good.
	ReasonPermanent = "permanent"
	// ReasonTooOld: the event aged past the platform's limit before it could
	// be delivered.
	ReasonTooOld = "too_old"
	// ReasonMaxAttempts: every allowed attempt failed.
	ReasonMaxAttempts = "max_attempts"
	// ReasonUnknownDestination: the event was queued for a destination that
	// no longer exists.
	ReasonUnknownDestination = "unknown_destination"
)

// DeadLetter is an event a destination gave up on.
type DeadLetter struct {
	// ID is the dead-letter stream entry id, used by Replay.
	ID    string
	Event destinations.Event
	// Raw is the stored event JSON, kept as is when it does not decode.
	Raw      json.RawMessage
	Reason   string
	Message  string
	Attempts int
	FailedAt time.Time
}

// DeadLetters returns up to count of the oldest dead letters of a
// destination (all of them when count <= 0).
func (q *Queue) DeadLetters(ctx context.Context, siteID, destID string, count int) ([]DeadLetter, error) {
	key := DeadKey(siteID, destID)
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = q.rdb.XRangeN(ctx, key, "-", "+", int64(count)).Result()
	} else {
		msgs, err = q.rdb.XRange(ctx, key, "-", "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("routing: read dead letters of %q: %w", destID, err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, decodeDeadLetter(m))
	}
	return out, nil
}

func decodeDeadLetter(m redis.XMessage) DeadLetter {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	dl := DeadLetter{ID: m.ID, Raw: json.RawMessage(str("event")), Reason: str("reason"), Message: str("message")}
	dl.Attempts, _ = strconv.Atoi(str("attempts"))
	if ms, err := strconv.ParseInt(str("failed_at"), 10, 64); err == nil {
		dl.FailedAt = time.UnixMilli(ms)
	}
	_ = json.Unmarshal(dl.Raw, &dl.Event)
	return dl
}

// Replay moves the dead letters with these ids back into the destination's
// retry schedule, due now with the attempt count reset, deleting them from
// the dead-letter stream in the same atomic step. Unknown ids and letters
// whose event does not decode are skipped. It returns how many were moved.
func (q *Queue) Replay(ctx context.Context, siteID, destID string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	key := DeadKey(siteID, destID)
	args := []any{q.now().UnixMilli()}
	var errs []error
	for _, id := range ids {
		msgs, err := q.rdb.XRange(ctx, key, id, id).Result()
		if err != nil {
			return 0, fmt.Errorf("routing: read dead letter %s: %w", id, err)
		}
		if len(msgs) == 0 {
			continue
		}
		dl := decodeDeadLetter(msgs[0])
		var ev destinations.Event
		if err := json.Unmarshal(dl.Raw, &ev); err != nil {
			errs = append(errs, fmt.Errorf("dead letter %s: event does not decode: %w", id, err))
			continue
		}
		member, err := retryItem{Ref: "dead/" + id, Event: ev}.member()
		if err != nil {
			return 0, err
		}
		args = append(args, id, member)
	}
	if len(args) == 1 {
		return 0, errors.Join(errs...)
	}
	n, err := q.replay.Run(ctx, q.rdb, []string{key, RetryKey(siteID, destID)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("routing: replay dead letters of %q: %w", destID, err)
	}
	return n, errors.Join(errs...)
}
