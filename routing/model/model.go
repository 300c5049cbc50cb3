// Package model holds tagway's configuration model: sites, destinations and
// the routes between them, as written in the declarative config file and
// stored in Redis. It is plain data with validation and lookups; it knows
// nothing of Redis or HTTP, so both the gateway and routing can share it.
package model

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Config is the whole declarative configuration: what TAGWAY_CONFIG holds and
// what the quick-start environment variables describe for one site.
type Config struct {
	// Tenants are the agencies owning sites; a site without a tenant
	// belongs to the operator.
	Tenants      []Tenant      `json:"tenants,omitempty"`
	Sites        []Site        `json:"sites"`
	Destinations []Destination `json:"destinations,omitempty"`
	Routes       []Route       `json:"routes,omitempty"`
}

// Consent defaults for a site, applied before the visitor has chosen.
const (
	ConsentGranted = "granted"
	ConsentDenied  = "denied"
	ConsentWait    = "wait"
)

// What a site does with an event accepted without marketing consent (its
// consent_denied_mode).
const (
	ConsentDeniedDrop      = "drop"
	ConsentDeniedAnonymous = "anonymous"
)

// Site is one store. Its domains decide which requests belong to it and where
// first-party cookies are set.
type Site struct {
	ID string `json:"id"`
	// Domains are the store's host names ("shop.example"). A request whose
	// Origin or Host is one of them, or a subdomain of one, belongs to the
	// site. Cookies go on the registrable domain of the request's host.
	Domains []string `json:"domains"`
	// AllowedOrigins are further browser origins allowed to post events
	// ("https://checkout.partner.example"), in scheme://host[:port] form.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// IngestKeys authenticate server-to-server ingest (POST /v1/events).
	// The config file holds them in clear; the store keeps only SHA-256
	// digests in IngestKeyHashes.
	IngestKeys      []string `json:"ingest_keys,omitempty"`
	IngestKeyHashes []string `json:"ingest_key_hashes,omitempty"`
	// IngestKeyHints are the last four characters of each key, by digest,
	// kept when a key is given or minted so that people can tell keys
	// apart without seeing them.
	IngestKeyHints map[string]string `json:"ingest_key_hints,omitempty"`
	// IngestKeyInfo is read-only: how the admin API shows the ingest keys
	// (an id, the last four characters, the deadline of a retiring key)
	// instead of their digests. It is ignored on input and never stored.
	IngestKeyInfo []IngestKeyInfo `json:"ingest_key_info,omitempty"`
	// ConsentDefault is granted, denied or wait (default granted).
	ConsentDefault string `json:"consent_default,omitempty"`
	// ScriptPath and CollectPath override /tw.js and /collect for this site.
	ScriptPath  string `json:"script_path,omitempty"`
	CollectPath string `json:"collect_path,omitempty"`
	// SPAPageViews turns the script's PageView on history.pushState and
	// popstate on or off (nil: on).
	SPAPageViews *bool `json:"spa_pageviews,omitempty"`
	// GA4DataLayer makes the script map the GA4 e-commerce events the page
	// pushes to window.dataLayer (view_item, add_to_cart, purchase...) to
	// tagway's standard events.
	GA4DataLayer bool `json:"ga4_datalayer,omitempty"`
	// ConsentDeniedMode says what happens to an event without marketing
	// consent: ConsentDeniedDrop (the default) withholds it from
	// advertising platforms; ConsentDeniedAnonymous sends it to them
	// without any identifier.
	ConsentDeniedMode string `json:"consent_denied_mode,omitempty"`

	// Tenant owns the site (empty: the operator).
	Tenant string `json:"tenant,omitempty"`
	// RetiringIngestKeys are replaced ingest keys that stay valid until
	// their deadline (see RotateIngestKey).
	RetiringIngestKeys []RetiringKey `json:"retiring_ingest_keys,omitempty"`
	// Cookies tunes the first-party cookies set for the site.
	Cookies *CookieSettings `json:"cookies,omitempty"`
	// RegionRules are privacy rules for visitors of some regions, applied to
	// every route of the site before the route's own rules.
	RegionRules []RegionRule `json:"region_rules,omitempty"`
}

