package routing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing/model"
)

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
func (q *Queue) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	if !model.ValidID(f.Site) {
		return nil, fmt.Errorf("routing: dead letters: invalid site id %q", f.Site)
	}
	dests := []string{f.Destination}
	if f.Destination == "" {
		var err error
		if dests, err = q.deadDestinations(ctx, f.Site); err != nil {
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
		key := DeadKey(f.Site, dest)
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
				msgs, err := q.rdb.XRange(ctx, key, id, id).Result()
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
			msgs, err := q.rdb.XRangeN(ctx, key, start, "+", deadPage).Result()
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
func (q *Queue) deadDestinations(ctx context.Context, siteID string) ([]string, error) {
	prefix := DeadKey(siteID, "")
	seen := map[string]bool{}
	err := scanSite(ctx, q.rdb, siteID, prefix+"*", func(keys []string) error {
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
func (q *Queue) ReplayDeadLetters(ctx context.Context, f DeadLetterFilter) (int, error) {
	dls, err := q.ListDeadLetters(ctx, f)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for dest, ids := range byDestination(dls) {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), deadPage)]
			ids = ids[len(chunk):]
			n, err := q.Replay(ctx, f.Site, dest, chunk)
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
func (q *Queue) DropDeadLetters(ctx context.Context, f DeadLetterFilter) (int, error) {
	dls, err := q.ListDeadLetters(ctx, f)
	if err != nil {
		return 0, err
	}
	total := 0
	for dest, ids := range byDestination(dls) {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), deadPage)]
			ids = ids[len(chunk):]
			n, err := q.rdb.XDel(ctx, DeadKey(f.Site, dest), chunk...).Result()
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
