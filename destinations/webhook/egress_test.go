package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

func prefixes(t testing.TB, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseAllowNets(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckAddress classifies addresses under the default policy, under
// plain http, and with allowed networks.
func TestCheckAddress(t *testing.T) {
	cases := []struct {
		addr   string
		allow  string
		https  bool
		reason string // "" when allowed
	}{
		// Public.
		{addr: "8.8.8.8", https: true},
		{addr: "1.1.1.1", https: true},
		{addr: "2606:4700:4700::1111", https: true},
		{addr: "::ffff:8.8.8.8", https: true},
		{addr: "64:ff9b::808:808", https: true}, // NAT64 of 8.8.8.8
		// IPv4 special ranges.
		{addr: "127.0.0.1", https: true, reason: "loopback"},
		{addr: "127.255.255.254", https: true, reason: "loopback"},
		{addr: "10.1.2.3", https: true, reason: "private"},
		{addr: "172.16.0.1", https: true, reason: "private"},
		{addr: "172.31.255.255", https: true, reason: "private"},
		{addr: "192.168.1.1", https: true, reason: "private"},
		{addr: "100.64.0.1", https: true, reason: "CGNAT"},
		{addr: "169.254.1.1", https: true, reason: "link-local"},
		{addr: "169.254.169.254", https: true, reason: "metadata"},
		{addr: "169.254.170.2", https: true, reason: "metadata"},
		{addr: "100.100.100.200", https: true, reason: "metadata"},
		{addr: "192.0.0.192", https: true, reason: "metadata"},
		{addr: "0.0.0.0", https: true, reason: "unspecified"},
		{addr: "224.0.0.1", https: true, reason: "multicast"},
		{addr: "255.255.255.255", https: true, reason: "broadcast"},
		{addr: "198.18.0.1", https: true, reason: "benchmarking"},
		{addr: "192.0.2.1", https: true, reason: "documentation"},
		// IPv6, and IPv4 in IPv6 clothing.
		{addr: "::1", https: true, reason: "loopback"},
		{addr: "::", https: true, reason: "unspecified"},
		{addr: "::ffff:127.0.0.1", https: true, reason: "loopback"},
		{addr: "::ffff:7f00:1", https: true, reason: "loopback"},
		{addr: "::ffff:10.0.0.1", https: true, reason: "private"},
		{addr: "::ffff:169.254.169.254", https: true, reason: "metadata"},
		{addr: "::127.0.0.1", https: true, reason: "IPv4-compatible"},
		{addr: "64:ff9b::7f00:1", https: true, reason: "loopback address (through NAT64)"},
		{addr: "64:ff9b::a9fe:a9fe", https: true, reason: "metadata"},
		{addr: "64:ff9b::a9fe:a9fe", allow: "64:ff9b::/96", https: true, reason: "metadata"},
		{addr: "64:ff9b::a9fe:101", https: true, reason: "link-local address (through NAT64)"},
		{addr: "64:ff9b:1::a00:1", https: true, reason: "NAT64"},
		{addr: "fe80::1", https: true, reason: "link-local"},
		{addr: "fe80::1%eth0", https: true, reason: "scoped"},
		{addr: "fc00::1", https: true, reason: "unique-local"},
		{addr: "fd12:3456::1", https: true, reason: "unique-local"},
		{addr: "fd00:ec2::254", https: true, reason: "metadata"},
		{addr: "fec0::1", https: true, reason: "site-local"},
		{addr: "ff02::1", https: true, reason: "multicast"},
		{addr: "100::1", https: true, reason: "discard"},
		{addr: "2001::1", https: true, reason: "Teredo"},
		{addr: "2001:db8::1", https: true, reason: "documentation"},
		{addr: "2002:7f00:1::1", https: true, reason: "6to4"},
		// Allowed networks.
		{addr: "127.0.0.1", allow: "127.0.0.0/8", https: true},
		{addr: "::ffff:127.0.0.1", allow: "127.0.0.0/8", https: true},
		{addr: "::1", allow: "127.0.0.0/8", https: true, reason: "loopback"},
		{addr: "::1", allow: "::1", https: true},
		{addr: "10.20.30.40", allow: "10.0.0.0/8, 192.168.0.0/16", https: true},
		{addr: "10.20.30.40", allow: "::ffff:10.0.0.0/104", https: true},
		{addr: "11.0.0.1", allow: "10.0.0.0/8", https: true},
		{addr: "fd12::1", allow: "fd00::/8", https: true},
		// A metadata address needs its own entry.
		{addr: "169.254.169.254", allow: "169.254.0.0/16", https: true, reason: "metadata"},
		{addr: "169.254.169.254", allow: "0.0.0.0/0", https: true, reason: "metadata"},
		{addr: "::ffff:169.254.169.254", allow: "169.254.0.0/16", https: true, reason: "metadata"},
		{addr: "fd00:ec2::254", allow: "fc00::/7", https: true, reason: "metadata"},
		{addr: "169.254.169.254", allow: "169.254.169.254/32", https: true},
		{addr: "169.254.1.1", allow: "169.254.0.0/16", https: true},
		// Plain http: allowed networks only.
		{addr: "8.8.8.8", reason: "plain http"},
		{addr: "8.8.8.8", allow: "10.0.0.0/8", reason: "plain http"},
		{addr: "10.0.0.1", allow: "10.0.0.0/8"},
		{addr: "127.0.0.1", reason: "loopback"},
	}
	for _, tc := range cases {
		e := Egress{AllowNets: prefixes(t, tc.allow)}
		a, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		b := e.check(a, tc.https)
		switch {
		case tc.reason == "" && b != nil:
			t.Errorf("%s (allow %q, https %v): refused: %v", tc.addr, tc.allow, tc.https, b)
		case tc.reason != "" && b == nil:
			t.Errorf("%s (allow %q, https %v): allowed, want refused (%s)", tc.addr, tc.allow, tc.https, tc.reason)
		case tc.reason != "" && !strings.Contains(b.Error(), tc.reason):
			t.Errorf("%s: %q does not say %q", tc.addr, b.Error(), tc.reason)
		}
	}
}

func TestParseAllowNets(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"127.0.0.0/8", []string{"127.0.0.0/8"}},
		{"127.0.0.0/8,10.1.2.3, ::1 ,fd00::/8", []string{"127.0.0.0/8", "10.1.2.3/32", "::1/128", "fd00::/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}},
	}
	for _, tc := range good {
		got, err := ParseAllowNets(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if !slices.Equal(s, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, s, tc.want)
		}
	}
	for _, in := range []string{"10.0.0.0/33", "localhost", "10.0.0.0/8,nope", "fe80::1%eth0", "::ffff:0:0/90", "10/8"} {
		if _, err := ParseAllowNets(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	_, err := ParseAllowNets("bad1, 10.0.0.0/8, bad2")
	if err == nil || !strings.Contains(err.Error(), "bad1") || !strings.Contains(err.Error(), "bad2") {
		t.Errorf("every bad item must be named: %v", err)
	}
}

func FuzzParseAllowNets(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "10.0.0.1, ::1", "::ffff:10.0.0.0/104", "fe80::1%eth0", ",,", "1.2.3.4/40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := ParseAllowNets(s)
		if err != nil {
			return
		}
		for _, p := range nets {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("%q gave %v", s, p)
			}
		}
	})
}

// TestCheckURL refuses, at save time, what is sure to be refused when
// connecting, with an error naming the problem.
func TestCheckURL(t *testing.T) {
	strict := Egress{}
	cases := []struct {
		url    string
		egress Egress
		want   string // "" when accepted
	}{
		{"https://hooks.example.com/tagway", strict, ""},
		{"https://hooks.example.com:8443/tagway?x=1", strict, ""},
		{"https://8.8.8.8/hook", strict, ""},
		{"https://[2606:4700:4700::1111]/hook", strict, ""},
		{"https://receiver.internal/hook", strict, ""}, // a name: checked when connecting
		{"http://receiver.internal/hook", loopback, ""},
		{"http://127.0.0.1:8080/hook", loopback, ""},
		{"https://localhost/hook", loopback, ""},
		{"http://hooks.example.com/tagway", strict, "plain http"},
		{"ftp://hooks.example.com/", strict, "https://"},
		{"hooks.example.com/tagway", strict, "https://"},
		{"https:///tagway", strict, "no host"},
		{"https://user:pass@hooks.example.com/", strict, "user info"},
		{"https://hooks.example.com/#frag", strict, "fragment"},
		{"https://hooks.example.com:0/", strict, "port"},
		{"https://hooks.example.com:99999/", strict, "port"},
		{"https://127.0.0.1/hook", strict, "loopback"},
		{"https://10.0.0.5/hook", strict, "private"},
		{"https://169.254.169.254/latest/meta-data/", strict, "metadata"},
		{"http://169.254.169.254/latest/meta-data/", loopback, "metadata"},
		{"https://[::1]/hook", strict, "loopback"},
		{"https://[::1]/hook", loopback, "loopback"},
		{"https://[::ffff:127.0.0.1]/hook", strict, "loopback"},
		{"https://[::ffff:7f00:1]/hook", strict, "loopback"},
		{"https://[0:0:0:0:0:ffff:7f00:0001]/hook", strict, "loopback"},
		{"https://[fd00:ec2::254]/latest/meta-data/", strict, "metadata"},
		{"https://[fe80::1%25eth0]/hook", strict, "scoped"},
		{"https://[64:ff9b::7f00:1]/hook", strict, "NAT64"},
		{"https://0.0.0.0/hook", strict, "unspecified"},
		{"https://localhost/hook", strict, "loopback name"},
		{"https://api.localhost./hook", strict, "loopback name"},
		{"https://127.1/hook", strict, "non-standard"},
		{"https://2130706433/hook", strict, "non-standard"},
		{"https://0x7f000001/hook", strict, "non-standard"},
		{"https://0x7f.0.0.1/hook", strict, "non-standard"},
		{"https://0x7f.example/hook", strict, ""},
		{"https://hooks.example.com.0x10/hook", strict, "non-standard"},
		{"https://bad_host!.example/hook", strict, "not a valid host name"},
		{"https://-x.example/hook", strict, "not a valid host name"},
		{"https://" + strings.Repeat("a", 64) + ".example/hook", strict, "not a valid host name"},
		{"https://hooks.example.com/" + strings.Repeat("a", 2100), strict, "longer than"},
	}
	for _, tc := range cases {
		_, err := tc.egress.CheckURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want an error saying %q", tc.url, tc.want)
		case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "url")):
			t.Errorf("%s: %q does not name url and %q", tc.url, err, tc.want)
		}
	}
}

