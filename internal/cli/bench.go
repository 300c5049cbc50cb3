package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/internal/loadgen"
	"github.com/tagway/tagway/routing/dispatch"
)

const benchUsage = `Usage: tagway bench [flags]

Drives POST /collect load against a gateway and, in the same run, against a
bare net/http handler (reads the body, answers 204) started in-process, and
prints req/s, p50/p99 latency, the gateway/bare ratio, the gateway's RSS and
the CPU time one request costs each process (the server, Redis when -redis
is given, and the load generator). Only loopback targets are accepted.

  tagway bench -spawn -redis redis://127.0.0.1:6379/0     start a gateway from this binary
  tagway bench -url http://127.0.0.1:8080 -pid 1234        load a running gateway
  tagway bench -spawn -redis URL -conns '' -rate 2000,5000 fixed-rate steps only
  tagway bench -delivery -redis redis://127.0.0.1:6379/15  queue -> fake Meta throughput
  tagway bench -spawn -redis URL -against /tmp/tagway-old  this build and another, loaded at once

Flags:
`

// benchFlags are the parsed flags of tagway bench.
type benchFlags struct {
	url, path, redisURL  string
	pid                  int
	spawn, delivery      bool
	ingestOnly           bool
	noIdentity           bool
	conns, rates         []int
	rateConns            int
	duration, warmup     time.Duration
	events               int
	jsonOut, includeBare bool
	netHTTP              bool
	bareInProcess        bool
	visitorEvents        int
	reference            string // "", "answer" or "enqueue": a reference handler measured too
	serveBare            string // internal: serve the bare (or -reference) handler on this address
	against              string // with -spawn: another build's binary, spawned and loaded at the same time
}

func parseBenchFlags(args []string, stderr io.Writer) (benchFlags, error) {
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	fs.StringVar(&f.url, "url", "", "base URL of a running gateway (loopback only), e.g. http://127.0.0.1:8080")
	fs.StringVar(&f.path, "path", "/collect", "collect path of the gateway")
	fs.IntVar(&f.pid, "pid", 0, "process id of the gateway, to sample its RSS (Linux)")
	fs.BoolVar(&f.spawn, "spawn", false, "start a gateway from this binary on a free loopback port (needs -redis)")
	fs.BoolVar(&f.noIdentity, "no-identity", false, "with -spawn: run the gateway with TAGWAY_IDENTITY=off (no visitor identities stored or read at delivery)")
	fs.BoolVar(&f.ingestOnly, "ingest-only", false, "with -spawn: a config with the site and no destination, so nothing is delivered while measuring ingest")
	fs.StringVar(&f.against, "against", "", "with -spawn: also spawn a gateway from this binary (another build) and load both at once, each with its own connections, to compare their CPU per request in the same window (no bare handler then)")
	fs.StringVar(&f.redisURL, "redis", "", "REDIS_URL for -spawn and -delivery (a real redis-server; -delivery needs an empty database)")
	conns := fs.String("conns", "64,256", "closed-loop steps: connection counts, comma-separated ('' for none)")
	rates := fs.String("rate", "", "fixed-rate steps: requests per second, comma-separated, e.g. 2000,5000")
	fs.IntVar(&f.rateConns, "rate-conns", 256, "connections available to the fixed-rate steps")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured duration of each step")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each step")
	fs.BoolVar(&f.includeBare, "bare", true, "also measure the bare handler")
	fs.BoolVar(&f.bareInProcess, "bare-in-process", false, "serve the bare handler inside the load generator's process instead of in a process of its own, like the gateway")
	fs.StringVar(&f.serveBare, "serve-bare", "", "internal: serve the bare handler (the -reference one if given) on this loopback address until SIGTERM")
	fs.StringVar(&f.reference, "reference", "", "also measure a reference handler in its own process: answer (the gateway's answer headers and body, no other work) or enqueue (one XADD per request in shared pipelines, no other work; needs -redis)")
	fs.BoolVar(&f.delivery, "delivery", false, "measure delivery from a pre-filled queue to a local fake Meta instead")
	fs.IntVar(&f.events, "events", 100_000, "events queued by -delivery")
	fs.IntVar(&f.visitorEvents, "visitor-events", 1, "requests in a row from one visitor, who sends back the cookies the gateway set and the same identifiers (1: every request is a new, identified visitor, the worst case)")
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON object per step instead of the table")
	client := fs.String("client", "raw", "load generator's HTTP client: raw (minimal HTTP/1.1, one goroutine per connection) or net/http")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	var err error
	switch *client {
	case "raw":
	case "net/http":
		f.netHTTP = true
	default:
		errs = append(errs, fmt.Errorf("-client: %q is neither raw nor net/http", *client))
	}
	if f.conns, err = intList(*conns); err != nil {
		errs = append(errs, fmt.Errorf("-conns: %w", err))
	}
	if f.rates, err = intList(*rates); err != nil {
		errs = append(errs, fmt.Errorf("-rate: %w", err))
	}
	switch f.reference {
	case "", "answer":
	case "enqueue":
		if f.redisURL == "" && f.serveBare == "" {
			errs = append(errs, errors.New("-reference enqueue needs -redis"))
		}
	default:
		errs = append(errs, fmt.Errorf("-reference: %q is neither answer nor enqueue", f.reference))
	}
	if f.visitorEvents < 1 || f.visitorEvents > 1_000_000 {
		errs = append(errs, fmt.Errorf("-visitor-events: %d is not within 1 to 1000000", f.visitorEvents))
	}
	if f.against != "" {
		if !f.spawn {
			errs = append(errs, errors.New("-against needs -spawn"))
		}
		f.includeBare = false // a pair compares two builds, not a build with bare
	}
	if f.spawn && f.url != "" {
		errs = append(errs, errors.New("-spawn and -url exclude each other"))
	}
	if (f.spawn || f.delivery) && f.redisURL == "" {
		errs = append(errs, errors.New("-spawn and -delivery need -redis (a real redis-server URL)"))
	}
	if f.url != "" {
		if err := loadgen.CheckLoopback(f.url); err != nil {
			errs = append(errs, err)
		}
	}
	if f.redisURL != "" {
		if err := redisIsLocal(f.redisURL); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errors.Join(errs...)
}

