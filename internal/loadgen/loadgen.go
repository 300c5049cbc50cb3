// Package loadgen is the engine of `tagway bench`: it drives POST /collect
// load against a URL (closed loop at a fixed number of keep-alive
// connections, or open loop at a fixed request rate), measures throughput
// and latency percentiles, samples a process's resident memory, serves the
// bare net/http baseline the gateway is compared with, and measures
// delivery throughput from a pre-filled queue to a local fake Meta.
//
// Every run is bounded in time and in requests, and refuses any target that
// is not a loopback address: a benchmark must never load someone else's
// server by mistake.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on one run.
const (
	// MaxDuration bounds a step's measured duration.
	MaxDuration = 5 * time.Minute
	// MaxConns bounds the number of connections.
	MaxConns = 4096
	// MaxRate bounds the fixed request rate.
	MaxRate = 200_000
	// maxSamples bounds the latency samples kept per run (the rest are
	// counted but not sampled).
	maxSamples = 4 << 20
)

// Options describe one load step.
type Options struct {
	// URL is the full endpoint, e.g. http://127.0.0.1:8080/collect. Its host
	// must be a loopback address or "localhost".
	URL string
	// Origin is sent as the Origin header (default scheme://host of URL
	// with the port dropped, e.g. http://127.0.0.1).
	Origin string
	// Conns is the number of concurrent connections (default 64).
	Conns int
	// Duration is the measured time (default 10s), after Warmup.
	Duration time.Duration
	// Warmup runs the same load unmeasured first, to open the connections
	// and warm the target (default 1s; negative: none).
	Warmup time.Duration
	// Rate, when positive, switches to open loop: requests are started on
	// a fixed schedule of Rate per second whatever the answers, and latency
	// is measured from each request's scheduled start, so a stalled target
	// cannot hide its queueing (no coordinated omission). Conns then bounds
	// the requests in flight; a request that finds every connection busy is
	// counted in Result.Missed.
	Rate int
	// MaxRequests bounds the requests sent, warm-up included (default: no
	// bound beyond Duration; never more than 100 million).
	MaxRequests int64
	// Body builds the request bodies.
	Body Body
	// PID, when positive, is the process whose resident memory is sampled
	// during the run (Linux /proc).
	PID int
	// CPU, when set, meters other processes the target's work runs in (a
	// Redis server, say): their CPU time over the measured window is
	// reported per request in Result.OtherCPUPerReq, with the PID
	// process's in ServerCPUPerReq and the load generator's own in
	// ClientCPUPerReq.
	CPU CPUMeter
	// NetHTTP sends through net/http's client (NewClient(Conns) unless
	// Client is set) instead of the default: a minimal HTTP/1.1 client, one
	// keep-alive connection per worker, that parses answers on the
	// worker's own goroutine (rawclient.go) and so leaves more of the
	// shared CPUs to the server measured.
	NetHTTP bool
	// Client, when set, is the net/http client to send through (implies
	// NetHTTP).
	Client *http.Client
}

