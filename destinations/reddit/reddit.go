// Package reddit delivers canonical events to Reddit's Conversions API
// (v3): one destination is one Reddit pixel and its conversion access
// token.
//
// Events go out as {"data":{"events":[…]}} posted to
// {api_url}/api/v3/pixels/{pixel_id}/conversion_events with the token in the
// Authorization header (Bearer), at most 1,000 per request. Reddit takes a
// request whole or not at all: one invalid event makes it answer 400,
// naming the invalid events, and process none. The adapter gives the named
// events a permanent outcome and the others a retryable one with no delay,
// so that the queue sends the valid rest again at once.
package reddit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Type is the destination type name in the configuration.
const Type = "reddit"

// Limits of the Conversions API and of this adapter.
const (
	// MaxEvents is the most events Reddit accepts in one request.
	MaxEvents = 1000
	// MaxAge is how old an event may be when Reddit gets it (168 hours).
	MaxAge = 7 * 24 * time.Hour
	// MaxFuture is how far ahead of Reddit's clock event_at may be.
	MaxFuture = 5 * time.Minute

	// maxMessageBytes caps a platform message kept in an error.
	maxMessageBytes = 300

	// rateLimitDelay is the least delay after a rate limit (Reddit counts
	// requests and events per minute).
	rateLimitDelay = time.Minute
)

// Adapter is the Reddit Conversions API destination for one pixel.
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
		endpoint: strings.TrimRight(s.APIURL, "/") + "/api/v3/pixels/" + url.PathEscape(s.PixelID) + "/conversion_events",
		header:   http.Header{"Accept": {"application/json"}, "Authorization": {"Bearer " + string(s.AccessToken)}},
		api: platform.NewClient(deps, platform.Config{Type: Type, Name: "Reddit", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(string(s.AccessToken)), LogAttrs: []any{"pixel_id", s.PixelID},
			SnippetBytes: maxMessageBytes}),
	}, nil
}

// Spec describes the reddit destination type to the registry.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        New,
		Secrets:    []string{"access_token"},
		APIURLs:    map[string]string{APIURLSetting: APIURLEnv},
		AdPlatform: true,
		// Reddit requires a match key for each conversion; an anonymous
		// event keeps only the user agent, which is none.
		Anonymous: false,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		Check:     Check,
		EventName: EventName,
		// Reddit hashes the phone in E.164 with its "+".
		Hashes: destinations.HashPhoneE164,
	}
}

// MaxBatch is the most events Reddit accepts in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is Reddit's age limit, the same for every event.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is false: an anonymous event keeps only the user agent,
// which is no match key for Reddit.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// requestBody is the JSON body of POST /api/v3/pixels/{pixel_id}/conversion_events.
type requestBody struct {
	Data requestData `json:"data"`
}

type requestData struct {
	TestID string      `json:"test_id,omitempty"`
	Events []wireEvent `json:"events"`
}

// Deliver sends batch to Reddit and returns one outcome per event. Events
// Reddit would certainly refuse fail on their own (an event dated too far
// ahead is retried once it is not), so that none of them makes Reddit
// refuse a whole request; the rest go in requests of at most MaxEvents, one
// per test id.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[string, wireEvent](MaxEvents, len(batch))
	now := a.api.Now()
	for i := range batch {
		e := &batch[i]
		w, err := a.prepare(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		groups.Add(cmp.Or(a.settings.TestID, e.Context.TestEventCode), i, w)
	}
	for _, g := range groups.All() {
		g.SetEach(out, a.send(ctx, g.Events, g.Key))
	}
	return out
}

