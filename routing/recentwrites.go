package routing

import (
	"hash/maphash"
	"sync"
	"time"
)

// recentWrites remembers, per visitor, the last identity write this process
// stored and when, so that an unchanged repeat within a window is left
// out. It keeps two generations of at most max visitors each: when the
// current one is full it becomes the previous one, and the oldest is
// dropped. Visitors and writes are kept as 64-bit hashes (a stray match
// would need both a visitor's and its whole write's hash to collide).
type recentWrites struct {
	seed   maphash.Seed
	window time.Duration
	max    int
	now    func() time.Time

	mu        sync.Mutex
	cur, prev map[uint64]recentWrite
}

type recentWrite struct {
	sum uint64
	at  int64 // Unix nanoseconds
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

// fresh reports whether the visitor's last stored write was this one, less
// than the window ago.
func (r *recentWrites) fresh(key, sum uint64) bool {
	now := r.now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.cur[key]
	if !ok {
		w, ok = r.prev[key]
	}
	return ok && w.sum == sum && now-w.at < int64(r.window) && now >= w.at
}

// put records a stored write.
func (r *recentWrites) put(key, sum uint64) {
	now := r.now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cur[key]; !ok && len(r.cur) >= r.max {
		r.prev, r.cur = r.cur, make(map[uint64]recentWrite, r.max)
	}
	r.cur[key] = recentWrite{sum: sum, at: now}
}