// redisIsLocal refuses a Redis that is not on a loopback address: the
// benchmark writes to it.
func redisIsLocal(raw string) error {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	host, _, _ := net.SplitHostPort(o.Addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-redis: %s is not a loopback address", host)
	}
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Bench is `tagway bench`: it load-tests a gateway on loopback (see
// benchUsage and BENCHMARKS.md) and returns the exit code. identity is the
// identity store `tagway serve` delivers with, measured by -delivery.
func Bench(ctx context.Context, args []string, getenv func(string) string, identity func(rdb redis.UniversalClient, maxPerSite int64) *dispatch.IdentityStore,
	stdout, stderr io.Writer) int {
	f, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tagway bench: %v\n", err)
		return 2
	}
	if f.serveBare != "" {
		return serveBare(ctx, f.serveBare, f.reference, cmp.Or(f.redisURL, getenv("REDIS_URL")), stderr)
	}
	if f.delivery {
		return benchDelivery(ctx, f, identity, stdout, stderr)
	}
	var other *spawnedGateway
	if f.spawn {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: %v\n", err)
			return 1
		}
		g, err := spawnGateway(ctx, exe, f.redisURL, f.ingestOnly, f.noIdentity, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: %v\n", err)
			return 1
		}
		defer g.stop(stderr)
		f.url, f.pid = g.url, g.pid
		if f.against != "" {
			if other, err = spawnGateway(ctx, f.against, f.redisURL, f.ingestOnly, f.noIdentity, stderr); err != nil {
				fmt.Fprintf(stderr, "tagway bench: -against: %v\n", err)
				return 1
			}
			defer other.stop(stderr)
		}
	}
	var bareURL string
	barePID := 0
	switch {
	case f.includeBare && f.bareInProcess:
		bare, err := loadgen.StartBare()
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: bare handler: %v\n", err)
			return 1
		}
		defer bare.Close()
		bareURL = bare.URL
	case f.includeBare:
		b, err := spawnBare(ctx, "", "", stderr)
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: bare handler: %v\n", err)
			return 1
		}
		defer b.stop(stderr)
		bareURL, barePID = b.url, b.pid
	}
	var refURL string
	refPID := 0
	if f.reference != "" {
		b, err := spawnBare(ctx, f.reference, f.redisURL, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: reference handler: %v\n", err)
			return 1
		}
		defer b.stop(stderr)
		refURL, refPID = b.url, b.pid
	}
	var redisCPU loadgen.CPUMeter
	if f.redisURL != "" && (f.url != "" || f.reference == "enqueue") {
		m, closeMeter, err := redisCPUMeter(f.redisURL)
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: %v\n", err)
			return 1
		}
		defer closeMeter()
		redisCPU = m
	}
	if f.url == "" && bareURL == "" {
		fmt.Fprintln(stderr, "tagway bench: nothing to measure: pass -url or -spawn, or keep -bare")
		return 2
	}
	p := &benchPrinter{w: stdout, json: f.jsonOut}
	p.header(f)
	type step struct{ conns, rate int }
	var steps []step
	for _, c := range f.conns {
		steps = append(steps, step{conns: c})
	}
	for _, r := range f.rates {
		steps = append(steps, step{conns: f.rateConns, rate: r})
	}
	body := loadgen.Body{VisitorEvents: f.visitorEvents}
	for _, s := range steps {
		var bareRes, gwRes *loadgen.Result
		if f.pid > 0 {
			// The previous step left a backlog the gateway is still
			// delivering; measuring now would charge it to the next step.
			waited, idle := loadgen.WaitIdle(f.pid, 3*time.Minute)
			if !f.jsonOut && waited > time.Second {
				fmt.Fprintf(stdout, "         (waited %s for the gateway to go idle; idle: %v)\n", waited.Round(100*time.Millisecond), idle)
			}
		}
		if bareURL != "" {
			r, err := loadgen.Run(ctx, loadgen.Options{URL: bareURL + "/collect", Conns: s.conns, Rate: s.rate,
				Duration: f.duration, Warmup: f.warmup, PID: barePID, NetHTTP: f.netHTTP, Body: body})
			if err != nil {
				fmt.Fprintf(stderr, "tagway bench: bare: %v\n", err)
				return 1
			}
			bareRes = &r
			p.result("bare", r)
		}
		if refURL != "" {
			var cpu loadgen.CPUMeter
			if f.reference == "enqueue" {
				cpu = redisCPU
			}
			r, err := loadgen.Run(ctx, loadgen.Options{URL: refURL + "/collect", Conns: s.conns, Rate: s.rate,
				Duration: f.duration, Warmup: f.warmup, PID: refPID, CPU: cpu, NetHTTP: f.netHTTP, Body: body})
			if err != nil {
				fmt.Fprintf(stderr, "tagway bench: reference: %v\n", err)
				return 1
			}
			p.result(f.reference, r)
			p.ratio(f.reference, bareRes, &r)
		}
		if f.url != "" {
			opts := loadgen.Options{URL: strings.TrimSuffix(f.url, "/") + f.path, Conns: s.conns, Rate: s.rate,
				Duration: f.duration, Warmup: f.warmup, PID: f.pid, CPU: redisCPU, NetHTTP: f.netHTTP, Body: body}
			if other != nil {
				// Two rounds, the loads started in one order and then the
				// other: whichever starts second gets a little less of the
				// load generator, and the geometric mean of the two ratios
				// cancels that (BENCHMARKS.md). Redis serves both: its CPU
				// is not either one's.
				opts.CPU = nil
				o := opts
				o.URL, o.PID = other.url+f.path, other.pid
				var rounds [][2]loadgen.Result
				for i := range 2 {
					loadgen.WaitIdle(f.pid, 3*time.Minute)
					loadgen.WaitIdle(other.pid, 3*time.Minute)
					var r, ro loadgen.Result
					var err error
					if i == 0 {
						r, ro, err = loadgen.RunPair(ctx, opts, o)
					} else {
						ro, r, err = loadgen.RunPair(ctx, o, opts)
					}
					if err != nil {
						fmt.Fprintf(stderr, "tagway bench: gateways: %v\n", err)
						return 1
					}
					p.result("gateway", r)
					p.result("against", ro)
					rounds = append(rounds, [2]loadgen.Result{r, ro})
				}
				p.pair(rounds)
				continue
			}
			r, err := loadgen.Run(ctx, opts)
			if err != nil {
				fmt.Fprintf(stderr, "tagway bench: gateway: %v\n", err)
				return 1
			}
			gwRes = &r
			p.result("gateway", r)
		}
		p.ratio("gateway", bareRes, gwRes)
	}
	return 0
}

