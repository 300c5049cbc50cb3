package ga4

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
	// DefaultAPIURL is the Measurement Protocol's host.
	DefaultAPIURL = "https://www.google-analytics.com"
	// APIURLSetting names the setting, and the Deps.APIURLs entry, of the
	// Measurement Protocol's base URL.
	APIURLSetting = "api_url"
	// DefaultTimeout bounds each request.
	DefaultTimeout = 5 * time.Second
)

// Settings configure one GA4 web data stream. They are decoded strictly by
// ParseSettings.
type Settings struct {
	// MeasurementID is the stream's measurement id, "G-" and letters and
	// digits; required.
	MeasurementID string `json:"measurement_id"`
	// APISecret is a Measurement Protocol API secret of the stream. Empty
	// means dry-run.
	APISecret destinations.Secret `json:"api_secret,omitempty"`
	// APIURL is the Measurement Protocol's base URL: the operator's
	// setting. Empty: Deps.APIURLs["api_url"] (TAGWAY_GA4_API_URL), else
	// https://www.google-analytics.com (EU collection:
	// https://region1.google-analytics.com).
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds each request (default 5s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
	// ValidateOnly sends to GA4's validation server (/debug/mp/collect):
	// nothing is recorded, and what it reports fails the events
	// permanently.
	ValidateOnly bool `json:"validate_only,omitempty"`
}

var measurementIDPattern = regexp.MustCompile(`^G-[A-Z0-9]{4,20}$`)

// ParseSettings decodes raw strictly (unknown fields are an error), applies
// the defaults and validates the result, joining every problem.
func ParseSettings(raw json.RawMessage) (Settings, error) { return parseSettings(raw, DefaultAPIURL) }

func parseSettings(raw json.RawMessage, apiURL string) (Settings, error) {
	return platform.ParseSettings("ga4", raw, func(s *Settings) {
		s.APIURL = cmp.Or(s.APIURL, apiURL)
		s.Timeout = cmp.Or(s.Timeout, destinations.Duration(DefaultTimeout))
	})
}

// Validate reports every problem with s, each naming its field. It expects
// the defaults to be applied already.
func (s Settings) Validate() error {
	var errs []error
	switch {
	case s.MeasurementID == "":
		errs = append(errs, errors.New("ga4 settings: measurement_id is required"))
	case !measurementIDPattern.MatchString(s.MeasurementID):
		errs = append(errs, fmt.Errorf("ga4 settings: measurement_id %q must look like G-XXXXXXXXXX (Admin > Data streams > the web stream)", s.MeasurementID))
	}
	errs = append(errs, platform.CheckURL("ga4", APIURLSetting, s.APIURL), platform.CheckTimeout("ga4", s.Timeout))
	if len(s.APISecret) > 200 {
		errs = append(errs, errors.New("ga4 settings: api_secret is longer than 200 bytes"))
	}
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.APISecret == "" }