// Destination is one account on one platform, owned by a site.
type Destination struct {
	ID     string `json:"id"`
	SiteID string `json:"site"`
	// Type names the adapter ("meta").
	Type string `json:"type"`
	// Settings are the adapter's own settings (pixel id, token...), decoded
	// strictly by the adapter's factory.
	Settings json.RawMessage `json:"settings"`
}

// Route sends a site's events to one destination.
type Route struct {
	ID            string `json:"id"`
	SiteID        string `json:"site"`
	DestinationID string `json:"destination"`
	// Events, when set, is the allow list of event names; empty means all.
	Events []string `json:"events,omitempty"`
	// ExcludeEvents is a deny list applied after Events.
	ExcludeEvents []string `json:"exclude_events,omitempty"`
	// Disabled stops the route without deleting it.
	Disabled bool `json:"disabled,omitempty"`

	// EventMap renames events on this route ("Purchase": "CompletePayment").
	// The allow and deny lists see the original name.
	EventMap map[string]string `json:"event_map,omitempty"`
	// Overrides set fields of every event sent on this route.
	Overrides *RouteOverrides `json:"overrides,omitempty"`
	// TestMode sends the route's events to the platform's test channel
	// with TestEventCode (which overrides the destination's own) and
	// records the outcomes, readable through the admin API.
	TestMode      bool   `json:"test_mode,omitempty"`
	TestEventCode string `json:"test_event_code,omitempty"`
	// Consent lists the consent purposes the route needs granted
	// (ad_storage, ad_user_data, ad_personalization, analytics_storage).
	// Empty: ad_storage and ad_user_data for an advertising platform,
	// nothing otherwise; ["none"]: nothing.
	Consent []string `json:"consent,omitempty"`
	// RegionRules are privacy rules of this route, applied after the
	// site's.
	RegionRules []RegionRule `json:"region_rules,omitempty"`
}

// Accepts reports whether the route carries an event of this name.
func (r Route) Accepts(eventName string) bool {
	if r.Disabled {
		return false
	}
	if len(r.Events) > 0 && !slices.Contains(r.Events, eventName) {
		return false
	}
	return !slices.Contains(r.ExcludeEvents, eventName)
}

