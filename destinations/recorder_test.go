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
