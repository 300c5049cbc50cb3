package loadgen

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The reference handlers price parts of the gateway's work on their own,
// to read its figures against (tagway bench -reference): what the answer
// costs, and what a durable enqueue with nothing else costs.

// AnswerHandler reads the request body and answers as the gateway answers
// a new visitor's POST /collect: 204 with the same headers (two
// Set-Cookie, CORS). What it costs over BareHandler is net/http's work for
// those headers.
func AnswerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		h := w.Header()
		h.Set("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Set-Cookie", "_fbp=fb.0.1764300000000.123456789012; Path=/; Max-Age=34560000; SameSite=Lax")
		h.Add("Set-Cookie", "_tw_vid=1764300000000.123456789012; Path=/; Max-Age=34560000; SameSite=Lax")
		w.WriteHeader(http.StatusNoContent)
	})
}

// ReferenceStream is the stream EnqueueHandler writes to, trimmed to about
// referenceMaxLen entries.
const (
	ReferenceStream = "tagway-bench:reference"
	referenceMaxLen = 10_000
)

// EnqueueHandler is a bare durable enqueue: it reads the request body,
// XADDs it to ReferenceStream as one entry, and answers 204 once Redis
// has it. Requests that arrive while a pipeline is in flight go together
// in the next one (one in flight at a time). It does no other work: no
// decoding, validation, hashing, cookies or compression. It has its own
// few lines of group commit rather than queue.Queue on purpose: it is
// the yardstick that queue is measured against.
func EnqueueHandler(rdb *redis.Client) http.Handler {
	b := &pipeliner{rdb: rdb}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		done := make(chan error, 1)
		b.submit(body, done)
		if err := <-done; err != nil {
			http.Error(w, "enqueue failed", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// pipeliner is EnqueueHandler's group commit.
type pipeliner struct {
	rdb *redis.Client

	mu      sync.Mutex
	pending []pendingAdd
	busy    bool
}

type pendingAdd struct {
	body []byte
	done chan error
}

func (p *pipeliner) submit(body []byte, done chan error) {
	p.mu.Lock()
	p.pending = append(p.pending, pendingAdd{body, done})
	if p.busy {
		p.mu.Unlock()
		return
	}
	p.busy = true
	p.mu.Unlock()
	go p.run()
}

func (p *pipeliner) run() {
	ctx := context.Background()
	for {
		p.mu.Lock()
		batch := p.pending
		p.pending = nil
		if len(batch) == 0 {
			p.busy = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		pipe := p.rdb.Pipeline()
		for _, a := range batch {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: ReferenceStream, MaxLen: referenceMaxLen, Approx: true, Values: []any{"e", a.body}})
		}
		_, err := pipe.Exec(ctx)
		for _, a := range batch {
			a.done <- err
		}
	}
}
