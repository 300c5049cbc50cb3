package meta

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
	DefaultGraphURL = "https://graph.facebook.com"
	// GraphURLSetting names the setting, and the Deps.APIURLs entry, of
	// the Graph API's base URL.
	GraphURLSetting     = "graph_url"
	DefaultAPIVersion   = "v24.0"
	DefaultPartnerAgent = "tagway"
	// DefaultTimeout is Meta's recommended request timeout.
	DefaultTimeout = 1500 * time.Millisecond
)

// Secret is a credential; see destinations.Secret.
type Secret = destinations.Secret

// Duration is a Go duration string in JSON; see destinations.Duration.
type Duration = destinations.Duration

// Settings configure one Meta pixel destination. They are decoded strictly
// from the destination's JSON settings by ParseSettings.
type Settings struct {
	// PixelID is the Meta pixel (dataset) id; required, digits only.
	PixelID string `json:"pixel_id"`
	// AccessToken is the Conversions API token. Empty means dry-run.
	AccessToken Secret `json:"access_token,omitempty"`
	// TestEventCode sends every event to Events Manager's Test Events tab.
	// An event's own Context.TestEventCode takes precedence.
	TestEventCode string `json:"test_event_code,omitempty"`
	// GraphURL is the Graph API base URL: the operator's setting (see
	// model.IsOperatorSetting). Empty: Deps.APIURLs["graph_url"]
	// (TAGWAY_META_GRAPH_URL), else https://graph.facebook.com.
	GraphURL string `json:"graph_url,omitempty"`
	// APIVersion is the Graph API version, vN.N (default v24.0).
	APIVersion string `json:"api_version,omitempty"`
	// PartnerAgent identifies tagway to Meta (default "tagway").
	PartnerAgent string `json:"partner_agent,omitempty"`
	// Timeout bounds each request (default 1.5s, Meta's advice).
	Timeout Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

var (
	pixelIDPattern    = regexp.MustCompile(`^[0-9]+$`)
	apiVersionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
)

// ParseSettings decodes raw strictly (unknown fields are an error), applies
// the defaults and validates the result, joining every problem.
func ParseSettings(raw json.RawMessage) (Settings, error) { return parseSettings(raw, DefaultGraphURL) }

// parseSettings is ParseSettings with graphURL as graph_url's default.
func parseSettings(raw json.RawMessage, graphURL string) (Settings, error) {
	return platform.ParseSettings("meta", raw, func(s *Settings) { s.applyDefaults(graphURL) })
}

func (s *Settings) applyDefaults(graphURL string) {
	s.GraphURL = cmp.Or(s.GraphURL, graphURL)
	s.APIVersion = cmp.Or(s.APIVersion, DefaultAPIVersion)
	s.PartnerAgent = cmp.Or(s.PartnerAgent, DefaultPartnerAgent)
	s.Timeout = cmp.Or(s.Timeout, Duration(DefaultTimeout))
}

// Validate reports every problem with s, each naming its field. It expects
// the defaults to be applied already.
func (s Settings) Validate() error {
	var errs []error
	switch {
	case s.PixelID == "":
		errs = append(errs, errors.New("meta settings: pixel_id is required"))
	case !pixelIDPattern.MatchString(s.PixelID):
		errs = append(errs, fmt.Errorf("meta settings: pixel_id %q must be digits only", s.PixelID))
	}
	errs = append(errs, platform.CheckURL("meta", GraphURLSetting, s.GraphURL))
	if !apiVersionPattern.MatchString(s.APIVersion) {
		errs = append(errs, fmt.Errorf("meta settings: api_version %q must look like v24.0", s.APIVersion))
	}
	errs = append(errs, platform.CheckTimeout("meta", s.Timeout))
	if len(s.PartnerAgent) > 100 {
		errs = append(errs, errors.New("meta settings: partner_agent is longer than 100 bytes"))
	}
	return errors.Join(errs...)
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.AccessToken == "" }
