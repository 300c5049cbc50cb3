// Package destinationstest is what the destination adapters' tests share.
//
// Run is the conformance kit every adapter's tests run: it checks, against
// the adapter's own strict fake of its platform, the promises of
// destinations.Destination that hold for every platform — one outcome per
// event and in order, the platform's batch limit, the classification of the
// platform's answers, no secret in an error or a log line (even one split by
// an invalid byte), no request for an empty batch, a cancelled context
// honoured, the platform's age limit, and the shared event_id carried in
// the platform's dedup field.
//
// Fake is the scaffolding of those strict fakes (fake.go), which keep only
// their platform's rules; adapter.go holds the helpers of the adapters' own
// tests: stand-in platforms, golden files, and the checks they all make.
package destinationstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

// SecretMark stands for the adapter's secret in an Answer's body: the kit
// replaces it, so that a platform echoing the credential in its error is
// simulated and the adapter must keep it out of its errors.
const SecretMark = "{{SECRET}}"

// Answer is one response of the platform and the outcome it must give.
type Answer struct {
	// Name names the row in failures ("rate limited").
	Name   string
	Status int
	Header http.Header
	// Body is the response body; SecretMark is replaced by the secret.
	Body string
	// Want is the kind every event of the batch must get; 0 means
	// delivered (nil errors).
	Want destinations.Kind
	// MinRetryAfter, for Retryable rows, is the least RetryAfter the
	// adapter must report (from Retry-After or the platform's hint).
	MinRetryAfter time.Duration
}

// Platform describes one adapter and its fake to the kit.
type Platform struct {
	// Name names the platform in failures.
	Name string
	// MaxBatch is the platform's documented largest batch: the adapter's
	// MaxBatch must be positive and no larger, and a batch of MaxBatch
	// events must go through the fake.
	MaxBatch int
	// PerRequest is the most events one request may carry (the fake
	// refuses more); 0 means MaxBatch.
	PerRequest int
	// MaxAge is the platform's age limit for a website event; 0 when it
	// has none. The adapter must then implement destinations.AgeLimiter.
	MaxAge time.Duration
	// Secret is the credential New configures the adapter with.
	Secret string
	// New builds the adapter sending to baseURL with deps.
	New func(baseURL string, deps destinations.Deps) (destinations.Destination, error)
	// Fake is the platform's strict fake API; it answers every request
	// that reaches it (the kit answers the Answer rows itself).
	Fake http.Handler
	// Events returns n distinct valid events of a standard name the
	// adapter sends, each with its own event_id.
	Events func(n int) []destinations.Event
	// DedupIDs reads, from one request the fake accepted, the dedup id
	// of each event it carries, in order (the platform's field that holds
	// the shared event_id).
	DedupIDs func(r *http.Request, body []byte) ([]string, error)
	// Answers are the platform's answers to classify: at least one
	// retryable and one permanent row.
	Answers []Answer
}

