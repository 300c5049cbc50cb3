package authlimit

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func TestBackOffDoublesThenForgets(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	l := New(Options{Free: 3, Base: time.Second, Max: 8 * time.Second, Forget: time.Minute, Now: clk.Now})
	for i := range 2 {
		l.Fail("192.0.2.1")
		if _, ok := l.Allow("192.0.2.1"); !ok {
			t.Fatalf("refused after %d failures", i+1)
		}
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		l.Fail("192.0.2.1")
		if wait, ok := l.Allow("192.0.2.1"); ok || wait != want {
			t.Fatalf("after a failure: wait %v, allowed %v; want %v", wait, ok, want)
		}
		if _, ok := l.Allow("192.0.2.2"); !ok {
			t.Fatal("another client is refused")
		}
		clk.Advance(want)
		if _, ok := l.Allow("192.0.2.1"); !ok {
			t.Fatalf("still refused after %v", want)
		}
	}
	// A success changes nothing; a minute without failures forgets them.
	clk.Advance(time.Minute)
	l.Fail("192.0.2.1")
	if _, ok := l.Allow("192.0.2.1"); !ok {
		t.Fatal("failures were not forgotten")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	l := New(Options{MaxClients: 100, Now: clk.Now})
	for i := range 10_000 {
		l.Fail("10." + strconv.Itoa(i/65536) + "." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256))
		if l.Len() > 100 {
			t.Fatalf("%d clients remembered", l.Len())
		}
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":              "203.0.113.7",
		"::ffff:203.0.113.7":       "203.0.113.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1%eth": "2001:db8:1:2::/64",
		"":                         "",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIPv6ClientsShareTheirSlash64: an attacker changing addresses within
// its /64 stays one client.
func TestIPv6ClientsShareTheirSlash64(t *testing.T) {
	l := New(Options{Free: 2})
	for i := range 3 {
		l.Fail("2001:db8:1:2::" + strconv.Itoa(i+1))
	}
	if _, ok := l.Allow("2001:db8:1:2::ffff"); ok {
		t.Error("another address of the /64 is allowed")
	}
	if _, ok := l.Allow("2001:db8:1:3::1"); !ok {
		t.Error("another /64 is refused")
	}
}
