package snap

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// browserNames reads tw.js's table of the names it hands the browser
// pixels (pixeljs/src/pixels.js): each canonical name and its Snap column.
func browserNames(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("../../pixeljs/src/pixels.js")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)for \(const row of \((.*?)\)\.split\(','\)\)`).FindSubmatch(src)
	if block == nil {
		t.Fatal("pixels.js: the NAMES table was not found")
	}
	var table strings.Builder
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllSubmatch(block[1], -1) {
		table.Write(m[1])
	}
	out := map[string]string{}
	for _, row := range strings.Split(table.String(), ",") {
		f := strings.Fields(row)
		snap := "*"
		if len(f) > 1 {
			snap = f[1]
		}
		out[f[0]] = snap
	}
	if len(out) < 10 {
		t.Fatalf("pixels.js: only %d names read", len(out))
	}
	return out
}

// TestSameNamesAsTheBrowser: the server sends each canonical event under
// the Snap name tw.js gives snaptr with the same client_dedup_id, and skips
// the events tw.js does not hand to snaptr, so that Snap can merge the two.
func TestSameNamesAsTheBrowser(t *testing.T) {
	for name, col := range browserNames(t) {
		var want string // tw.js's rule: "-" none, "*" the name in upper snake case
		switch col {
		case "-":
		case "*":
			var b strings.Builder
			for i, r := range name {
				if i > 0 && unicode.IsUpper(r) {
					b.WriteByte('_')
				}
				b.WriteRune(unicode.ToUpper(r))
			}
			want = b.String()
		default:
			want = col
		}
		got, ok := EventName(name)
		if got != want || ok != (want != "") {
			t.Errorf("%s: the server sends %q (%v), tw.js hands snaptr %q", name, got, ok, want)
		}
	}
}