// Run runs the kit's checks as subtests of t.
func Run(t *testing.T, p Platform) {
	t.Helper()
	if p.New == nil || p.Fake == nil || p.Events == nil || p.DedupIDs == nil || p.Secret == "" {
		t.Fatal("destinationstest: Platform needs New, Fake, Events, DedupIDs and Secret")
	}
	perRequest := p.PerRequest
	if perRequest == 0 {
		perRequest = p.MaxBatch
	}
	t.Run("MaxBatch", func(t *testing.T) {
		d := newAdapter(t, p, newFake(t, p).URL, nil)
		if n := d.MaxBatch(); n <= 0 || n > p.MaxBatch {
			t.Fatalf("MaxBatch() = %d, want 1..%d (the platform's limit)", n, p.MaxBatch)
		}
	})
	t.Run("DeliversInOrderWithDedupIDs", func(t *testing.T) {
		f := newFake(t, p)
		d := newAdapter(t, p, f.URL, nil)
		for _, n := range []int{1, 3, d.MaxBatch()} {
			f.reset()
			batch := p.Events(n)
			errs := d.Deliver(context.Background(), batch)
			checkOutcomes(t, batch, errs, 0)
			var ids []string
			for _, r := range f.requests() {
				if r.events > perRequest {
					t.Errorf("a request carried %d events, the platform takes at most %d", r.events, perRequest)
				}
				ids = append(ids, r.ids...)
			}
			if len(ids) != n {
				t.Fatalf("batch of %d: the fake received %d events (%v)", n, len(ids), f.problems())
			}
			for i, e := range batch {
				if ids[i] != e.EventID {
					t.Fatalf("batch of %d: event %d went out with dedup id %q, want its event_id %q", n, i, ids[i], e.EventID)
				}
			}
		}
	})
	t.Run("Answers", func(t *testing.T) {
		var retryable, permanent bool
		for _, a := range p.Answers {
			retryable = retryable || a.Want == destinations.Retryable
			permanent = permanent || a.Want == destinations.Permanent
		}
		if !retryable || !permanent {
			t.Fatal("Answers must hold at least one retryable and one permanent row")
		}
		for _, a := range p.Answers {
			t.Run(a.Name, func(t *testing.T) {
				f := newFake(t, p)
				f.answer(&a)
				var logs bytes.Buffer
				d := newAdapter(t, p, f.URL, &logs)
				batch := p.Events(3)
				errs := d.Deliver(context.Background(), batch)
				checkOutcomes(t, batch, errs, a.Want)
				for _, err := range errs {
					if err == nil {
						continue
					}
					_, de := destinations.Classify(err)
					if a.Want == destinations.Retryable && de.RetryAfter < a.MinRetryAfter {
						t.Errorf("RetryAfter = %s, want at least %s", de.RetryAfter, a.MinRetryAfter)
					}
				}
				checkNoSecret(t, logs.String(), errs, p.Secret)
			})
		}
	})
	t.Run("NoSecretSplitByInvalidUTF8", func(t *testing.T) {
		// An answer that echoes the secret with an invalid byte inside it:
		// dropping the byte after the redaction would join the halves.
		k := len(p.Secret) / 2
		f := newFake(t, p)
		f.answer(&Answer{Status: http.StatusBadGateway, Body: "bad token " + p.Secret[:k] + "\xff" + p.Secret[k:]})
		var logs bytes.Buffer
		d := newAdapter(t, p, f.URL, &logs)
		batch := p.Events(2)
		errs := d.Deliver(context.Background(), batch)
		checkOutcomes(t, batch, errs, destinations.Retryable)
		checkNoSecret(t, logs.String(), errs, p.Secret, p.Secret[:k], p.Secret[k:])
	})
	t.Run("EmptyBatch", func(t *testing.T) {
		f := newFake(t, p)
		d := newAdapter(t, p, f.URL, nil)
		if errs := d.Deliver(context.Background(), nil); len(errs) != 0 {
			t.Errorf("Deliver(nil) = %v, want no outcomes", errs)
		}
		if n := f.count(); n != 0 {
			t.Errorf("an empty batch made %d requests", n)
		}
	})
	t.Run("NoSecretWhenUnreachable", func(t *testing.T) {
		// A closed port: transport errors carry the request URL.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var logs bytes.Buffer
		d := newAdapter(t, p, "http://"+addr, &logs)
		batch := p.Events(2)
		errs := d.Deliver(context.Background(), batch)
		checkOutcomes(t, batch, errs, destinations.Retryable)
		checkNoSecret(t, logs.String(), errs, p.Secret)
	})
	t.Run("HonoursCancellation", func(t *testing.T) {
		d := newAdapter(t, p, Hanging(t).URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		batch := p.Events(2)
		done := make(chan []error, 1)
		go func() { done <- d.Deliver(ctx, batch) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		// A guard against a hang, not a speed assertion.
		select {
		case errs := <-done:
			checkOutcomes(t, batch, errs, destinations.Retryable)
		case <-time.After(30 * time.Second):
			t.Fatal("Deliver did not return after its context was cancelled")
		}
	})
	t.Run("AgeLimit", func(t *testing.T) {
		d := newAdapter(t, p, newFake(t, p).URL, nil)
		al, ok := d.(destinations.AgeLimiter)
		if p.MaxAge == 0 {
			if ok {
				if got := al.MaxEventAge(p.Events(1)[0]); got != 0 {
					t.Fatalf("MaxEventAge = %s, but the platform has no age limit", got)
				}
			}
			return
		}
		if !ok {
			t.Fatalf("the platform refuses events older than %s, but the adapter is no AgeLimiter", p.MaxAge)
		}
		if got := al.MaxEventAge(p.Events(1)[0]); got != p.MaxAge {
			t.Fatalf("MaxEventAge = %s, want the platform's %s", got, p.MaxAge)
		}
	})
}

func newAdapter(t *testing.T, p Platform, baseURL string, logs io.Writer) destinations.Destination {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	deps := destinations.Deps{
		HTTP:   &http.Client{Timeout: 20 * time.Second},
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    time.Now,
	}
	d, err := p.New(baseURL, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// checkOutcomes asserts one outcome per event, each of kind want (0:
// delivered).
func checkOutcomes(t *testing.T, batch []destinations.Event, errs []error, want destinations.Kind) {
	t.Helper()
	if len(errs) != len(batch) {
		t.Fatalf("Deliver returned %d outcomes for %d events", len(errs), len(batch))
	}
	for i, err := range errs {
		got, _ := destinations.Classify(err)
		if got != want {
			t.Fatalf("event %d: outcome %v (%v), want %s", i, kindName(got), err, kindName(want))
		}
	}
}

func kindName(k destinations.Kind) string {
	if k == 0 {
		return "delivered"
	}
	return k.String()
}

// fake wraps the platform's fake: it records what each accepted request
// carried and answers a forced Answer instead when one is set.
type fake struct {
	*httptest.Server
	p Platform

	mu     sync.Mutex
	forced *Answer
	all    int
	seen   []seenRequest
	errs   []string
}

type seenRequest struct {
	events int
	ids    []string
}

func newFake(t *testing.T, p Platform) *fake {
	f := &fake{p: p}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) answer(a *Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forced = a
}

func (f *fake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen, f.errs = nil, nil
}

func (f *fake) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.all
}

func (f *fake) problems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.all++
	forced := f.forced
	f.mu.Unlock()
	if forced != nil {
		for k, vs := range forced.Header {
			w.Header()[k] = vs
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(forced.Status)
		_, _ = io.WriteString(w, strings.ReplaceAll(forced.Body, SecretMark, f.p.Secret))
		return
	}
	// Hand the fake the body as it came, and see its answer.
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	f.p.Fake.ServeHTTP(rec, r)
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())

	f.mu.Lock()
	defer f.mu.Unlock()
	if rec.Code/100 != 2 {
		f.errs = append(f.errs, strconv.Itoa(rec.Code)+" "+rec.Body.String())
		return
	}
	ids, err := f.p.DedupIDs(r, body)
	if err != nil {
		f.errs = append(f.errs, fmt.Sprintf("DedupIDs: %v", err))
		return
	}
	f.seen = append(f.seen, seenRequest{events: len(ids), ids: ids})
}

// Events returns n distinct valid website events of a standard name for a
// Platform's Events: AddToCart now, each with its own event_id, an IP
// address and a user agent; edit, when set, adds what the platform needs
// to each.
func Events(n int, edit func(*destinations.Event)) []destinations.Event {
	out := make([]destinations.Event, n)
	for i := range out {
		out[i] = destinations.Event{
			EventName:      "AddToCart",
			EventTime:      time.Now().Unix(),
			EventID:        fmt.Sprintf("conformance-%d-%d", n, i),
			EventSourceURL: "https://shop.example/p/1",
			ActionSource:   "website",
			UserData: destinations.UserData{
				ClientIPAddress: "203.0.113.9",
				ClientUserAgent: "Mozilla/5.0 (conformance)",
			},
		}
		if edit != nil {
			edit(&out[i])
		}
	}
	return out
}

// DedupIDsAt is a Platform's DedupIDs for a JSON body that holds each
// event's dedup id at path: object keys separated by dots, the list of
// events marked [] ("data[].event_id", "data.events[].metadata.conversion_id").
func DedupIDsAt(path string) func(*http.Request, []byte) ([]string, error) {
	keys := strings.Split(path, ".")
	return func(_ *http.Request, body []byte) ([]string, error) {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, err
		}
		return valuesAt(v, keys), nil
	}
}

// valuesAt reads the strings at keys in v; a missing one reads as "".
func valuesAt(v any, keys []string) []string {
	if len(keys) == 0 {
		s, _ := v.(string)
		return []string{s}
	}
	key, each := strings.CutSuffix(keys[0], "[]")
	obj, _ := v.(map[string]any)
	if !each {
		return valuesAt(obj[key], keys[1:])
	}
	list, _ := obj[key].([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, valuesAt(e, keys[1:])...)
	}
	return out
}
