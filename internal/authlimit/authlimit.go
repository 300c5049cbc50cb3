// Package authlimit slows down the guessing of credentials (admin tokens,
// ingest keys): past a free allowance of failed authentications, a client
// is refused for a time that doubles with each further failure, in memory
// bounded by a fixed number of clients.
//
// A success does not clear a client's failures: a client holding one
// valid key could otherwise interleave it with its guesses. Failures are
// forgotten once a client has had none for Options.Forget.
package authlimit

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultFree       = 10
	DefaultBase       = time.Second
	DefaultMax        = 15 * time.Minute
	DefaultForget     = time.Hour
	DefaultMaxClients = 10_000
)

// Options tune a Limiter; zero values take the defaults.
type Options struct {
	// Free is how many failures a client may make before it is refused:
	// the Free-th failure brings the first refusal (default DefaultFree).
	Free int
	// Base is how long the first refusal lasts; each further failure
	// doubles it (default DefaultBase), up to Max (default DefaultMax).
	Base, Max time.Duration
	// Forget is how long after its last failure a client starts afresh
	// (default DefaultForget; at least Max).
	Forget time.Duration
	// MaxClients bounds the clients remembered (default
	// DefaultMaxClients). When it is reached, clients past Forget are
	// dropped, then, if need be, an arbitrary one.
	MaxClients int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Limiter counts failed authentications per client. It is safe for
// concurrent use.
type Limiter struct {
	opts    Options
	mu      sync.Mutex
	clients map[string]*client
}

type client struct {
	failures int
	last     time.Time // of the last failure
	until    time.Time // refused until
}

// New returns a Limiter.
func New(opts Options) *Limiter {
	if opts.Free <= 0 {
		opts.Free = DefaultFree
	}
	if opts.Base <= 0 {
		opts.Base = DefaultBase
	}
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	if opts.Forget <= 0 {
		opts.Forget = DefaultForget
	}
	opts.Forget = max(opts.Forget, opts.Max)
	if opts.MaxClients <= 0 {
		opts.MaxClients = DefaultMaxClients
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Limiter{opts: opts, clients: map[string]*client{}}
}

// Allow reports whether the client at addr (an IP address; see ClientKey)
// may try to authenticate now; when it may not, it returns how long until
// it may.
func (l *Limiter) Allow(addr string) (time.Duration, bool) {
	key := ClientKey(addr)
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[key]
	if !ok || !now.Before(c.until) {
		return 0, true
	}
	return c.until.Sub(now), false
}

// Fail records a failed authentication by the client at addr.
func (l *Limiter) Fail(addr string) {
	key := ClientKey(addr)
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[key]
	if ok && now.Sub(c.last) >= l.opts.Forget {
		c.failures, c.until = 0, time.Time{}
	}
	if !ok {
		l.makeRoom(now)
		c = &client{}
		l.clients[key] = c
	}
	c.failures++
	c.last = now
	if over := c.failures - l.opts.Free; over >= 0 {
		d := l.opts.Max
		if over < 30 {
			d = min(l.opts.Base<<over, l.opts.Max)
		}
		c.until = now.Add(d)
	}
}

// makeRoom keeps the map within MaxClients for one more client.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.clients) < l.opts.MaxClients {
		return
	}
	for k, c := range l.clients {
		if now.Sub(c.last) >= l.opts.Forget {
			delete(l.clients, k)
		}
	}
	for k := range l.clients {
		if len(l.clients) < l.opts.MaxClients {
			return
		}
		delete(l.clients, k)
	}
}

// Len returns how many clients are remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// ClientKey is the key of a client address: an IPv4 address as it is, an
// IPv6 address by its /64 (one subscriber's usual share), an unreadable
// one as given.
func ClientKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
