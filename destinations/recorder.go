package destinations

import "sync"

// DefaultRecorderBytes bounds the bodies a Recorder made by NewRecorder
// keeps in total: a dry-run batch of 1,000 events is about 1 MB, and a
// hundred of them would hold 100 MB of a gateway's memory.
const DefaultRecorderBytes = 2 << 20

// Recorder keeps the most recent request bodies that destinations in dry-run
// mode would have sent, for the log-free debugger and tests. It is safe for
// concurrent use; its Record method fits Deps.Record.
type Recorder struct {
	mu       sync.Mutex
	bodies   [][]byte // oldest first
	total    int      // bytes in bodies
	n        int
	maxBytes int
}

// NewRecorder returns a Recorder that keeps the last n bodies (n ≥ 1), at
// most DefaultRecorderBytes of them in total.
func NewRecorder(n int) *Recorder { return NewRecorderSize(n, DefaultRecorderBytes) }

// NewRecorderSize returns a Recorder that keeps the last n bodies (n ≥ 1)
// and, of those, only as many of the newest as fit in maxBytes in total;
// the newest body is always kept, whatever its size.
func NewRecorderSize(n, maxBytes int) *Recorder {
	return &Recorder{n: max(n, 1), maxBytes: maxBytes}
}

// Record stores a copy of body, evicting the oldest bodies beyond the
// Recorder's bounds.
func (r *Recorder) Record(body []byte) {
	c := append([]byte(nil), body...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, c)
	r.total += len(c)
	drop := 0
	for len(r.bodies)-drop > r.n || (r.total > r.maxBytes && len(r.bodies)-drop > 1) {
		r.total -= len(r.bodies[drop])
		drop++
	}
	if drop > 0 {
		rest := copy(r.bodies, r.bodies[drop:])
		clear(r.bodies[rest:])
		r.bodies = r.bodies[:rest]
	}
}

// Recent returns the stored bodies, oldest first.
func (r *Recorder) Recent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}
