// Package gctune keeps the garbage collector's heap goal at or above a
// floor. The runtime sets the goal at the live heap times 1+GOGC/100: a
// gateway that only ingests keeps ~10 MB live and so collects many times a
// second, each time for a heap far below what the process may use. A
// Tuner raises the GC percentage while the live heap is small, so the goal
// reaches the floor, and lowers it back to its base as the live heap grows:
// the peak heap is max(floor, live times the base's factor), never more
// than the base alone would allow once live data fills the floor.
package gctune

import (
	"context"
	"runtime/metrics"
	"time"
)

// The runtime metrics the Tuner reads: the heap that survived the last
// collection, and the GC roots that the percentage applies to as well
// (the goal is live + (live + stacks + globals) * percent/100).
const (
	liveHeap    = "/gc/heap/live:bytes"
	stackRoots  = "/gc/scan/stack:bytes"
	globalRoots = "/gc/scan/globals:bytes"
)

// Options configures a Tuner.
type Options struct {
	// Floor is the heap goal to keep, in bytes.
	Floor uint64
	// Base is the percentage below which the Tuner never goes (the GOGC
	// the process would otherwise run with); Max the one above which it
	// never goes, however small the live heap.
	Base, Max int
	// Set applies a percentage (debug.SetGCPercent); Live reads the live
	// heap and the scanned roots (stacks and globals) in bytes, heap 0
	// when unknown (default: runtime/metrics).
	Set  func(percent int) int
	Live func() (heap, roots uint64)
}

// Tuner adjusts the GC percentage to the live heap. Not safe for
// concurrent use: one goroutine runs it.
type Tuner struct {
	opts    Options
	current int // the percentage last set; 0 before the first
	sample  []metrics.Sample
}

// New returns a Tuner for opts.
func New(opts Options) *Tuner {
	t := &Tuner{opts: opts}
	if t.opts.Live == nil {
		t.sample = []metrics.Sample{{Name: liveHeap}, {Name: stackRoots}, {Name: globalRoots}}
		t.opts.Live = t.readLive
	}
	return t
}

func (t *Tuner) readLive() (heap, roots uint64) {
	metrics.Read(t.sample)
	var v [3]uint64
	for i, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
		v[i] = s.Value.Uint64()
	}
	return v[0], v[1] + v[2]
}

// Percent returns the percentage for a live heap of heap bytes and roots
// of roots bytes: the one whose goal is the floor, within [Base, Max];
// Base when the heap is unknown.
func (o Options) Percent(heap, roots uint64) int {
	if heap == 0 || heap >= o.Floor {
		return o.Base
	}
	p := (o.Floor - heap) * 100 / (heap + roots)
	return int(min(max(p, uint64(o.Base)), uint64(o.Max)))
}

// Tune reads the live heap and sets the percentage for it when it differs
// from the one set by more than a twentieth (the runtime recomputes its
// goal at each setting). It returns the percentage in force.
func (t *Tuner) Tune() int {
	p := t.opts.Percent(t.opts.Live())
	if t.current == 0 || p*20 < t.current*19 || p*20 > t.current*21 {
		t.opts.Set(p)
		t.current = p
	}
	return t.current
}

// Run tunes every interval until ctx ends, then sets Base back.
func (t *Tuner) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	t.Tune()
	for {
		select {
		case <-ctx.Done():
			t.opts.Set(t.opts.Base)
			return
		case <-tick.C:
			t.Tune()
		}
	}
}
