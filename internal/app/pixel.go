package app

// Settings and wiring of the first-party pixel: the path prefix the gateway
// is mounted under, the secret of each site's default script and collect
// paths, and the adapter that lets the gateway ask pixeljs for a site's
// script variant.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/pixeljs"
	"github.com/tagway/tagway/routing/model"
)

// PixelSettings are the pixel's environment variables.
type PixelSettings struct {
	// BasePath (TAGWAY_BASE_PATH) is the path prefix the gateway is mounted
	// under behind the store's own web server ("/tw"), when that server
	// forwards the prefix unchanged; one that strips it needs nothing (or
	// sends X-Forwarded-Prefix, honoured from TAGWAY_TRUSTED_PROXIES).
	BasePath string
	// PathSecret (TAGWAY_PATH_SECRET) keys every site's default script and
	// collect paths, so that nobody can compute them from the site id.
	PathSecret string

	// Quick-start site options: TAGWAY_GA4_DATALAYER (on/off, default off),
	// TAGWAY_SPA_PAGEVIEWS (on/off, default on) and
	// TAGWAY_CONSENT_DENIED_MODE (drop or anonymous, default drop).
	GA4DataLayer      bool
	SPAPageViews      bool
	ConsentDeniedMode string
}

// readPixelSettings decodes the pixel's environment variables.
func readPixelSettings(getenv func(string) string) (PixelSettings, error) {
	env := func(key string) string { return strings.TrimSpace(getenv(key)) }
	p := PixelSettings{
		BasePath:          strings.TrimRight(env("TAGWAY_BASE_PATH"), "/"),
		PathSecret:        env("TAGWAY_PATH_SECRET"),
		ConsentDeniedMode: env("TAGWAY_CONSENT_DENIED_MODE"),
	}
	var errs []error
	if p.BasePath != "" && (!strings.HasPrefix(p.BasePath, "/") || strings.ContainsAny(p.BasePath, "?#%\\ ") || strings.Contains(p.BasePath, "..")) {
		errs = append(errs, fmt.Errorf("TAGWAY_BASE_PATH: %q is not a path such as /tw", p.BasePath))
	}
	onOff := func(key string, def bool) bool {
		switch v := env(key); v {
		case "":
			return def
		case "on", "true", "1":
			return true
		case "off", "false", "0":
			return false
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not on or off", key, v))
			return def
		}
	}
	p.GA4DataLayer = onOff("TAGWAY_GA4_DATALAYER", false)
	p.SPAPageViews = onOff("TAGWAY_SPA_PAGEVIEWS", true)
	switch p.ConsentDeniedMode {
	case "", model.ConsentDeniedDrop, model.ConsentDeniedAnonymous:
	default:
		errs = append(errs, fmt.Errorf("TAGWAY_CONSENT_DENIED_MODE: %q is not drop or anonymous", p.ConsentDeniedMode))
	}
	return p, errors.Join(errs...)
}

// quickStart sets the pixel's options on the quick start's site.
func (p PixelSettings) quickStart(site *model.Site) {
	spa := p.SPAPageViews
	site.SPAPageViews = &spa
	site.GA4DataLayer = p.GA4DataLayer
	site.ConsentDeniedMode = p.ConsentDeniedMode
}

// siteScripts serves each site the pixeljs variant of its options.
type siteScripts struct{ *pixeljs.Script }

// ForSite implements gateway.SiteScripts.
func (s siteScripts) ForSite(o gateway.ScriptOptions) http.Handler {
	return s.For(pixeljs.Options(o))
}

var _ gateway.SiteScripts = siteScripts{}

// logSitePaths tells the operator where each site's script is served: the
// default paths are derived, so this is where an operator sees them.
func logSitePaths(logger *slog.Logger, cfg model.Config, p PixelSettings) {
	if p.PathSecret == "" {
		logger.Warn("TAGWAY_PATH_SECRET is not set: each site's default script path depends on its id alone, " +
			"so anyone can compute it. Set a secret to make the paths unique to this installation.")
	}
	for _, site := range cfg.Sites {
		script, collect := gateway.DefaultPaths([]byte(p.PathSecret), site.ID)
		logger.Info("site script paths", "site", site.ID, "base_path", p.BasePath,
			"script", script, "collect", collect,
			"script_path", site.ScriptPath, "collect_path", site.CollectPath)
	}
}
