package pii

import (
	"regexp"
	"testing"
)

// emailGrammar is the address grammar of the e-mail validator the Business
// SDK calls, as the regular expression validEmail implements by hand.
var emailGrammar = regexp.MustCompile("^[-!#$%&'*+/0-9=?A-Z^_a-z{|}~](\\.?[-!#$%&'*+/0-9=?A-Z^_a-z`{|}~])*" +
	"@[a-zA-Z0-9](-*\\.?[a-zA-Z0-9])*\\.[a-zA-Z](-?[a-zA-Z0-9])+$")

var emailCases = []string{
	"jane@example.com", "j.a.n.e+tag@mail.example.co.uk", "a`b@x.io", "`a@x.io", ".a@x.io", "a.@x.io", "a..b@x.io",
	"a@b", "a@b.c", "a@b.c1", "a@b.1c", "a@b.c-d", "a@b.c--d", "a@b.c-", "a@-b.cd", "a@b-.cd", "a@b--c.de", "a@b-.c.de",
	"a@b.-c.de", "a@b..c.de", "a@.b.cd", "@b.cd", "a@@b.cd", "a@b@c.de", "a b@c.de", "ä@b.cd", "a@b.cd.", "a@1.23",
	"a@b.c.d.ef", "a@b-c.d-e.fg", "!#$%&'*+/=?^_{|}~-@x.yz", "a@x.y-z", "a@x.y--z", "a@x-.y.zz", "a@x.-",
}

func TestValidEmailMatchesGrammar(t *testing.T) {
	for _, v := range emailCases {
		if got, want := validEmail(v), emailGrammar.MatchString(v); got != want {
			t.Errorf("validEmail(%q) = %v; the grammar says %v", v, got, want)
		}
	}
}

func FuzzValidEmail(f *testing.F) {
	for _, v := range emailCases {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := validEmail(v), emailGrammar.MatchString(v); got != want {
			t.Fatalf("validEmail(%q) = %v; the grammar says %v", v, got, want)
		}
	})
}