// benchPrinter writes step results as a table or as JSON lines.
type benchPrinter struct {
	w    io.Writer
	json bool
}

func (p *benchPrinter) header(f benchFlags) {
	if p.json {
		return
	}
	client, bare := "raw HTTP/1.1", "in its own process"
	if f.netHTTP {
		client = "net/http"
	}
	switch {
	case f.against != "":
		bare = "off; loaded at the same time as " + f.against
	case !f.includeBare:
		bare = "off"
	case f.bareInProcess:
		bare = "in the load generator's process"
	}
	visitors := "every request a new visitor"
	if f.visitorEvents > 1 {
		visitors = fmt.Sprintf("%d requests per visitor", f.visitorEvents)
	}
	fmt.Fprintf(p.w, "tagway bench: %s per step after %s warm-up; %d CPUs; gateway %s; client %s; bare handler %s; %s\n",
		f.duration, f.warmup, runtime.NumCPU(), f.url, client, bare, visitors)
	fmt.Fprintf(p.w, "%-8s %6s %7s %10s %9s %9s %9s %8s %8s %10s   %s\n",
		"target", "conns", "rate", "req/s", "p50", "p99", "max", "errors", "missed", "rss", "CPU per request: server+redis+client")
}

func (p *benchPrinter) result(name string, r loadgen.Result) {
	if p.json {
		_ = json.NewEncoder(p.w).Encode(map[string]any{"name": name, "result": r})
		return
	}
	rate, rss := "-", "-"
	if r.Rate > 0 {
		rate = strconv.Itoa(r.Rate)
	}
	if r.PeakRSSKB > 0 {
		rss = fmt.Sprintf("%.1fMB", float64(r.PeakRSSKB)/1024)
	}
	fmt.Fprintf(p.w, "%-8s %6d %7s %10.0f %9s %9s %9s %8d %8d %10s   %s\n", name, r.Conns, rate, r.ReqPerSec,
		round(r.P50), round(r.P99), round(r.Max), r.Errors, r.Missed, rss, cpuSplit(r))
	if r.FirstError != "" {
		fmt.Fprintf(p.w, "         first error: %s; statuses %v\n", r.FirstError, r.Statuses)
	}
}

