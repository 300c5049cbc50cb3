package routing

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT of each SCAN step of ScanSite.
const scanCount = 1000

// EnsureGroup creates the consumer group of destination destID on the
// stream of siteID (and the stream), starting at the stream's end; an
// existing group is left alone.
func EnsureGroup(ctx context.Context, rdb redis.UniversalClient, siteID, destID string) error {
	err := rdb.XGroupCreateMkStream(ctx, StreamKey(siteID), destID, "$").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("routing: create consumer group %q on site %q: %w", destID, siteID, err)
	}
	return nil
}

// ScanSite calls fn with each page of the keys matching pattern, all of
// which must carry siteID's hash tag: on a Cluster, only the node holding
// the site's slot is scanned.
func ScanSite(ctx context.Context, rdb redis.UniversalClient, siteID, pattern string, fn func(keys []string) error) error {
	var scanner redis.Cmdable = rdb
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, StreamKey(siteID))
		if err != nil {
			return fmt.Errorf("routing: find the node of site %q: %w", siteID, err)
		}
		scanner = node
	}
	var cursor uint64
	for {
		keys, next, err := scanner.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return fmt.Errorf("routing: scan the keys of site %q: %w", siteID, err)
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Unreachable reports whether a failed write means Redis cannot take
// writes now (network errors, timeouts, a server loading, failing over or
// out of memory), as opposed to a refusal that would fail again the same
// way.
func Unreachable(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask || redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsReadOnlyError(err) || redis.IsOOMError(err) || redis.IsNoReplicasError(err) ||
		redis.HasErrorPrefix(err, "BUSY") // a script running past its time limit
}
