package main

// Settings and wiring of the first-party pixel: the path prefix the gateway
// is mounted under, the secret of each site's default script and collect
// paths, and the adapter that lets the gateway ask pixeljs for a site's
// script variant.

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/pixeljs"
	"github.com/tagway/tagway/routing/model"
)

// pixelSettings are the pixel's environment variables.
type pixelSettings struct {
	// BasePath (TAGWAY_BASE_PATH) is the path prefix the gateway is mounted
	// under behind the store's own web server ("/tw"), when that server
	// forwards the prefix unchanged; one that strips it needs nothing (or
	// sends X-Forwarded-Prefix, honoured from TAGWAY_TRUSTED_PROXIES).
	BasePath string
	// PathSecret (TAGWAY_PATH_SECRET) keys every site's default script and
	// collect paths, so that nobody can compute them from the site id.
	PathSecret string
}

// readPixelSettings decodes the pixel's environment variables.
func readPixelSettings(getenv func(string) string) (pixelSettings, error) {
	p := pixelSettings{
		BasePath:   strings.TrimRight(strings.TrimSpace(getenv("TAGWAY_BASE_PATH")), "/"),
		PathSecret: strings.TrimSpace(getenv("TAGWAY_PATH_SECRET")),
	}
	if p.BasePath != "" && (!strings.HasPrefix(p.BasePath, "/") || strings.ContainsAny(p.BasePath, "?#%\\ ") || strings.Contains(p.BasePath, "..")) {
		return p, fmt.Errorf("TAGWAY_BASE_PATH: %q is not a path such as /tw", p.BasePath)
	}
	return p, nil
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
func logSitePaths(logger *slog.Logger, cfg model.Config, p pixelSettings) {
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
