package tiktok

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
	// DefaultAPIURL is the TikTok Business API host.
	DefaultAPIURL = "https://business-api.tiktok.com"
	// APIURLSetting names the setting, and the Deps.APIURLs entry, of the
	// Business API base URL: the operator's alone.
	APIURLSetting = "api_url"
	// APIURLEnv is the environment variable the operator sets it with.
	APIURLEnv = "TAGWAY_TIKTOK_API_URL"
	// TrackPath is the Events API 2.0 endpoint under the base URL.
	TrackPath = "/open_api/v1.3/event/track/"
	// DefaultTimeout bounds each request when the timeout setting is empty.
	DefaultTimeout = 5 * time.Second
)

// Settings configure one TikTok pixel destination. They are decoded strictly
// from the destination's JSON settings by ParseSettings.
type Settings struct {
	// PixelCode is the pixel's code in Events Manager (event_source_id);
	// required, letters and digits.
	PixelCode string `json:"pixel_code"`
	// AccessToken is the pixel's Events API access token. Empty means
	// dry-run.
	AccessToken destinations.Secret `json:"access_token,omitempty"`
	// TestEventCode sends every event to Events Manager's Test Events tab.
	// An event's own Context.TestEventCode takes precedence.
	TestEventCode string `json:"test_event_code,omitempty"`
	// APIURL is the Business API base URL: the operator's setting. Empty:
	// Deps.APIURLs["api_url"] (TAGWAY_TIKTOK_API_URL), else
	// https://business-api.tiktok.com.
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds each request (default 5s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

var (
	pixelCodePattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	testCodePattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

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
	case s.PixelCode == "":
		errs = append(errs, errors.New("tiktok settings: pixel_code is required (Events Manager → the pixel → Settings)"))
	case !pixelCodePattern.MatchString(s.PixelCode):
		errs = append(errs, fmt.Errorf("tiktok settings: pixel_code %q must be letters and digits, like C4ABCDEFGHIJKLMNOPQR", s.PixelCode))
	}
	if s.TestEventCode != "" && !testCodePattern.MatchString(s.TestEventCode) {
		errs = append(errs, fmt.Errorf("tiktok settings: test_event_code %q must be 1 to 64 letters, digits, '_' or '-'", s.TestEventCode))
	}
	errs = append(errs, platform.CheckURL(Type, APIURLSetting, s.APIURL), platform.CheckTimeout(Type, s.Timeout))
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.AccessToken == "" }
