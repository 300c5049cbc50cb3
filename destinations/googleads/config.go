package googleads

import (
	"cmp"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Defaults applied to Settings fields left empty.
const (
	// DefaultAPIURL is the Data Manager API's host.
	DefaultAPIURL = "https://datamanager.googleapis.com"
	// DefaultTokenURL is Google's OAuth 2.0 token endpoint.
	DefaultTokenURL = "https://oauth2.googleapis.com/token"
	// APIURLSetting and TokenURLSetting name the settings, and the
	// Deps.APIURLs entries, of the API's and the token endpoint's URLs.
	APIURLSetting   = "api_url"
	TokenURLSetting = "token_url"
	// DefaultTimeout bounds each request, and each token fetch.
	DefaultTimeout = 10 * time.Second
	// Scope is the OAuth scope of the Data Manager API.
	Scope = "https://www.googleapis.com/auth/datamanager"
)

// Account types of a login account (Destination.login_account).
var loginAccountTypes = []string{"GOOGLE_ADS", "DATA_PARTNER", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER"}

// Settings configure one Google Ads account's conversion actions. They are
// decoded strictly by ParseSettings.
type Settings struct {
	// OperatingAccountID is the Google Ads customer id the conversions
	// go to, 10 digits ("123-456-7890" is read as "1234567890").
	OperatingAccountID string `json:"operating_account_id"`
	// LoginAccountID is the account the credentials act as when it is
	// not the operating account: a manager account of it, or a data
	// partner. Optional.
	LoginAccountID string `json:"login_account_id,omitempty"`
	// LoginAccountType is the login account's type: GOOGLE_ADS (the
	// default), DATA_PARTNER, DISPLAY_VIDEO_PARTNER or
	// DISPLAY_VIDEO_ADVERTISER.
	LoginAccountType string `json:"login_account_type,omitempty"`
	// ConversionActions maps an event name (a canonical one, "Purchase",
	// or one a route's event_map gives) to the id of the conversion
	// action it counts as. Other events are not sent.
	ConversionActions map[string]string `json:"conversion_actions"`

	// ServiceAccountJSON is a service account's JSON key file, its whole
	// text. Alternatively RefreshToken, ClientID and ClientSecret: an
	// OAuth client's refresh token for a user with access to the
	// account. Neither: dry-run.
	ServiceAccountJSON destinations.Secret `json:"service_account_json,omitempty"`
	RefreshToken       destinations.Secret `json:"refresh_token,omitempty"`
	ClientID           string              `json:"client_id,omitempty"`
	ClientSecret       destinations.Secret `json:"client_secret,omitempty"`

	// APIURL and TokenURL are the operator's settings. Empty:
	// Deps.APIURLs (TAGWAY_GOOGLE_API_URL, TAGWAY_GOOGLE_TOKEN_URL),
	// else Google's hosts.
	APIURL   string `json:"api_url,omitempty"`
	TokenURL string `json:"token_url,omitempty"`
	// Timeout bounds each request and each token fetch (default 10s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// DryRun logs and records the requests instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
	// ValidateOnly asks the API to validate the requests without
	// ingesting them (validateOnly).
	ValidateOnly bool `json:"validate_only,omitempty"`
}

// serviceAccount is what the adapter reads of a service account key.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
}

var idPattern = regexp.MustCompile(`^[0-9]{1,20}$`)

// accountID reads a Google Ads customer id, with or without its dashes.
func accountID(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "-", "") }

// ParseSettings decodes raw strictly (unknown fields are an error), applies
// the defaults and validates the result, joining every problem. No error
// shows a secret.
func ParseSettings(raw json.RawMessage) (Settings, error) {
	return parseSettings(raw, DefaultAPIURL, DefaultTokenURL)
}

func parseSettings(raw json.RawMessage, apiURL, tokenURL string) (Settings, error) {
	return platform.ParseSettings(Type, raw, func(s *Settings) {
		s.OperatingAccountID = accountID(s.OperatingAccountID)
		s.LoginAccountID = accountID(s.LoginAccountID)
		if s.LoginAccountID != "" && s.LoginAccountType == "" {
			s.LoginAccountType = "GOOGLE_ADS"
		}
		s.APIURL = cmp.Or(s.APIURL, apiURL)
		s.TokenURL = cmp.Or(s.TokenURL, tokenURL)
		s.Timeout = cmp.Or(s.Timeout, destinations.Duration(DefaultTimeout))
	})
}

