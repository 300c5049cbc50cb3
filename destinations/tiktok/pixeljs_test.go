package tiktok

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestSameNamesAsTheBrowser: tw.js hands ttq.track every name of its table
// as it is, with the event_id, except PageView (the base code's ttq.page()
// counts it); the server must send those names unchanged for TikTok to
// merge the two copies.
func TestSameNamesAsTheBrowser(t *testing.T) {
	src, err := os.ReadFile("../../pixeljs/src/pixels.js")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)for \(const row of \((.*?)\)\.split\(','\)\)`).FindSubmatch(src)
	if block == nil {
		t.Fatal("pixels.js: the NAMES table was not found")
	}
	if !strings.Contains(string(src), "name != 'PageView' &&\n      w.ttq.track(name,") {
		t.Fatal("pixels.js no longer leaves PageView out of ttq.track: revisit EventName's Pageview")
	}
	var table strings.Builder
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllSubmatch(block[1], -1) {
		table.Write(m[1])
	}
	n := 0
	for _, row := range strings.Split(table.String(), ",") {
		name := strings.Fields(row)[0]
		n++
		got, ok := EventName(name)
		switch {
		case name == "PageView":
			if got != "Pageview" || !ok {
				t.Errorf("PageView goes out as %q, %v", got, ok)
			}
		case got != name || !ok:
			t.Errorf("%s: the server sends %q (%v), tw.js hands ttq.track %q", name, got, ok, name)
		}
	}
	if n < 10 {
		t.Fatalf("pixels.js: only %d names read", n)
	}
}
