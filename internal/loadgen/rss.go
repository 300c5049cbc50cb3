package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// RSSKB returns the resident set size of process pid in KiB, read from
// /proc/<pid>/status (VmRSS). It works on Linux only.
func RSSKB(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("loadgen: read RSS of pid %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		return strconv.ParseInt(string(f[0]), 10, 64)
	}
	return 0, fmt.Errorf("loadgen: no VmRSS line for pid %d", pid)
}

// rssSampler polls a process's RSS every 100ms and keeps the last value and
// the peak seen after a given time.
type rssSampler struct {
	mu   sync.Mutex
	last int64
	peak int64
	stop chan struct{}
	done chan struct{}
}

type rssReading struct{ last, peak int64 }

func (s *rssSampler) start(pid int, from time.Time) func() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := RSSKB(pid); err == nil {
				s.mu.Lock()
				s.last = kb
				if !time.Now().Before(from) {
					s.peak = max(s.peak, kb)
				}
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(s.stop); <-s.done }) }
}

// stopNow takes a final reading and returns the last and peak values.
func (s *rssSampler) stopNow() rssReading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rssReading{s.last, max(s.peak, s.last)}
}

// cpuTicks returns the user+system CPU time of process pid in clock ticks,
// from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it start at ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: unexpected /proc/%d/stat", pid)
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: unexpected /proc/%d/stat", pid)
	}
	// After ')': state(0) ... utime is field 14 of the file, index 11 here.
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: unexpected /proc/%d/stat", pid)
	}
	return u + s, nil
}

// WaitIdle waits until process pid uses less than 5% of one CPU over half a
// second (for the gateway: it has delivered the backlog of the previous
// step), or until maxWait passes. It returns how long it waited and
// whether the process went idle.
func WaitIdle(pid int, maxWait time.Duration) (time.Duration, bool) {
	start := time.Now()
	const window, ticksPerSec = 500 * time.Millisecond, 100 // USER_HZ
	prev, err := cpuTicks(pid)
	if err != nil {
		return 0, false
	}
	for time.Since(start) < maxWait {
		time.Sleep(window)
		cur, err := cpuTicks(pid)
		if err != nil {
			return time.Since(start), false
		}
		if float64(cur-prev)/ticksPerSec < 0.05*window.Seconds() {
			return time.Since(start), true
		}
		prev = cur
	}
	return time.Since(start), false
}
