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