// ValidID reports whether s may name a site, destination or route: lowercase
// letters, digits, '-' and '_', at most 63 characters. IDs appear in Redis
// keys, so the alphabet is deliberately small.
func ValidID(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// HashKey returns the stored form of an ingest key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// minHintedKeyLen is the shortest ingest key whose last four characters
// are kept as its hint (every valid key is longer).
const minHintedKeyLen = 16

// IngestKeyInfo is an ingest key as the admin API shows it: never the key
// nor its digest.
type IngestKeyInfo struct {
	// ID names the key: "ik_" and 12 hex digits derived from its digest.
	ID string `json:"id"`
	// Last4 is the end of the key, when it was given or minted in clear.
	Last4 string `json:"last4,omitempty"`
	// ValidUntil is the deadline of a retiring key.
	ValidUntil *time.Time `json:"valid_until,omitempty"`
}

// IngestKeyID is the id shown for the ingest key with this digest: it
// names the key without revealing the digest, which authenticates.
func IngestKeyID(digest string) string {
	sum := sha256.Sum256([]byte("tagway ingest key id\x00" + digest))
	return "ik_" + hex.EncodeToString(sum[:6])
}

// Info returns how s's ingest keys are shown: the current ones, then the
// retiring ones with their deadlines.
func (s Site) Info() []IngestKeyInfo {
	var out []IngestKeyInfo
	for _, h := range s.IngestKeyHashes {
		out = append(out, IngestKeyInfo{ID: IngestKeyID(h), Last4: s.IngestKeyHints[h]})
	}
	for _, k := range s.RetiringIngestKeys {
		until := k.Until
		out = append(out, IngestKeyInfo{ID: IngestKeyID(k.Hash), Last4: s.IngestKeyHints[k.Hash], ValidUntil: &until})
	}
	return out
}

// Normalize moves clear ingest keys into their hashed form and lowercases
// domains. It returns a copy; the receiver is not changed.
func (c Config) Normalize() Config {
	out := Config{
		Tenants:      slices.Clone(c.Tenants),
		Sites:        make([]Site, len(c.Sites)),
		Destinations: slices.Clone(c.Destinations),
		Routes:       slices.Clone(c.Routes),
	}
	for i, s := range c.Sites {
		s.Domains = slices.Clone(s.Domains)
		for j, d := range s.Domains {
			s.Domains[j] = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		}
		hashes := slices.Clone(s.IngestKeyHashes)
		hints := map[string]string{}
		for _, k := range s.IngestKeys {
			h := HashKey(k)
			if !slices.Contains(hashes, h) {
				hashes = append(hashes, h)
			}
			if len(k) >= minHintedKeyLen {
				hints[h] = k[len(k)-4:]
			}
		}
		for _, h := range hashes {
			if v, ok := s.IngestKeyHints[h]; ok && hints[h] == "" {
				hints[h] = v
			}
		}
		for _, k := range s.RetiringIngestKeys {
			if v, ok := s.IngestKeyHints[k.Hash]; ok && hints[k.Hash] == "" {
				hints[k.Hash] = v
			}
		}
		s.IngestKeyHints = nil
		if len(hints) > 0 {
			s.IngestKeyHints = hints
		}
		s.IngestKeys = nil
		s.IngestKeyHashes = hashes
		s.IngestKeyInfo = nil
		if s.ConsentDefault == "" {
			s.ConsentDefault = ConsentGranted
		}
		out.Sites[i] = s
	}
	return out
}

// Validate reports every problem in the configuration, joined, each naming the
// path of the offending field.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	sites := map[string]bool{}
	for i, s := range c.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		switch {
		case !ValidID(s.ID):
			add("%s.id: %q is not a valid id (lowercase letters, digits, - and _, up to 63)", p, s.ID)
		case sites[s.ID]:
			add("%s.id: duplicate site %q", p, s.ID)
		}
		sites[s.ID] = true
		if len(s.Domains) == 0 {
			add("%s.domains: at least one domain is required", p)
		}
		for j, d := range s.Domains {
			if !validHost(d) {
				add("%s.domains[%d]: %q is not a host name or IP address", p, j, d)
			}
		}
		for j, o := range s.AllowedOrigins {
			if _, ok := ParseOrigin(o); !ok {
				add("%s.allowed_origins[%d]: %q is not an origin (scheme://host[:port])", p, j, o)
			}
		}
		for j, h := range s.IngestKeyHashes {
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
				add("%s.ingest_key_hashes[%d]: not a hex SHA-256 digest", p, j)
			}
		}
		for j, k := range s.IngestKeys {
			if len(k) < 16 {
				add("%s.ingest_keys[%d]: an ingest key needs at least 16 characters", p, j)
			}
		}
		switch s.ConsentDefault {
		case "", ConsentGranted, ConsentDenied, ConsentWait:
		default:
			add("%s.consent_default: %q is not granted, denied or wait", p, s.ConsentDefault)
		}
		switch s.ConsentDeniedMode {
		case "", ConsentDeniedDrop, ConsentDeniedAnonymous:
		default:
			add("%s.consent_denied_mode: %q is not drop or anonymous", p, s.ConsentDeniedMode)
		}
		for name, path := range map[string]string{"script_path": s.ScriptPath, "collect_path": s.CollectPath} {
			if path != "" && !validPath(path) {
				add("%s.%s: %q must start with / and hold only letters, digits, '-', '_', '.' and '/'", p, name, path)
			}
		}
	}

	dests := map[string]bool{}
	for i, d := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		switch {
		case !ValidID(d.ID):
			add("%s.id: %q is not a valid id", p, d.ID)
		case dests[d.ID]:
			add("%s.id: duplicate destination %q", p, d.ID)
		}
		dests[d.ID] = true
		if !sites[d.SiteID] {
			add("%s.site: unknown site %q", p, d.SiteID)
		}
		if d.Type == "" {
			add("%s.type: required", p)
		}
	}

	routes := map[string]bool{}
	destSite := map[string]string{}
	for _, d := range c.Destinations {
		destSite[d.ID] = d.SiteID
	}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case !ValidID(r.ID):
			add("%s.id: %q is not a valid id", p, r.ID)
		case routes[r.ID]:
			add("%s.id: duplicate route %q", p, r.ID)
		}
		routes[r.ID] = true
		if !sites[r.SiteID] {
			add("%s.site: unknown site %q", p, r.SiteID)
		}
		// A destination of another site answers as a missing one: the
		// other site may be another tenant's.
		if site, ok := destSite[r.DestinationID]; !ok || site != r.SiteID {
			add("%s.destination: unknown destination %q on site %q", p, r.DestinationID, r.SiteID)
		}
	}
	errs = append(errs, c.validateTenancy()...)
	return errors.Join(errs...)
}

var hostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validHost(h string) bool {
	h = strings.ToLower(h)
	if net.ParseIP(h) != nil {
		return true
	}
	return len(h) <= 253 && hostPattern.MatchString(h)
}

// isPublicSuffix reports whether host is itself a public suffix ("com",
// "co.uk", "github.io"): a site claiming one would cover every site under
// it. A single label the list does not know ("localhost") is not one.
func isPublicSuffix(host string) bool {
	host = normDomain(host)
	if net.ParseIP(host) != nil {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(host)
	return suffix == host && (icann || strings.Contains(host, "."))
}

// registrable reports whether host is a domain name below a public suffix:
// not an IP address, not a single label.
func registrable(host string) bool {
	host = normDomain(host)
	if net.ParseIP(host) != nil {
		return false
	}
	_, err := publicsuffix.EffectiveTLDPlusOne(host)
	return err == nil && strings.Contains(host, ".")
}

var pathPattern = regexp.MustCompile(`^/[A-Za-z0-9._/-]{0,127}$`)

func validPath(p string) bool { return pathPattern.MatchString(p) && !strings.Contains(p, "..") }

// Origin is a parsed browser origin.
type Origin struct {
	Scheme string // http or https
	Host   string // lowercase, without port
	Port   string // empty when absent
}

// ParseOrigin reads an Origin header value ("https://shop.example:8443").
func ParseOrigin(s string) (Origin, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return Origin{}, false
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	}
	host = strings.ToLower(host)
	if !validHost(host) {
		return Origin{}, false
	}
	return Origin{Scheme: scheme, Host: host, Port: port}, true
}

// Snapshot is an immutable, indexed view of a Config, built once per change
// and read without locks by every request.
type Snapshot struct {
	config       Config
	sites        map[string]*Site
	destinations map[string]*Destination
	routesBySite map[string][]Route
	keyToSite    map[string]string    // ingest key hash → site id
	keyUntil     map[string]time.Time // retiring ingest key hash → deadline
	routes       map[string]*Route
	tenants      map[string]*Tenant
	siteByDomain map[string]*Site // each domain of every site → its site (the first listing it)
	now          func() time.Time
}

// NewSnapshot validates and indexes cfg (normalizing it first). Retiring
// ingest keys expire by the wall clock.
func NewSnapshot(cfg Config) (*Snapshot, error) { return NewSnapshotAt(cfg, time.Now) }

// NewSnapshotAt is NewSnapshot with the clock that expires retiring ingest
// keys.
func NewSnapshotAt(cfg Config, now func() time.Time) (*Snapshot, error) {
	cfg = cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Snapshot{
		config:       cfg,
		sites:        map[string]*Site{},
		destinations: map[string]*Destination{},
		routesBySite: map[string][]Route{},
		keyToSite:    map[string]string{},
		keyUntil:     map[string]time.Time{},
		routes:       map[string]*Route{},
		tenants:      map[string]*Tenant{},
		siteByDomain: map[string]*Site{},
		now:          now,
	}
	for i := range cfg.Tenants {
		s.tenants[cfg.Tenants[i].ID] = &cfg.Tenants[i]
	}
	for i := range cfg.Sites {
		site := &cfg.Sites[i]
		s.sites[site.ID] = site
		for _, d := range site.Domains {
			if _, taken := s.siteByDomain[d]; !taken {
				s.siteByDomain[d] = site
			}
		}
		for _, k := range site.RetiringIngestKeys {
			s.keyToSite[k.Hash] = site.ID
			s.keyUntil[k.Hash] = k.Until
		}
		for _, h := range site.IngestKeyHashes {
			s.keyToSite[h] = site.ID
			delete(s.keyUntil, h)
		}
	}
	for i := range cfg.Destinations {
		s.destinations[cfg.Destinations[i].ID] = &cfg.Destinations[i]
	}
	for i, r := range cfg.Routes {
		s.routesBySite[r.SiteID] = append(s.routesBySite[r.SiteID], r)
		s.routes[r.ID] = &cfg.Routes[i]
	}
	return s, nil
}

