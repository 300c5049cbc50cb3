package pii

import (
	"strings"
	"testing"
)

// jsTrim, jsLower and NormalizeExternalID agree with their rune-by-rune
// forms, which their ASCII fast paths skip.
func checkFastPaths(t *testing.T, s string) {
	t.Helper()
	if got, want := jsTrim(s), strings.TrimFunc(s, jsSpace); got != want {
		t.Errorf("jsTrim(%q) = %q; want %q", s, got, want)
	}
	if got, want := jsLower(s), jsLowerRunes(s); got != want {
		t.Errorf("jsLower(%q) = %q; want %q", s, got, want)
	}
	if got, _ := NormalizeExternalID(s); got != externalIDRunes(s) {
		t.Errorf("NormalizeExternalID(%q) = %q; want %q", s, got, externalIDRunes(s))
	}
}

func TestASCIIFastPaths(t *testing.T) {
	for _, s := range []string{"", "a", " a ", "Jane.Doe@Example.COM", "cust-9", "\tx\n", "x\x7f", "\x01x\x01",
		"ΣΑΣ", "İstanbul", "a\u00a0", "\u00a0a", "a\u0085", "\ufeffid", "A B", "ÀB"} {
		checkFastPaths(t, s)
	}
}

func FuzzASCIIFastPaths(f *testing.F) {
	for _, s := range []string{"Jane.Doe@Example.COM", " cust 9 ", "ΣΑΣ", "\ufeffx\u0085"} {
		f.Add(s)
	}
	f.Fuzz(checkFastPaths)
}
