// Package faulttest holds the fault-injection suite: real tagway processes
// (the binary built once by TestMain) on a real redis-server with AOF,
// delivering to a fake Meta that fails a share of requests in every way a
// platform does. It checks the delivery promises end to end: everything
// acknowledged to a sender reaches the platform, nothing the platform
// acknowledged is sent again, dead letters hold exactly the refused events
// and replay delivers them, and SIGTERM drains within its bound.
package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/meta/metatest"
	"github.com/tagway/tagway/internal/loadgen"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/internal/testlog"
)

const (
	pixel      = "999888777666555"
	token      = "EAAfaultsuiteTOKEN0123"
	rejectKey  = "bench_marker"
	killBudget = 3 * time.Second // TAGWAY_VISIBILITY_TIMEOUT of the processes
)

// binary is the tagway binary TestMain built.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tagway-faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tagway")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/tagway/tagway").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is the shared goroutine-safe log sink.
type syncBuffer = testlog.Buffer

// gateway is one tagway process.
type gateway struct {
	t      *testing.T
	name   string
	addr   string
	ops    string // TAGWAY_METRICS_ADDR: /metrics
	env    []string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	code   int
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newGateway prepares a process on a free port with the quick start
// pointing at graphURL, short back-offs and visibility timeout, and a spool
// directory of its own. extraEnv (KEY=value) is added last, so it wins over
// the defaults (TAGWAY_DATA_DIR=... reuses a spool directory).
func newGateway(t *testing.T, name, redisURL, graphURL string, extraEnv ...string) *gateway {
	g := &gateway{t: t, name: name, addr: freeAddr(t), ops: freeAddr(t), logs: &syncBuffer{}}
	g.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"TAGWAY_ADDR=" + g.addr, "TAGWAY_METRICS_ADDR=" + g.ops, "REDIS_URL=" + redisURL, "TAGWAY_DEMO=off", "TAGWAY_LOG_LEVEL=info",
		"TAGWAY_SITE_DOMAINS=localhost,127.0.0.1",
		"TAGWAY_META_PIXEL_ID=" + pixel, "TAGWAY_META_ACCESS_TOKEN=" + token, "TAGWAY_META_GRAPH_URL=" + graphURL,
		"TAGWAY_RETRY_BASE=100ms", "TAGWAY_RETRY_MAX=1s", "TAGWAY_VISIBILITY_TIMEOUT=" + killBudget.String(),
		"TAGWAY_DATA_DIR=" + t.TempDir(),
	}
	g.env = append(g.env, extraEnv...) // exec.Cmd keeps the last value of a key
	t.Cleanup(func() {
		g.kill()
		if strings.Contains(g.logs.String(), token) {
			t.Errorf("%s: the access token appears in the logs", name)
		}
		if t.Failed() {
			t.Logf("%s logs (tail):\n%s", name, tail(g.logs.String(), 4000))
		}
	})
	return g
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs the process and waits until /readyz answers 200.
func (g *gateway) start() {
	g.t.Helper()
	g.cmd = exec.Command(binary, "serve")
	g.cmd.Env = g.env
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	cmd, exited := g.cmd, g.exited
	go func() {
		_ = cmd.Wait()
		g.code = cmd.ProcessState.ExitCode()
		close(exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + g.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			g.t.Fatalf("%s exited during start-up:\n%s", g.name, tail(g.logs.String(), 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s not ready within 20s:\n%s", g.name, tail(g.logs.String(), 4000))
		}
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (g *gateway) kill() {
	if g.cmd == nil || g.exited == nil {
		return
	}
	select {
	case <-g.exited:
	default:
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// sender posts /collect bodies to the gateways in turn and remembers which
// event ids were acknowledged with 200.
type sender struct {
	client   *http.Client
	mu       sync.Mutex
	acked    map[string]bool // event id → marked for rejection
	attempts atomic.Int64
}

func newSender() *sender {
	return &sender{client: &http.Client{Timeout: 5 * time.Second}, acked: map[string]bool{}}
}

// send posts event n of worker w to addr; every rejectEvery-th is marked
// for the fake to refuse.
func (s *sender) send(addr string, w, n uint64, rejectEvery uint64) {
	s.attempts.Add(1)
	b := loadgen.Body{}
	if rejectEvery > 0 && n%rejectEvery == 0 {
		b.Marker = "reject"
	}
	body := b.Append(nil, w, n)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/collect", bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "http://127.0.0.1")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) faulttest")
	resp, err := s.client.Do(req)
	if err != nil {
		return // not acknowledged: the browser script would retry it
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		s.mu.Lock()
		s.acked[string(loadgen.AppendEventID(nil, w, n))] = b.Marker != ""
		s.mu.Unlock()
	}
}

func (s *sender) snapshot() (good, marked map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	good, marked = map[string]bool{}, map[string]bool{}
	for id, m := range s.acked {
		if m {
			marked[id] = true
		} else {
			good[id] = true
		}
	}
	return good, marked
}

// accepted is the set of event ids the fake platform has accepted (a
// request that met a Reset included).
func accepted(fake *metatest.Server) map[string]int {
	out := map[string]int{}
	for _, r := range fake.Events(pixel) {
		out[r.EventID]++
	}
	return out
}

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// deadLetters runs `tagway deadletters <args> --json` and returns the event
// ids of the letters it printed.
func deadLetters(t *testing.T, redisURL string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"deadletters"}, append(args, "--json")...)...)
	cmd.Env = []string{"REDIS_URL=" + redisURL, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tagway deadletters %v: %v\n%s", args, err, out)
	}
	var ids []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("deadletters output: %v\n%s", err, out)
		}
		if id, ok := line["event_id"].(string); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestFaultInjection: two gateways on one Redis (AOF, fsync always) deliver
// to a fake Meta that fails a share of requests every way a platform does;
// one gateway is killed with SIGKILL mid-load and restarted.
func TestFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection suite runs real processes for about a minute")
	}
	rs := redistest.Start(t, redistest.WithAOF())
	fake := metatest.NewServer(t)
	fake.AddPixel(pixel, token)
	fake.SetFaults(metatest.Faults{
		ServerError: 0.10, TooManyRequests: 0.05, Hang: 0.03, Reset: 0.07,
		// Meta's throttling codes make the adapter wait at least a minute;
		// they strike only in the first seconds (see below) to keep the
		// suite short.
		RateLimit: 0.03,
		RejectKey: rejectKey, Seed: 42,
	})
	a := newGateway(t, "gateway-a", rs.URL, fake.URL())
	b := newGateway(t, "gateway-b", rs.URL, fake.URL())
	a.start()
	b.start()

	s := newSender()
	ctx, stop := context.WithTimeout(context.Background(), 12*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var aAddr atomic.Value
	aAddr.Store(a.addr)
	for w := range uint64(4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); ctx.Err() == nil && n <= 5000; n++ {
				addr := b.addr
				if n%2 == 0 {
					addr = aAddr.Load().(string)
				}
				s.send(addr, w, n, 40)
				time.Sleep(4 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	fake.SetFaults(metatest.Faults{ServerError: 0.10, TooManyRequests: 0.05, Hang: 0.03, Reset: 0.07, RejectKey: rejectKey, Seed: 43})
	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	a.kill()
	t.Log("gateway-a killed with SIGKILL 4s into the load")
	time.Sleep(1500 * time.Millisecond)
	a2 := newGateway(t, "gateway-a-restarted", rs.URL, fake.URL())
	a2.start()
	aAddr.Store(a2.addr)
	wg.Wait()
	// The load is over; let the rest through without faults, so the test
	// ends as soon as the engine has caught up (retries, claims, minute-long
	// rate-limit waits).
	fake.SetFaults(metatest.Faults{RejectKey: rejectKey})

	good, marked := s.snapshot()
	t.Logf("%d requests, %d acknowledged (%d marked for rejection); faults so far %v",
		s.attempts.Load(), len(good)+len(marked), len(marked), fake.FaultCounts())
	if len(good) < 500 || len(marked) < 10 {
		t.Fatalf("too little load acknowledged to judge: %d good, %d marked", len(good), len(marked))
	}

	// 1. Every acknowledged event reaches the platform.
	missing := func() []string {
		got := accepted(fake)
		var out []string
		for id := range good {
			if got[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	if !waitFor(100*time.Second, func() bool { return len(missing()) == 0 }) {
		m := missing()
		t.Fatalf("%d of %d acknowledged events never reached the platform, e.g. %v; faults %v",
			len(m), len(good), m[:min(len(m), 5)], fake.FaultCounts())
	}

	// 2. Nothing the platform acknowledged was sent again, except in the
	// one documented window: a gateway killed after the platform's answer
	// and before its XACK resends that batch once its entries are claimed.
	time.Sleep(2 * killBudget) // let any late resend happen before judging
	var dups, inWindow []string
	for id, times := range fake.Acked() {
		if len(times) < 2 {
			continue
		}
		if times[0].After(killedAt.Add(-5*time.Second)) && !times[0].After(killedAt) {
			inWindow = append(inWindow, id)
		} else {
			dups = append(dups, id)
		}
	}
	if len(inWindow) > 0 {
		t.Logf("DOCUMENTED WINDOW: %d events acknowledged by the platform within 5s before gateway-a's SIGKILL were sent again "+
			"(the platform answered, the process died before XACK); Meta drops them by event_id. e.g. %v",
			len(inWindow), inWindow[:min(len(inWindow), 3)])
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		t.Errorf("%d events were sent again after the platform acknowledged them, outside the crash window: %v",
			len(dups), dups[:min(len(dups), 5)])
	}
	for id := range marked {
		if accepted(fake)[id] > 0 {
			t.Errorf("marked event %s was accepted", id)
		}
	}

	// 3. Dead letters hold exactly the refused events.
	want := keys(marked)
	var got []string
	if !waitFor(30*time.Second, func() bool {
		got = deadLetters(t, rs.URL, "list", "--destination", "meta", "--limit", "100000")
		return len(got) >= len(want)
	}) {
		t.Fatalf("dead letters: %d, want %d", len(got), len(want))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("dead letters differ from the refused events:\n got %v\nwant %v", got, want)
	}
	if r := deadLetters(t, rs.URL, "list", "--reason", "permanent", "--limit", "100000"); len(r) != len(want) {
		t.Errorf("--reason permanent lists %d, want %d", len(r), len(want))
	}

	// 4. Replay delivers them once the platform takes them.
	fake.SetFaults(metatest.Faults{})
	deadLetters(t, rs.URL, "replay", "--destination", "meta")
	if !waitFor(30*time.Second, func() bool {
		got := accepted(fake)
		for id := range marked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("replayed dead letters did not reach the platform")
	}
	if left := deadLetters(t, rs.URL, "list"); len(left) != 0 {
		t.Errorf("%d dead letters left after replay", len(left))
	}
}

// ack is one 200 a gateway answered during TestFaultRedisRestart.
type ack struct {
	gateway string
	at      time.Time
}

// outageSender posts /collect bodies and keeps every answer: which gateway
// acknowledged which event when, how many of each status, and any 503
// without Retry-After.
type outageSender struct {
	client *http.Client
	mu     sync.Mutex
	acked  map[string]ack
	status map[int]int
	noRA   int           // 503 answers without Retry-After
	slow   time.Duration // the slowest answer
}

func (s *outageSender) send(name, addr string, w, n uint64) {
	body := loadgen.Body{}.Append(nil, w, n)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/collect", bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "http://127.0.0.1")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) faulttest")
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return // not acknowledged: the browser script would retry it
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = max(s.slow, time.Since(start))
	s.status[resp.StatusCode]++
	switch resp.StatusCode {
	case http.StatusNoContent:
		s.acked[string(loadgen.AppendEventID(nil, w, n))] = ack{gateway: name, at: time.Now()}
	case http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			s.noRA++
		}
	}
}

// ackedBy counts the events name acknowledged in [from, to).
func (s *outageSender) ackedBy(name string, from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.acked {
		if a.gateway == name && !a.at.Before(from) && a.at.Before(to) {
			n++
		}
	}
	return n
}

// metric sums the samples of a Prometheus metric on a gateway's /metrics,
// on its private listener addr (-1 when the gateway does not answer).
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != ' ' && rest[0] != '{')) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// spoolBytes is the size of the spool segments under a TAGWAY_DATA_DIR.
func spoolBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "spool", "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestFaultRedisRestart: two gateways, each with its own spool directory,
// on one Redis (AOF, fsync always) that is killed mid-load and restarted.
// While Redis is down the gateways keep answering 200 from their spools
// (gateway-b's is small: once full it answers 503 with Retry-After);
// gateway-a is killed with SIGKILL while its spool holds events, and its
// successor on the same directory drains it. Every acknowledged event
// reaches the platform exactly once.
func TestFaultRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection suite runs real processes")
	}
	if os.Getenv("REDIS_URL") != "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TestFaultRedisRestart kills and restarts Redis: unset REDIS_URL so it gets a redis-server of its own")
		}
		t.Skip("kills and restarts Redis: needs a redis-server of its own (unset REDIS_URL)")
	}
	rs := redistest.Start(t, redistest.WithAOF())
	fake := metatest.NewServer(t)
	fake.AddPixel(pixel, token)
	aDir := t.TempDir()
	a := newGateway(t, "gateway-a", rs.URL, fake.URL(), "TAGWAY_DATA_DIR="+aDir)
	b := newGateway(t, "gateway-b", rs.URL, fake.URL(), "TAGWAY_SPOOL_MAX_BYTES=16KiB")
	a.start()
	b.start()

	s := &outageSender{client: &http.Client{Timeout: 5 * time.Second}, acked: map[string]ack{}, status: map[int]int{}}
	var aAddr atomic.Value
	aAddr.Store(a.addr)
	var aName atomic.Value
	aName.Store(a.name)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range uint64(4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); !stop.Load(); n++ {
				if n%2 == 0 {
					s.send(aName.Load().(string), aAddr.Load().(string), w, n)
				} else {
					s.send(b.name, b.addr, w, n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	time.Sleep(2 * time.Second)
	downAt := time.Now()
	rs.Kill()
	t.Log("redis killed (SIGKILL) 2s into the load")
	// Keep sending until both have answered from their spools and
	// gateway-b's small one is full (503).
	full := func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.status[http.StatusServiceUnavailable] > 0 }
	if !waitFor(20*time.Second, func() bool {
		return s.ackedBy(a.name, downAt, time.Now()) >= 30 && s.ackedBy(b.name, downAt, time.Now()) >= 5 &&
			full() && spoolBytes(t, aDir) > 0
	}) {
		na, nb := s.ackedBy(a.name, downAt, time.Now()), s.ackedBy(b.name, downAt, time.Now())
		s.mu.Lock()
		statuses := fmt.Sprint(s.status)
		s.mu.Unlock()
		t.Fatalf("while Redis was down the gateways did not both answer 200 from their spools and gateway-b 503 once full: "+
			"a acknowledged %d, b %d since the kill; statuses %s", na, nb, statuses)
	}

	// gateway-a dies with events in its spool only.
	aKilledAt := time.Now()
	a.kill()
	aAddr.Store(b.addr)
	aName.Store(b.name)
	spooled := spoolBytes(t, aDir)
	if spooled == 0 {
		t.Fatal("gateway-a's spool is empty at its SIGKILL: nothing to drain after its restart")
	}
	t.Logf("gateway-a killed (SIGKILL) with %d bytes in its spool; it acknowledged %d events while Redis was down",
		spooled, s.ackedBy(a.name, downAt, aKilledAt))
	time.Sleep(time.Second)

	upAt := time.Now()
	rs.Restart()
	t.Logf("redis restarted after %s down", upAt.Sub(downAt).Round(time.Millisecond))
	a2 := newGateway(t, "gateway-a-restarted", rs.URL, fake.URL(), "TAGWAY_DATA_DIR="+aDir)
	a2.start()
	aAddr.Store(a2.addr)
	aName.Store(a2.name)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	// The restarted gateway drains what its predecessor spooled.
	if !waitFor(15*time.Second, func() bool {
		return spoolBytes(t, aDir) == 0 && metric(a2.ops, "tagway_spool_drained_entries_total") > 0 &&
			metric(a2.ops, "tagway_spool_bytes") == 0
	}) {
		t.Fatalf("gateway-a's spool not drained after its restart: %d bytes on disk, drained entries %v, spool gauge %v",
			spoolBytes(t, aDir), metric(a2.ops, "tagway_spool_drained_entries_total"), metric(a2.ops, "tagway_spool_bytes"))
	}
	if !waitFor(15*time.Second, func() bool { return metric(b.ops, "tagway_spool_bytes") == 0 }) {
		t.Fatalf("gateway-b's spool not drained: %v bytes", metric(b.ops, "tagway_spool_bytes"))
	}

	s.mu.Lock()
	acked := make(map[string]ack, len(s.acked))
	for id, a := range s.acked {
		acked[id] = a
	}
	statuses := fmt.Sprint(s.status)
	noRA, slow := s.noRA, s.slow
	s.mu.Unlock()
	t.Logf("answers %s (slowest %s); %d acknowledged, %d by gateway-a and %d by gateway-b while Redis was down",
		statuses, slow.Round(time.Millisecond), len(acked), s.ackedBy(a.name, downAt, upAt), s.ackedBy(b.name, downAt, upAt))
	if noRA > 0 {
		t.Errorf("%d answers 503 without Retry-After", noRA)
	}
	for code := range s.status {
		if code != http.StatusNoContent && code != http.StatusServiceUnavailable {
			t.Errorf("answers other than 200 and 503: %s", statuses)
		}
	}

	// Every acknowledged event reaches the platform.
	missing := func() []string {
		got := accepted(fake)
		var out []string
		for id := range acked {
			if got[id] == 0 {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	if !waitFor(20*time.Second, func() bool { return len(missing()) == 0 }) {
		m := missing()
		byGateway := map[string]int{}
		for _, id := range m {
			byGateway[acked[id].gateway]++
		}
		t.Fatalf("%d of %d acknowledged events never reached the platform (per gateway %v), e.g. %v",
			len(m), len(acked), byGateway, m[:min(len(m), 5)])
	}

	// Exactly once, but for the documented window: a batch the platform
	// acknowledged whose XACK could not reach the dead Redis, held by
	// gateway-a when it was killed, is sent again once its entries are
	// claimed. Give such a claim (after the visibility timeout) time to
	// happen before judging.
	time.Sleep(killBudget + time.Second)
	var dups, inWindow []string
	for id, times := range fake.Acked() {
		if len(times) < 2 {
			continue
		}
		if !times[0].Before(downAt.Add(-2*time.Second)) && times[0].Before(aKilledAt) {
			inWindow = append(inWindow, id)
		} else {
			dups = append(dups, id)
		}
	}
	sort.Strings(inWindow)
	sort.Strings(dups)
	// The window belongs to gateway-a alone: the processes that lived
	// through the outage retried their commits until Redis answered.
	const gaveUp = "recording delivery outcomes failed; the events will be delivered again"
	for _, g := range []*gateway{b, a2} {
		if strings.Contains(g.logs.String(), gaveUp) {
			t.Errorf("%s gave up recording a delivered batch (%q): its events are sent twice", g.name, gaveUp)
		}
	}
	if len(inWindow) > 0 && !strings.Contains(a.logs.String(), "retrying until redis answers") {
		// gateway-a may be killed before its first failed commit is logged:
		// the time window above is the attribution; the log line only
		// corroborates it when it made it out.
		t.Logf("%d events sent again; gateway-a was killed before it logged its unrecorded batch", len(inWindow))
	}
	if len(inWindow) > 0 {
		t.Logf("DOCUMENTED WINDOW: %d events the platform acknowledged between Redis's kill and gateway-a's SIGKILL "+
			"(their XACK could not reach Redis) were sent again after the claim; Meta drops them by event_id. e.g. %v",
			len(inWindow), inWindow[:min(len(inWindow), 3)])
	}
	if len(dups) > 0 {
		t.Errorf("%d events reached the platform more than once outside the crash window: %v", len(dups), dups[:min(len(dups), 5)])
	}
	for id, n := range accepted(fake) {
		if _, ok := acked[id]; !ok && n > 1 {
			t.Errorf("unacknowledged event %s reached the platform %d times", id, n)
		}
	}
}

// TestShutdownDrains: SIGTERM under load exits 0 within the bound and loses
// nothing acknowledged; a second process delivers what the first left.
func TestShutdownDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	rs := redistest.Start(t, redistest.WithAOF())
	fake := metatest.NewServer(t)
	fake.AddPixel(pixel, token)
	fake.SetFaults(metatest.Faults{ServerError: 0.2, Seed: 7})
	g := newGateway(t, "gateway", rs.URL, fake.URL())
	g.start()
	s := newSender()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range uint64(4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); ctx.Err() == nil && n <= 2000; n++ {
				s.send(g.addr, w, n, 0)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second): // shutdownTimeout (15s) plus start-up slack
		t.Fatalf("no exit within 20s of SIGTERM")
	}
	stop()
	wg.Wait()
	if g.code != 0 {
		t.Fatalf("exit code %d after SIGTERM", g.code)
	}
	t.Logf("exited 0 %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	good, _ := s.snapshot()
	if len(good) < 100 {
		t.Fatalf("only %d events acknowledged", len(good))
	}
	// Whatever the first process did not deliver is in Redis; a new process
	// delivers it.
	fake.SetFaults(metatest.Faults{})
	next := newGateway(t, "gateway-next", rs.URL, fake.URL())
	next.start()
	if !waitFor(30*time.Second, func() bool {
		got := accepted(fake)
		for id := range good {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("events acknowledged before SIGTERM were lost")
	}
}
