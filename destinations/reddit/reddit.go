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
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
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

	// maxResponseBytes caps how much of a response body is read and parsed.
	maxResponseBytes = 1 << 20
	// maxDrainBytes caps how much of the rest is drained to reuse the connection.
	maxDrainBytes = 4 << 20
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
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	record   func(body []byte)
}

// New builds an Adapter from its JSON settings; it has the shape of
// destinations.Factory. A nil deps.HTTP gets a default client, a nil
// deps.Logger discards, a nil deps.Now is time.Now. The client never follows
// redirects: a redirected POST would carry the token elsewhere.
func New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	apiURL := deps.APIURLs[APIURLSetting]
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	s, err := parseSettings(settings, apiURL)
	if err != nil {
		return nil, err
	}
	client := &http.Client{}
	if deps.HTTP != nil {
		c := *deps.HTTP
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a := &Adapter{
		settings: s,
		endpoint: strings.TrimRight(s.APIURL, "/") + "/api/v3/pixels/" + url.PathEscape(s.PixelID) + "/conversion_events",
		client:   client,
		log:      deps.Logger,
		now:      deps.Now,
		record:   deps.Record,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.log = a.log.With("destination", Type, "pixel_id", s.PixelID)
	return a, nil
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
	type group struct {
		testID  string
		indexes []int
		events  []wireEvent
	}
	var groups []*group
	open := map[string]*group{}
	now := a.now()
	for i := range batch {
		e := &batch[i]
		w, err := a.prepare(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		testID := a.settings.TestID
		if testID == "" {
			testID = e.Context.TestEventCode
		}
		g := open[testID]
		if g == nil || len(g.indexes) == MaxEvents {
			g = &group{testID: testID}
			open[testID] = g
			groups = append(groups, g)
		}
		g.indexes = append(g.indexes, i)
		g.events = append(g.events, w)
	}
	for _, g := range groups {
		errs := a.send(ctx, g.events, g.testID)
		for j, i := range g.indexes {
			out[i] = errs[j]
		}
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
	if e.EventTime <= 0 {
		return wireEvent{}, destinations.PermanentError("reddit: event %q has no event_time", e.EventID)
	}
	at := time.Unix(e.EventTime, 0)
	if age := now.Sub(at); age > MaxAge {
		return wireEvent{}, destinations.PermanentError("reddit: event %q is %s old, past Reddit's %s limit",
			e.EventID, age.Truncate(time.Second), MaxAge)
	}
	if ahead := at.Sub(now); ahead > MaxFuture {
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
	if a.settings.dryRun() {
		// The body holds the visitors' IP addresses, user agents, click ids
		// and hashed identifiers: only at debug level. It holds no token.
		ids := make([]string, len(events))
		for i, e := range events {
			if e.Metadata != nil {
				ids[i] = e.Metadata.ConversionID
			}
		}
		a.log.Info("reddit dry run: request not sent", "events", len(events), "event_ids", ids, "test_id", testID)
		a.log.Debug("reddit dry run: the request body", "body", string(b))
		if a.record != nil {
			a.record(b)
		}
		return make([]error, len(events))
	}

	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.settings.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(b))
	if err != nil {
		return destinations.All(len(events), destinations.PermanentError("reddit: build request: %s", a.redact(err.Error())))
	}
	req.Header.Set("Authorization", "Bearer "+string(a.settings.AccessToken))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := a.client.Do(req)
	if err != nil {
		msg := a.redact(err.Error())
		a.log.Warn("reddit request failed", "events", len(events), "error", msg)
		return destinations.All(len(events), &destinations.Error{Kind: destinations.Retryable, Message: "reddit: " + msg})
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
		_ = resp.Body.Close()
	}()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if readErr != nil && resp.StatusCode/100 == 2 {
		err := &destinations.Error{Kind: destinations.Retryable, Status: resp.StatusCode,
			Message: "reddit: read response: " + a.redact(readErr.Error())}
		return destinations.All(len(events), err)
	}
	ids := make([]string, len(events))
	for i, e := range events {
		if e.Metadata != nil {
			ids[i] = e.Metadata.ConversionID
		}
	}
	errs := a.classify(resp.StatusCode, resp.Header, body, ids)
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
		a.log.Warn("reddit refused events", "events", len(events), "refused", invalid, "to_resend", resend, "error", first.Error())
	case resend > 0:
		a.log.Warn("reddit request not processed", "events", len(events), "error", errs[0].Error())
	default:
		a.log.Debug("reddit request accepted", "events", len(events))
	}
	return errs
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
			e.Message = "reddit: " + a.clip(msg)
		}
	} else if parsed && ae.Message != "" {
		e.Message = "reddit: " + a.clip(ae.Message)
	} else if s := a.clip(string(body)); s != "" {
		e.Message += ": " + s
	}
	retryAfter := destinations.RetryAfter(header, a.now())
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
		var de *destinations.Error
		if errors.As(destinations.ClassifyHTTP(status, header, a.now(), e.Message), &de) {
			e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
		} else {
			e.Kind = destinations.Retryable
		}
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
			Message: "reddit: " + a.clip(strings.Join(msgs, "; "))}
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

// clip redacts s and cuts it to maxMessageBytes of valid UTF-8, trimmed.
func (a *Adapter) clip(s string) string {
	// Replace invalid bytes first (dropping them could join the halves of
	// a token), then redact before cutting, so no part of a token can
	// survive the cut; the cut leaves at most a broken last rune.
	s = a.redact(strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.ToValidUTF8(s[:min(len(s), maxMessageBytes)], "")
	return strings.TrimSpace(s)
}

// redact removes the access token from s, whatever put it there.
func (a *Adapter) redact(s string) string {
	if tok := string(a.settings.AccessToken); tok != "" {
		s = strings.ReplaceAll(s, tok, "[redacted]")
	}
	return s
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
