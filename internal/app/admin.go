package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/tagway/tagway/admin"
	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/internal/secrets"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

// AdminSettings are the environment of the control plane.
type AdminSettings struct {
	// Token is TAGWAY_ADMIN_TOKEN, the operator's root token; empty
	// disables the admin API.
	Token string
	// Keyring is built from TAGWAY_SECRET_KEY and TAGWAY_SECRET_KEY_PREVIOUS
	// (comma-separated); nil without a key.
	Keyring *secrets.Keyring
	// CountryHeader and RegionHeader name the trusted request headers
	// holding the visitor's country and subdivision
	// (TAGWAY_COUNTRY_HEADER, e.g. CF-IPCountry; TAGWAY_REGION_HEADER).
	CountryHeader string
	RegionHeader  string
	// SiteReuseDelay (TAGWAY_SITE_REUSE_DELAY, default
	// config.DefaultSiteReuseDelay; 0s: none) is how long a deleted site's
	// id stays reserved for its former tenant while its last keys are
	// erased (routing/purge.go).
	SiteReuseDelay time.Duration
}

// minAdminTokenLen is the shortest root token accepted.
const minAdminTokenLen = 16

var headerNamePattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func readAdminSettings(getenv func(string) string) (AdminSettings, error) {
	var s AdminSettings
	var errs []error
	s.Token = strings.TrimSpace(getenv("TAGWAY_ADMIN_TOKEN"))
	if s.Token != "" && len(s.Token) < minAdminTokenLen {
		errs = append(errs, fmt.Errorf("TAGWAY_ADMIN_TOKEN: at least %d characters (openssl rand -base64 32)", minAdminTokenLen))
	}
	if key := strings.TrimSpace(getenv("TAGWAY_SECRET_KEY")); key != "" {
		k, err := secrets.NewKeyring(key, splitList(getenv("TAGWAY_SECRET_KEY_PREVIOUS"))...)
		if err != nil {
			errs = append(errs, fmt.Errorf("TAGWAY_SECRET_KEY: %w", err))
		}
		s.Keyring = k
	} else if strings.TrimSpace(getenv("TAGWAY_SECRET_KEY_PREVIOUS")) != "" {
		errs = append(errs, errors.New("TAGWAY_SECRET_KEY_PREVIOUS is set but TAGWAY_SECRET_KEY is not"))
	}
	if v := strings.TrimSpace(getenv("TAGWAY_SITE_REUSE_DELAY")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 24*time.Hour {
			errs = append(errs, fmt.Errorf("TAGWAY_SITE_REUSE_DELAY: %q is not a duration from 0s to 24h", v))
		}
		s.SiteReuseDelay = d
		if d == 0 {
			s.SiteReuseDelay = -1 // none
		}
	}
	for name, v := range map[string]*string{"TAGWAY_COUNTRY_HEADER": &s.CountryHeader, "TAGWAY_REGION_HEADER": &s.RegionHeader} {
		*v = strings.TrimSpace(getenv(name))
		if *v != "" && !headerNamePattern.MatchString(*v) {
			errs = append(errs, fmt.Errorf("%s: %q is not a header name", name, *v))
		}
	}
	return s, errors.Join(errs...)
}

// storeOptions wires the control plane into the config store.
func storeOptions(s AdminSettings) []config.StoreOption {
	return []config.StoreOption{
		config.WithKeyring(s.Keyring),
		config.WithSecretFields(secretFields()),
		config.WithDestinationValidator(validateDestination),
		config.WithSiteReuseDelay(s.SiteReuseDelay),
	}
}

// validateDestination checks a destination's type and settings with its
// adapter's own strict factory, so the admin API refuses what the
// dispatcher would.
func validateDestination(d model.Destination) error {
	factory, ok := registry(Settings{})[d.Type]
	if !ok {
		return fmt.Errorf("type %q is not a destination type of this gateway", d.Type)
	}
	_, err := factory(d.Settings, destinations.Deps{
		HTTP:   &http.Client{Timeout: time.Second},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    time.Now,
	})
	return err
}

// applyStartupConfig applies the config file or quick start. Without the
// admin API it is the whole truth, applied at every start. With the admin
// API (TAGWAY_ADMIN_TOKEN set) Redis is the truth: the file only seeds an
// empty store, so a restart never undoes changes made through the API; use
// `tagway apply -f` to apply a file later.
func applyStartupConfig(ctx context.Context, store *config.Store, s Settings, cfg model.Config, logger *slog.Logger) error {
	if s.Admin.Token == "" {
		return store.Apply(ctx, cfg)
	}
	st, err := store.Read(ctx)
	if err != nil {
		return err
	}
	if st.Version() == 0 {
		logger.Info("admin API enabled: seeding the empty configuration store from the config file or quick start")
		return store.Apply(ctx, cfg)
	}
	logger.Info("admin API enabled: the stored configuration is kept; the config file and quick start are not applied (use tagway apply -f)",
		"version", st.Version())
	store.RememberLocalSecrets(cfg)
	return store.Load(ctx)
}

// newAdminHandler returns the admin API, which the gateway mounts at
// admin.Prefix under its path prefix (so /tw/admin/v1 works behind the
// store's web server too).
func newAdminHandler(s Settings, store *config.Store, queue admin.Enqueuer, deadLetters admin.DeadLetters, limiter admin.AuthLimiter, logger *slog.Logger) (http.Handler, error) {
	api, err := admin.New(admin.Options{Store: store, Enqueuer: queue, DeadLetters: deadLetters, RootToken: s.Admin.Token, Logger: logger, Now: time.Now,
		AuthLimiter: limiter, ClientAddr: gateway.ClientAddrFunc(s.TrustedProxies)})
	if err != nil {
		return nil, err
	}
	if s.Admin.Token == "" {
		logger.Info("admin API disabled (set TAGWAY_ADMIN_TOKEN to enable /admin/v1)")
	} else if s.Admin.Keyring == nil {
		logger.Warn("TAGWAY_SECRET_KEY is not set: the admin API refuses destination secrets; secrets from the config file stay in memory")
	}
	return api, nil
}
