package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func drainAll(t *testing.T, s *Spool) []string {
	t.Helper()
	var got []string
	if _, err := s.Drain(func(recs [][]byte) error {
		for _, r := range recs {
			got = append(got, string(r))
		}
		return nil
	}); err != nil {
		t.Fatalf("drain: %v", err)
	}
	return got
}

func TestAppendReopenDrain(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		r := fmt.Sprintf("record-%02d", i)
		want = append(want, r)
		if err := s.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Empty() || s.Bytes() == 0 {
		t.Fatal("spool empty after appends")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A new process finds the records and drains them in order.
	s, err = Open(dir, Options{SegmentBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := drainAll(t, s)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("drained %v; want %v", got, want)
	}
	if !s.Empty() || s.Bytes() != 0 {
		t.Fatalf("spool holds %d bytes after a full drain", s.Bytes())
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "seg-*")); len(segs) != 0 {
		t.Fatalf("segments left after drain: %v", segs)
	}
	if got := drainAll(t, s); len(got) != 0 {
		t.Fatalf("second drain returned %v", got)
	}
}

func TestDrainKeepsSegmentOnError(t *testing.T) {
	s, err := Open(t.TempDir(), Options{DrainChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, r := range []string{"a", "b", "c"} {
		if err := s.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("redis down")
	n, err := s.Drain(func([][]byte) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("drain = %d, %v; want 0, boom", n, err)
	}
	// Appends during and after a failed drain are kept, after the older ones.
	if err := s.Append([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := drainAll(t, s); fmt.Sprint(got) != "[a b c d]" {
		t.Fatalf("drained %v after a failed drain; want [a b c d]", got)
	}
}

func TestTornTailIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]byte("good-1"), []byte("good-2")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	// A crash mid-write leaves half a record (never acknowledged).
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'x'})
	f.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := drainAll(t, s); fmt.Sprint(got) != "[good-1 good-2 after]" {
		t.Fatalf("drained %v", got)
	}
}

func TestFull(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 40)
	if err := s.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec); !errors.Is(err, ErrFull) {
		t.Fatalf("third append: %v; want ErrFull", err)
	}
	if got := drainAll(t, s); len(got) != 2 {
		t.Fatalf("drained %d records; want the 2 acknowledged", len(got))
	}
	if err := s.Append(rec); err != nil {
		t.Fatalf("append after drain freed space: %v", err)
	}
}

func TestLockExcludesASecondOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v; want ErrLocked", err)
	}
	s.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestConcurrentAppendAndDrain(t *testing.T) {
	s, err := Open(t.TempDir(), Options{SegmentBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	const writers, each = 8, 50
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Append([]byte(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]int{}
	var mu sync.Mutex
	collect := func(recs [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			seen[string(r)]++
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if _, err := s.Drain(collect); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	<-done
	if _, err := s.Drain(collect); err != nil {
		t.Fatal(err)
	}
	if len(seen) != writers*each {
		t.Fatalf("drained %d distinct records; want %d", len(seen), writers*each)
	}
	for r, n := range seen {
		if n != 1 {
			t.Errorf("record %s drained %d times", r, n)
		}
	}
}