// prepare maps e, or fails it when Reddit would refuse it for sure: no
// name, no time, past the age limit or breaking a rule of Check
// (permanent); dated more than MaxFuture ahead (retryable once it is not).
func (a *Adapter) prepare(e *destinations.Event, now time.Time) (wireEvent, error) {
	name, ok := EventName(e.EventName)
	if !ok {
		return wireEvent{}, destinations.PermanentError("reddit: event %q has no event name Reddit takes", e.EventID)
	}
	if err := a.api.CheckTime(e, now, MaxAge); err != nil {
		return wireEvent{}, err
	}
	if ahead := time.Unix(e.EventTime, 0).Sub(now); ahead > MaxFuture {
		return wireEvent{}, destinations.RetryableError(ahead-MaxFuture+time.Second,
			"reddit: event %q is dated %s ahead; Reddit takes at most %s", e.EventID, ahead.Truncate(time.Second), MaxFuture)
	}
	if v := Check(e); v != nil {
		return wireEvent{}, destinations.PermanentError("reddit: event %q: %s", e.EventID, v)
	}
	return toWire(e, name), nil
}

// send posts one request (or, in dry-run, logs and records it) and returns
// the outcome of each of its events.
func (a *Adapter) send(ctx context.Context, events []wireEvent, testID string) []error {
	b, err := json.Marshal(requestBody{Data: requestData{TestID: testID, Events: events}})
	if err != nil {
		return destinations.All(len(events), destinations.PermanentError("reddit: encode request: %v", err))
	}
	ids := platform.IDs(events, conversionID)
	if a.settings.dryRun() {
		// The body holds no token.
		a.api.DryRun(b, ids, "test_id", testID)
		return make([]error, len(events))
	}
	resp, err := a.api.Post(ctx, a.endpoint, a.header, b)
	if err != nil {
		return destinations.All(len(events), a.api.Failed(err, len(events)))
	}
	if err := a.api.ReadFailure(resp); err != nil {
		return destinations.All(len(events), err)
	}
	errs := a.classify(resp.Status, resp.Header, resp.Body, ids)
	invalid, resend := 0, 0
	var first error
	for _, err := range errs {
		switch kind, _ := destinations.Classify(err); kind {
		case 0:
		case destinations.Retryable:
			resend++
		default:
			invalid++
			if first == nil {
				first = err
			}
		}
	}
	switch {
	case invalid > 0:
		a.api.Log.Warn("reddit refused events", "events", len(events), "refused", invalid, "to_resend", resend, "error", first.Error())
	case resend > 0:
		a.api.Log.Warn("reddit request not processed", "events", len(events), "error", errs[0].Error())
	default:
		a.api.Log.Debug("reddit request accepted", "events", len(events))
	}
	return errs
}

// conversionID is the id an event carries in Reddit's dedup field.
func conversionID(e *wireEvent) string {
	if e.Metadata == nil {
		return ""
	}
	return e.Metadata.ConversionID
}

