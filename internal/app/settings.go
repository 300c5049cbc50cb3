package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tagway/tagway/routing/model"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set;
// GOGC, and TAGWAY_MEMORY_LIMIT as a ceiling, override it. BENCHMARKS.md's
// Memory settings say why 150.
const defaultGCPercent = 150

// defaultHeapMin and maxGCPercent bound the GC tuning (Settings.HeapMin).
const (
	defaultHeapMin = 48 << 20
	maxGCPercent   = 500
)

// Settings is everything the gateway reads from its environment, decoded
// and validated in one place: ReadSettings (and RedisClient, for the
// commands) is the only reader of the environment.
type Settings struct {
	// Addr (TAGWAY_ADDR, default :8080) is the public listener.
	Addr string
	// MetricsAddr (TAGWAY_METRICS_ADDR, e.g. :9090) is the private
	// listener of /metrics, /healthz and /readyz; empty: none.
	MetricsAddr string
	// MetricsToken (TAGWAY_METRICS_TOKEN) serves /metrics on the public
	// port too, to Authorization: Bearer <token>; empty: not there.
	MetricsToken string
	// ConfigFile (TAGWAY_CONFIG) holds the sites, destinations and routes;
	// empty: the quick start below.
	ConfigFile string
	// Demo (TAGWAY_DEMO, default on) serves the demo shop at /.
	Demo bool
	// TrustedProxies (TAGWAY_TRUSTED_PROXIES) may say the client's address
	// in X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// LogLevel (TAGWAY_LOG_LEVEL): debug, info (default), warn or error.
	LogLevel string
	// MemoryLimit (TAGWAY_MEMORY_LIMIT, bytes or KiB/MiB/GiB) is the Go
	// runtime's soft memory limit (debug.SetMemoryLimit, like GOMEMLIMIT):
	// the garbage collector works harder as the heap nears it. 0: unset.
	MemoryLimit int64
	// Identity (TAGWAY_IDENTITY, on or off; default on) keeps visitors'
	// hashed identifiers to enrich their other events (dispatch.IdentityStore).
	Identity bool
	// GCPercent is the garbage collector's target (debug.SetGCPercent):
	// defaultGCPercent unless GOGC is set, in which case the runtime has
	// already applied it and this is 0 (leave it).
	GCPercent int
	// HeapMin (TAGWAY_HEAP_MIN, bytes or KiB/MiB/GiB; default
	// defaultHeapMin, 0 off) is the heap goal kept while the live heap is
	// small: the GC percentage is raised up to maxGCPercent so that the
	// goal reaches it (internal/gctune). Only with GCPercent.
	HeapMin int64

	// Quick start: one site from the environment, used when ConfigFile is empty.
	SiteDomains       []string
	MetaPixelID       string
	MetaAccessToken   string
	MetaTestEventCode string
	MetaGraphURL      string
	IngestKey         string
	ConsentDefault    string

	// Delivery tuning (zero: the engine's defaults). Tests shorten them.
	RetryBase         time.Duration // TAGWAY_RETRY_BASE: first back-off step
	RetryMax          time.Duration // TAGWAY_RETRY_MAX: longest back-off step
	VisibilityTimeout time.Duration // TAGWAY_VISIBILITY_TIMEOUT: pending entries of a dead replica are claimed after it

	// Admin is the control plane: admin token, secret keys, geo headers.
	Admin AdminSettings
	// Pixel holds the path prefix and the default-path secret.
	Pixel PixelSettings
	// Durability: Redis (URL and mode), the local spool, delivery limits
	// and the drain delay; see durability.go.
	Durability DurabilitySettings
	// Limits: the caps of identities and dead letters; see limits.go.
	Limits LimitSettings
}

// demoPixelID is the Meta pixel id of the dry-run destination the quick start
// creates when TAGWAY_META_PIXEL_ID is unset; nothing is sent for it.
const demoPixelID = "1234567890"

