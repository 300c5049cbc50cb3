package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

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
	// ReasonPoison: the queue entry was taken over from stopped consumers
	// more often than Options.PoisonClaims allows.
	ReasonPoison = "poison"
)

// DeadLetter is an event a destination gave up on.
type DeadLetter struct {
	// ID is the dead-letter stream entry id, used by Replay.
	ID string
	// Site and Destination name the stream it is in (set by
	// ListDeadLetters).
	Site, Destination string
	Event             destinations.Event
	// Raw is the stored event JSON, kept as is when it does not decode.
	Raw      json.RawMessage
	Reason   string
	Message  string
	Attempts int
	FailedAt time.Time
}

// DeadLetterStore reads, replays and drops the dead letters of every
// destination, for the admin API and the CLI.
type DeadLetterStore struct {
	rdb    redis.UniversalClient
	now    func() time.Time
	replay *redis.Script
}

// NewDeadLetterStore returns a DeadLetterStore on rdb; now dates replays
// (nil: time.Now).
func NewDeadLetterStore(rdb redis.UniversalClient, now func() time.Time) *DeadLetterStore {
	if now == nil {
		now = time.Now
	}
	return &DeadLetterStore{rdb: rdb, now: now, replay: redis.NewScript(replayScript)}
}

// DeadLetters returns up to count of the oldest dead letters of a
// destination (all of them when count <= 0).
func (s *DeadLetterStore) DeadLetters(ctx context.Context, siteID, destID string, count int) ([]DeadLetter, error) {
	key := routing.DeadKey(siteID, destID)
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = s.rdb.XRangeN(ctx, key, "-", "+", int64(count)).Result()
	} else {
		msgs, err = s.rdb.XRange(ctx, key, "-", "+").Result()
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
func (s *DeadLetterStore) Replay(ctx context.Context, siteID, destID string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	key := routing.DeadKey(siteID, destID)
	args := []any{s.now().UnixMilli()}
	var errs []error
	for _, id := range ids {
		msgs, err := s.rdb.XRange(ctx, key, id, id).Result()
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
	n, err := s.replay.Run(ctx, s.rdb, []string{key, routing.RetryKey(siteID, destID)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("routing: replay dead letters of %q: %w", destID, err)
	}
	return n, errors.Join(errs...)
}

// DeadLetterFilter selects dead letters. Site is required; every other
// empty field matches everything.
type DeadLetterFilter struct {
	Site string
	// Destination limits the search to one destination; empty searches
	// every dead-letter stream of the site.
	Destination string
	// Since (inclusive) and Until (exclusive) bound FailedAt.
	Since, Until time.Time
	// Reason is one of the Reason constants.
	Reason string
	// IDs are dead-letter entry ids.
	IDs []string
	// Limit caps how many dead letters are selected, oldest first per
	// destination (0: no cap).
	Limit int
	// AfterDestination and AfterID resume a listing: only dead letters
	// past this position in ListDeadLetters' order (destination id, then
	// entry id) are selected. Empty: from the start.
	AfterDestination, AfterID string
}

func (f DeadLetterFilter) matches(dl DeadLetter) bool {
	if f.Reason != "" && dl.Reason != f.Reason {
		return false
	}
	if !f.Since.IsZero() && dl.FailedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !dl.FailedAt.Before(f.Until) {
		return false
	}
	return true
}

// deadPage is how many dead letters one XRANGE reads.
const deadPage = 500

// ListDeadLetters returns the dead letters f selects, by destination id,
// then oldest first. Each carries its Site and Destination.
func (s *DeadLetterStore) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	if !model.ValidID(f.Site) {
		return nil, fmt.Errorf("routing: dead letters: invalid site id %q", f.Site)
	}
	dests := []string{f.Destination}
	if f.Destination == "" {
		var err error
		if dests, err = s.deadDestinations(ctx, f.Site); err != nil {
			return nil, err
		}
	}
	var after streamID
	if f.AfterID != "" {
		var err error
		if after, err = parseStreamID(f.AfterID); err != nil {
			return nil, fmt.Errorf("routing: dead letters: resume after %q: %w", f.AfterID, err)
		}
	}
	var out []DeadLetter
	for _, dest := range dests {
		if dest < f.AfterDestination {
			continue
		}
		resume := dest == f.AfterDestination && f.AfterID != ""
		key := routing.DeadKey(f.Site, dest)
		add := func(m redis.XMessage) bool {
			dl := decodeDeadLetter(m)
			dl.Site, dl.Destination = f.Site, dest
			if f.matches(dl) {
				out = append(out, dl)
			}
			return f.Limit <= 0 || len(out) < f.Limit
		}
		if len(f.IDs) > 0 {
			for _, id := range f.IDs {
				if sid, err := parseStreamID(id); resume && (err != nil || !after.less(sid)) {
					continue
				}
				msgs, err := s.rdb.XRange(ctx, key, id, id).Result()
				if err != nil {
					return nil, fmt.Errorf("routing: read dead letter %s of %q: %w", id, dest, err)
				}
				for _, m := range msgs {
					if !add(m) {
						return out, nil
					}
				}
			}
			continue
		}
		start := "-"
		if resume {
			start = "(" + after.String()
		}
		for {
			msgs, err := s.rdb.XRangeN(ctx, key, start, "+", deadPage).Result()
			if err != nil {
				return nil, fmt.Errorf("routing: read dead letters of %q: %w", dest, err)
			}
			for _, m := range msgs {
				if !add(m) {
					return out, nil
				}
			}
			if len(msgs) < deadPage {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return out, nil
}

// deadDestinations lists the destinations of a site that have a
// dead-letter stream, scanning the node that holds the site's slot.
func (s *DeadLetterStore) deadDestinations(ctx context.Context, siteID string) ([]string, error) {
	prefix := routing.DeadKey(siteID, "")
	seen := map[string]bool{}
	err := routing.ScanSite(ctx, s.rdb, siteID, prefix+"*", func(keys []string) error {
		for _, k := range keys {
			if dest := strings.TrimPrefix(k, prefix); model.ValidID(dest) {
				seen[dest] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}

// ReplayDeadLetters moves the dead letters f selects back into their
// destinations' retry schedules, due now with the attempt count reset (see
// Replay), and returns how many were moved.
func (s *DeadLetterStore) ReplayDeadLetters(ctx context.Context, f DeadLetterFilter) (int, error) {
	dls, err := s.ListDeadLetters(ctx, f)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for dest, ids := range byDestination(dls) {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), deadPage)]
			ids = ids[len(chunk):]
			n, err := s.Replay(ctx, f.Site, dest, chunk)
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return total, errors.Join(errs...)
}

// DropDeadLetters deletes the dead letters f selects for good and returns
// how many were deleted.
func (s *DeadLetterStore) DropDeadLetters(ctx context.Context, f DeadLetterFilter) (int, error) {
	dls, err := s.ListDeadLetters(ctx, f)
	if err != nil {
		return 0, err
	}
	total := 0
	for dest, ids := range byDestination(dls) {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), deadPage)]
			ids = ids[len(chunk):]
			n, err := s.rdb.XDel(ctx, routing.DeadKey(f.Site, dest), chunk...).Result()
			total += int(n)
			if err != nil {
				return total, fmt.Errorf("routing: drop dead letters of %q: %w", dest, err)
			}
		}
	}
	return total, nil
}

func byDestination(dls []DeadLetter) map[string][]string {
	out := map[string][]string{}
	for _, dl := range dls {
		out[dl.Destination] = append(out[dl.Destination], dl.ID)
	}
	return out
}

// Default caps of a destination's dead-letter stream.
const (
	// DefaultDeadLetterMaxLen is about how many dead letters a destination
	// keeps: the oldest go first.
	DefaultDeadLetterMaxLen = 100_000
	// DefaultDeadLetterMaxAge is how long a dead letter is kept: past
	// every platform's age limit (Meta's 62 days for physical_store events
	// is the longest), a replay would only fail again as too_old.
	DefaultDeadLetterMaxAge = 90 * 24 * time.Hour
)

// DeadLetterCaps bound every dead-letter stream, so that a platform
// refusing everything for weeks cannot fill Redis. Each round that writes
// dead letters trims its stream to MaxLen entries and drops those older
// than MaxAge (approximately: Redis trims whole stream nodes, so a stream
// may hold some hundred more); tagway_deadletters_trimmed_total{cap}
// counts what the caps removed.
type DeadLetterCaps struct {
	// MaxLen is about how many dead letters a destination keeps (default
	// DefaultDeadLetterMaxLen; negative: no cap).
	MaxLen int64
	// MaxAge is how long a dead letter is kept (default
	// DefaultDeadLetterMaxAge; negative: no cap).
	MaxAge time.Duration
}

func (c DeadLetterCaps) withDefaults() DeadLetterCaps {
	if c.MaxLen == 0 {
		c.MaxLen = DefaultDeadLetterMaxLen
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultDeadLetterMaxAge
	}
	return c
}

// trim queues the caps' XTRIMs of key on p and returns them: [0] the
// max_len one, [1] the max_age one (nil for a cap that is off).
func (c DeadLetterCaps) trim(ctx context.Context, p redis.Pipeliner, key string, now time.Time) []*redis.IntCmd {
	trims := make([]*redis.IntCmd, 2)
	// Age first: a letter both caps would remove counts as aged out.
	if c.MaxAge > 0 {
		trims[1] = p.XTrimMinIDApprox(ctx, key, strconv.FormatInt(now.Add(-c.MaxAge).UnixMilli(), 10), 0)
	}
	if c.MaxLen > 0 {
		trims[0] = p.XTrimMaxLenApprox(ctx, key, c.MaxLen, 0)
	}
	return trims
}

// count adds what trims removed to the metric.
func (c DeadLetterCaps) count(m *prometheus.CounterVec, destID string, trims []*redis.IntCmd) {
	for i, name := range []string{"max_len", "max_age"} {
		if trims[i] != nil && trims[i].Val() > 0 {
			m.WithLabelValues(destID, name).Add(float64(trims[i].Val()))
		}
	}
}
