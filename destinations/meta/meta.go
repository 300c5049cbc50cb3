// Package meta delivers canonical events to Meta's Conversions API: one
// destination is one pixel (dataset) and its access token.
//
// Events go out as Meta server events in a JSON body posted to
// {graph_url}/{api_version}/{pixel_id}/events, with the access token in the
// body so that it never appears in a URL (and so in no url.Error). Outcomes
// are classified by Meta's error code rather than the HTTP status, because
// Graph answers throttling, bad tokens and bad payloads alike with HTTP 400.
package meta

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
	"github.com/tagway/tagway/destinations/internal/serverevent"
)

// Limits of the Conversions API and of this adapter.
const (
	// MaxEvents is the most events Meta accepts in one request.
	MaxEvents = 1000
	// MaxAge is how old a (non physical_store) event may be when Meta gets it.
	MaxAge = 7 * 24 * time.Hour
	// MaxAgePhysicalStore is the age limit for physical_store events.
	MaxAgePhysicalStore = 62 * 24 * time.Hour

	// rateLimitDelay is the least delay after a throttling error.
	rateLimitDelay = time.Minute
	// policyBlockDelay is the delay after code 368 (temporarily blocked).
	policyBlockDelay = time.Hour
	// maxHintDelay bounds a delay Meta asks for in its headers.
	maxHintDelay = 24 * time.Hour
)

// Adapter is the Meta Conversions API destination for one pixel.
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
	s, err := parseSettings(settings, cmp.Or(deps.APIURLs[GraphURLSetting], DefaultGraphURL))
	if err != nil {
		return nil, err
	}
	return &Adapter{
		settings: s,
		endpoint: strings.TrimRight(s.GraphURL, "/") + "/" + s.APIVersion + "/" + s.PixelID + "/events",
		header:   http.Header{"Accept": {"application/json"}},
		api: platform.NewClient(deps, platform.Config{Type: "meta", Name: "Meta", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(string(s.AccessToken)), LogAttrs: []any{"pixel_id", s.PixelID}}),
	}, nil
}

// MaxBatch is the most events Meta accepts in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is Meta's age limit for e: 62 days for physical_store events,
// 7 days for the others.
func (a *Adapter) MaxEventAge(e destinations.Event) time.Duration {
	if e.ActionSource == "physical_store" {
		return MaxAgePhysicalStore
	}
	return MaxAge
}

// AcceptsAnonymous is false: Meta refuses an event whose only customer
// information is the user agent (code 100, subcode 2804050), which is all
// an anonymous event keeps, so routing withholds those from Meta instead
// of sending them to the dead letters.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// AcceptsIncomplete is false: Meta refuses a website event without
// event_source_url or client_user_agent, a Purchase without value or
// currency, and customer information too weak to match (code 100), and
// it refuses the whole request with it, so routing withholds the browser
// events the gateway kept although they lack these.
func (a *Adapter) AcceptsIncomplete() bool { return false }

// serverEvent is one event in Meta's wire form.
type serverEvent = serverevent.Event

// toServerEvent maps e, leaving out custom data that would encode as {}.
func toServerEvent(e *destinations.Event) serverEvent {
	se := serverevent.From(e)
	if se.CustomData != nil && customDataEmpty(se.CustomData) {
		se.CustomData = nil
	}
	return se
}

// customDataEmpty reports whether c would encode as {}: every typed field
// omitted (omitempty) and no custom property beyond them.
func customDataEmpty(c *destinations.CustomData) bool {
	if c.Value != nil || c.PredictedLTV != nil || c.NumItems != nil || len(c.ContentIDs) > 0 || len(c.Contents) > 0 ||
		c.Currency != "" || c.ContentType != "" || c.ContentName != "" || c.ContentCategory != "" || c.OrderID != "" ||
		c.SearchString != "" || c.Status != "" || c.DeliveryCategory != "" {
		return false
	}
	for k := range c.Custom {
		if !destinations.IsKnownCustomKey(k) {
			return false
		}
	}
	return true
}

// requestBody is the JSON body of POST /{pixel_id}/events. AccessToken is
// empty (and omitted) in the dry-run record.
type requestBody struct {
	Data          []serverEvent `json:"data"`
	AccessToken   string        `json:"access_token,omitempty"`
	PartnerAgent  string        `json:"partner_agent,omitempty"`
	TestEventCode string        `json:"test_event_code,omitempty"`
}

// Deliver sends batch to Meta and returns one outcome per event. Events Meta
// would certainly refuse (no name, no time, past the age limit) fail on their
// own as permanent instead of making Meta reject the whole request. The rest
// go in one request per test event code, in chunks of MaxEvents.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[string, serverEvent](MaxEvents, len(batch))
	now := a.api.Now()
	for i := range batch {
		e := &batch[i]
		if err := a.precheck(e, now); err != nil {
			out[i] = err
			continue
		}
		groups.Add(cmp.Or(e.Context.TestEventCode, a.settings.TestEventCode), i, toServerEvent(e))
	}
	for _, g := range groups.All() {
		g.Set(out, a.send(ctx, g.Events, g.Key))
	}
	return out
}

// precheck fails the events Meta would reject for sure, so that one of them
// cannot sink a whole request.
func (a *Adapter) precheck(e *destinations.Event, now time.Time) error {
	if e.EventName == "" {
		return destinations.PermanentError("meta: event has no event_name")
	}
	return a.api.CheckTime(e, now, a.MaxEventAge(*e))
}

