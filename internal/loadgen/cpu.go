package loadgen

import (
	"os"
	"time"
)

// ticksPerSecond is the kernel's USER_HZ, the unit of /proc/<pid>/stat's
// CPU times (100 on every Linux platform Go supports).
const ticksPerSecond = 100

// CPUMeter reads the CPU time a process has used so far.
type CPUMeter func() (time.Duration, error)

// ProcessCPU meters process pid (Linux /proc).
func ProcessCPU(pid int) CPUMeter {
	return func() (time.Duration, error) {
		t, err := cpuTicks(pid)
		return time.Duration(t) * time.Second / ticksPerSecond, err
	}
}

// cpuWindow records the CPU time of several meters over the measured part
// of a step: a reading when measuring starts and one when it ends.
type cpuWindow struct {
	meters []CPUMeter
	from   []time.Duration
	used   []time.Duration
	ok     []bool
	taken  chan struct{}
}

// startCPU takes the first readings at time from, on a goroutine of its
// own, so the load starts on time. Nil meters read 0.
func startCPU(meters []CPUMeter, from time.Time) *cpuWindow {
	w := &cpuWindow{meters: meters, from: make([]time.Duration, len(meters)),
		used: make([]time.Duration, len(meters)), ok: make([]bool, len(meters)), taken: make(chan struct{})}
	go func() {
		defer close(w.taken)
		time.Sleep(time.Until(from))
		for i, m := range meters {
			if m != nil {
				v, err := m()
				w.from[i], w.ok[i] = v, err == nil
			}
		}
	}()
	return w
}

// stop takes the last readings and returns each meter's CPU time over the
// window; a nil meter or one that failed reads 0.
func (w *cpuWindow) stop() []time.Duration {
	<-w.taken
	for i, m := range w.meters {
		if m == nil {
			continue
		}
		v, err := m()
		if err == nil && w.ok[i] {
			w.used[i] = max(v-w.from[i], 0)
		}
	}
	return w.used
}

// selfCPU meters the load generator's own process.
func selfCPU() CPUMeter { return ProcessCPU(os.Getpid()) }
