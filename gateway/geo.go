package gateway

import (
	"net/http"
	"regexp"
	"strings"
)

var (
	countryCode     = regexp.MustCompile(`^[A-Z]{2}$`)
	subdivisionCode = regexp.MustCompile(`^[A-Z0-9]{1,3}$`)
)

// visitorRegion returns the visitor's country and subdivision from the
// configured headers (Options.CountryHeader, RegionHeader), believed only
// when the request comes from a trusted proxy: anyone else could claim any
// country. Values that are not an ISO code are ignored (Cloudflare's "XX"
// and "T1" included), so routing's region rules see "unknown".
func (g *Gateway) visitorRegion(r *http.Request) (country, region string) {
	if g.opts.CountryHeader == "" || !g.fromTrustedProxy(r) {
		return "", ""
	}
	country = strings.ToUpper(strings.TrimSpace(r.Header.Get(g.opts.CountryHeader)))
	if !countryCode.MatchString(country) || country == "XX" || country == "T1" {
		return "", ""
	}
	if g.opts.RegionHeader != "" {
		region = strings.ToUpper(strings.TrimSpace(r.Header.Get(g.opts.RegionHeader)))
		region = strings.TrimPrefix(region, country+"-")
		if !subdivisionCode.MatchString(region) {
			region = ""
		}
	}
	return country, region
}
