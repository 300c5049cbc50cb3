package pinterest

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
	// DefaultAPIURL is the base URL of Pinterest's REST API.
	DefaultAPIURL = "https://api.pinterest.com"
	// APIURLSetting names the setting, and the Deps.APIURLs entry, of the
	// API's base URL.
	APIURLSetting = "api_url"
	// APIURLEnv is the environment variable the operator sets it with.
	APIURLEnv = "TAGWAY_PINTEREST_API_URL"
	// DefaultTimeout bounds each request.
	DefaultTimeout = 5 * time.Second
)

// Settings configure one Pinterest ad account destination. They are decoded
// strictly from the destination's JSON settings by ParseSettings.
type Settings struct {
	// AdAccountID is the Pinterest ad account id (digits, at most 18):
	// the {ad_account_id} of the events endpoint. Required.
	AdAccountID string `json:"ad_account_id"`
	// AccessToken is the conversion access token generated in Ads Manager
	// (or an OAuth token with ads:write). Empty means dry-run.
	AccessToken destinations.Secret `json:"access_token,omitempty"`
	// Test marks every request ?test=true: Pinterest validates the events
	// and answers as usual but records nothing. An event's own
	// Context.TestEventCode marks its request too.
	Test bool `json:"test,omitempty"`
	// APIURL is the API base URL: the operator's setting (every *_url
	// setting is). Empty: Deps.APIURLs["api_url"]
	// (TAGWAY_PINTEREST_API_URL), else https://api.pinterest.com.
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds each request (default 5s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

// adAccountPattern is Pinterest's documented form of an ad account id.
var adAccountPattern = regexp.MustCompile(`^[0-9]{1,18}$`)

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
	case s.AdAccountID == "":
		errs = append(errs, errors.New("pinterest settings: ad_account_id is required"))
	case !adAccountPattern.MatchString(s.AdAccountID):
		errs = append(errs, fmt.Errorf("pinterest settings: ad_account_id %q must be 1 to 18 digits", s.AdAccountID))
	}
	errs = append(errs, platform.CheckURL(Type, APIURLSetting, s.APIURL), platform.CheckTimeout(Type, s.Timeout))
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.AccessToken == "" }
