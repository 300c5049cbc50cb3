package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Egress is the operator's policy for where webhooks may go. Its zero
// value is the strictest: public addresses only, over HTTPS.
//
// A tenant chooses a webhook's url, so without a policy the gateway would
// post to whatever that name resolves to: its own admin port, a database
// on the private network, the cloud metadata service. The policy is
// applied when the connection is made, to the very address dialled (so a
// name that resolves to a public address when the destination is saved and
// to 127.0.0.1 when it is used is refused), and again, for a clear error,
// when the settings are parsed.
type Egress struct {
	// AllowNets are networks a webhook may reach although they are not
	// public (TAGWAY_WEBHOOK_ALLOW_NETS, read by main with
	// ParseAllowNets): a receiver on the private network, or loopback in
	// tests. A cloud metadata address (169.254.169.254, fd00:ec2::254...)
	// is reached only when listed on its own (169.254.169.254/32), never
	// through a wider network that contains it. A plain http:// url is
	// accepted only for addresses in these networks: plain HTTP never
	// crosses the public internet.
	AllowNets []netip.Prefix
	// Resolve looks up a host name's addresses at connect time; nil uses
	// the system resolver. Tests map names to addresses with it.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParseAllowNets reads a comma-separated list of networks in CIDR form
// (10.0.0.0/8) or single addresses (192.0.2.7, ::1), as in
// TAGWAY_WEBHOOK_ALLOW_NETS. Blank items are skipped; every bad item is
// reported. An empty string allows nothing.
func ParseAllowNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parseNet(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook allowed networks: %q: %w", item, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// parseNet reads one network or address, with IPv4-mapped IPv6 forms
// turned into their IPv4 network.
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("a zone is not allowed")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, errors.New("not a network in CIDR form (10.0.0.0/8) or an address")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a network in CIDR form (10.0.0.0/8) or an address")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped network must be /96 or narrower")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// BlockedError is a connection the egress policy refused: Addr is not a
// public address (Reason says what it is) and no allowed network holds it,
// or a plain http:// target is outside the allowed networks.
type BlockedError struct {
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *BlockedError) Error() string {
	s := "address " + e.Addr.String()
	if e.Host != "" && e.Host != e.Addr.String() {
		s = e.Host + " resolves to " + e.Addr.String()
	}
	return s + ", " + e.Reason + ", is not allowed (the operator allows networks with TAGWAY_WEBHOOK_ALLOW_NETS)"
}

// special is one range of the IANA special-purpose registries, or the
// like, that a webhook must not reach unless allowed.
type special struct {
	prefix netip.Prefix
	reason string
}

// specialV4 are the IPv4 ranges that are not public unicast.
var specialV4 = []special{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (this-network) address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
}

// Public IPv6 unicast is 2000::/3 less these ranges. NAT64's well-known
// prefix, outside it, carries an IPv4 address that is judged instead.
var (
	globalV6  = netip.MustParsePrefix("2000::/3")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	specialV6 = []special{
		{netip.MustParsePrefix("2001::/23"), "an IETF protocol address (Teredo, benchmarking, ORCHID)"},
		{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
		{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
		{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	}
	// otherV6 names the ranges outside 2000::/3, for the error.
	otherV6 = []special{
		{netip.MustParsePrefix("::/128"), "an unspecified address"},
		{netip.MustParsePrefix("::1/128"), "a loopback address"},
		{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
		{netip.MustParsePrefix("100::/64"), "a discard-only address"},
		{netip.MustParsePrefix("fc00::/7"), "a unique-local address"},
		{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
		{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
		{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	}
)

// metadataAddrs are the cloud providers' instance metadata services: AWS,
// GCP, Azure, OpenStack and DigitalOcean (169.254.169.254, and AWS's IPv6
// fd00:ec2::254), AWS ECS task metadata (169.254.170.2), Alibaba Cloud
// (100.100.100.200) and Oracle Cloud (192.0.0.192).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("192.0.0.192"),
}

// check reports why a webhook may not reach a (nil: it may). publicOK is
// false for a plain http:// target, which may reach allowed networks only.
func (e Egress) check(a netip.Addr, publicOK bool) *BlockedError {
	blocked := func(reason string) *BlockedError { return &BlockedError{Addr: a, Reason: reason} }
	if !a.IsValid() {
		return blocked("not an IP address")
	}
	if a.Zone() != "" {
		// A scoped address is link-local or site-local by nature; a
		// prefix never contains one.
		return blocked("a scoped address")
	}
	a = a.Unmap()
	embedded := a
	if nat64.Contains(a) {
		b := a.As16()
		embedded = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, m := range metadataAddrs {
		if a == m || embedded == m {
			for _, p := range e.AllowNets {
				if p.Bits() == a.BitLen() && p.Addr() == a {
					return nil
				}
			}
			return blocked("a cloud metadata address")
		}
	}
	for _, p := range e.AllowNets {
		if p.Contains(a) {
			return nil
		}
	}
	reason := nonPublic(a)
	if reason == "" && !publicOK {
		return blocked("outside the allowed networks, where plain http:// is refused (use https://)")
	}
	if reason != "" {
		return blocked(reason)
	}
	return nil
}

// nonPublic says what kind of non-public address a is ("" when it is a
// public unicast address). a is not IPv4-mapped.
func nonPublic(a netip.Addr) string {
	if a.Is4() {
		for _, s := range specialV4 {
			if s.prefix.Contains(a) {
				return s.reason
			}
		}
		return ""
	}
	if nat64.Contains(a) {
		b := a.As16()
		if r := nonPublic(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return r + " (through NAT64)"
		}
		return ""
	}
	if !globalV6.Contains(a) {
		for _, s := range otherV6 {
			if s.prefix.Contains(a) {
				return s.reason
			}
		}
		return "a reserved address"
	}
	for _, s := range specialV6 {
		if s.prefix.Contains(a) {
			return s.reason
		}
	}
	return ""
}

// dialer connects to a webhook's host under the egress policy: it
// resolves the name itself, dials only the addresses the policy allows,
// and checks once more, in the dialer's Control hook, the address the
// socket is about to connect to.
type dialer struct {
	egress   Egress
	publicOK bool
	net      net.Dialer
}

func newDialer(e Egress, publicOK bool) *dialer {
	d := &dialer{egress: e, publicOK: publicOK}
	d.net = net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: d.control}
	return d
}

// control refuses a socket whose remote address the policy does not allow.
func (d *dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook egress: unreadable address %q", address)
	}
	if b := d.egress.check(ap.Addr(), d.publicOK); b != nil {
		return b
	}
	return nil
}

// DialContext resolves addr's host and dials the first allowed address
// that answers.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = d.resolve(ctx, host); err != nil {
		return nil, err
	}
	var firstBlocked *BlockedError
	allowed := addrs[:0:0]
	for _, a := range addrs {
		if b := d.egress.check(a, d.publicOK); b != nil {
			if firstBlocked == nil {
				b.Host = host
				firstBlocked = b
			}
			continue
		}
		allowed = append(allowed, a)
	}
	var dialErr error
	for i, a := range allowed {
		conn, err := d.dialOne(ctx, network, net.JoinHostPort(a.Unmap().String(), port), len(allowed)-i)
		if err == nil {
			return conn, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if dialErr != nil {
		return nil, dialErr
	}
	if firstBlocked != nil {
		return nil, firstBlocked
	}
	return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
}

// minAttempt is the least time one address of several gets.
const minAttempt = 2 * time.Second

// dialOne dials one of left addresses still to try, giving it an even
// share of the time left (at least minAttempt), so that one that does not
// answer leaves time for the others.
func (d *dialer) dialOne(ctx context.Context, network, addr string, left int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && left > 1 {
		share := max(time.Until(deadline)/time.Duration(left), minAttempt)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return d.net.DialContext(ctx, network, addr)
}

func (d *dialer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if d.egress.Resolve != nil {
		return d.egress.Resolve(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// guardedTransport returns a copy of base (nil: http.DefaultTransport)
// that connects only through d: no proxy (a proxy would connect on our
// behalf, past the policy) and no custom dialer of base's. It fails when
// base is not an *http.Transport, whose dialing it could not control.
func guardedTransport(base http.RoundTripper, d *dialer) (*http.Transport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("webhook: the HTTP client's transport is a %T; the egress policy needs an *http.Transport", base)
	}
	t = t.Clone()
	t.Proxy = nil
	t.OnProxyConnectResponse = nil
	t.DialTLSContext = nil
	//lint:ignore SA1019 cleared so that it cannot bypass DialContext
	t.DialTLS = nil
	//lint:ignore SA1019 cleared so that it cannot bypass DialContext
	t.Dial = nil
	t.DialContext = d.DialContext
	t.MaxResponseHeaderBytes = maxResponseHeaderBytes
	return t, nil
}
