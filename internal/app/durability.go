package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing/queue/spool"
)

// DurabilitySettings are how tagway reaches Redis, where it keeps events
// while Redis is unreachable, how it drives destinations, and how it
// leaves.
//
//	REDIS_URL                  redis://[user:pass@]host:port[/db] (rediss:// for TLS)
//	TAGWAY_REDIS_MODE          single (default), cluster or sentinel
//	                           cluster:  REDIS_URL=redis://h1:7000?addr=h2:7001&addr=h3:7002
//	                           sentinel: REDIS_URL=redis://sentinel1:26379?addr=sentinel2:26379&master_name=mymaster
//	TAGWAY_REDIS_MASTER        sentinel master name (instead of ?master_name=)
//	TAGWAY_DATA_DIR            local spool directory (empty: no spool)
//	TAGWAY_SPOOL_MAX_BYTES     spool size cap, bytes or with a KiB/MiB/GiB suffix (default 256MiB)
//	TAGWAY_DELIVERY_CONCURRENCY batches in flight per destination (default 1)
//	TAGWAY_DELIVERY_RATE       events/s per destination and process (default: no cap)
//	TAGWAY_DRAIN_DELAY         how long /readyz answers 503 before the listener closes (default 0)
//
// The URL query takes go-redis's client options in snake case
// (dial_timeout=3s, pool_size=50...).
type DurabilitySettings struct {
	RedisURL      string // empty: the embedded in-process Redis
	RedisMode     string
	RedisMaster   string
	DataDir       string
	SpoolMaxBytes int64
	Concurrency   int
	Rate          float64
	DrainDelay    time.Duration
}

// Redis modes of TAGWAY_REDIS_MODE.
const (
	redisSingle   = "single"
	redisCluster  = "cluster"
	redisSentinel = "sentinel"
)

func readDurabilitySettings(getenv func(string) string) (DurabilitySettings, error) {
	env := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	d := DurabilitySettings{
		RedisURL:      env("REDIS_URL", ""),
		RedisMode:     env("TAGWAY_REDIS_MODE", redisSingle),
		RedisMaster:   env("TAGWAY_REDIS_MASTER", ""),
		DataDir:       env("TAGWAY_DATA_DIR", ""),
		SpoolMaxBytes: 256 << 20,
		Concurrency:   1,
	}
	var errs []error
	switch d.RedisMode {
	case redisSingle, redisCluster, redisSentinel:
	default:
		errs = append(errs, fmt.Errorf("TAGWAY_REDIS_MODE: %q is not single, cluster or sentinel", d.RedisMode))
	}
	if v := env("TAGWAY_SPOOL_MAX_BYTES", ""); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TAGWAY_SPOOL_MAX_BYTES: %w", err))
		}
		d.SpoolMaxBytes = n
	}
	if v := env("TAGWAY_DELIVERY_CONCURRENCY", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			errs = append(errs, fmt.Errorf("TAGWAY_DELIVERY_CONCURRENCY: %q is not a number from 1 to 64", v))
		}
		d.Concurrency = n
	}
	if v := env("TAGWAY_DELIVERY_RATE", ""); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			errs = append(errs, fmt.Errorf("TAGWAY_DELIVERY_RATE: %q is not a positive number of events per second", v))
		}
		d.Rate = r
	}
	if v := env("TAGWAY_DRAIN_DELAY", ""); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t < 0 || t > time.Minute {
			errs = append(errs, fmt.Errorf("TAGWAY_DRAIN_DELAY: %q is not a duration from 0s to 1m", v))
		}
		d.DrainDelay = t
	}
	return d, errors.Join(errs...)
}

// parseBytes reads 1048576, 512KiB, 256MiB or 2GiB.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size such as 256MiB", v)
	}
	return n * mult, nil
}

// RedisClient connects to Redis as `tagway serve` does (REDIS_URL,
// TAGWAY_REDIS_MODE, TAGWAY_REDIS_MASTER), for the commands that work on
// Redis while the gateway is down. REDIS_URL must be set.
func RedisClient(getenv func(string) string) (redis.UniversalClient, error) {
	d, err := readDurabilitySettings(getenv)
	if err != nil {
		return nil, err
	}
	if d.RedisURL == "" {
		return nil, errors.New("REDIS_URL is not set (the embedded Redis of a gateway without REDIS_URL keeps nothing across restarts)")
	}
	return newRedisClient(d, false)
}

// newRedisClient connects to d.RedisURL in d's mode. noRetry turns off
// go-redis's own retries (the queue's writes must not be repeated blindly:
// a retried XADD may add events twice).
func newRedisClient(d DurabilitySettings, noRetry bool) (redis.UniversalClient, error) {
	rawURL := d.RedisURL
	retries := func(n *int) {
		if noRetry {
			*n = -1
		}
	}
	switch d.RedisMode {
	case redisCluster:
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
		}
		retries(&o.MaxRetries)
		return redis.NewClusterClient(o), nil
	case redisSentinel:
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (sentinel): %w", err)
		}
		if d.RedisMaster != "" {
			o.MasterName = d.RedisMaster
		}
		if o.MasterName == "" {
			return nil, errors.New("REDIS_URL (sentinel): no master name: set TAGWAY_REDIS_MASTER or ?master_name=")
		}
		retries(&o.MaxRetries)
		return redis.NewFailoverClient(o), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		retries(&o.MaxRetries)
		return redis.NewClient(o), nil
	}
}

// openSpool opens the local spool under TAGWAY_DATA_DIR (nil when unset).
func openSpool(d DurabilitySettings) (*spool.Spool, error) {
	if d.DataDir == "" {
		return nil, nil
	}
	sp, err := spool.Open(filepath.Join(d.DataDir, "spool"), spool.Options{MaxBytes: d.SpoolMaxBytes})
	if err != nil {
		return nil, fmt.Errorf("TAGWAY_DATA_DIR: %w", err)
	}
	return sp, nil
}