// Config returns the normalized configuration the snapshot was built from.
// Callers must not modify it.
func (s *Snapshot) Config() Config { return s.config }

// Site returns the site with this id.
func (s *Snapshot) Site(id string) (*Site, bool) {
	site, ok := s.sites[id]
	return site, ok
}

// Destination returns the destination with this id.
func (s *Snapshot) Destination(id string) (*Destination, bool) {
	d, ok := s.destinations[id]
	return d, ok
}

// Routes returns the routes of a site.
func (s *Snapshot) Routes(siteID string) []Route { return s.routesBySite[siteID] }

// SiteByHost returns the site one of whose domains equals host or is a parent
// domain of it. The most specific domain wins. host may carry a port.
func (s *Snapshot) SiteByHost(host string) (*Site, bool) {
	host = stripPort(strings.ToLower(host))
	host = strings.TrimSuffix(host, ".")
	// The host itself, then each parent domain: the first match is the
	// most specific domain, without a walk over every site.
	for h := host; ; {
		if site, ok := s.siteByDomain[h]; ok {
			return site, true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return nil, false
		}
		h = h[i+1:]
	}
}

// OriginAllowed reports whether a browser origin may post events to site: its
// host is one of the site's domains or a subdomain of one, or it is listed in
// AllowedOrigins.
func (site *Site) OriginAllowed(origin string) bool {
	o, ok := ParseOrigin(origin)
	if !ok {
		return false
	}
	for _, d := range site.Domains {
		if o.Host == d || strings.HasSuffix(o.Host, "."+d) {
			return true
		}
	}
	for _, a := range site.AllowedOrigins {
		if strings.EqualFold(a, origin) {
			return true
		}
	}
	return false
}

// HasHost reports whether host (a request's Host, may carry a port) is one
// of site's domains or below one.
func (site *Site) HasHost(host string) bool {
	host = strings.TrimSuffix(stripPort(host), ".")
	for _, d := range site.Domains {
		if len(host) == len(d) && strings.EqualFold(host, d) ||
			len(host) > len(d) && host[len(host)-len(d)-1] == '.' && strings.EqualFold(host[len(host)-len(d):], d) {
			return true
		}
	}
	return false
}

// SiteByIngestKey returns the site an ingest key belongs to, comparing the
// key's digest in constant time.
func (s *Snapshot) SiteByIngestKey(key string) (*Site, bool) {
	if key == "" {
		return nil, false
	}
	h := HashKey(key)
	for stored, id := range s.keyToSite {
		if subtle.ConstantTimeCompare([]byte(stored), []byte(h)) == 1 {
			if until, retiring := s.keyUntil[stored]; retiring && !s.now().Before(until) {
				return nil, false
			}
			return s.sites[id], true
		}
	}
	return nil, false
}

// Route returns the route with this id.
func (s *Snapshot) Route(id string) (*Route, bool) {
	r, ok := s.routes[id]
	return r, ok
}

// Tenant returns the tenant with this id.
func (s *Snapshot) Tenant(id string) (*Tenant, bool) {
	t, ok := s.tenants[id]
	return t, ok
}

func stripPort(host string) string {
	if strings.IndexByte(host, ':') < 0 {
		// SplitHostPort would fail (and allocate its error).
		return strings.Trim(host, "[]")
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}
