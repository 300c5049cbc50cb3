// Package googleads delivers canonical events to Google Ads conversion
// actions through the Data Manager API (POST /v1/events:ingest): one
// destination is one Google Ads account, the conversion action each event
// name counts as, and the credentials of a service account or of an OAuth
// client with a user's refresh token.
//
// The adapter gets its access token itself, inside Deliver and within the
// call's context (no goroutine, no sleep), caches it until shortly before
// it expires, and fetches a new one when the API refuses the cached one.
// No token, refresh token, client secret or key ever reaches an error or
// a log line.
package googleads

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Type is the destination type name in the configuration.
const Type = "google_ads"

// Limits of the Data Manager API and of this adapter.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 2000
	// MaxDestinations is the most destinations (conversion actions) one
	// request may name.
	MaxDestinations = 10
	// MaxIdentifiers is the most user identifiers of one event.
	MaxIdentifiers = 10
	// MaxAge is how old a conversion may be: Google Ads' longest
	// click-through conversion window (a click older than that is no
	// longer attributed).
	MaxAge = 90 * 24 * time.Hour

	// rateLimitDelay is the least delay after RESOURCE_EXHAUSTED: the
	// quota is counted per minute.
	rateLimitDelay = time.Minute
	// dailyQuotaDelay is the least delay when the daily quota is spent.
	dailyQuotaDelay = time.Hour
	// maxHintDelay bounds a delay the API asks for.
	maxHintDelay = 24 * time.Hour
)

// Spec is the google_ads destination type.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        New,
		Secrets:    []string{"service_account_json", "refresh_token", "client_secret"},
		APIURLs:    map[string]string{APIURLSetting: "TAGWAY_GOOGLE_API_URL", TokenURLSetting: "TAGWAY_GOOGLE_TOKEN_URL"},
		AdPlatform: true,
		// The API refuses an event with neither a click id nor a user
		// identifier (NO_IDENTIFIERS_PROVIDED); an anonymous event has
		// none.
		Anonymous: false,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		Check:     Check,
		// Which events are sent is each destination's conversion_actions
		// (Adapter.EventName); the type takes any name.
		EventName: func(name string) (string, bool) { return name, name != "" },
		Hashes:    destinations.HashPhoneE164 | destinations.HashEmailGoogle,
	}
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Check reports what the API refuses that the sender controls: a currency
// that is not ISO 4217.
func Check(e *destinations.Event) *destinations.Violation {
	if cd := e.CustomData; cd != nil && cd.Currency != "" && !currencyPattern.MatchString(strings.ToUpper(cd.Currency)) {
		return &destinations.Violation{Field: "custom_data.currency", Reason: "Google Ads takes an ISO 4217 currency code (EUR)"}
	}
	return nil
}

// Adapter is the Data Manager API destination for one Google Ads account.
type Adapter struct {
	settings Settings
	endpoint string
	api      *platform.Client
	tokens   *tokenCache
}

// New builds an Adapter from its JSON settings; it has the shape of
// destinations.Factory. A nil deps.HTTP gets a default client, a nil
// deps.Logger discards, a nil deps.Now is time.Now. The client never
// follows redirects: a redirected request would carry the token or the
// credentials elsewhere.
func New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	s, err := parseSettings(settings, cmp.Or(deps.APIURLs[APIURLSetting], DefaultAPIURL),
		cmp.Or(deps.APIURLs[TokenURLSetting], DefaultTokenURL))
	if err != nil {
		return nil, err
	}
	return &Adapter{
		settings: s,
		endpoint: strings.TrimRight(s.APIURL, "/") + "/v1/events:ingest",
		api: platform.NewClient(deps, platform.Config{Type: Type, Name: "Google Ads", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(s.credentials()...), LogAttrs: []any{"operating_account_id", s.OperatingAccountID}}),
		tokens: newTokenCache(),
	}, nil
}

// MaxBatch is the most events the API takes in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is MaxAge.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is false: see Spec.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// EventName reports whether this destination sends events named name: only
// those its conversion_actions map to a conversion action. It has the
// signature of Spec.EventName, for routing to skip and count the others.
func (a *Adapter) EventName(name string) (string, bool) {
	_, ok := a.settings.ConversionActions[name]
	return name, ok
}

// eeaUKCH are the countries (ISO 3166-1 alpha-2) whose visitors' IP
// addresses Google Ads does not take for matching: the European Economic
// Area, the United Kingdom and Switzerland.
var eeaUKCH = []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
	"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "GB", "UK", "CH"}

