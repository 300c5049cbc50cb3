package destinations

import "sync"

// Recorder keeps the most recent request bodies that destinations in dry-run
// mode would have sent, for the log-free debugger and tests. It is safe for
// concurrent use; its Record method fits Deps.Record.
type Recorder struct {
	mu   sync.Mutex
	buf  [][]byte
	next int
	full bool
}

// NewRecorder returns a Recorder that keeps the last n bodies (n ≥ 1).
func NewRecorder(n int) *Recorder {
	return &Recorder{buf: make([][]byte, max(n, 1))}
}

// Record stores a copy of body, evicting the oldest when full.
func (r *Recorder) Record(body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = append([]byte(nil), body...)
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// Recent returns the stored bodies, oldest first.
func (r *Recorder) Recent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	if r.full {
		out = append(out, r.buf[r.next:]...)
	}
	return append(out, r.buf[:r.next]...)
}
