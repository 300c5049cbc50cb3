package queue

import "sync"

// bufPool recycles the byte buffers of the write path (encoded events,
// merged entries, their stored form), which are otherwise the bulk of
// ingest's allocations and so of its garbage collection. Buffers are kept
// by power-of-two size class, so a call's ~1 KB payload never holds on to
// a 64 KB buffer. The zero value is ready; it is safe for concurrent use.
//
// Small classes live in sync.Pools. The large ones (a flush's merged entry
// and its compressed form, up to 128 KiB) are few at a time and would be
// dropped by every garbage collection with a sync.Pool, then allocated and
// zeroed again, which itself brings the next collection closer: up to
// bufKeep of each are kept across collections (at most 2 MiB in all).
type bufPool struct {
	classes [bufClasses]sync.Pool
	mu      sync.Mutex
	kept    [bufClasses][][]byte // classes >= bufKeepFrom only
}

// Size classes: 1 KiB << i for i < bufClasses (1 KiB to 128 KiB). Larger
// buffers are left to the garbage collector. Classes from bufKeepFrom
// (16 KiB) up keep bufKeep buffers across collections.
const (
	bufMinShift = 10
	bufClasses  = 8
	bufKeepFrom = 4
	bufKeep     = 8
)

// bufClass returns the class whose buffers hold n bytes, or -1.
func bufClass(n int) int {
	for i := range bufClasses {
		if n <= 1<<(bufMinShift+i) {
			return i
		}
	}
	return -1
}

// get returns an empty buffer with room for n bytes.
func (bp *bufPool) get(n int) []byte {
	c := bufClass(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	if c >= bufKeepFrom {
		bp.mu.Lock()
		if k := bp.kept[c]; len(k) > 0 {
			b := k[len(k)-1]
			k[len(k)-1] = nil
			bp.kept[c] = k[:len(k)-1]
			bp.mu.Unlock()
			return b[:0]
		}
		bp.mu.Unlock()
	} else if b, ok := bp.classes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<(bufMinShift+c))
}

// put returns b to the pool; b must not be used afterwards. Only buffers
// of exactly a class's size (those get made) are kept.
func (bp *bufPool) put(b []byte) {
	c := bufClass(cap(b))
	if c < 0 || cap(b) != 1<<(bufMinShift+c) {
		return
	}
	b = b[:0]
	if c >= bufKeepFrom {
		bp.mu.Lock()
		if len(bp.kept[c]) < bufKeep {
			bp.kept[c] = append(bp.kept[c], b)
		}
		bp.mu.Unlock()
		return
	}
	bp.classes[c].Put(&b)
}
