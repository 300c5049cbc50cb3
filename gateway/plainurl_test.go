package gateway

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// slowHTTPURL is checkURL's rule written with url.Parse alone.
func slowHTTPURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		strings.IndexFunc(v, unicode.IsControl) < 0
}

func TestPlainHTTPURL(t *testing.T) {
	for _, c := range []struct {
		url         string
		plain, slow bool // the fast path takes it; url.Parse accepts it
	}{
		{"https://shop.example/product/sku-1?utm_source=x&y=[1]#top", true, true},
		{"http://127.0.0.1:8080/", true, true},
		{"https://Shop.Example", true, true},
		{"https://a-b.example?q", true, true},
		{"https://x.example#frag", true, true},
		// Left to url.Parse, which accepts them.
		{"HTTPS://shop.example/", false, true},
		{"https://shop.example/%C3%A9", false, true},
		{"https://user@shop.example/", false, true},
		{"https://[::1]:8443/", false, true},
		{"https://shop.example:/", false, true},
		{"https://xn--caf-dma.example/é", false, true},
		// Refused by both.
		{"https://", false, false},
		{"https://shop.example:80x/", false, false},
		{"https://shop.example/%zz", false, false},
		{"https://shop.example/\x7f", false, false},
		{"https://shop.example/a\tb", false, false},
		{"ftp://shop.example/", false, false},
		{"//shop.example/", false, false},
		// Spaces: url.Parse takes them in a path, the fast path does not.
		{"https://shop.example/a b", false, true},
		{"https://shop.example:1234567/", false, true},
		{"https://:80/", false, true}, // a host of ":80"
	} {
		if got := plainHTTPURL(c.url); got != c.plain {
			t.Errorf("plainHTTPURL(%q) = %v; want %v", c.url, got, c.plain)
		}
		if got := slowHTTPURL(c.url); got != c.slow {
			t.Errorf("url.Parse's verdict on %q = %v; the table says %v", c.url, got, c.slow)
		}
		if got := checkURL("url", c.url) == nil; got != c.slow {
			t.Errorf("checkURL(%q) accepts: %v; want %v", c.url, got, c.slow)
		}
	}
}

// Whatever the fast path takes, url.Parse takes with the same verdict.
func FuzzPlainHTTPURL(f *testing.F) {
	for _, s := range []string{"https://shop.example/p?x=1#f", "http://127.0.0.1:8080/", "https://a", "http://x:1/%41", "https://x\x00/", "https://x.example?é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if plainHTTPURL(v) && !slowHTTPURL(v) {
			t.Fatalf("the fast path takes %q, which url.Parse's rule refuses", v)
		}
	})
}
