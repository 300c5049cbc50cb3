// Package admin is tagway's admin API under /admin/v1: tenants, sites,
// destinations, routes and API keys, with strict validation, ETag/If-Match
// optimistic concurrency, pagination, an audit log, ingest-key rotation,
// declarative apply/export, test tools and the dead letters of each site
// (list, replay, drop). Every configuration change goes through
// config.Store.Update, so it is validated whole, committed atomically,
// audited and live on every replica at once.
//
// Authentication comes before anything else: any request under /admin/v1
// without a valid bearer token gets 401, whatever its path or method. The
// operator's root token (TAGWAY_ADMIN_TOKEN) sees everything; a tenant API
// key sees only its tenant, and a resource of another tenant answers 404
// exactly as a missing one does. Secrets are write-only: responses show
// {"set": true, "last4": "…"} in their place.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

// Prefix is where the admin API is mounted.
const Prefix = "/admin/v1"

// Limits.
const (
	maxBodyBytes   = 1 << 20
	defaultLimit   = 50
	maxLimit       = 200
	defaultOverlap = 24 * time.Hour
	maxOverlap     = 30 * 24 * time.Hour
)

// Enqueuer queues events like the gateway does (queue.Queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, siteID string, events []destinations.Event) error
}

// Options configure the API. Store is required; RootToken empty disables
// the API (every request answers 503 admin_disabled).
type Options struct {
	Store    *config.Store
	Enqueuer Enqueuer
	// DeadLetters serves /sites/{id}/deadletters (queue.Queue); nil
	// answers 503 there.
	DeadLetters DeadLetters
	RootToken   string
	Logger      *slog.Logger
	Now         func() time.Time
	// Rand is the entropy of generated keys (default crypto/rand).
	Rand io.Reader
	// AuthLimiter, when set, answers 429 with Retry-After to a client
	// that gave too many wrong tokens, before its token is looked at;
	// ClientAddr reads a request's client address for it (default: the
	// socket peer).
	AuthLimiter AuthLimiter
	ClientAddr  func(*http.Request) string
}

// AuthLimiter slows down the guessing of tokens per client
// (internal/authlimit.Limiter).
type AuthLimiter interface {
	Allow(addr string) (time.Duration, bool)
	Fail(addr string)
}

// API serves /admin/v1.
type API struct {
	store *config.Store
	queue Enqueuer
	dead  DeadLetters
	root  []byte
	log   *slog.Logger
	now   func() time.Time
	rand  io.Reader
	limit AuthLimiter
	addr  func(*http.Request) string
	// handler is the router behind the authentication middleware.
	handler http.Handler
}

// New returns the API.
func New(opts Options) (*API, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.ClientAddr == nil {
		opts.ClientAddr = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
	a := &API{store: opts.Store, queue: opts.Enqueuer, dead: opts.DeadLetters, log: opts.Logger, now: opts.Now, rand: opts.Rand,
		limit: opts.AuthLimiter, addr: opts.ClientAddr}
	a.handler = a.authenticated(a.router())
	if opts.RootToken != "" {
		sum := sha256.Sum256([]byte(opts.RootToken))
		a.root = sum[:]
	}
	return a, nil
}

// principal is who calls.
type principal struct {
	id     string // "root" or the key id
	tenant string // empty for root
	role   string
}

func (p principal) root() bool { return p.id == "root" && p.tenant == "" }

// canWrite reports whether p may change sites, destinations and routes.
func (p principal) canWrite() bool { return p.root() || p.role == "admin" || p.role == "editor" }

// canManageKeys reports whether p may see and manage API keys.
func (p principal) canManageKeys() bool { return p.root() || p.role == "admin" }

// seesTenant reports whether p may see resources of tenant t.
func (p principal) seesTenant(t string) bool { return p.root() || (t != "" && t == p.tenant) }

// ServeHTTP serves the admin API (see the package comment).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// authenticate reads the bearer token: the root token, or a tenant key
// "twk_<id>_<secret>" whose digest matches the stored one.
func (a *API) authenticate(r *http.Request) (principal, *apiError) {
	unauthorized := &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
		Message: "a valid admin token is required: Authorization: Bearer <token>"}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return principal{}, unauthorized
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], a.root) == 1 {
		return principal{id: "root"}, nil
	}
	id, secret, ok := parseKeyToken(token)
	if !ok || model.ReservedKeyID(id) {
		return principal{}, unauthorized
	}
	k, found, err := a.store.Key(r.Context(), id)
	if err != nil {
		a.log.Error("admin key lookup failed", "err", err)
		return principal{}, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the configuration store is unreachable; retry later"}
	}
	digest := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(digest[:])), []byte(k.Hash)) != 1 {
		return principal{}, unauthorized
	}
	return principal{id: k.ID, tenant: k.Tenant, role: k.Role}, nil
}

const keyTokenPrefix = "twk_"

// parseKeyToken splits "twk_<id>_<secret>"; the id may itself hold '_',
// the secret (base64url) may too, so the secret is the last 43 characters.
func parseKeyToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, keyTokenPrefix)
	if !ok || len(rest) < secretLen+2 || rest[len(rest)-secretLen-1] != '_' {
		return "", "", false
	}
	return rest[:len(rest)-secretLen-1], rest[len(rest)-secretLen:], true
}

// secretLen is the length of a generated secret: 32 bytes in unpadded
// base64url.
const secretLen = 43

func (a *API) newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(a.rand, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
