package browsertest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// wireCookie is a cookie as WebDriver serializes it; BiDi wraps the value
// in a {type, value} object.
type wireCookie struct {
	Name     string          `json:"name"`
	Value    json.RawMessage `json:"value"`
	Domain   string          `json:"domain"`
	Path     string          `json:"path"`
	HTTPOnly bool            `json:"httpOnly"`
	Secure   bool            `json:"secure"`
	SameSite string          `json:"sameSite"`
	Expiry   *float64        `json:"expiry"`
}

// matching returns the cookies of list that go with a request to u.
func matching(u string, list []wireCookie) ([]Cookie, error) {
	target, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	var out []Cookie
	for _, c := range list {
		if !cookieMatches(target, c.Domain, c.Path) {
			continue
		}
		var value string
		if json.Unmarshal(c.Value, &value) != nil {
			var wrapped struct {
				Value string `json:"value"`
			}
			if err := json.Unmarshal(c.Value, &wrapped); err != nil {
				return nil, fmt.Errorf("cookie %s: value %s", c.Name, c.Value)
			}
			value = wrapped.Value
		}
		ck := Cookie{Name: c.Name, Value: value, Domain: c.Domain, Path: c.Path, HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: sameSite(c.SameSite)}
		if c.Expiry != nil {
			ck.Expires = time.Unix(int64(*c.Expiry), 0)
		}
		out = append(out, ck)
	}
	return out, nil
}

// cookieMatches reports whether a cookie of domain and path goes with a
// request to u (RFC 6265 domain and path matching; the scheme aside).
func cookieMatches(u *url.URL, domain, path string) bool {
	host := strings.ToLower(u.Hostname())
	domain = strings.ToLower(strings.TrimPrefix(domain, "."))
	if host != domain && !strings.HasSuffix(host, "."+domain) {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	return p == path || strings.HasPrefix(p, strings.TrimSuffix(path, "/")+"/")
}

// sameSite spells a SameSite value as Chromium reports it.
func sameSite(s string) string {
	switch strings.ToLower(s) {
	case "strict":
		return "Strict"
	case "lax":
		return "Lax"
	case "none":
		return "None"
	}
	return ""
}
