package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
)

func TestBodyShape(t *testing.T) {
	seen := map[string]bool{}
	for w := range uint64(3) {
		for n := range uint64(50) {
			raw := Body{}.Append(nil, w, n)
			if len(raw) < 500 || len(raw) > 700 {
				t.Errorf("body of %d bytes, want about 600: %s", len(raw), raw)
			}
			var v struct {
				VID    string `json:"vid"`
				Events []struct {
					EventID  string         `json:"event_id"`
					UserData map[string]any `json:"user_data"`
				} `json:"events"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("not JSON: %v: %s", err, raw)
			}
			if len(v.Events) != 1 || len(v.Events[0].UserData) != 3 {
				t.Fatalf("events %+v", v.Events)
			}
			id := v.Events[0].EventID
			if seen[id] || seen[v.VID] {
				t.Fatalf("event id %s or visitor seed %s repeats", id, v.VID)
			}
			seen[id], seen[v.VID] = true, true
		}
	}
}

type countingQueue struct{ n atomic.Int64 }

func (q *countingQueue) Enqueue(ctx context.Context, site string, evs []destinations.Event) error {
	q.n.Add(int64(len(evs)))
	return nil
}

type sites struct{ snap *model.Snapshot }

func (s sites) Snapshot() *model.Snapshot { return s.snap }

// The generated load is valid input for the real gateway handler: every
// request is answered 200 and enqueued.
func TestBodiesAcceptedByGateway(t *testing.T) {
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{{ID: "default", Domains: []string{"127.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	q := &countingQueue{}
	gw, err := gateway.New(gateway.Options{Enqueuer: q, Sites: sites{snap}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL + "/collect", Conns: 4, Duration: 5 * time.Second, Warmup: -1, MaxRequests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 200 || res.Errors != 0 || q.n.Load() != 200 {
		t.Fatalf("ok %d errors %d (%s, %v), enqueued %d; want 200 accepted", res.OK, res.Errors, res.FirstError, res.Statuses, q.n.Load())
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("percentiles p50 %s p99 %s max %s", res.P50, res.P99, res.Max)
	}
}

func TestRunCountsErrorsAndHonoursBounds(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if hits.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, rate := range []int{0, 1000} {
		hits.Store(0)
		res, err := Run(context.Background(), Options{URL: srv.URL, Conns: 3, Rate: rate, Duration: 10 * time.Second, Warmup: -1, MaxRequests: 40})
		if err != nil {
			t.Fatal(err)
		}
		// Open loop (a rate) skips a slot that finds every connection busy
		// and counts it missed, which a loaded machine does: the bound
		// holds for what was sent plus what was missed.
		if hits.Load()+res.Missed != 40 || res.Requests != hits.Load() {
			t.Fatalf("rate %d: server saw %d, missed %d, result counts %d; want the bound of 40 sent or missed", rate, hits.Load(), res.Missed, res.Requests)
		}
		if rate == 0 && res.Missed != 0 {
			t.Errorf("closed loop missed %d", res.Missed)
		}
		ok, failed := (hits.Load()+1)/2, hits.Load()/2
		if res.OK != ok || res.Errors != failed || res.Statuses[503] != failed || res.FirstError != "HTTP 503" {
			t.Errorf("rate %d: ok %d errors %d statuses %v first %q; want ok %d, %d errors", rate, res.OK, res.Errors, res.Statuses, res.FirstError, ok, failed)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/collect", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://example.com", false},
		{"https://127.0.0.1", false},
	} {
		if err := CheckLoopback(tc.url); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
	if _, err := Run(context.Background(), Options{URL: "http://192.0.2.1/collect"}); err == nil {
		t.Error("Run accepted a non-loopback target")
	}
}

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	p50, p99, mx := percentiles(s)
	if p50 != 50*time.Millisecond || p99 != 99*time.Millisecond || mx != 100*time.Millisecond {
		t.Errorf("p50 %s p99 %s max %s", p50, p99, mx)
	}
	if a, b, c := percentiles(nil); a != 0 || b != 0 || c != 0 {
		t.Error("empty samples")
	}
}

func TestRSSKB(t *testing.T) {
	kb, err := RSSKB(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if kb < 1024 {
		t.Errorf("RSS of this test process %d kB", kb)
	}
	if _, err := RSSKB(1 << 30); err == nil {
		t.Error("RSS of a process that does not exist")
	}
}

func TestDelivery(t *testing.T) {
	rdb := redistest.Start(t).Client()
	res, err := Delivery(context.Background(), DeliveryOptions{Redis: rdb, Events: 3000, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsPerSec <= 0 || res.Requests < 3 || res.BytesPerEvent <= 0 || res.EventJSONBytes < 500 {
		t.Errorf("result %+v", res)
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("%d keys left behind", n)
	}
	// With identities, as tagway serve runs: delivery stores one hash per
	// (new, identified) visitor, and their memory is measured apart.
	res, err = Delivery(context.Background(), DeliveryOptions{Redis: rdb, Events: 2000, Timeout: time.Minute,
		Identity: dispatch.NewIdentityStore(rdb, dispatch.IdentityOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	if res.IdentityKeys != 2000 || res.BytesPerIdentity < 100 || res.BytesPerIdentity > 2000 {
		t.Errorf("identities: %d keys, %.0f bytes each; want 2000 of 100-2000 bytes", res.IdentityKeys, res.BytesPerIdentity)
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("%d keys left behind", n)
	}
	rdb.Set(context.Background(), "someone-else", "1", 0)
	if _, err := Delivery(context.Background(), DeliveryOptions{Redis: rdb, Events: 10}); err == nil {
		t.Error("Delivery ran on a database that holds keys")
	}
}

func TestWaitIdle(t *testing.T) {
	if _, err := cpuTicks(os.Getpid()); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if _, idle := WaitIdle(os.Getpid(), 3*time.Second); !idle {
		t.Error("an idle test process was not seen idle")
	}
	var stop atomic.Bool
	// One spinner per core: on a machine shared with other loads, one
	// spinning goroutine alone may get too small a share to tell.
	for range runtime.NumCPU() {
		go func() {
			for !stop.Load() {
			}
		}()
	}
	defer stop.Store(true)
	if _, idle := WaitIdle(os.Getpid(), 1200*time.Millisecond); idle {
		t.Error("a process spinning a CPU was seen idle")
	}
}

// RunPair loads both targets in the same window.
func TestRunPairLoadsBothAtOnce(t *testing.T) {
	type window struct {
		mu          sync.Mutex
		first, last time.Time
		n           int
	}
	serve := func(w *window) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.mu.Lock()
			now := time.Now()
			if w.n == 0 {
				w.first = now
			}
			w.last, w.n = now, w.n+1
			w.mu.Unlock()
			time.Sleep(time.Millisecond)
			rw.WriteHeader(http.StatusNoContent)
		}))
	}
	var wa, wb window
	a, b := serve(&wa), serve(&wb)
	defer a.Close()
	defer b.Close()
	opts := func(url string) Options {
		return Options{URL: url + "/collect", Conns: 2, Duration: 300 * time.Millisecond, Warmup: -1}
	}
	ra, rb, err := RunPair(context.Background(), opts(a.URL), opts(b.URL))
	if err != nil {
		t.Fatal(err)
	}
	if ra.OK == 0 || rb.OK == 0 || ra.Errors+rb.Errors != 0 {
		t.Fatalf("a: %d ok, %d errors; b: %d ok, %d errors", ra.OK, ra.Errors, rb.OK, rb.Errors)
	}
	// Each ran for 300ms; run one after the other, b's first request
	// would come after a's last.
	if !wb.first.Before(wa.last) || !wa.first.Before(wb.last) {
		t.Errorf("windows do not overlap: a %s..%s, b %s..%s", wa.first.Format(time.StampMicro), wa.last.Format(time.StampMicro),
			wb.first.Format(time.StampMicro), wb.last.Format(time.StampMicro))
	}
}
