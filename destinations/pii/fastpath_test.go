package pii

import (
	"strings"
	"testing"
	"time"
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

// HashUserData writes its digests into one buffer; each stays the digest
// of its own value however many follow it.
func TestHashUserDataDigestsInOneBuffer(t *testing.T) {
	raw := RawUserData{
		Email:      {"a@example.com", "B@example.com", "c@example.com"},
		Phone:      {"+1 650 555 1212"},
		ExternalID: {"cust-1", "cust-2"},
		Zip:        {"94025"},
	}
	u, err := HashUserData(raw, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		got   []string
	}{{Email, u.Em}, {Phone, u.Ph}, {ExternalID, u.ExternalID}, {Zip, u.Zp}} {
		if len(c.got) != len(raw[c.field]) {
			t.Fatalf("%s: %d digests for %d values", c.field, len(c.got), len(raw[c.field]))
		}
		for i, v := range raw[c.field] {
			if want, _ := Hash(c.field, v); c.got[i] != want {
				t.Errorf("%s[%d] = %s; want %s", c.field, i, c.got[i], want)
			}
		}
	}
}
