package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Tenant is an agency: it owns sites, and its API keys see only them.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// RetiringKey is a replaced ingest key, still valid until Until so that the
// store's back end can switch keys without losing events.
type RetiringKey struct {
	Hash  string    `json:"hash"`
	Until time.Time `json:"until"`
}

// CookieSettings tune the first-party cookies of a site.
type CookieSettings struct {
	// MaxAgeDays is the lifetime of the visitor's cookies the gateway sets
	// (_fbp, _fbc, _tw_vid) and the cap of its click-id cookies (90 days
	// otherwise): 1 to 400; default 400, the browsers' maximum.
	MaxAgeDays int `json:"max_age_days,omitempty"`
}

// RegionRule is a privacy rule for visitors from some regions. The visitor's
// region is what the gateway recorded on the event (Context.Country and
// Context.Region, from a trusted header such as CF-IPCountry).
type RegionRule struct {
	// Name labels the rule in metrics and logs ("eea-no-ip").
	Name string `json:"name,omitempty"`
	// Regions the rule applies to: ISO 3166-1 alpha-2 countries ("DE"),
	// subdivisions ("US-CA"), "EEA" (the EU, Iceland, Liechtenstein and
	// Norway), "unknown" (no country recorded) or "*" (every visitor).
	Regions []string `json:"regions"`
	// Consent lists purposes that must also be granted in these regions.
	Consent []string `json:"consent,omitempty"`
	// Withhold sends nothing for these visitors.
	Withhold bool `json:"withhold,omitempty"`
	// Drop removes user_data fields ("client_ip_address", "em"...).
	Drop []string `json:"drop,omitempty"`
	// LimitedDataUse flags events for Meta's Limited Data Use
	// (data_processing_options ["LDU"]; country 1 and state 1000 for
	// US-CA visitors, 0 and 0 — Meta geolocates — for the others).
	LimitedDataUse bool `json:"limited_data_use,omitempty"`
}

// RouteOverrides set fields of every event a route carries.
type RouteOverrides struct {
	// ActionSource replaces action_source ("website", "physical_store"...).
	ActionSource string `json:"action_source,omitempty"`
	// CustomData sets custom_data properties ("currency": "EUR").
	CustomData map[string]json.RawMessage `json:"custom_data,omitempty"`
}

// API key roles, from the most to the least powerful.
const (
	RoleAdmin  = "admin"  // everything in its tenant, keys included
	RoleEditor = "editor" // sites, destinations and routes of its tenant
	RoleViewer = "viewer" // read only
)