// ratio prints what name (the gateway or a reference) did against bare.
func (p *benchPrinter) ratio(name string, bare, gw *loadgen.Result) {
	if bare == nil || gw == nil || bare.ReqPerSec == 0 {
		return
	}
	ratio := gw.ReqPerSec / bare.ReqPerSec * 100
	if p.json {
		_ = json.NewEncoder(p.w).Encode(map[string]any{"name": "ratio", "target": name, "conns": gw.Conns, "rate": gw.Rate, name + "_over_bare_pct": ratio})
		return
	}
	if gw.Rate > 0 {
		fmt.Fprintf(p.w, "         fixed rate %d/s: %s p99 %s (bare %s)\n", gw.Rate, name, round(gw.P99), round(bare.P99))
		return
	}
	fmt.Fprintf(p.w, "         %s/bare at %d conns: %.1f%%", name, gw.Conns, ratio)
	if b, g := totalCPU(*bare), totalCPU(*gw); b > 0 && g > 0 && bare.ServerCPUPerReq > 0 && gw.ServerCPUPerReq > 0 {
		fmt.Fprintf(p.w, " (CPU per request, bare/%s: %.1f%%)", name, float64(b)/float64(g)*100)
	}
	fmt.Fprintln(p.w)
}

// pair prints how this build's gateway compares with the -against one,
// both loaded in the same window: the server CPU per request of each, per
// round and as the geometric mean of the rounds (the Redis and load
// generator columns of a pair are shared by both and so not comparable).
func (p *benchPrinter) pair(rounds [][2]loadgen.Result) {
	logSum, n := 0.0, 0
	var each []string
	for _, rr := range rounds {
		this, other := rr[0], rr[1]
		if this.ServerCPUPerReq == 0 || other.ServerCPUPerReq == 0 {
			continue
		}
		r := float64(this.ServerCPUPerReq) / float64(other.ServerCPUPerReq)
		logSum += math.Log(r)
		n++
		each = append(each, fmt.Sprintf("%.1f%% (%s / %s)", r*100, round(this.ServerCPUPerReq), round(other.ServerCPUPerReq)))
	}
	if n == 0 {
		return
	}
	mean := math.Exp(logSum/float64(n)) * 100
	if p.json {
		_ = json.NewEncoder(p.w).Encode(map[string]any{"name": "pair", "conns": rounds[0][0].Conns, "rate": rounds[0][0].Rate,
			"server_cpu_this_over_against_pct": mean})
		return
	}
	fmt.Fprintf(p.w, "         this build / -against at %d conns each: server CPU per request %.1f%% (rounds: %s)\n",
		rounds[0][0].Conns, mean, strings.Join(each, ", "))
}

