// Package pinterest delivers canonical events to Pinterest's Conversions
// API (v5): one destination is one ad account and its conversion access
// token.
//
// Events go out as a JSON body posted to
// {api_url}/v5/ad_accounts/{ad_account_id}/events with the token in the
// Authorization header (Bearer), in requests of at most 1,000 events.
// Pinterest reports an outcome per event (200, or 422 when some failed), so
// each event gets its own; a request it refuses whole (400, 401, 403, 429,
// 503) gives every event of it the same outcome, classified by status and
// Pinterest's error code.
package pinterest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Type is the destination type name in the configuration.
const Type = "pinterest"

// Limits of the Conversions API and of this adapter.
const (
	// MaxEvents is the most events Pinterest accepts in one request.
	MaxEvents = 1000
	// MaxAge is how old an event may be when Pinterest gets it.
	MaxAge = 7 * 24 * time.Hour

	// maxMessageBytes caps a platform message kept in an error.
	maxMessageBytes = 300

	// rateLimitDelay is the least delay after a rate limit (Pinterest
	// counts calls per minute).
	rateLimitDelay = time.Minute
	// rampedDownDelay is the least delay after code 4197 (the endpoint
	// takes no traffic for now).
	rampedDownDelay = 5 * time.Minute
)

// Pinterest's error codes the adapter tells apart.
const (
	codeAuthFailed       = 2    // 401 Authentication failed; also "AdAccount not found"
	codeNoPermission     = 3    // the token lacks a scope
	codeRateLimited      = 8    // 429
	codeNotPermitted     = 29   // 403 no access to the ad account
	codeDisapproved      = 2625 // the account is disapproved
	codeUnderReview      = 2626 // the account is under review
	codeInvalidRequest   = 4196 // 400
	codeEndpointRampDown = 4197 // 503
)

// Adapter is the Pinterest Conversions API destination for one ad account.
type Adapter struct {
	settings Settings
	endpoint string
	header   http.Header
	api      *platform.Client
}

// New builds an Adapter from its JSON settings; it has the shape of
// destinations.Factory. A nil deps.HTTP gets a default client, a nil
// deps.Logger discards, a nil deps.Now is time.Now. The client never follows
// redirects: a redirected POST would carry the token elsewhere.
func New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	s, err := parseSettings(settings, cmp.Or(deps.APIURLs[APIURLSetting], DefaultAPIURL))
	if err != nil {
		return nil, err
	}
	return &Adapter{
		settings: s,
		endpoint: strings.TrimRight(s.APIURL, "/") + "/v5/ad_accounts/" + s.AdAccountID + "/events",
		header:   http.Header{"Accept": {"application/json"}, "Authorization": {"Bearer " + string(s.AccessToken)}},
		api: platform.NewClient(deps, platform.Config{Type: Type, Name: "Pinterest", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(string(s.AccessToken)), LogAttrs: []any{"ad_account_id", s.AdAccountID},
			SnippetBytes: maxMessageBytes}),
	}, nil
}

// Spec describes the pinterest destination type to the registry.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        New,
		Secrets:    []string{"access_token"},
		APIURLs:    map[string]string{APIURLSetting: APIURLEnv},
		AdPlatform: true,
		// Pinterest needs an e-mail, a mobile ad id, or the IP address
		// with the user agent; an anonymous event keeps only the user agent.
		Anonymous: false,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		Check:     Check,
		EventName: EventName,
		// Pinterest normalizes e-mails and phones as Meta does (phone:
		// digits with the country code, no "+"): Meta's digests serve.
		Hashes: 0,
	}
}

// MaxBatch is the most events Pinterest accepts in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is Pinterest's age limit, the same for every event.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is false: an anonymous event keeps only the user agent,
// which is not enough customer information for Pinterest.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// requestBody is the JSON body of POST /v5/ad_accounts/{id}/events.
type requestBody struct {
	Data []wireEvent `json:"data"`
}

// Deliver sends batch to Pinterest and returns one outcome per event.
// Events Pinterest would certainly refuse fail on their own as permanent;
// the rest go in requests of at most MaxEvents, test events (the test
// setting, or an event's test event code) apart, marked ?test=true.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[bool, wireEvent](MaxEvents, len(batch))
	now := a.api.Now()
	for i := range batch {
		e := &batch[i]
		w, err := a.prepare(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		groups.Add(a.settings.Test || e.Context.TestEventCode != "", i, w)
	}
	for _, g := range groups.All() {
		g.SetEach(out, a.send(ctx, g.Events, g.Key))
	}
	return out
}

// prepare maps e, or fails it as permanent when Pinterest would refuse it
// for sure: no event Pinterest knows by its name, no time, past the age
// limit, or breaking a rule of Check.
func (a *Adapter) prepare(e *destinations.Event, now time.Time) (wireEvent, error) {
	name, ok := EventName(e.EventName)
	if !ok {
		return wireEvent{}, destinations.PermanentError("pinterest: no Pinterest event for %q (map it in the route's event_map)", e.EventName)
	}
	if err := a.api.CheckTime(e, now, MaxAge); err != nil {
		return wireEvent{}, err
	}
	if v := Check(e); v != nil {
		return wireEvent{}, destinations.PermanentError("pinterest: event %q: %s", e.EventID, v)
	}
	source, _ := actionSource(e) // Check vouched for it
	return toWire(e, name, source), nil
}