// Result is the outcome of one step.
type Result struct {
	Target   string        `json:"target"`
	Conns    int           `json:"conns"`
	Rate     int           `json:"rate,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Requests counts the measured requests that completed, whatever their
	// answer; OK those answered 2xx; Errors the failed ones (transport
	// error or non-2xx); Missed the open-loop requests not started because
	// every connection was busy.
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`
	Errors   int64 `json:"errors"`
	Missed   int64 `json:"missed,omitempty"`
	// Statuses counts answers by HTTP status (0: transport error).
	Statuses map[int]int64 `json:"statuses"`
	// FirstError is one transport error or unexpected answer, for the report.
	FirstError string `json:"first_error,omitempty"`
	// ReqPerSec is OK answers per second of measured time.
	ReqPerSec float64       `json:"req_per_sec"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	// RSSKB and PeakRSSKB are the sampled process's resident memory at the
	// end and at its highest during the measured run (0 without a PID).
	RSSKB     int64 `json:"rss_kb,omitempty"`
	PeakRSSKB int64 `json:"peak_rss_kb,omitempty"`
	// CPU time per answered request over the measured window: of the PID
	// process, of what Options.CPU meters, and of the load generator
	// itself (0 when not metered). On shared, saturated CPUs the sum is
	// what a request costs, and it varies less from run to run than
	// req/s does.
	ServerCPUPerReq time.Duration `json:"server_cpu_per_req_ns,omitempty"`
	OtherCPUPerReq  time.Duration `json:"other_cpu_per_req_ns,omitempty"`
	ClientCPUPerReq time.Duration `json:"client_cpu_per_req_ns,omitempty"`
}

// NewClient returns an HTTP/1.1 client tuned for conns concurrent
// keep-alive connections to one host: no idle connection is closed for lack
// of room, no compression, no proxy.
func NewClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     16 << 10,
		ReadBufferSize:      16 << 10,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// CheckLoopback refuses a URL whose host is not a loopback address or
// localhost.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("loadgen: bad URL %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("loadgen: %q: only http:// targets are supported", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("loadgen: %q is not a loopback address; the benchmark only loads local servers", host)
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Conns == 0 {
		o.Conns = 64
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.MaxRequests <= 0 || o.MaxRequests > 100_000_000 {
		o.MaxRequests = 100_000_000
	}
	var errs []error
	if err := CheckLoopback(o.URL); err != nil {
		errs = append(errs, err)
	}
	if o.Conns < 1 || o.Conns > MaxConns {
		errs = append(errs, fmt.Errorf("loadgen: conns %d is not in 1..%d", o.Conns, MaxConns))
	}
	if o.Duration < 0 || o.Duration > MaxDuration || o.Warmup > MaxDuration {
		errs = append(errs, fmt.Errorf("loadgen: duration and warm-up must be in 0..%s", MaxDuration))
	}
	if o.Rate < 0 || o.Rate > MaxRate {
		errs = append(errs, fmt.Errorf("loadgen: rate %d is not in 0..%d", o.Rate, MaxRate))
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	if o.Origin == "" {
		u, _ := url.Parse(o.URL)
		o.Origin = u.Scheme + "://" + u.Hostname()
	}
	if o.Client != nil {
		o.NetHTTP = true
	}
	if o.NetHTTP && o.Client == nil {
		o.Client = NewClient(o.Conns)
	}
	return o, nil
}

// recorder gathers the outcomes of one step from every worker.
type recorder struct {
	measureFrom time.Time
	sent        atomic.Int64
	limit       int64

	mu       sync.Mutex
	samples  []time.Duration
	statuses map[int]int64
	ok, errs int64
	missed   int64
	first    string
}

// worker-local tallies, merged once at the end.
type tally struct {
	samples  []time.Duration
	statuses map[int]int64
	ok, errs int64
	first    string
}

func (r *recorder) merge(t *tally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room := maxSamples - len(r.samples)
	r.samples = append(r.samples, t.samples[:min(len(t.samples), max(room, 0))]...)
	for k, v := range t.statuses {
		r.statuses[k] += v
	}
	r.ok += t.ok
	r.errs += t.errs
	if r.first == "" {
		r.first = t.first
	}
}

// RunPair runs a and b at once, each on its own connections, and returns
// both results. Two targets measured in the same window meet the same
// machine: on a shared VM whose speed drifts from minute to minute, their
// server CPU per request compares far more steadily than two runs one
// after the other do. The load generator's CPU is the whole process's, so
// each result's ClientCPUPerReq counts both loads.
func RunPair(ctx context.Context, a, b Options) (Result, Result, error) {
	var ra, rb Result
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rb, eb = Run(ctx, b)
	}()
	ra, ea = Run(ctx, a)
	wg.Wait()
	return ra, rb, errors.Join(ea, eb)
}

// Run drives one load step and returns its result. It stops at the end of
// the step, at MaxRequests, or when ctx is done (returning what was
// measured so far with ctx's error).
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	rec := &recorder{measureFrom: start.Add(o.Warmup), limit: o.MaxRequests, statuses: map[int]int64{}}
	end := rec.measureFrom.Add(o.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var rss rssSampler
	if o.PID > 0 {
		stop := rss.start(o.PID, rec.measureFrom)
		defer stop()
	}

	var server CPUMeter
	if o.PID > 0 {
		server = ProcessCPU(o.PID)
	}
	cpu := startCPU([]CPUMeter{selfCPU(), server, o.CPU}, rec.measureFrom)

	var wg sync.WaitGroup
	if o.Rate > 0 {
		due := make(chan time.Time, o.Conns)
		for w := range o.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := o.worker(rec, uint64(w))
				defer t.sender.close()
				for at := range due {
					o.do(ctx, end, rec, t, at)
				}
				rec.merge(t.tally)
			}()
		}
		rec.missed = pace(runCtx, start, o.Rate, rec, due)
		close(due)
	} else {
		for w := range o.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := o.worker(rec, uint64(w))
				defer t.sender.close()
				for runCtx.Err() == nil && rec.sent.Add(1) <= rec.limit {
					o.do(ctx, end, rec, t, time.Now())
				}
				rec.merge(t.tally)
			}()
		}
	}
	wg.Wait()
	used := cpu.stop()
	measured := time.Since(rec.measureFrom)
	if measured > o.Duration {
		measured = o.Duration
	}
	res := Result{
		Target: o.URL, Conns: o.Conns, Rate: o.Rate, Duration: measured,
		Requests: rec.ok + rec.errs, OK: rec.ok, Errors: rec.errs, Missed: rec.missed,
		Statuses: rec.statuses, FirstError: rec.first,
	}
	if measured > 0 {
		res.ReqPerSec = float64(rec.ok) / measured.Seconds()
	}
	res.P50, res.P99, res.Max = percentiles(rec.samples)
	if n := time.Duration(rec.ok + rec.errs); n > 0 {
		res.ClientCPUPerReq, res.ServerCPUPerReq, res.OtherCPUPerReq = used[0]/n, used[1]/n, used[2]/n
	}
	if o.PID > 0 {
		stop := rss.stopNow()
		res.RSSKB, res.PeakRSSKB = stop.last, stop.peak
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// workerState is one worker's tally, body generator and connection.
type workerState struct {
	*tally
	id      uint64
	n       uint64
	buf     []byte
	maxKeep int
	sender  sender
}

func (o Options) worker(rec *recorder, id uint64) *workerState {
	w := &workerState{tally: &tally{statuses: map[int]int64{}, samples: make([]time.Duration, 0, 4096)}, id: id,
		maxKeep: maxSamples / o.Conns}
	keep := o.Body.VisitorEvents > 1
	if o.NetHTTP {
		w.sender = &netHTTPSender{client: o.Client, url: o.URL, origin: o.Origin, cookieJar: cookieJar{keep: keep}}
	} else {
		raw, _ := newRawSender(o.URL, o.Origin) // the URL was checked by withDefaults
		raw.keep = keep
		w.sender = raw
	}
	return w
}

// do sends one request scheduled at at and records it when it completes
// inside the measured window (before end). A request still running at the
// end of the step is not cancelled (the target would log a client abort),
// only left out; the client's timeout bounds it.
func (o Options) do(ctx context.Context, end time.Time, rec *recorder, w *workerState, at time.Time) {
	w.n++
	if o.Body.newVisitor(w.n) {
		w.sender.forgetCookies()
	}
	w.buf = o.Body.Append(w.buf[:0], w.id, w.n)
	status, err := w.sender.send(ctx, w.buf)
	done := time.Now()
	if ctx.Err() != nil || at.Before(rec.measureFrom) || done.After(end) {
		return // warm-up, past the end of the step, or cancelled
	}
	w.statuses[status]++
	if status >= 200 && status < 300 {
		w.ok++
	} else {
		w.errs++
		if w.first == "" {
			if err != nil {
				w.first = err.Error()
			} else {
				w.first = fmt.Sprintf("HTTP %d", status)
			}
		}
	}
	if len(w.samples) < w.maxKeep {
		w.samples = append(w.samples, done.Sub(at))
	}
}

// pace schedules rate requests per second from start until ctx is done or
// the request bound is reached, handing each scheduled start time to a
// free worker. It returns how many measured requests found no free worker.
func pace(ctx context.Context, start time.Time, rate int, rec *recorder, due chan<- time.Time) int64 {
	interval := time.Second / time.Duration(rate)
	if interval <= 0 {
		interval = 1
	}
	var missed int64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var scheduled int64
	for {
		now := time.Now()
		for {
			at := start.Add(time.Duration(scheduled) * interval)
			if at.After(now) {
				break
			}
			if rec.sent.Add(1) > rec.limit {
				return missed
			}
			scheduled++
			select {
			case due <- at:
			default:
				if !at.Before(rec.measureFrom) {
					missed++
				}
			}
		}
		select {
		case <-ctx.Done():
			return missed
		case <-tick.C:
		}
	}
}

// percentiles returns the 50th and 99th percentiles and the maximum of
// samples (sorted in place).
func percentiles(samples []time.Duration) (p50, p99, mx time.Duration) {
	if len(samples) == 0 {
		return 0, 0, 0
	}
	slices.Sort(samples)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(samples))+0.5) - 1
		return samples[min(max(i, 0), len(samples)-1)]
	}
	return at(0.50), at(0.99), samples[len(samples)-1]
}