// resolver maps host names to addresses, as a DNS server the test
// controls; a name can be remapped between calls (rebinding).
type resolver struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
	calls int
}

func newResolver(hosts map[string]string) *resolver {
	r := &resolver{hosts: map[string][]netip.Addr{}}
	for h, addrs := range hosts {
		r.set(h, addrs)
	}
	return r
}

func (r *resolver) set(host, addrs string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var list []netip.Addr
	for a := range strings.SplitSeq(addrs, ",") {
		list = append(list, netip.MustParseAddr(a))
	}
	r.hosts[host] = list
}

func (r *resolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if a, ok := r.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// listenOn starts the fake receiver's handler on ip (any 127/8 address is
// loopback on Linux).
func listenOn(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func blockedOutcome(t *testing.T, errs []error) {
	t.Helper()
	wantKinds(t, errs, destinations.Paused, len(errs))
	var b *BlockedError
	if _, de := destinations.Classify(errs[0]); de.Code != "egress_refused" || !errors.As(errs[0], &b) && !strings.Contains(de.Message, "is not allowed") {
		t.Errorf("outcome %v: want the egress refusal", errs[0])
	}
}

// TestConnectTimeCheck: a name that passes the save-time check but
// resolves to a refused address is refused when connecting, before the
// receiver sees anything; allowed networks pass.
func TestConnectTimeCheck(t *testing.T) {
	rcv := newReceiver(t)
	port := listenOn(t, "127.0.0.1", rcv.Handler())
	res := newResolver(map[string]string{
		"evil.test":   "127.0.0.1",
		"mapped.test": "::ffff:127.0.0.1",
		"v6.test":     "::1",
		"mixed.test":  "10.0.0.1,127.0.0.1",
	})
	cases := []struct {
		name, url string
		allow     string
		delivered bool
	}{
		{"name to loopback, nothing allowed", "https://evil.test:" + port + "/hook", "", false},
		{"IPv4-mapped loopback, nothing allowed", "https://mapped.test:" + port + "/hook", "", false},
		{"IPv6 loopback, IPv4 loopback allowed", "http://v6.test:" + port + "/hook", "127.0.0.0/8", false},
		{"name to loopback, loopback allowed", "http://evil.test:" + port + "/hook", "127.0.0.0/8", true},
		{"IPv4-mapped loopback, loopback allowed", "http://mapped.test:" + port + "/hook", "127.0.0.0/8", true},
		{"a refused and an allowed address", "http://mixed.test:" + port + "/hook", "127.0.0.1/32", true},
		{"plain http to an address outside the allowed networks", "http://evil.test:" + port + "/hook", "10.0.0.0/8", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rcv.Requests()
			e := Egress{AllowNets: prefixes(t, tc.allow), Resolve: res.resolve}
			a, _ := newAdapter(t, e, settingsJSON(t, tc.url, nil), destinations.Deps{})
			errs := a.Deliver(context.Background(), pageViews("shop", 2))
			if tc.delivered {
				wantKinds(t, errs, 0, 2)
				return
			}
			blockedOutcome(t, errs)
			// Refused by the connect-time resolution, which names the host.
			if !strings.Contains(errs[0].Error(), ".test resolves to ") {
				t.Errorf("%v: want the host and the address it resolved to", errs[0])
			}
			if rcv.Requests() != before {
				t.Error("the receiver got the request")
			}
		})
	}
}

// TestDNSRebinding: the address is checked at every connection, so a name
// that moves to a refused address after a good delivery is refused.
func TestDNSRebinding(t *testing.T) {
	rcv := newReceiver(t)
	port := listenOn(t, "127.0.0.2", rcv.Handler())
	listenOn(t, "127.0.0.1", rcv.Handler()) // nothing but the policy stops the second delivery
	res := newResolver(map[string]string{"rebind.test": "127.0.0.2"})
	e := Egress{AllowNets: prefixes(t, "127.0.0.2/32"), Resolve: res.resolve}
	deps := destinations.Deps{HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	raw := settingsJSON(t, "http://rebind.test:"+port+"/hook", nil)
	a, _ := newAdapter(t, e, raw, deps)
	wantKinds(t, a.Deliver(context.Background(), pageViews("shop", 1)), 0, 1)
	res.set("rebind.test", "127.0.0.1")
	blockedOutcome(t, a.Deliver(context.Background(), pageViews("other", 1)))
	if n := len(rcv.Messages()); n != 1 {
		t.Errorf("%d messages, want the first only", n)
	}
	if res.calls != 2 {
		t.Errorf("%d lookups, want one per connection", res.calls)
	}
}

// TestControlHook: the dialer's Control hook checks the very address the
// socket connects to, whatever resolved it.
func TestControlHook(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	d := newDialer(Egress{}, true)
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80", "[::ffff:127.0.0.1]:80", "[fe80::1%eth0]:80", "169.254.169.254:80", "[fd00:ec2::254]:80"} {
		if err := d.control("tcp", addr, nil); err == nil {
			t.Errorf("control allowed %s", addr)
		}
	}
	if err := d.control("tcp", "[2606:4700:4700::1111]:443", nil); err != nil {
		t.Errorf("control refused a public address: %v", err)
	}
	// The hook alone, past the resolution step: the inner net.Dialer.
	_, err := d.net.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	var b *BlockedError
	if !errors.As(err, &b) {
		t.Errorf("dial of a loopback address through the hook: %v", err)
	}
	allowed := newDialer(loopback, true)
	conn, err := allowed.net.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("allowed network: %v", err)
	}
	conn.Close()
}

// TestDialSharesTime: of several addresses, one that does not answer
// leaves time for the next.
func TestDialSharesTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := newResolver(map[string]string{"multi.test": "127.0.0.3,127.0.0.1"})
	d := newDialer(Egress{AllowNets: loopback.AllowNets, Resolve: res.resolve}, true)
	// 127.0.0.3 stands for an address that never answers.
	d.net.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if strings.HasPrefix(address, "127.0.0.3:") {
			<-ctx.Done()
			return ctx.Err()
		}
		return d.control(network, address, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("multi.test", port))
	if err != nil {
		t.Fatalf("the second address was not tried in time: %v", err)
	}
	conn.Close()
}
