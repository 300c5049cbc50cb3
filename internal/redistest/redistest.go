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
