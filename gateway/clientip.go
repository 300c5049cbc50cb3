package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// maxUserAgentBytes caps client_user_agent.
const maxUserAgentBytes = 512

// peerAddr returns the socket peer's address (without port), or an invalid
// Addr when RemoteAddr cannot be read.
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	a, _ := parseIP(r.RemoteAddr)
	return a
}

// trusted reports whether a is one of the configured proxies.
func (g *Gateway) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range g.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromTrustedProxy reports whether the request's peer is a trusted proxy.
func (g *Gateway) fromTrustedProxy(r *http.Request) bool {
	return len(g.proxies) > 0 && g.trusted(peerAddr(r))
}

// ClientAddrFunc returns the function that reads a request's client
// address as the gateway does (clientIP), believing X-Forwarded-For only
// from proxies: for handlers mounted beside the gateway (the admin API's
// back-off on failed authentication).
func ClientAddrFunc(proxies []netip.Prefix) func(*http.Request) string {
	g := &Gateway{proxies: make([]netip.Prefix, len(proxies))}
	for i, p := range proxies {
		g.proxies[i] = p.Masked()
	}
	return g.clientIP
}

// clientIP returns the visitor's IP address: the socket peer, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is walked from the
// right, skipping trusted proxies and unreadable entries; the first other
// address is the client. When every entry is a trusted proxy the leftmost
// one is the client. The result is one address, without port or zone;
// IPv4-mapped IPv6 addresses are given as IPv4, other IPv6 stays IPv6.
func (g *Gateway) clientIP(r *http.Request) string {
	peer := peerAddr(r)
	if !g.trusted(peer) {
		if !peer.IsValid() {
			return ""
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Is4() {
			// "1.2.3.4:port": netip reads only the canonical form of an
			// IPv4 address there, so the text is the address as written.
			return r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]
		}
		return peer.String()
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		entries := strings.Split(values[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := parseIP(entries[j])
			if !ok {
				continue
			}
			client = a
			if !g.trusted(a) {
				return a.String()
			}
		}
	}
	return client.String()
}

// parseIP reads one forwarded address: "1.2.3.4", "1.2.3.4:80", "::1",
// "[::1]:80", optionally quoted. Zones are dropped; IPv4-mapped IPv6 becomes
// IPv4.
func parseIP(s string) (netip.Addr, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// userAgent returns the User-Agent header, cut to maxUserAgentBytes on a
// character boundary.
func userAgent(r *http.Request) string {
	ua := strings.TrimSpace(r.Header.Get("User-Agent"))
	if len(ua) <= maxUserAgentBytes {
		return strings.ToValidUTF8(ua, "")
	}
	cut := maxUserAgentBytes
	for cut > 0 && !utf8.RuneStart(ua[cut]) {
		cut--
	}
	return strings.ToValidUTF8(ua[:cut], "")
}

// requestHost is the host the browser addressed, without port: the last
// X-Forwarded-Host entry when a trusted proxy sent one, else Host.
func (g *Gateway) requestHost(r *http.Request) string {
	host := r.Host
	if g.fromTrustedProxy(r) {
		if v := r.Header.Values("X-Forwarded-Host"); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			if h := strings.TrimSpace(parts[len(parts)-1]); h != "" {
				host = h
			}
		}
	}
	if plainHost(host) {
		return host
	}
	if strings.IndexByte(host, ':') >= 0 { // a port, or an IPv6 literal
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// plainHost reports whether requestHost leaves host as it is: lowercase
// letters, digits, dots and hyphens, without a final dot.
func plainHost(host string) bool {
	for i := 0; i < len(host); i++ {
		if c := host[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return !strings.HasSuffix(host, ".")
}

// isHTTPS reports whether the browser used https: TLS on this connection, or
// X-Forwarded-Proto: https (its first entry) from a trusted proxy.
func (g *Gateway) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !g.fromTrustedProxy(r) {
		return false
	}
	// In a chain of proxies the first entry is the scheme the browser used.
	first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}