// send posts one request (or, in dry-run, logs and records it) and returns
// the outcome of each of its events.
func (a *Adapter) send(ctx context.Context, events []wireEvent, test bool) []error {
	b, err := json.Marshal(requestBody{Data: events})
	if err != nil {
		return destinations.All(len(events), destinations.PermanentError("pinterest: encode request: %v", err))
	}
	if a.settings.dryRun() {
		// The body holds no token.
		a.api.DryRun(b, platform.IDs(events, func(e *wireEvent) string { return e.EventID }), "test", test)
		return make([]error, len(events))
	}

	target := a.endpoint
	if test {
		target += "?test=true"
	}
	resp, err := a.api.Post(ctx, target, a.header, b)
	if err != nil {
		return destinations.All(len(events), a.api.Failed(err, len(events)))
	}
	if err := a.api.ReadFailure(resp); err != nil {
		return destinations.All(len(events), err)
	}
	errs := a.classify(resp.Status, resp.Header, resp.Body, len(events))
	if failed, first := platform.Failures(errs); failed > 0 {
		a.api.Log.Warn("pinterest events rejected", "events", len(events), "failed", failed, "error", first.Error())
	} else {
		a.api.Log.Debug("pinterest request accepted", "events", len(events))
	}
	return errs
}

// apiResponse is ConversionApiResponse: counts and one entry per event, in
// request order.
type apiResponse struct {
	NumEventsReceived  *int `json:"num_events_received"`
	NumEventsProcessed *int `json:"num_events_processed"`
	Events             []struct {
		Status         string `json:"status"`
		ErrorMessage   string `json:"error_message"`
		WarningMessage string `json:"warning_message"`
	} `json:"events"`
}

// apiError is Pinterest's Error and DetailedError: a code, a message and,
// for 422, details.
type apiError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details"`
}

// classify turns one response into the outcome of each of the n events it
// carried: nil, or a *destinations.Error free of the token.
func (a *Adapter) classify(status int, header http.Header, body []byte, n int) []error {
	if status/100 == 2 {
		var r apiResponse
		if err := json.Unmarshal(body, &r); err != nil || r.NumEventsReceived == nil {
			// Pinterest deduplicates web events by event_id: a resend of
			// what it may have taken is harmless.
			return destinations.All(n, &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: "pinterest: success response without num_events_received"})
		}
		return a.perEvent(status, &r, n)
	}

	var ae apiError
	parsed := json.Unmarshal(body, &ae) == nil && (ae.Code != 0 || ae.Message != "")
	if status == http.StatusUnprocessableEntity && parsed {
		// Not all events were processed: the details say which.
		var r apiResponse
		if json.Unmarshal(ae.Details, &r) == nil && len(r.Events) == n {
			return a.perEvent(status, &r, n)
		}
	}
	e := &destinations.Error{Status: status}
	if parsed {
		e.Code = strconv.Itoa(ae.Code)
		e.Message = "pinterest: " + a.api.Snippet(ae.Message)
	} else {
		e.Message = a.api.StatusMessage(status, body)
	}
	retryAfter := destinations.RetryAfter(header, a.api.Now())
	switch {
	case status == http.StatusTooManyRequests || (parsed && ae.Code == codeRateLimited):
		e.Kind, e.RetryAfter = destinations.Retryable, max(rateLimitDelay, retryAfter)
	case parsed && ae.Code == codeEndpointRampDown:
		e.Kind, e.RetryAfter = destinations.Retryable, max(rampedDownDelay, retryAfter)
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound,
		parsed && status/100 == 4 && (ae.Code == codeAuthFailed || ae.Code == codeNoPermission ||
			ae.Code == codeNotPermitted || ae.Code == codeDisapproved || ae.Code == codeUnderReview):
		// A bad or revoked token, an ad account the token cannot reach or
		// that does not exist, an account under review: the destination's
		// configuration, not the events. Pause rather than dead-letter.
		e.Kind = destinations.Paused
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		// Pinterest refuses a whole request for one bad event without
		// saying which: the queue splits a multi-event request to find it.
		e.Kind = destinations.Permanent
		e.WholeBatch = n > 1
	default:
		de := a.api.ByStatus(status, header, e.Message)
		e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
	}
	return destinations.All(n, e)
}

// perEvent reads the per-event statuses of a response to n events.
func (a *Adapter) perEvent(status int, r *apiResponse, n int) []error {
	if len(r.Events) != n {
		if r.NumEventsProcessed != nil && *r.NumEventsProcessed == n {
			return make([]error, n)
		}
		processed := 0
		if r.NumEventsProcessed != nil {
			processed = *r.NumEventsProcessed
		}
		return destinations.All(n, &destinations.Error{Kind: destinations.Retryable, Status: status,
			Message: fmt.Sprintf("pinterest: processed %d of %d events without saying which", processed, n)})
	}
	out := make([]error, n)
	warnings := 0
	var warning string
	for i, ev := range r.Events {
		if ev.WarningMessage != "" {
			warnings++
			warning = ev.WarningMessage
		}
		switch ev.Status {
		case "processed":
		case "failed":
			out[i] = &destinations.Error{Kind: destinations.Permanent, Status: status,
				Message: "pinterest: " + a.api.Snippet(ev.ErrorMessage)}
		default:
			out[i] = &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: fmt.Sprintf("pinterest: unknown event status %q", a.api.Snippet(ev.Status))}
		}
	}
	if warnings > 0 {
		a.api.Log.Info("pinterest warned about events", "events", warnings, "warning", a.api.Snippet(warning))
	}
	return out
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
