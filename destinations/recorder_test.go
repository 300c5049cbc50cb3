package destinations

import (
	"fmt"
	"testing"
)

func TestRecorderKeepsTheLastN(t *testing.T) {
	r := NewRecorder(3)
	if len(r.Recent()) != 0 {
		t.Fatal("new recorder not empty")
	}
	for i := range 5 {
		r.Record([]byte(fmt.Sprint(i)))
	}
	got := fmt.Sprintf("%s", r.Recent())
	if got != "[2 3 4]" {
		t.Fatalf("Recent = %s, want [2 3 4]", got)
	}
	b := []byte("x")
	r.Record(b)
	b[0] = 'y'
	if rec := r.Recent(); string(rec[len(rec)-1]) != "x" {
		t.Fatal("Record must copy the body")
	}
}

func TestRecorderBoundsBytes(t *testing.T) {
	r := NewRecorderSize(100, 10)
	for _, s := range []string{"aaaa", "bbbb", "cccc"} {
		r.Record([]byte(s))
	}
	if got := fmt.Sprintf("%s", r.Recent()); got != "[bbbb cccc]" {
		t.Fatalf("Recent = %s, want [bbbb cccc] (10 bytes at most)", got)
	}
	r.Record([]byte("a body larger than the budget"))
	if got := fmt.Sprintf("%s", r.Recent()); got != "[a body larger than the budget]" {
		t.Fatalf("Recent = %s, want the newest body alone", got)
	}
	// NewRecorder bounds a hundred 1 MB dry-run batches to 2 MB.
	big := NewRecorder(100)
	for range 100 {
		big.Record(make([]byte, 1<<20))
	}
	total := 0
	for _, b := range big.Recent() {
		total += len(b)
	}
	if total > DefaultRecorderBytes {
		t.Errorf("kept %d bytes; want at most %d", total, DefaultRecorderBytes)
	}
}
