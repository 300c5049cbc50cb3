package metatest

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Faults is a mix of failures the fake injects into requests it would
// otherwise accept, for fault-injection tests. Each share is the
// probability, in [0,1], that one request meets that failure; the shares
// together must not exceed 1. The zero value injects nothing.
type Faults struct {
	// ServerError answers 500, 502 or 503 with an HTML body, as a proxy in
	// front of Graph does.
	ServerError float64
	// TooManyRequests answers 429 with Retry-After: 1 and a non-Graph body.
	TooManyRequests float64
	// RateLimit answers 400 with one of Graph's throttling codes (4, 17,
	// 32, 613, 80004), is_transient true.
	RateLimit float64
	// Hang holds the request without answering until the client gives up
	// (or HangFor passes, then 504). Nothing is recorded.
	Hang float64
	// Reset accepts and records the events, then closes the connection
	// without answering (TCP RST): the platform has them but the sender
	// cannot know. Their resend is legitimate; Meta deduplicates it.
	Reset float64
	// HangFor bounds a hang (default 30s).
	HangFor time.Duration
	// RejectKey, when set, makes the fake refuse, permanently and for the
	// whole request as Meta does (400, code 100), every request holding an
	// event whose custom_data[RejectKey] is the string "reject".
	RejectKey string
	// Seed seeds the choice of failures (0: a fixed default), so a run can
	// be repeated.
	Seed uint64
}

// Fault kinds, as counted by FaultCounts.
const (
	FaultServerError     = "server_error"
	FaultTooManyRequests = "too_many_requests"
	FaultRateLimit       = "rate_limit"
	FaultHang            = "hang"
	FaultReset           = "reset"
	FaultRejected        = "rejected"
)

// faultState is the fault-injection part of a Server. It has its own lock.
type faultState struct {
	mu     sync.Mutex
	f      Faults
	rnd    *rand.Rand
	counts map[string]int
	acks   map[string][]time.Time // event_id → times its acceptance was acknowledged
}

// SetFaults replaces the failure mix from the next request on.
func (s *Server) SetFaults(f Faults) {
	s.fx.mu.Lock()
	defer s.fx.mu.Unlock()
	if f.HangFor <= 0 {
		f.HangFor = 30 * time.Second
	}
	seed := f.Seed
	if seed == 0 {
		seed = 0x7a67776179
	}
	s.fx.f, s.fx.rnd = f, rand.New(rand.NewPCG(seed, seed>>1|1))
}

// FaultCounts returns how many requests met each fault kind.
func (s *Server) FaultCounts() map[string]int {
	s.fx.mu.Lock()
	defer s.fx.mu.Unlock()
	out := make(map[string]int, len(s.fx.counts))
	for k, v := range s.fx.counts {
		out[k] = v
	}
	return out
}

// Acked returns, for every event_id the fake accepted and whose success
// answer was written to the connection, the times of each such
// acknowledgement. More than one time for an id means the sender sent it
// again after the platform had acknowledged it. Events accepted in a
// request that then met a Reset are recorded in Events but not here.
func (s *Server) Acked() map[string][]time.Time {
	s.fx.mu.Lock()
	defer s.fx.mu.Unlock()
	out := make(map[string][]time.Time, len(s.fx.acks))
	for k, v := range s.fx.acks {
		out[k] = slices.Clone(v)
	}
	return out
}

func (fx *faultState) count(kind string) {
	if fx.counts == nil {
		fx.counts = map[string]int{}
	}
	fx.counts[kind]++
}

// pickFault draws this request's fault ("" for none).
func (s *Server) pickFault() string {
	s.fx.mu.Lock()
	defer s.fx.mu.Unlock()
	if s.fx.rnd == nil {
		return ""
	}
	f := s.fx.f
	x := s.fx.rnd.Float64()
	for _, c := range []struct {
		share float64
		kind  string
	}{{f.ServerError, FaultServerError}, {f.TooManyRequests, FaultTooManyRequests}, {f.RateLimit, FaultRateLimit},
		{f.Hang, FaultHang}, {f.Reset, FaultReset}} {
		if x < c.share {
			s.fx.count(c.kind)
			return c.kind
		}
		x -= c.share
	}
	return ""
}

// answerFault answers a fault that strikes before the request is read; it
// reports whether it answered.
func (s *Server) answerFault(kind string, w http.ResponseWriter, r *http.Request, trace string) bool {
	s.fx.mu.Lock()
	n := s.fx.counts[kind]
	hangFor := s.fx.f.HangFor
	s.fx.mu.Unlock()
	switch kind {
	case FaultServerError:
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader([]int{500, 502, 503}[(n-1)%3])
		_, _ = io.WriteString(w, "<html><body>upstream error</body></html>")
	case FaultTooManyRequests:
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, "Too Many Requests")
	case FaultRateLimit:
		_, _ = io.Copy(io.Discard, r.Body)
		code := []int{4, 17, 32, 613, 80004}[(n-1)%5]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, GraphError{Code: code, Type: "OAuthException", IsTransient: true, FBTraceID: trace,
			Message: "(#" + strconv.Itoa(code) + ") Application request limit reached"}.Body())
	case FaultHang:
		_, _ = io.Copy(io.Discard, r.Body)
		t := time.NewTimer(hangFor)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
			w.WriteHeader(http.StatusGatewayTimeout)
		}
	default:
		return false
	}
	return true
}

// rejectMarked refuses the whole request when one of its events carries
// the reject marker.
func (s *Server) rejectMarked(events []Received) *GraphError {
	s.fx.mu.Lock()
	key := s.fx.f.RejectKey
	s.fx.mu.Unlock()
	if key == "" {
		return nil
	}
	for i, ev := range events {
		if v, _ := ev.CustomData[key].(string); v == "reject" {
			s.fx.mu.Lock()
			s.fx.count(FaultRejected)
			s.fx.mu.Unlock()
			return invalid("data[%d]: custom_data.%s asks the fake to refuse this event", i, key)
		}
	}
	return nil
}

// resetConn closes the connection under w without an answer, with a TCP
// reset where it can.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// ack records that the success answer for events reached the connection.
func (s *Server) ack(w http.ResponseWriter, events []Received) {
	if err := http.NewResponseController(w).Flush(); err != nil {
		return
	}
	now := time.Now()
	s.fx.mu.Lock()
	defer s.fx.mu.Unlock()
	if s.fx.acks == nil {
		s.fx.acks = map[string][]time.Time{}
	}
	for _, ev := range events {
		if ev.EventID != "" {
			s.fx.acks[ev.EventID] = append(s.fx.acks[ev.EventID], now)
		}
	}
}

// encodeOK writes Meta's success answer for n events.
func encodeOK(w http.ResponseWriter, n int, trace string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"events_received": n, "messages": []string{}, "fbtrace_id": trace})
}