// Validate reports every problem with s, each naming its field and none
// showing a secret. It expects the defaults to be applied already.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("google_ads settings: "+format, args...))
	}
	switch {
	case s.OperatingAccountID == "":
		bad("operating_account_id is required (the Google Ads customer id, 123-456-7890)")
	case !idPattern.MatchString(s.OperatingAccountID):
		bad("operating_account_id %q must be a Google Ads customer id (digits, dashes allowed)", s.OperatingAccountID)
	}
	if s.LoginAccountID != "" && !idPattern.MatchString(s.LoginAccountID) {
		bad("login_account_id %q must be digits (dashes allowed)", s.LoginAccountID)
	}
	if s.LoginAccountType != "" && (s.LoginAccountID == "" || !slices.Contains(loginAccountTypes, s.LoginAccountType)) {
		bad("login_account_type %q needs a login_account_id and must be one of %v", s.LoginAccountType, loginAccountTypes)
	}
	if len(s.ConversionActions) == 0 {
		bad("conversion_actions is required: event name → conversion action id ({\"Purchase\": \"123456789\"})")
	}
	for _, name := range slices.Sorted(maps.Keys(s.ConversionActions)) {
		id := s.ConversionActions[name]
		if strings.TrimSpace(name) == "" || len(name) > 100 {
			bad("conversion_actions: event name %q must be 1 to 100 characters", name)
		}
		if !idPattern.MatchString(id) {
			bad("conversion_actions[%q]: %q must be a conversion action id (digits)", name, id)
		}
	}
	sa, refresh := s.ServiceAccountJSON != "", s.RefreshToken != ""
	switch {
	case sa && (refresh || s.ClientID != "" || s.ClientSecret != ""):
		bad("give service_account_json or refresh_token with client_id and client_secret, not both")
	case sa:
		if _, err := s.serviceAccount(); err != nil {
			errs = append(errs, err)
		}
	case refresh || s.ClientID != "" || s.ClientSecret != "":
		if !refresh || s.ClientID == "" || s.ClientSecret == "" {
			bad("refresh_token, client_id and client_secret go together")
		}
	}
	errs = append(errs, platform.CheckURL(Type, APIURLSetting, s.APIURL), platform.CheckURL(Type, TokenURLSetting, s.TokenURL),
		platform.CheckTimeout(Type, s.Timeout))
	return errors.Join(errs...)
}

// serviceAccount reads and checks the service account key. Its errors
// name what is wrong, never the key's content.
func (s Settings) serviceAccount() (serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal([]byte(s.ServiceAccountJSON), &sa); err != nil {
		return sa, errors.New("google_ads settings: service_account_json is not a JSON key file (IAM > Service accounts > Keys > Add key > JSON)")
	}
	switch {
	case sa.Type != "service_account":
		return sa, errors.New(`google_ads settings: service_account_json: "type" must be "service_account"`)
	case !strings.Contains(sa.ClientEmail, "@"):
		return sa, errors.New("google_ads settings: service_account_json: client_email is missing")
	}
	if _, err := parseRSAKey(sa.PrivateKey); err != nil {
		return sa, fmt.Errorf("google_ads settings: service_account_json: private_key: %w", err)
	}
	return sa, nil
}

// parseRSAKey reads a PEM RSA private key, PKCS #8 or PKCS #1.
func parseRSAKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("not an RSA key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("cannot be parsed")
}

// auth says how the adapter gets its access token.
type auth int

const (
	authNone auth = iota
	authServiceAccount
	authRefreshToken
)

func (s Settings) auth() auth {
	switch {
	case s.ServiceAccountJSON != "":
		return authServiceAccount
	case s.RefreshToken != "":
		return authRefreshToken
	}
	return authNone
}

// minSecret is the length from which a credential is redacted: shorter
// ones would blank common words of messages and protect nothing.
const minSecret = 4

// credentials lists what of s must never be shown, for the Redactor: the
// secrets, and each line of the service account's private key.
func (s Settings) credentials() []string {
	var out []string
	for _, sec := range []destinations.Secret{s.RefreshToken, s.ClientSecret, s.ServiceAccountJSON} {
		if len(sec) >= minSecret {
			out = append(out, string(sec))
		}
	}
	if s.ServiceAccountJSON != "" {
		if k, err := s.serviceAccount(); err == nil {
			for _, line := range strings.Split(k.PrivateKey, "\n") {
				if len(line) >= 16 {
					out = append(out, line)
				}
			}
		}
	}
	return out
}

// dryRun reports whether requests are logged instead of sent.
func (s Settings) dryRun() bool { return s.DryRun || s.auth() == authNone }
