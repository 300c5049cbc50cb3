package gateway

import (
	"strconv"
	"testing"
)

func TestLookupCache(t *testing.T) {
	var c lookupCache[int]
	gen1, gen2 := new(int), new(int)
	if _, ok := c.get(gen1, "a"); ok {
		t.Fatal("empty cache hit")
	}
	c.put(gen1, "a", 1)
	if v, ok := c.get(gen1, "a"); !ok || v != 1 {
		t.Fatalf("get = %v, %v", v, ok)
	}
	// Another generation (a new configuration snapshot) sees nothing of
	// the old one, and its first store drops the old entries.
	if _, ok := c.get(gen2, "a"); ok {
		t.Fatal("hit across generations")
	}
	c.put(gen2, "b", 2)
	if _, ok := c.get(gen1, "a"); ok {
		t.Fatal("old generation still served")
	}
	// Bounded: past maxLookupCache keys nothing is added.
	for i := range maxLookupCache + 10 {
		c.put(gen2, strconv.Itoa(i), i)
	}
	if n := len(c.vals); n != maxLookupCache {
		t.Fatalf("%d entries; want the bound %d", n, maxLookupCache)
	}
	if _, ok := c.get(gen2, strconv.Itoa(maxLookupCache+5)); ok {
		t.Fatal("a key past the bound was stored")
	}
}