// totalCPU is what one request cost all metered processes.
func totalCPU(r loadgen.Result) time.Duration {
	return r.ServerCPUPerReq + r.OtherCPUPerReq + r.ClientCPUPerReq
}

// cpuSplit formats a result's CPU time per request in microseconds.
func cpuSplit(r loadgen.Result) string {
	if totalCPU(r) == 0 {
		return "-"
	}
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	return fmt.Sprintf("%sµs = %s+%s+%s", us(totalCPU(r)), us(r.ServerCPUPerReq), us(r.OtherCPUPerReq), us(r.ClientCPUPerReq))
}

// redisCPUMeter meters the CPU time of the Redis server at url, from INFO
// cpu (used_cpu_sys + used_cpu_user), through a client of its own.
func redisCPUMeter(url string) (loadgen.CPUMeter, func(), error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("-redis: %w", err)
	}
	rdb := redis.NewClient(opt)
	meter := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := rdb.Info(ctx, "cpu").Result()
		if err != nil {
			return 0, err
		}
		var total float64
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, fmt.Errorf("INFO cpu: %s: %w", k, err)
				}
				total += f
			}
		}
		return time.Duration(total * float64(time.Second)), nil
	}
	return meter, func() { _ = rdb.Close() }, nil
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// spawnedGateway is a gateway process started by the benchmark.
type spawnedGateway struct {
	url    string
	pid    int
	proc   *os.Process
	exited chan struct{}
}

// serveBare serves loadgen.BareHandler (or the reference handler named)
// on addr until ctx ends (SIGTERM): in a process of its own, measured the
// way the gateway is.
func serveBare(ctx context.Context, addr, reference, redisURL string, stderr io.Writer) int {
	if err := loadgen.CheckLoopback("http://" + addr); err != nil {
		fmt.Fprintf(stderr, "tagway bench: -serve-bare: %v\n", err)
		return 2
	}
	h := loadgen.BareHandler()
	switch reference {
	case "answer":
		h = loadgen.AnswerHandler()
	case "enqueue":
		o, err := redis.ParseURL(redisURL)
		if err != nil {
			fmt.Fprintf(stderr, "tagway bench: -serve-bare: %v\n", err)
			return 2
		}
		rdb := redis.NewClient(o)
		defer func() {
			_ = rdb.Del(context.Background(), loadgen.ReferenceStream).Err()
			_ = rdb.Close()
		}()
		h = loadgen.EnqueueHandler(rdb)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "tagway bench: -serve-bare: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "tagway bench: -serve-bare: %v\n", err)
		return 1
	}
	return 0
}

// spawnBare starts `<this binary> bench -serve-bare` on a free loopback
// port and waits until it accepts connections.
func spawnBare(ctx context.Context, reference, redisURL string, stderr io.Writer) (*spawnedGateway, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"bench", "-serve-bare", addr}
	if reference != "" {
		args = append(args, "-reference", reference)
	}
	cmd := exec.Command(exe, args...)
	if redisURL != "" {
		// In the environment, not the command line, where ps shows it.
		cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL)
	}
	accepts := func(context.Context, string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}
	return startAndWait(ctx, cmd, "http://"+addr, accepts, 10*time.Second, stderr)
}