// send posts one request (or, in dry-run, logs and records it) and returns
// the outcome shared by all its events.
func (a *Adapter) send(ctx context.Context, events []serverEvent, testCode string) error {
	body := requestBody{Data: events, PartnerAgent: a.settings.PartnerAgent, TestEventCode: testCode}
	if a.settings.dryRun() {
		b, err := json.Marshal(body)
		if err != nil {
			return destinations.PermanentError("meta: encode request: %v", err)
		}
		a.api.DryRun(b, platform.IDs(events, func(e *serverEvent) string { return e.EventID }))
		return nil
	}
	body.AccessToken = string(a.settings.AccessToken)
	b, err := json.Marshal(body)
	if err != nil {
		return destinations.PermanentError("meta: encode request: %v", err)
	}
	// Network errors, resets and timeouts: Meta advises a retry.
	resp, err := a.api.Post(ctx, a.endpoint, a.header, b)
	if err != nil {
		return a.api.Failed(err, len(events))
	}
	out := a.classify(resp.Status, resp.Header, resp.Body, len(events))
	if out == nil {
		out = a.api.ReadFailure(resp)
	}
	if out != nil {
		a.api.Log.Warn("meta request rejected", "events", len(events), "error", out.Error())
		return out
	}
	a.api.Log.Debug("meta request accepted", "events", len(events))
	return nil
}

// graphError is Graph API's error object.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title"`
	UserMsg     string `json:"error_user_msg"`
	FBTraceID   string `json:"fbtrace_id"`
}

// classify turns one response into the outcome of all the events it carried:
// nil, or a *destinations.Error free of the token.
func (a *Adapter) classify(status int, header http.Header, body []byte, sent int) *destinations.Error {
	if status >= 200 && status < 300 {
		var ok struct {
			EventsReceived *int `json:"events_received"`
		}
		if err := json.Unmarshal(body, &ok); err != nil || ok.EventsReceived == nil {
			return &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: "meta: success response without events_received"}
		}
		// Meta takes a request whole or not at all, so a count that differs
		// from what we sent means we cannot tell which events it kept. The
		// whole request is retried: Meta drops the events it already has by
		// event_name + event_id, so a resend is harmless.
		if *ok.EventsReceived != sent {
			return &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: fmt.Sprintf("meta: received %d of %d events", *ok.EventsReceived, sent)}
		}
		return nil
	}

	var env struct {
		Error *graphError `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil || env.Error.Code == 0 {
		return a.api.ByStatus(status, header, a.api.StatusMessage(status, body))
	}
	ge := env.Error
	e := &destinations.Error{Status: status, Code: strconv.Itoa(ge.Code), Message: a.api.Redact(ge.describe())}
	if ge.Subcode != 0 {
		e.Code += "/" + strconv.Itoa(ge.Subcode)
	}
	retryAfter := destinations.RetryAfter(header, a.api.Now())
	switch {
	case isRateLimit(ge.Code):
		e.Kind = destinations.Retryable
		e.RetryAfter = max(rateLimitDelay, retryAfter, regainAccess(header))
	case ge.Code == 368:
		e.Kind = destinations.Retryable
		e.RetryAfter = max(policyBlockDelay, retryAfter)
	case ge.Code == 1, ge.Code == 2:
		e.Kind = destinations.Retryable
		e.RetryAfter = retryAfter
	case ge.Code == 190, ge.Code == 102, ge.Code == 10, ge.Code >= 200 && ge.Code <= 299,
		ge.Code == 100 && ge.Subcode == 33:
		// A bad token, a missing permission, or a pixel the token cannot
		// reach (100/33): the destination's configuration is wrong, not the
		// events. Pause and alert rather than dead-letter every event.
		e.Kind = destinations.Paused
	case ge.IsTransient:
		e.Kind = destinations.Retryable
		e.RetryAfter = retryAfter
	case ge.Code == 100:
		e.Kind = destinations.Permanent
		// Meta rejects a whole request for one bad event without saying
		// which: the queue splits a multi-event request to find it.
		e.WholeBatch = sent > 1
	default:
		// A 2xx status with an error object is retryable: Meta took nothing.
		de := a.api.ByStatus(status, header, e.Message)
		e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
	}
	return e
}

// describe joins Meta's explanations of the error into one line.
func (ge *graphError) describe() string {
	parts := []string{"meta"}
	for _, p := range []string{ge.Message, ge.UserTitle, ge.UserMsg} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	s := strings.Join(parts, ": ")
	if ge.FBTraceID != "" {
		s += " (fbtrace_id " + ge.FBTraceID + ")"
	}
	return s
}

// isRateLimit reports whether code is one of Graph's throttling codes.
func isRateLimit(code int) bool {
	switch code {
	case 4, 17, 32, 341, 613:
		return true
	}
	return code >= 80000 && code <= 80014
}

// regainAccess reads the largest estimated_time_to_regain_access (minutes)
// in the x-business-use-case-usage header; zero when absent.
func regainAccess(header http.Header) time.Duration {
	v := header.Get("X-Business-Use-Case-Usage")
	if v == "" {
		return 0
	}
	var usage map[string][]struct {
		Minutes float64 `json:"estimated_time_to_regain_access"`
	}
	if err := json.Unmarshal([]byte(v), &usage); err != nil {
		return 0
	}
	var most float64
	for _, entries := range usage {
		for _, u := range entries {
			most = max(most, u.Minutes)
		}
	}
	return min(time.Duration(most*float64(time.Minute)), maxHintDelay)
}

// Interface guards.
var (
	_ destinations.Destination        = (*Adapter)(nil)
	_ destinations.AgeLimiter         = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor  = (*Adapter)(nil)
	_ destinations.IncompleteAcceptor = (*Adapter)(nil)
	_ destinations.Factory            = New
)
