package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// trimLoop trims site streams and refreshes the depth gauges every
// TrimInterval until ctx is done.
func (d *Dispatcher) trimLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.trimAll(ctx)
		}
	}
}

func (d *Dispatcher) trimAll(ctx context.Context) {
	snap := d.store.Snapshot()
	for _, site := range snap.Config().Sites {
		if _, err := d.trimSite(ctx, snap, site.ID); err != nil && ctx.Err() == nil {
			d.log.Warn("trim failed", "site", site.ID, "err", err)
		}
	}
	for _, dest := range snap.Config().Destinations {
		if n, err := d.rdb.ZCard(ctx, routing.RetryKey(dest.SiteID, dest.ID)).Result(); err == nil {
			d.metrics.retries.WithLabelValues(dest.ID).Set(float64(n))
		}
	}
}

// trimSite removes the entries of a site stream that every consumer group
// has finished: it trims to the smallest id any group still needs (its
// lowest pending id, or the entry after its last-delivered id when nothing
// is pending). Group positions only move forward, so an entry older than
// that bound can never be needed again. With no group at all, no
// destination needs any entry. It returns how many entries were removed.
func (d *Dispatcher) trimSite(ctx context.Context, snap *model.Snapshot, siteID string) (int64, error) {
	key := routing.StreamKey(siteID)
	groups, exists, err := streamGroups(ctx, d.rdb, key)
	if err != nil || !exists {
		return 0, err
	}
	var minID streamID
	have := false
	for _, g := range groups {
		need, err := parseStreamID(g.LastDeliveredID)
		if err != nil {
			return 0, err
		}
		need = need.next()
		if g.Pending > 0 {
			p, err := d.rdb.XPending(ctx, key, g.Name).Result()
			if err != nil {
				return 0, fmt.Errorf("xpending %s: %w", g.Name, err)
			}
			if p.Count > 0 {
				if need, err = parseStreamID(p.Lower); err != nil {
					return 0, err
				}
			}
		}
		if !have || need.less(minID) {
			minID, have = need, true
		}
		if dest, ok := snap.Destination(g.Name); !ok || dest.SiteID != siteID {
			if !d.warnedOrphans[key+" "+g.Name] {
				d.warnedOrphans[key+" "+g.Name] = true
				d.log.Warn("a consumer group whose destination is not configured holds back trimming until it is drained; if no dispatcher drains it, re-add the destination or delete the group (XGROUP DESTROY)",
					"site", siteID, "group", g.Name, "pending", g.Pending, "lag", g.Lag)
			}
		}
	}
	if !have {
		last, err := d.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil {
			return 0, fmt.Errorf("xrevrange: %w", err)
		}
		if len(last) == 0 {
			return 0, nil
		}
		if minID, err = parseStreamID(last[0].ID); err != nil {
			return 0, err
		}
		minID = minID.next()
	}
	n, err := d.rdb.XTrimMinID(ctx, key, minID.String()).Result()
	if err != nil {
		return 0, fmt.Errorf("xtrim: %w", err)
	}
	if depth, err := d.rdb.XLen(ctx, key).Result(); err == nil {
		d.metrics.depth.WithLabelValues(siteID).Set(float64(depth))
	}
	return n, nil
}

// streamGroups returns the consumer groups of the stream key, and whether
// the stream exists: XINFO GROUPS fails on a missing key, so EXISTS asks
// first, in the same MULTI/EXEC.
func streamGroups(ctx context.Context, rdb redis.UniversalClient, key string) ([]redis.XInfoGroup, bool, error) {
	var exists *redis.IntCmd
	var groups *redis.XInfoGroupsCmd
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		groups = p.XInfoGroups(ctx, key)
		return nil
	})
	if exists.Err() == nil && exists.Val() == 0 {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("xinfo groups: %w", err)
	}
	return groups.Val(), true, nil
}

// streamID is a parsed stream entry id.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, errors.New("routing: bad stream id " + strconv.Quote(s))
	}
	return streamID{ms, seq}, nil
}

func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}