// startAndWait starts cmd (its output to stderr) and waits until ready
// reports it serves at url, at most within; a process that exits first, or
// does not get ready in time, is an error (and is stopped).
func startAndWait(ctx context.Context, cmd *exec.Cmd, url string, ready func(ctx context.Context, url string) bool,
	within time.Duration, stderr io.Writer) (*spawnedGateway, error) {
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Args[0], err)
	}
	p := &spawnedGateway{url: url, pid: cmd.Process.Pid, proc: cmd.Process, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(within)
	for !ready(ctx, url) {
		select {
		case <-p.exited:
			return nil, errors.New("it exited during start-up (see its log above)")
		case <-ctx.Done():
			p.stop(stderr)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(stderr)
			return nil, fmt.Errorf("it was not ready within %s", within)
		}
	}
	return p, nil
}

// freeLoopbackAddr returns a loopback address with a port free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// spawnGateway starts `<exe> serve` on a free loopback port with
// the quick start (a dry-run Meta destination, demo off) on redisURL and
// waits until /readyz answers 200.
func spawnGateway(ctx context.Context, exe, redisURL string, ingestOnly, noIdentity bool, stderr io.Writer) (*spawnedGateway, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGWAY_") && !strings.HasPrefix(kv, "REDIS_URL=") {
			env = append(env, kv)
		}
	}
	env = append(env, "TAGWAY_ADDR="+addr, "REDIS_URL="+redisURL, "TAGWAY_DEMO=off", "TAGWAY_LOG_LEVEL=warn",
		"TAGWAY_SITE_DOMAINS=localhost,127.0.0.1")
	if noIdentity {
		env = append(env, "TAGWAY_IDENTITY=off")
	}
	if ingestOnly {
		dir, err := os.MkdirTemp("", "tagway-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		file := dir + "/config.json"
		cfg := `{"sites":[{"id":"default","domains":["localhost","127.0.0.1"]}]}`
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		env = append(env, "TAGWAY_CONFIG="+file)
	}
	cmd := exec.Command(exe, "serve")
	cmd.Env = env
	g, err := startAndWait(ctx, cmd, "http://"+addr, gatewayReady, 20*time.Second, stderr)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

// gatewayReady reports whether the gateway at url answers /readyz with 200.
func gatewayReady(ctx context.Context, url string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop sends SIGTERM and waits up to 20s, then kills.
func (g *spawnedGateway) stop(stderr io.Writer) {
	_ = g.proc.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(stderr, "tagway bench: the gateway did not stop within 20s of SIGTERM; killing it")
		_ = g.proc.Kill()
		<-g.exited
	}
}

// benchDelivery runs the delivery measurement and prints it.
func benchDelivery(ctx context.Context, f benchFlags, identity func(redis.UniversalClient, int64) *dispatch.IdentityStore, stdout, stderr io.Writer) int {
	opts, err := redis.ParseURL(f.redisURL)
	if err != nil {
		fmt.Fprintf(stderr, "tagway bench: -redis: %v\n", err)
		return 2
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	// Queue and dispatcher as `tagway serve` runs them, identities included
	// (the dispatcher stores and reads them).
	res, err := loadgen.Delivery(ctx, loadgen.DeliveryOptions{Redis: rdb, Events: f.events,
		Identity: identity(rdb, 0)})
	if err != nil {
		fmt.Fprintf(stderr, "tagway bench: delivery: %v\n", err)
		return 1
	}
	if f.jsonOut {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"name": "delivery", "result": res})
		return 0
	}
	fmt.Fprintf(stdout, "delivery: %d events of %d bytes (JSON) queued by 64 concurrent one-event Enqueue calls in %s (%.0f/s)\n",
		res.Events, res.EventJSONBytes, res.FillTime.Round(time.Millisecond), float64(res.Events)/res.FillTime.Seconds())
	fmt.Fprintf(stdout, "redis memory: used_memory +%d bytes = %.0f bytes per queued event\n", res.UsedMemoryDelta, res.BytesPerEvent)
	fmt.Fprintf(stdout, "delivered to the local fake Meta in %s: %.0f events/s, %d requests, %.0f events per request\n",
		res.DeliverTime.Round(time.Millisecond), res.EventsPerSec, res.Requests, res.MeanBatch)
	if res.IdentityKeys > 0 {
		fmt.Fprintf(stdout, "identities: delivery stored %d visitor hashes, %.0f bytes of used_memory each (the stream deleted)\n",
			res.IdentityKeys, res.BytesPerIdentity)
	}
	return 0
}
