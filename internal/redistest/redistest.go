// Package redistest starts a real redis-server for tests.
//
// Each call to Start launches a private redis-server on a free loopback port
// (persistence off unless asked) and stops it when the test ends. When
// REDIS_URL is set, that server is used instead and flushed first. When
// redis-server is missing the test is skipped, except under CI (CI=true),
// where it fails: CI must never silently skip the Redis-backed tests.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server started for one test.
type Server struct {
	t    testing.TB
	Addr string // host:port
	URL  string // redis://host:port/0
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Option changes how the server starts.
type Option func(*Server)

// WithAOF turns on append-only persistence with fsync on every write, so the
// server can be killed and restarted without losing acknowledged writes.
func WithAOF() Option {
	return func(s *Server) { s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always") }
}

// WithArgs passes extra redis-server arguments.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// Start returns a running Redis for the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if url := os.Getenv("REDIS_URL"); url != "" {
		o, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		c := redis.NewClient(o)
		defer c.Close()
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush REDIS_URL: %v", err)
		}
		return &Server{t: t, Addr: o.Addr, URL: url}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found on PATH; CI must install it (apt-get install redis-server)")
		}
		t.Skip("redis-server not installed; set REDIS_URL or install redis-server")
	}
	s := &Server{t: t, dir: t.TempDir(), args: []string{"--save", "", "--appendonly", "no"}}
	for _, o := range opts {
		o(s)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s.URL = "redis://" + s.Addr + "/0"
	s.start(bin)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no"}, s.args...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not answer: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	o, err := redis.ParseURL(s.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(o)
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("Kill: this server was not started by redistest (REDIS_URL)")
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	if s.dir == "" {
		s.t.Fatal("Restart: this server was not started by redistest (REDIS_URL)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(bin)
}

// Stop ends the server; it is called automatically when the test ends.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("redis %s", s.Addr) }

// Cluster is a local Redis Cluster of three masters (no replicas) started
// for one test.
type Cluster struct {
	t testing.TB
	// Addrs are the masters' host:port addresses.
	Addrs []string
	nodes []*Server
}

// StartCluster starts three redis-server processes with cluster mode on,
// joins them into one cluster (redis-cli --cluster create, the 16384 slots
// split between the three masters) and waits until every node reports
// cluster_state:ok. The servers stop when the test ends. It skips (fails
// under CI) when redis-server or redis-cli is missing; REDIS_URL is not
// used: a cluster needs servers of its own.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err == nil {
		_, err = exec.LookPath("redis-server")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server and redis-cli are needed for the cluster tests: %v", err)
		}
		t.Skip("redis-server or redis-cli not installed")
	}
	bin, _ := exec.LookPath("redis-server")
	c := &Cluster{t: t}
	for range 3 {
		s := &Server{t: t, dir: t.TempDir(), args: []string{"--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"}}
		for _, o := range opts {
			o(s)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		s.URL = "redis://" + s.Addr
		s.start(bin)
		t.Cleanup(s.Stop)
		c.nodes = append(c.nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.nodes {
		nc := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := nc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				t.Fatalf("cluster node %s not ok: %v\n%s", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		nc.Close()
	}
	return c
}

// Client returns a cluster client for the cluster, closed when the test
// ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// URL is the cluster's address in the form tagway reads with
// TAGWAY_REDIS_MODE=cluster: redis://first?addr=second&addr=third.
func (c *Cluster) URL() string {
	return "redis://" + c.Addrs[0] + "?addr=" + c.Addrs[1] + "&addr=" + c.Addrs[2]
}
