package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/redistest"
)

func TestDurabilitySettings(t *testing.T) {
	d, err := readDurabilitySettings(envOf(map[string]string{
		"TAGWAY_REDIS_MODE": "sentinel", "TAGWAY_REDIS_MASTER": "mymaster", "TAGWAY_DATA_DIR": "/var/lib/tagway",
		"TAGWAY_SPOOL_MAX_BYTES": "64MiB", "TAGWAY_DELIVERY_CONCURRENCY": "4", "TAGWAY_DELIVERY_RATE": "250",
		"TAGWAY_DRAIN_DELAY": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := DurabilitySettings{RedisMode: "sentinel", RedisMaster: "mymaster", DataDir: "/var/lib/tagway",
		SpoolMaxBytes: 64 << 20, Concurrency: 4, Rate: 250, DrainDelay: 5 * time.Second}
	if d != want {
		t.Errorf("got %+v; want %+v", d, want)
	}
	if d, _ := readDurabilitySettings(envOf(nil)); d.RedisMode != "single" || d.SpoolMaxBytes != 256<<20 || d.Concurrency != 1 || d.DataDir != "" {
		t.Errorf("defaults = %+v", d)
	}
	_, err = readDurabilitySettings(envOf(map[string]string{
		"TAGWAY_REDIS_MODE": "ring", "TAGWAY_SPOOL_MAX_BYTES": "lots", "TAGWAY_DELIVERY_CONCURRENCY": "0",
		"TAGWAY_DELIVERY_RATE": "-1", "TAGWAY_DRAIN_DELAY": "1h",
	}))
	for _, key := range []string{"TAGWAY_REDIS_MODE", "TAGWAY_SPOOL_MAX_BYTES", "TAGWAY_DELIVERY_CONCURRENCY", "TAGWAY_DELIVERY_RATE", "TAGWAY_DRAIN_DELAY"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

func TestNewRedisClientModes(t *testing.T) {
	if _, err := newRedisClient(DurabilitySettings{RedisURL: "redis://127.0.0.1:26379", RedisMode: redisSentinel}, false); err == nil {
		t.Error("sentinel without a master name was accepted")
	}
	c, err := newRedisClient(DurabilitySettings{RedisURL: "redis://127.0.0.1:26379?master_name=mymaster", RedisMode: redisSentinel}, true)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	single := redistest.Start(t)
	c, err = newRedisClient(DurabilitySettings{RedisURL: single.URL, RedisMode: redisSingle}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o := c.(*redis.Client).Options(); o.MaxRetries != -1 && o.MaxRetries != 0 {
		t.Errorf("queue client retries %d times", o.MaxRetries)
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	cluster := redistest.StartCluster(t)
	cc, err := newRedisClient(DurabilitySettings{RedisURL: cluster.URL(), RedisMode: redisCluster}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, ok := cc.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster mode built a %T", cc)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := cc.Set(context.Background(), k, "v", 0).Err(); err != nil {
			t.Fatalf("set %s through the cluster client: %v", k, err)
		}
	}
}
