package destinationstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Fake is what every strict fake of a platform shares: a running httptest
// server, the fake's clock, the events it accepted by account, the requests
// it counted, the refusals it answered with, and the failures a test
// queued. A platform's fake embeds it and keeps only its platform's rules:
// its handler starts with Begin and records with Accept and Reject. E is
// the platform's accepted event, R its refusal. The methods are safe for
// concurrent use.
type Fake[E, R any] struct {
	cfg FakeConfig
	t   testing.TB
	srv *httptest.Server

	failures Failures

	mu         sync.Mutex
	now        func() time.Time
	events     map[string][]E
	requests   int
	rejections []R
}

// FakeConfig describes a Fake.
type FakeConfig struct {
	// Name names the fake in failures ("metatest").
	Name string
	// Account names what the events are kept by, in failures ("pixel").
	Account string
	// Serve is the platform's handler.
	Serve http.HandlerFunc
	// Explain, when set, tells more of what the fake saw when WaitEvents
	// fails (the token endpoint's refusals).
	Explain func() string
}

// NewFake starts a Fake, closed when the test ends. Its clock is time.Now
// until SetNow.
func NewFake[E, R any](t testing.TB, cfg FakeConfig) *Fake[E, R] {
	t.Helper()
	f := &Fake[E, R]{cfg: cfg, t: t, now: time.Now, events: map[string][]E{}}
	f.srv = httptest.NewServer(cfg.Serve)
	t.Cleanup(f.srv.Close)
	return f
}

// Handler serves the fake, for a test that runs its own server in front of
// it (the conformance kit).
func (f *Fake[E, R]) Handler() http.Handler { return f.cfg.Serve }

// URL is the fake's base URL, the adapter's API URL setting.
func (f *Fake[E, R]) URL() string { return f.srv.URL }

// SetNow replaces the clock of the platform's time rules.
func (f *Fake[E, R]) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// Now reads the fake's clock.
func (f *Fake[E, R]) Now() time.Time {
	f.mu.Lock()
	now := f.now
	f.mu.Unlock()
	return now()
}

// Events returns a copy of the events accepted for account, in arrival
// order.
func (f *Fake[E, R]) Events(account string) []E {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[account])
}

// Requests counts every request the fake answered, failed ones included.
func (f *Fake[E, R]) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Rejections returns the refusals the fake answered with, in order (not
// those queued with FailNext).
func (f *Fake[E, R]) Rejections() []R {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rejections)
}

// FailNext makes the next n requests fail with status and body, whatever
// they hold, before any check. Their events are not recorded.
func (f *Fake[E, R]) FailNext(n, status int, body string) { f.failures.Push(n, status, nil, body) }

// FailNextWith is FailNext with the answer's headers.
func (f *Fake[E, R]) FailNextWith(n, status int, header http.Header, body string) {
	f.failures.Push(n, status, header, body)
}

// WaitEvents polls until at least n events were accepted for account and
// returns them; it fails the test when timeout passes first, naming the
// refusals seen so far.
func (f *Fake[E, R]) WaitEvents(account string, n int, timeout time.Duration) []E {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := f.Events(account); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			got := f.Events(account)
			more := ""
			if f.cfg.Explain != nil {
				more = "; " + f.cfg.Explain()
			}
			f.t.Fatalf("%s: %s %s: %d of %d events after %s; %d requests; rejections: %v%s",
				f.cfg.Name, f.cfg.Account, account, len(got), n, timeout, f.Requests(), f.Rejections(), more)
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Begin starts the platform's handling of r: it counts the request and, if
// a failure is queued, answers with it. It returns the request's number
// (1 for the first), the fake's time, and false when it answered.
func (f *Fake[E, R]) Begin(w http.ResponseWriter, r *http.Request) (n int, now time.Time, ok bool) {
	f.mu.Lock()
	f.requests++
	n, now = f.requests, f.now()
	f.mu.Unlock()
	return n, now, !f.failures.Answer(w, r)
}

// Accept records events accepted for account.
func (f *Fake[E, R]) Accept(account string, events ...E) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[account] = append(f.events[account], events...)
}

// Reject records a refusal the fake answered with.
func (f *Fake[E, R]) Reject(rej R) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejections = append(f.rejections, rej)
}

// Failures is a queue of answers a fake gives before any check, whatever a
// request holds. The zero value is empty and ready; it is safe for
// concurrent use.
type Failures struct {
	mu    sync.Mutex
	queue []failure
}

type failure struct {
	status int
	header http.Header
	body   string
}

// Push queues n answers of status, header and body.
func (q *Failures) Push(n, status int, header http.Header, body string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.queue = append(q.queue, failure{status, header, body})
	}
}

// Answer answers r with the next queued answer, if any, JSON unless its
// headers say otherwise, and reports whether it did.
func (q *Failures) Answer(w http.ResponseWriter, r *http.Request) bool {
	q.mu.Lock()
	if len(q.queue) == 0 {
		q.mu.Unlock()
		return false
	}
	f := q.queue[0]
	q.queue = q.queue[1:]
	q.mu.Unlock()
	_, _ = io.Copy(io.Discard, r.Body)
	for k, vs := range f.header {
		w.Header()[k] = vs
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
	return true
}

// Accounts are the accounts a fake knows, each with the one token allowed
// to post to it. The zero value knows none; it is safe for concurrent use.
type Accounts struct {
	mu     sync.Mutex
	tokens map[string]string // account → token
}

// Add registers account and its token, in place of any earlier one.
func (a *Accounts) Add(account, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = map[string]string{}
	}
	a.tokens[account] = token
}

// Check tells what a fake needs to refuse a request as its platform does:
// whether token is any account's (an empty one is none), whether account
// is known, and whether token may post to it.
func (a *Accounts) Check(account, token string) (tokenKnown, accountKnown, allowed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.tokens {
		tokenKnown = tokenKnown || (token != "" && t == token)
	}
	want, accountKnown := a.tokens[account]
	return tokenKnown, accountKnown, accountKnown && token != "" && want == token
}

// Post sends body to url with header, for a fake's own tests: a string or
// a []byte as it is, anything else as JSON. It returns the answer's status
// and body.
func Post(t testing.TB, url string, header http.Header, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}