// APIKey is a tenant's key to the admin API. Only the SHA-256 digest of the
// secret is kept; the secret is shown once, when the key is created.
type APIKey struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Role      string    `json:"role"`
	Name      string    `json:"name,omitempty"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

// reservedKeyIDs name the operator's actors in the audit log (the root
// token, the config file): no API key may take them.
var reservedKeyIDs = []string{"root", "config"}

// ReservedKeyID reports whether id names an operator actor, which no API
// key may take.
func ReservedKeyID(id string) bool { return slices.Contains(reservedKeyIDs, id) }

// Validate reports every problem with k.
func (k APIKey) Validate() error {
	var errs []string
	if !ValidID(k.ID) {
		errs = append(errs, fmt.Sprintf("id: %q is not a valid id", k.ID))
	}
	if !ValidID(k.Tenant) {
		errs = append(errs, "tenant: required")
	}
	switch k.Role {
	case RoleAdmin, RoleEditor, RoleViewer:
	default:
		errs = append(errs, fmt.Sprintf("role: %q is not admin, editor or viewer", k.Role))
	}
	if len(k.Name) > 200 {
		errs = append(errs, "name: longer than 200 characters")
	}
	if b, err := hex.DecodeString(k.Hash); err != nil || len(b) != sha256.Size {
		errs = append(errs, "hash: not a hex SHA-256 digest")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// SecretFields names, per destination type, the settings that are secrets:
// encrypted at rest, never returned, never logged. Whatever the registry
// says, a setting named by convention as a secret (*_token, *_secret,
// *api_key, password, token, secret) is one too.
type SecretFields map[string][]string

// IsSecret reports whether field of a destination of type destType is secret.
func (f SecretFields) IsSecret(destType, field string) bool {
	if slices.Contains(f[destType], field) {
		return true
	}
	l := strings.ToLower(field)
	for _, suffix := range []string{"_token", "_secret", "api_key", "password"} {
		if strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return l == "token" || l == "secret"
}

// IsOperatorSetting reports whether a destination setting is the
// operator's alone: the base URL of a platform's API (any setting named
// *_url: Meta's graph_url, an api_url, a token_url). The operator sets it
// in the environment (TAGWAY_META_GRAPH_URL...) or in the config file and
// apply of the root token; a tenant's key can neither set nor change it,
// since a URL of its choosing would receive the destination's secrets and
// turn the gateway into a probe of internal addresses. An adapter names
// such a setting *_url to be covered.
func IsOperatorSetting(field string) bool { return strings.HasSuffix(strings.ToLower(field), "_url") }

// IsTargetSetting reports whether a destination setting says where the
// destination sends: an operator setting, or "url" (a webhook's own
// target). A change of one drops the destination's stored secrets unless
// the same write gives them again.
func IsTargetSetting(field string) bool {
	return strings.EqualFold(field, "url") || IsOperatorSetting(field)
}

// Consent purposes a route or region rule may require, in Google Consent
// Mode v2 words; ConsentNone alone means none.
var consentPurposes = []string{"ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"}

// ConsentNone in Route.Consent means the route needs no consent.
const ConsentNone = "none"

// EEA lists the countries of the European Economic Area (ISO 3166-1).
var eea = []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
	"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"}

// InEEA reports whether country (ISO 3166-1 alpha-2) is in the EEA.
func InEEA(country string) bool { return slices.Contains(eea, strings.ToUpper(country)) }

// Region patterns of RegionRule.Regions.
var (
	countryPattern     = regexp.MustCompile(`^[A-Z]{2}$`)
	subdivisionPattern = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
)

// Matches reports whether the rule applies to a visitor from country
// (alpha-2, "" when unknown) and region (subdivision code without the
// country, "CA").
func (r RegionRule) Matches(country, region string) bool {
	country, region = strings.ToUpper(country), strings.ToUpper(region)
	for _, p := range r.Regions {
		switch {
		case p == "*":
			return true
		case p == "unknown":
			if country == "" {
				return true
			}
		case p == "EEA":
			if InEEA(country) {
				return true
			}
		case strings.Contains(p, "-"):
			if country != "" && region != "" && p == country+"-"+region {
				return true
			}
		case country != "" && p == country:
			return true
		}
	}
	return false
}

// droppableUserData are the user_data fields a region rule may drop.
var droppableUserData = []string{"client_ip_address", "client_user_agent", "fbc", "fbp",
	"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// actionSourceValues are Meta's accepted action_source values.
var actionSourceValues = []string{"email", "website", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other"}

// maxTestEventCodeLen bounds a route's test_event_code.
const maxTestEventCodeLen = 100

func validateRegionRules(p string, rules []RegionRule) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, r := range rules {
		rp := fmt.Sprintf("%s.region_rules[%d]", p, i)
		if r.Name != "" && !ValidID(r.Name) {
			add("%s.name: %q is not a valid name (lowercase letters, digits, - and _)", rp, r.Name)
		}
		if len(r.Regions) == 0 {
			add("%s.regions: at least one region is required", rp)
		}
		for j, g := range r.Regions {
			if g != "*" && g != "unknown" && g != "EEA" && !countryPattern.MatchString(g) && !subdivisionPattern.MatchString(g) {
				add("%s.regions[%d]: %q is not a country (DE), subdivision (US-CA), EEA, unknown or *", rp, j, g)
			}
		}
		errs = append(errs, validatePurposes(rp+".consent", r.Consent, false)...)
		for j, d := range r.Drop {
			if !slices.Contains(droppableUserData, d) {
				add("%s.drop[%d]: %q is not a user_data field (%s)", rp, j, d, strings.Join(droppableUserData, ", "))
			}
		}
		if !r.Withhold && !r.LimitedDataUse && len(r.Drop) == 0 && len(r.Consent) == 0 {
			add("%s: the rule does nothing (set withhold, drop, consent or limited_data_use)", rp)
		}
	}
	return errs
}

func validatePurposes(p string, purposes []string, noneAllowed bool) []error {
	var errs []error
	for j, c := range purposes {
		switch {
		case c == ConsentNone && noneAllowed && len(purposes) == 1:
		case slices.Contains(consentPurposes, c):
		default:
			hint := strings.Join(consentPurposes, ", ")
			if noneAllowed {
				hint += `, or "none" alone`
			}
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a consent purpose (%s)", p, j, c, hint))
		}
	}
	return errs
}

// validateTenancy checks what the multi-tenant model adds: tenants, site
// ownership and domains, ingest key rotation, cookies, privacy rules and the
// richer routes.
func (c Config) validateTenancy() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	tenants := map[string]bool{}
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		switch {
		case !ValidID(t.ID):
			add("%s.id: %q is not a valid id (lowercase letters, digits, - and _, up to 63)", p, t.ID)
		case tenants[t.ID]:
			add("%s.id: duplicate tenant %q", p, t.ID)
		}
		tenants[t.ID] = true
		if len(t.Name) > 200 {
			add("%s.name: longer than 200 characters", p)
		}
	}
	for i, s := range c.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		if s.Tenant != "" && !tenants[s.Tenant] {
			add("%s.tenant: unknown tenant %q", p, s.Tenant)
		}
		for j, k := range s.RetiringIngestKeys {
			if b, err := hex.DecodeString(k.Hash); err != nil || len(b) != sha256.Size {
				add("%s.retiring_ingest_keys[%d].hash: not a hex SHA-256 digest", p, j)
			}
			if k.Until.IsZero() {
				add("%s.retiring_ingest_keys[%d].until: required", p, j)
			}
		}
		if s.Cookies != nil && (s.Cookies.MaxAgeDays < 0 || s.Cookies.MaxAgeDays > 400) {
			add("%s.cookies.max_age_days: %d is not between 1 and 400", p, s.Cookies.MaxAgeDays)
		}
		errs = append(errs, validateRegionRules(p, s.RegionRules)...)
		// A site may not claim a domain of another tenant's site: the most
		// specific domain wins, so that would divert the other's events.
		// The error names only this site's own domain.
		for k := i + 1; k < len(c.Sites); k++ {
			o := c.Sites[k]
			if o.Tenant == s.Tenant {
				continue
			}
			for j, d := range s.Domains {
				d = normDomain(d)
				for _, od := range o.Domains {
					od = normDomain(od)
					if d == od || strings.HasSuffix(d, "."+od) || strings.HasSuffix(od, "."+d) {
						add("%s.domains[%d]: %q overlaps a domain of another tenant's site", p, j, d)
					}
				}
			}
		}
	}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if len(r.EventMap) > 100 {
			add("%s.event_map: more than 100 entries", p)
		}
		for from, to := range r.EventMap {
			if !validEventName(from) || !validEventName(to) {
				add("%s.event_map.%s: names must be 1 to 100 letters, digits, '_', '-', '.' or spaces", p, from)
			}
		}
		if o := r.Overrides; o != nil {
			if o.ActionSource != "" && !slices.Contains(actionSourceValues, o.ActionSource) {
				add("%s.overrides.action_source: %q is not one of %s", p, o.ActionSource, strings.Join(actionSourceValues, ", "))
			}
			for k, v := range o.CustomData {
				if !validEventName(k) || strings.Contains(k, " ") {
					add("%s.overrides.custom_data: %q is not a property name", p, k)
				}
				if !json.Valid(v) {
					add("%s.overrides.custom_data.%s: not a JSON value", p, k)
				}
			}
		}
		if len(r.TestEventCode) > maxTestEventCodeLen {
			add("%s.test_event_code: longer than %d characters", p, maxTestEventCodeLen)
		}
		if r.TestEventCode != "" && !r.TestMode {
			add("%s.test_event_code: set test_mode: true to use it", p)
		}
		errs = append(errs, validatePurposes(p+".consent", r.Consent, true)...)
		errs = append(errs, validateRegionRules(p, r.RegionRules)...)
	}
	return errs
}

// ValidateClaims reports the problems of what the sites changed (for which
// changed returns true) claim that could take something from another
// site: a domain that is a public suffix (it would cover every site below
// it), an IP address or single-label domain on a tenant's site (only the
// operator's own sites, such as the quick start's localhost, may use
// them), and an ingest key (its digest) another site holds (it would
// authenticate for either). A problem is reported on the changed site,
// naming only its own field: nothing of the other site. Sites stored
// before these rules are not refused until they change.
func (c Config) ValidateClaims(changed func(siteID string) bool) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	owners := map[string][]int{} // digest → indexes of the sites holding it
	digestsOf := func(s Site) (digests, fields []string) {
		for j, k := range s.IngestKeys {
			digests, fields = append(digests, HashKey(k)), append(fields, fmt.Sprintf("ingest_keys[%d]", j))
		}
		for j, h := range s.IngestKeyHashes {
			digests, fields = append(digests, h), append(fields, fmt.Sprintf("ingest_key_hashes[%d]", j))
		}
		for j, k := range s.RetiringIngestKeys {
			digests, fields = append(digests, k.Hash), append(fields, fmt.Sprintf("retiring_ingest_keys[%d]", j))
		}
		return digests, fields
	}
	for i, s := range c.Sites {
		digests, _ := digestsOf(s)
		for _, h := range digests {
			if !slices.Contains(owners[h], i) {
				owners[h] = append(owners[h], i)
			}
		}
	}
	for i, s := range c.Sites {
		if !changed(s.ID) {
			continue
		}
		p := fmt.Sprintf("sites[%d]", i)
		for j, d := range s.Domains {
			switch {
			case isPublicSuffix(d):
				add("%s.domains[%d]: %q is a public suffix, shared by unrelated sites; name the store's own domain (shop.example)", p, j, d)
			case s.Tenant != "" && !registrable(d):
				add("%s.domains[%d]: %q is an IP address or a single-label name; a tenant's site needs a domain name (shop.example)", p, j, d)
			}
		}
		digests, fields := digestsOf(s)
		for j, h := range digests {
			if len(owners[h]) > 1 {
				add("%s.%s: this ingest key cannot be used; mint a new one (POST /admin/v1/sites/{id}/ingest-keys)", p, fields[j])
			}
		}
	}
	return errors.Join(errs...)
}

var eventNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.\- ]{1,100}$`)

func validEventName(s string) bool { return eventNamePattern.MatchString(s) }

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