// ReadSettings decodes the environment getenv reads, joining every problem.
func ReadSettings(getenv func(string) string) (Settings, error) {
	env := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	s := Settings{
		Addr:              env("TAGWAY_ADDR", ":8080"),
		MetricsAddr:       env("TAGWAY_METRICS_ADDR", ""),
		MetricsToken:      env("TAGWAY_METRICS_TOKEN", ""),
		ConfigFile:        env("TAGWAY_CONFIG", ""),
		LogLevel:          env("TAGWAY_LOG_LEVEL", "info"),
		SiteDomains:       splitList(env("TAGWAY_SITE_DOMAINS", "localhost,127.0.0.1")),
		MetaPixelID:       env("TAGWAY_META_PIXEL_ID", ""),
		MetaAccessToken:   env("TAGWAY_META_ACCESS_TOKEN", ""),
		MetaTestEventCode: env("TAGWAY_META_TEST_EVENT_CODE", ""),
		MetaGraphURL:      env("TAGWAY_META_GRAPH_URL", "https://graph.facebook.com"),
		IngestKey:         env("TAGWAY_INGEST_KEY", ""),
		ConsentDefault:    env("TAGWAY_CONSENT_DEFAULT", model.ConsentGranted),
	}
	var errs []error
	admin, err := readAdminSettings(getenv)
	s.Admin = admin
	errs = append(errs, err)
	s.Pixel, err = readPixelSettings(getenv)
	errs = append(errs, err)
	s.Durability, err = readDurabilitySettings(getenv)
	errs = append(errs, err)
	s.Limits, err = readLimitSettings(getenv)
	errs = append(errs, err)
	switch demo := env("TAGWAY_DEMO", "on"); demo {
	case "on", "true", "1":
		s.Demo = true
	case "off", "false", "0":
	default:
		errs = append(errs, fmt.Errorf("TAGWAY_DEMO: %q is not on or off", demo))
	}
	for _, p := range splitList(env("TAGWAY_TRUSTED_PROXIES", "")) {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("TAGWAY_TRUSTED_PROXIES: %q is not a CIDR or IP", p))
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		s.TrustedProxies = append(s.TrustedProxies, prefix.Masked())
	}
	switch v := env("TAGWAY_IDENTITY", "on"); v {
	case "on":
		s.Identity = true
	case "off":
	default:
		errs = append(errs, fmt.Errorf("TAGWAY_IDENTITY: %q is not on or off", v))
	}
	if getenv("GOGC") == "" {
		s.GCPercent = defaultGCPercent
		s.HeapMin = defaultHeapMin
	}
	switch v := env("TAGWAY_HEAP_MIN", ""); v {
	case "":
	case "0", "off":
		s.HeapMin = 0
	default:
		n, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TAGWAY_HEAP_MIN: %w (0 or off turns it off)", err))
		}
		if s.GCPercent > 0 { // GOGC, when set, wins
			s.HeapMin = n
		}
	}
	if v := env("TAGWAY_MEMORY_LIMIT", ""); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TAGWAY_MEMORY_LIMIT: %w", err))
		}
		s.MemoryLimit = n
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("TAGWAY_LOG_LEVEL: %q is not debug, info, warn or error", s.LogLevel))
	}
	if u, err := url.Parse(s.MetaGraphURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("TAGWAY_META_GRAPH_URL: %q is not an http(s) URL without user info, query or fragment", s.MetaGraphURL))
	}
	if s.MetricsToken != "" && len(s.MetricsToken) < minAdminTokenLen {
		errs = append(errs, fmt.Errorf("TAGWAY_METRICS_TOKEN: at least %d characters", minAdminTokenLen))
	}
	if s.MetaAccessToken != "" && s.MetaPixelID == "" {
		errs = append(errs, errors.New("TAGWAY_META_ACCESS_TOKEN is set but TAGWAY_META_PIXEL_ID is not"))
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"TAGWAY_RETRY_BASE", &s.RetryBase}, {"TAGWAY_RETRY_MAX", &s.RetryMax}, {"TAGWAY_VISIBILITY_TIMEOUT", &s.VisibilityTimeout}} {
		key, dst := d.key, d.dst
		if v := env(key, ""); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration such as 500ms", key, v))
				continue
			}
			*dst = d
		}
	}
	return s, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// loadConfig returns the declarative configuration: the TAGWAY_CONFIG file
// when set, else one site built from the quick-start variables.
func loadConfig(s Settings) (model.Config, error) {
	if s.ConfigFile != "" {
		data, err := os.ReadFile(s.ConfigFile)
		if err != nil {
			return model.Config{}, fmt.Errorf("TAGWAY_CONFIG: %w", err)
		}
		return model.ParseConfig(data)
	}
	return quickStartConfig(s)
}

// quickStartConfig is the env quick start as a one-site config: site "default"
// with a Meta destination (dry-run without a token) and a route of every event.
func quickStartConfig(s Settings) (model.Config, error) {
	site := model.Site{
		ID:             "default",
		Domains:        s.SiteDomains,
		ConsentDefault: s.ConsentDefault,
	}
	s.Pixel.quickStart(&site)
	if s.IngestKey != "" {
		site.IngestKeys = []string{s.IngestKey}
	}
	// No graph_url: every Meta destination takes TAGWAY_META_GRAPH_URL
	// from the environment (registry).
	meta := map[string]any{
		"pixel_id": s.MetaPixelID,
	}
	if s.MetaPixelID == "" {
		meta["pixel_id"] = demoPixelID
		meta["dry_run"] = true
	}
	if s.MetaAccessToken != "" {
		meta["access_token"] = s.MetaAccessToken
	}
	if s.MetaTestEventCode != "" {
		meta["test_event_code"] = s.MetaTestEventCode
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return model.Config{}, err
	}
	cfg := model.Config{
		Sites:        []model.Site{site},
		Destinations: []model.Destination{{ID: "meta", SiteID: "default", Type: "meta", Settings: raw}},
		Routes:       []model.Route{{ID: "default-meta", SiteID: "default", DestinationID: "meta"}},
	}
	if err := cfg.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("quick start: %w", err)
	}
	return cfg, nil
}