// Deliver sends batch to the API and returns one outcome per event. Events
// the API would refuse for sure (no conversion action, no identifier, too
// old) fail alone as permanent, since one bad event makes the API refuse
// its whole request. The rest go in requests of at most MaxEvents events
// and MaxDestinations conversion actions.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	now := a.api.Now()
	var chunks []*chunk
	var cur *chunk
	for i := range batch {
		e := &batch[i]
		ev, action, err := a.toEvent(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		if cur == nil || len(cur.req.Events) == MaxEvents || !cur.fits(action) {
			cur = a.newChunk()
			chunks = append(chunks, cur)
		}
		cur.add(action, ev, i)
	}
	var tokenErr error
	for _, c := range chunks {
		var errs []error
		if tokenErr != nil {
			errs = destinations.All(len(c.indexes), tokenErr)
		} else {
			errs, tokenErr = a.send(ctx, c, batch)
		}
		for j, i := range c.indexes {
			out[i] = errs[j]
		}
	}
	return out
}

// chunk is the events of one request.
type chunk struct {
	req     ingestRequest
	refs    map[string]string // conversion action id → destination reference
	indexes []int             // in the batch
	account dmAccount
	login   *dmAccount
}

func (a *Adapter) newChunk() *chunk {
	c := &chunk{refs: map[string]string{}, account: dmAccount{AccountType: "GOOGLE_ADS", AccountID: a.settings.OperatingAccountID}}
	if a.settings.LoginAccountID != "" {
		c.login = &dmAccount{AccountType: a.settings.LoginAccountType, AccountID: a.settings.LoginAccountID}
	}
	c.req.Encoding = "HEX"
	c.req.ValidateOnly = a.settings.ValidateOnly
	return c
}

// fits reports whether an event of conversion action action fits c's
// destinations.
func (c *chunk) fits(action string) bool {
	_, ok := c.refs[action]
	return ok || len(c.refs) < MaxDestinations
}

func (c *chunk) add(action string, ev dmEvent, i int) {
	ref, ok := c.refs[action]
	if !ok {
		ref = "ca" + action
		c.refs[action] = ref
		c.req.Destinations = append(c.req.Destinations, dmDestination{Reference: ref, LoginAccount: c.login,
			OperatingAccount: c.account, ProductDestinationID: action})
	}
	ev.DestinationReferences = []string{ref}
	c.req.Events = append(c.req.Events, ev)
	c.indexes = append(c.indexes, i)
}

// send posts one request (or, in dry-run, logs and records it) and
// returns one outcome per event, and the token error that makes the
// following requests pointless, if any.
func (a *Adapter) send(ctx context.Context, c *chunk, batch []destinations.Event) ([]error, error) {
	n := len(c.indexes)
	body, err := json.Marshal(c.req)
	if err != nil {
		return destinations.All(n, destinations.PermanentError("google_ads: encode request: %v", err)), nil
	}
	if a.settings.dryRun() {
		a.api.DryRun(body, platform.IDs(c.indexes, func(i *int) string { return batch[*i].EventID }))
		return make([]error, n), nil
	}

	token, fresh, err := a.accessToken(ctx)
	if err != nil {
		a.api.Log.Warn("google_ads cannot get an access token", "events", n, "error", err.Error())
		return destinations.All(n, err), err
	}
	resp, err := a.post(ctx, body, token)
	if err == nil && resp.Status == http.StatusUnauthorized && !fresh {
		// The cached token was refused (revoked, or expired early): one
		// new token, one more try.
		a.dropToken(ctx, token)
		if token, _, err = a.accessToken(ctx); err != nil {
			a.api.Log.Warn("google_ads cannot get an access token", "events", n, "error", err.Error())
			return destinations.All(n, err), err
		}
		resp, err = a.post(ctx, body, token)
	}
	if err != nil {
		return destinations.All(n, a.api.Failed(err, n, secret(token))), nil
	}
	if resp.Status == http.StatusUnauthorized {
		a.dropToken(ctx, token)
	}
	errs := a.classify(resp.Status, resp.Header, resp.Body, n, token)
	if i := slices.IndexFunc(errs, func(e error) bool { return e != nil }); i >= 0 {
		a.api.Log.Warn("google_ads request rejected", "events", n, "error", errs[i].Error())
	} else {
		a.api.Log.Debug("google_ads request accepted", "events", n)
	}
	return errs, nil
}

// post sends body with token. A refusal whose body broke off counts as no
// answer; a success's broken body changes nothing but what can be read.
func (a *Adapter) post(ctx context.Context, body []byte, token string) (platform.Response, error) {
	resp, err := a.api.Post(ctx, a.endpoint, http.Header{"Authorization": {"Bearer " + token}}, body)
	if err == nil && resp.ReadErr != nil && resp.Status/100 != 2 {
		err = resp.ReadErr
	}
	return resp, err
}

// secret is an access token to redact, or none when too short to matter.
func secret(token string) string {
	if len(token) < minSecret {
		return ""
	}
	return token
}

// redact clears s of every credential: the settings' and the access token
// given.
func (a *Adapter) redact(s, token string) string { return a.api.Redact(s, secret(token)) }

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
