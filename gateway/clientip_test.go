package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	tg := newTestGateway(t, nil) // trusts 10.0.0.0/8 and fd00::/8
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct IPv4", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"direct IPv6", "[2001:db8::7]:5000", nil, "2001:db8::7"},
		{"peer without port", "203.0.113.7", nil, "203.0.113.7"},
		{"IPv4-mapped peer without port", "::ffff:203.0.113.7", nil, "203.0.113.7"},
		{"peer with spaces", " 203.0.113.7:5000", nil, "203.0.113.7"},
		{"quoted peer", `"203.0.113.7:5000"`, nil, "203.0.113.7"},
		{"direct IPv4-mapped", "[::ffff:203.0.113.7]:5000", nil, "203.0.113.7"},
		{"untrusted peer's XFF ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted proxy", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left entries skipped", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1, 10.0.0.9, 10.0.0.8"}, "198.51.100.1"},
		{"multiple headers", "10.0.0.2:5000", []string{"1.1.1.1", "198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"IPv6 client", "10.0.0.2:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 proxy", "[fd00::2]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"port stripped", "10.0.0.2:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"bracketed IPv6 with port", "10.0.0.2:5000", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"bracketed IPv6", "10.0.0.2:5000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"garbage skipped", "10.0.0.2:5000", []string{"198.51.100.1, garbage, , unknown"}, "198.51.100.1"},
		{"only garbage: the proxy", "10.0.0.2:5000", []string{"garbage"}, "10.0.0.2"},
		{"all trusted: leftmost", "10.0.0.2:5000", []string{"10.0.0.5, 10.0.0.4"}, "10.0.0.5"},
		{"zone dropped", "10.0.0.2:5000", []string{"fe80::1%eth0"}, "fe80::1"},
		{"no XFF from trusted proxy", "10.0.0.2:5000", nil, "10.0.0.2"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/collect", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got := tg.clientIP(r)
		if got != tt.want || strings.ContainsAny(got, ", ") {
			t.Errorf("%s: clientIP = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestUserAgentCapped(t *testing.T) {
	r := httptest.NewRequest("POST", "/collect", nil)
	r.Header.Set("User-Agent", strings.Repeat("a", 511)+"é"+strings.Repeat("b", 100))
	ua := userAgent(r)
	if len(ua) > maxUserAgentBytes || ua != strings.Repeat("a", 511) {
		t.Errorf("userAgent = %d bytes %q…", len(ua), ua[len(ua)-3:])
	}
}

// requestHost lowercases the host, drops its port, brackets and final dot;
// a plain host is returned as it came.
func TestRequestHost(t *testing.T) {
	tg := newTestGateway(t, nil)
	for host, want := range map[string]string{
		"shop.example":      "shop.example",
		"t.shop-1.example":  "t.shop-1.example",
		"localhost":         "localhost",
		"Shop.Example":      "shop.example",
		"shop.example:8080": "shop.example",
		"shop.example.":     "shop.example",
		"SHOP.example.:443": "shop.example",
		"127.0.0.1:18099":   "127.0.0.1",
		"[::1]:8443":        "::1",
		"[::1]":             "::1",
		"":                  "",
	} {
		r := newRequest("POST", "/collect", nil)
		r.Host = host
		if got := tg.requestHost(r); got != want {
			t.Errorf("requestHost(%q) = %q; want %q", host, got, want)
		}
	}
}
