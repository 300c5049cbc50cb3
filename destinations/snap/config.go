package snap

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Settings names and defaults.
const (
	// DefaultAPIURL is the Conversions API host.
	DefaultAPIURL = "https://tr.snapchat.com"
	// APIURLSetting names the setting, and the Deps.APIURLs entry, of the
	// Conversions API base URL: the operator's alone.
	APIURLSetting = "api_url"
	// APIURLEnv is the environment variable the operator sets it with.
	APIURLEnv = "TAGWAY_SNAP_API_URL"
	// DefaultTimeout bounds each request when the timeout setting is empty.
	DefaultTimeout = 5 * time.Second
)

// Settings configure one Snap Pixel destination. They are decoded strictly
// from the destination's JSON settings by ParseSettings.
type Settings struct {
	// PixelID is the Snap Pixel id (a UUID); required.
	PixelID string `json:"pixel_id"`
	// AccessToken is the Conversions API token. Empty means dry-run.
	AccessToken destinations.Secret `json:"access_token,omitempty"`
	// TestMode sends every event to Snap's validation endpoint: checked and
	// shown in Events Manager's test tools, never recorded. An event with
	// a Context.TestEventCode goes there too.
	TestMode bool `json:"test_mode,omitempty"`
	// APIURL is the Conversions API base URL: the operator's setting.
	// Empty: Deps.APIURLs["api_url"] (TAGWAY_SNAP_API_URL), else
	// https://tr.snapchat.com.
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds each request (default 5s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

// pixelIDPattern keeps the pixel id, which goes into the request path, to
// the characters of a UUID.
var pixelIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// ParseSettings decodes raw strictly (unknown fields are an error), applies
// the defaults and validates the result, joining every problem.
func ParseSettings(raw json.RawMessage) (Settings, error) { return parseSettings(raw, DefaultAPIURL) }

// parseSettings is ParseSettings with apiURL as api_url's default.
func parseSettings(raw json.RawMessage, apiURL string) (Settings, error) {
	return platform.ParseSettings(Type, raw, func(s *Settings) {
		s.APIURL = cmp.Or(s.APIURL, apiURL)
		s.Timeout = cmp.Or(s.Timeout, destinations.Duration(DefaultTimeout))
	})
}

// Validate reports every problem with s, each naming its field. It expects
// the defaults to be applied already.
func (s Settings) Validate() error {
	var errs []error
	switch {
	case s.PixelID == "":
		errs = append(errs, errors.New("snap settings: pixel_id is required (Ads Manager → Events Manager → the pixel)"))
	case !pixelIDPattern.MatchString(s.PixelID):
		errs = append(errs, fmt.Errorf("snap settings: pixel_id %q must be the pixel's UUID, like 1ec32188-754e-4be2-8e55-c949a984a39f", s.PixelID))
	}
	errs = append(errs, platform.CheckURL(Type, APIURLSetting, s.APIURL), platform.CheckTimeout(Type, s.Timeout))
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.AccessToken == "" }
