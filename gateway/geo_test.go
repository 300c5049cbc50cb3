package gateway

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestVisitorRegion(t *testing.T) {
	g := &Gateway{opts: Options{CountryHeader: "CF-IPCountry", RegionHeader: "X-Region"},
		proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		peer, country, region string
		wantC, wantR          string
	}{
		{"10.1.2.3:5000", "de", "", "DE", ""},
		{"10.1.2.3:5000", "US", "CA", "US", "CA"},
		{"10.1.2.3:5000", "US", "US-CA", "US", "CA"},
		{"10.1.2.3:5000", "XX", "", "", ""},
		{"10.1.2.3:5000", "T1", "", "", ""},
		{"10.1.2.3:5000", "Germany", "", "", ""},
		{"10.1.2.3:5000", "US", "California!", "US", ""},
		{"203.0.113.9:5000", "US", "CA", "", ""}, // not a trusted proxy: a visitor could claim anything
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/collect", nil)
		r.RemoteAddr = tt.peer
		r.Header.Set("CF-IPCountry", tt.country)
		r.Header.Set("X-Region", tt.region)
		c, reg := g.visitorRegion(r)
		if c != tt.wantC || reg != tt.wantR {
			t.Errorf("%s %q/%q: got %q/%q, want %q/%q", tt.peer, tt.country, tt.region, c, reg, tt.wantC, tt.wantR)
		}
	}
	g.opts.CountryHeader = ""
	r := httptest.NewRequest("POST", "/collect", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("CF-IPCountry", "DE")
	if c, _ := g.visitorRegion(r); c != "" {
		t.Error("a header read without being configured")
	}
}
