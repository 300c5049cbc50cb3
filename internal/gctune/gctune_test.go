package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	o := Options{Floor: 48 << 20, Base: 150, Max: 500}
	for _, c := range []struct {
		heap, roots uint64
		want        int
	}{
		{0, 0, 150},               // unknown
		{48 << 20, 0, 150},        // at the floor
		{200 << 20, 1 << 20, 150}, // above it
		{16 << 20, 0, 200},        // 16 MiB live: 3x reaches the floor
		{12 << 20, 0, 300},
		{12 << 20, 4 << 20, 225}, // the roots count: 12 + 16 * 2.25 = 48
		{8 << 20, 0, 500},        // 6x, the most
		{1 << 20, 0, 500},        // would be 47x
		{24 << 20, 0, 150},       // 2x is below the base's 2.5x
	} {
		if got := o.Percent(c.heap, c.roots); got != c.want {
			t.Errorf("heap %d MiB, roots %d MiB: %d; want %d", c.heap>>20, c.roots>>20, got, c.want)
		}
	}
}

// Tune sets a new percentage only when it moves by more than a twentieth.
func TestTuneSetsOnChange(t *testing.T) {
	var set []int
	live := uint64(12 << 20)
	tu := New(Options{Floor: 48 << 20, Base: 150, Max: 500,
		Set:  func(p int) int { set = append(set, p); return 0 },
		Live: func() (uint64, uint64) { return live, 0 }})
	for _, l := range []uint64{12 << 20, 12<<20 + 1<<18, 12<<20 - 1<<18, 8 << 20, 64 << 20} {
		live = l
		tu.Tune()
	}
	// 300; then 287 and 314 (within a twentieth: left); 500; 150.
	want := []int{300, 500, 150}
	if len(set) != len(want) {
		t.Fatalf("set %v; want %v", set, want)
	}
	for i := range want {
		if set[i] != want[i] {
			t.Fatalf("set %v; want %v", set, want)
		}
	}
}

// Run tunes until its context ends, then leaves the base in force.
func TestRunRestoresBase(t *testing.T) {
	sets := make(chan int, 100)
	tu := New(Options{Floor: 48 << 20, Base: 150, Max: 500,
		Set:  func(p int) int { sets <- p; return 0 },
		Live: func() (uint64, uint64) { return 8 << 20, 0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx, time.Millisecond); close(done) }()
	if p := <-sets; p != 500 {
		t.Fatalf("first set %d; want 500", p)
	}
	cancel()
	<-done
	last := 0
	for len(sets) > 0 {
		last = <-sets
	}
	if last != 150 {
		t.Errorf("after Run: %d in force; want the base 150", last)
	}
}

// On the real runtime the tuner reads the live heap and the collector's
// goal reaches the floor.
func TestTunerMovesTheRuntimeGoal(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	// A live heap of some size: the runtime keeps the goal at least
	// 4 MB times the percentage, which a near-empty heap would reach.
	ballast := make([]byte, 24<<20)
	defer runtime.KeepAlive(ballast)
	runtime.GC()
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: liveHeap}}
	metrics.Read(goal)
	live, before := goal[1].Value.Uint64(), goal[0].Value.Uint64()
	const floor = 256 << 20
	if live < 24<<20 || live >= floor/4 {
		t.Fatalf("live heap %d bytes: the test needs one well under the floor", live)
	}
	tu := New(Options{Floor: floor, Base: 150, Max: 1 << 30, Set: debug.SetGCPercent})
	p := tu.Tune()
	metrics.Read(goal)
	after := goal[0].Value.Uint64()
	if after < floor*9/10 || after > floor*11/10 {
		t.Errorf("goal %d MiB after setting %d%% (live %d KiB; before %d MiB); want about %d MiB", after>>20, p, live>>10, before>>20, floor>>20)
	}
}
