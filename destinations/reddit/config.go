package reddit

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

// Defaults applied to Settings fields left empty.
const (
	// DefaultAPIURL is the base URL of Reddit's Ads API.
	DefaultAPIURL = "https://ads-api.reddit.com"
	// APIURLSetting names the setting, and the Deps.APIURLs entry, of the
	// API's base URL.
	APIURLSetting = "api_url"
	// APIURLEnv is the environment variable the operator sets it with.
	APIURLEnv = "TAGWAY_REDDIT_API_URL"
	// DefaultTimeout bounds each request.
	DefaultTimeout = 5 * time.Second
)

// Settings configure one Reddit pixel destination. They are decoded
// strictly from the destination's JSON settings by ParseSettings.
type Settings struct {
	// PixelID is the Reddit pixel id from Events Manager ("a2_…", the ad
	// account's pixel): the {pixel_id} of the endpoint. Required.
	PixelID string `json:"pixel_id"`
	// AccessToken is the conversion access token generated in Events
	// Manager. Empty means dry-run.
	AccessToken destinations.Secret `json:"access_token,omitempty"`
	// TestID is the id of an Event Testing session (Events Manager): set,
	// every event goes to that session instead of the pixel's data. It
	// also serves the events that carry a test event code.
	TestID string `json:"test_id,omitempty"`
	// APIURL is the API base URL: the operator's setting (every *_url
	// setting is). Empty: Deps.APIURLs["api_url"] (TAGWAY_REDDIT_API_URL),
	// else https://ads-api.reddit.com.
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds each request (default 5s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

var (
	// pixelPattern bounds a pixel id to what can stand in a URL path as is.
	pixelPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// testIDPattern bounds a test id likewise.
	testIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
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
	case s.PixelID == "":
		errs = append(errs, errors.New("reddit settings: pixel_id is required"))
	case !pixelPattern.MatchString(s.PixelID):
		errs = append(errs, fmt.Errorf("reddit settings: pixel_id %q must be 1 to 64 letters, digits, _ or -", s.PixelID))
	}
	if s.TestID != "" && !testIDPattern.MatchString(s.TestID) {
		errs = append(errs, fmt.Errorf("reddit settings: test_id %q must be 1 to 128 letters, digits, _ . : or -", s.TestID))
	}
	errs = append(errs, platform.CheckURL(Type, APIURLSetting, s.APIURL), platform.CheckTimeout(Type, s.Timeout))
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.AccessToken == "" }
