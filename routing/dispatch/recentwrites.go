package dispatch

import (
	"hash/maphash"
	"sync"
	"time"
)

// recentWrites remembers, per visitor, the last identity write this process
// stored and when, so that an unchanged repeat within a window is left out
// (as is a write equal to one in flight: destinations reading the same
// entries at once), and the newest events a write begun held, so that a
// write of older events (a destination catching up behind another) only
// fills in fields Redis lacks. It keeps two generations of at most max
// visitors each: when the current one is full it becomes the previous one,
// and the oldest is dropped. Visitors and writes are kept as 64-bit hashes
// (a stray match would need both a visitor's and its whole write's hash to
// collide).
//
// A write counts as stored only when Redis applied it, it is the latest
// one begun for the visitor, and no other write of the visitor was in
// flight meanwhile (two pipelines in flight may be applied in either
// order). Until then the visitor's writes all go out, so the newest value
// always reaches Redis: A stored, B queued, A again queues A as well.
type recentWrites struct {
	seed   maphash.Seed
	window time.Duration
	max    int
	now    func() time.Time

	mu        sync.Mutex
	seq       uint64
	cur, prev map[uint64]recentWrite
}

type recentWrite struct {
	sum     uint64 // of the stored write, when done
	at      int64  // when it was stored, Unix nanoseconds
	seq     uint64 // of the latest write begun
	last    uint64 // sum of the latest write begun
	newest  int64  // the newest events' receive time of any write begun
	pending int    // writes begun and not yet reported
	alone   bool   // the latest write was begun with no other in flight
	done    bool   // sum and at hold a stored write that is the latest
}

func newRecentWrites(window time.Duration, max int, now func() time.Time) *recentWrites {
	return &recentWrites{seed: maphash.MakeSeed(), window: window, max: max, now: now,
		cur: make(map[uint64]recentWrite)}
}

// sums hashes an HSET's arguments ("hset", key, field, value, ...): the key
// alone, and the key with every field and value.
func (r *recentWrites) sums(hset []any) (key, all uint64) {
	var h maphash.Hash
	h.SetSeed(r.seed)
	for i, a := range hset[1:] {
		s, _ := a.(string)
		_, _ = h.WriteString(s)
		_ = h.WriteByte(0)
		if i == 0 {
			key = h.Sum64()
		}
	}
	return key, h.Sum64()
}

// writeKind is how a visitor's write goes to Redis.
type writeKind int

const (
	writeSet  writeKind = iota // HSET: its values are the visitor's newest
	writeFill                  // HSETNX per field: older than a write begun
	writeSkip                  // not at all: it repeats one stored or in flight
)

// begin decides about a visitor's write of events received up to at (Unix
// ms; 0 for unknown): writeSkip when it repeats the visitor's stored write
// of less than the window ago, or the write in flight; writeFill when a
// write of newer events was begun (it may still hold fields that one
// lacks, or that one may fail); else writeSet and the write's sequence
// number, to report to stored once its pipeline ran.
func (r *recentWrites) begin(key, sum uint64, at int64) (seq uint64, kind writeKind) {
	now := r.now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.cur[key]
	if !ok {
		w = r.prev[key]
	}
	switch {
	case w.done && w.sum == sum && now >= w.at && now-w.at < int64(r.window):
		return 0, writeSkip
	case w.pending > 0 && w.last == sum:
		return 0, writeSkip
	case at > 0 && at < w.newest:
		return 0, writeFill
	}
	w.newest = max(w.newest, at)
	r.seq++
	w.seq, w.last, w.done = r.seq, sum, false
	w.pending++
	w.alone = w.pending == 1
	r.putLocked(key, w)
	return r.seq, writeSet
}

// stored reports a begun write's outcome: applied by Redis or not.
func (r *recentWrites) stored(key, sum, seq uint64, applied bool) {
	now := r.now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.cur[key]
	if !ok {
		if w, ok = r.prev[key]; !ok {
			return // forgotten meanwhile
		}
	}
	if w.pending > 0 {
		w.pending--
	}
	if applied && seq == w.seq && w.alone && w.pending == 0 {
		w.sum, w.at, w.done = sum, now, true
	}
	r.putLocked(key, w)
}

// putLocked stores w in the current generation, rotating it when full.
func (r *recentWrites) putLocked(key uint64, w recentWrite) {
	if _, ok := r.cur[key]; !ok && len(r.cur) >= r.max {
		r.prev, r.cur = r.cur, make(map[uint64]recentWrite, r.max)
	}
	r.cur[key] = w
}