// apiError is Reddit's error answer: v3's {"error":{code, message,
// fields:[{field, message}]}} (the fields name the invalid events by
// their index), with the older reason/explanation and
// {message, invalid_events:[{error_message, event}]} forms read as well.
type apiError struct {
	Error *struct {
		Code        any    `json:"code"`
		Message     string `json:"message"`
		Reason      string `json:"reason"`
		Explanation string `json:"explanation"`
		Fields      []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"fields"`
	} `json:"error"`
	Message       string `json:"message"`
	InvalidEvents []struct {
		ErrorMessage string          `json:"error_message"`
		Event        json.RawMessage `json:"event"`
	} `json:"invalid_events"`
}

var (
	// eventField is the path of an event's field in a v3 error.
	eventField = regexp.MustCompile(`^\$\.data\.events\[([0-9]{1,4})\]`)
	// processedCount reads the count of a success message.
	processedCount = regexp.MustCompile(`processed ([0-9]{1,9}) conversion event`)
)

// classify turns one response into the outcome of each event it carried,
// ids being their conversion ids: nil, or a *destinations.Error free of the
// token.
func (a *Adapter) classify(status int, header http.Header, body []byte, ids []string) []error {
	n := len(ids)
	if status/100 == 2 {
		var ok struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &ok)
		// Reddit deduplicates on conversion_id: when it says it processed
		// fewer than were sent, resending the request is harmless.
		if m := processedCount.FindStringSubmatch(ok.Message); m != nil && m[1] != strconv.Itoa(n) {
			return destinations.All(n, &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: fmt.Sprintf("reddit: processed %s of %d events", m[1], n)})
		}
		return make([]error, n)
	}

	var ae apiError
	parsed := json.Unmarshal(body, &ae) == nil
	e := &destinations.Error{Status: status, Message: "reddit: HTTP " + strconv.Itoa(status)}
	if parsed && ae.Error != nil {
		e.Code = codeString(ae.Error.Code, ae.Error.Reason)
		msg := strings.TrimSpace(ae.Error.Message + " " + ae.Error.Explanation)
		if msg != "" {
			e.Message = "reddit: " + a.api.Snippet(msg)
		}
	} else if parsed && ae.Message != "" {
		e.Message = "reddit: " + a.api.Snippet(ae.Message)
	} else if s := a.api.Snippet(string(body)); s != "" {
		e.Message += ": " + s
	}
	retryAfter := destinations.RetryAfter(header, a.api.Now())
	switch {
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge, status == http.StatusUnprocessableEntity:
		if parsed {
			if out := a.perEvent(status, &ae, ids, e.Message); out != nil {
				return out
			}
		}
		// Reddit refused the request without naming the events at
		// fault: the queue splits a multi-event request to find them.
		e.Kind, e.WholeBatch = destinations.Permanent, n > 1
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		// A bad or revoked token, or a pixel it cannot reach or that does
		// not exist: the destination's configuration, not the events.
		e.Kind = destinations.Paused
	case status == http.StatusTooManyRequests:
		e.Kind, e.RetryAfter = destinations.Retryable, max(rateLimitDelay, retryAfter)
	default:
		de := a.api.ByStatus(status, header, e.Message)
		e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
	}
	return destinations.All(n, e)
}

// perEvent gives each event its outcome from a refusal that names the
// invalid events (v3 fields by index, or older invalid_events by
// conversion id): permanent for those, retryable without delay for the
// others, which Reddit did not process either. Nil when the refusal names
// no event, or something that is not one.
func (a *Adapter) perEvent(status int, ae *apiError, ids []string, summary string) []error {
	bad := map[int][]string{}
	if ae.Error != nil {
		for _, f := range ae.Error.Fields {
			m := eventField.FindStringSubmatch(f.Field)
			if m == nil {
				return nil
			}
			i, _ := strconv.Atoi(m[1])
			if i >= len(ids) {
				return nil
			}
			bad[i] = append(bad[i], cmp.Or(f.Message, f.Field))
		}
	}
	for _, ie := range ae.InvalidEvents {
		var ev struct {
			Metadata struct {
				ConversionID string `json:"conversion_id"`
			} `json:"metadata"`
			EventMetadata struct {
				ConversionID string `json:"conversion_id"`
			} `json:"event_metadata"`
		}
		_ = json.Unmarshal(ie.Event, &ev)
		cid := cmp.Or(ev.Metadata.ConversionID, ev.EventMetadata.ConversionID)
		found := false
		for i, id := range ids {
			if cid != "" && id == cid {
				bad[i] = append(bad[i], ie.ErrorMessage)
				found = true
			}
		}
		if !found {
			return nil
		}
	}
	if len(bad) == 0 {
		return nil
	}
	code := ""
	if ae.Error != nil {
		code = codeString(ae.Error.Code, ae.Error.Reason)
	}
	out := make([]error, len(ids))
	resend := &destinations.Error{Kind: destinations.Retryable, Status: status, Code: code,
		Message: fmt.Sprintf("reddit: not processed, %d other events of the request were invalid (%s)", len(bad), summary)}
	for i := range out {
		msgs, invalid := bad[i]
		if !invalid {
			out[i] = resend
			continue
		}
		out[i] = &destinations.Error{Kind: destinations.Permanent, Status: status, Code: code,
			Message: "reddit: " + a.api.Snippet(strings.Join(msgs, "; "))}
	}
	return out
}

// codeString is an error's code (a number or a word), else its reason.
func codeString(code any, reason string) string {
	switch c := code.(type) {
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64)
	case string:
		if c != "" {
			return c
		}
	}
	return reason
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
