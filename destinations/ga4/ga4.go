// Package ga4 delivers canonical events to a Google Analytics 4 web data
// stream through the Measurement Protocol: one destination is one stream
// (measurement id) and one of its API secrets.
//
// Events go out as JSON posted to {api_url}/mp/collect?measurement_id=&
// api_secret=. GA4 answers 2xx to every request, valid or not, and drops
// silently what breaks its rules, so the adapter applies those rules
// (names, reserved names and prefixes, parameter counts and lengths, items,
// the 72-hour limit) before sending and fails the events GA4 would drop
// as permanent. The secret travels in the URL: it is removed from every
// error and log line.
package ga4

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Spec is the ga4 destination type: the Measurement Protocol of one web
// data stream.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       "ga4",
		New:        New,
		Secrets:    []string{"api_secret"},
		APIURLs:    map[string]string{APIURLSetting: "TAGWAY_GA4_API_URL"},
		AdPlatform: true,
		// GA4 needs a client id per visitor; an anonymous event has none,
		// and one made up per event would count each as a new user.
		Anonymous: false,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		Check:     Check,
		EventName: EventName,
		Hashes:    destinations.HashPhoneE164 | destinations.HashEmailGoogle,
	}
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// Check reports what GA4 requires of an event that the sender controls: a
// currency, in ISO 4217, with any value (GA4 computes no revenue without
// one).
func Check(e *destinations.Event) *destinations.Violation {
	cd := e.CustomData
	if cd == nil {
		return nil
	}
	if cd.Currency != "" && !currencyPattern.MatchString(strings.ToUpper(cd.Currency)) {
		return &destinations.Violation{Field: "custom_data.currency", Reason: "GA4 takes an ISO 4217 currency code (EUR)"}
	}
	if cd.Value != nil && cd.Currency == "" {
		return &destinations.Violation{Field: "custom_data.currency", Reason: "GA4 needs a currency with a value"}
	}
	return nil
}

// Adapter is the GA4 Measurement Protocol destination for one stream.
type Adapter struct {
	settings Settings
	endpoint string // without the query
	api      *platform.Client
}

// New builds an Adapter from its JSON settings; it has the shape of
// destinations.Factory. A nil deps.HTTP gets a default client, a nil
// deps.Logger discards, a nil deps.Now is time.Now. The client never
// follows redirects: a redirect would carry the API secret elsewhere.
func New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	s, err := parseSettings(settings, cmp.Or(deps.APIURLs[APIURLSetting], DefaultAPIURL))
	if err != nil {
		return nil, err
	}
	path := "/mp/collect"
	if s.ValidateOnly {
		path = "/debug/mp/collect"
	}
	return &Adapter{
		settings: s,
		endpoint: strings.TrimRight(s.APIURL, "/") + path,
		api: platform.NewClient(deps, platform.Config{Type: "ga4", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(string(s.APISecret)), LogAttrs: []any{"measurement_id", s.MeasurementID}}),
	}, nil
}

// MaxBatch is the most events GA4 takes in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is GA4's limit: 72 hours.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is false: see Spec.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// group is the events of one request: they share the request-level fields
// (client id, user data, consent).
type group struct {
	req     mpRequest
	indexes []int
}

// Deliver sends batch to GA4 and returns one outcome per event. Events GA4
// would drop fail alone as permanent; the rest go in one request per
// visitor (the request-level fields are the visitor's), MaxEvents at most.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	now := a.api.Now()
	var groups []*group
	byKey := map[string]*group{}
	for i := range batch {
		e := &batch[i]
		name, ok := EventName(e.EventName)
		if !ok {
			out[i] = destinations.PermanentError("ga4: event %q: GA4 drops an event named %q", e.EventID, e.EventName)
			continue
		}
		if e.EventTime <= 0 {
			out[i] = destinations.PermanentError("ga4: event %q has no event_time", e.EventID)
			continue
		}
		top, ev := toGA4(e, name, now)
		if p := validateEvent(&top, &ev, now); p != nil {
			out[i] = destinations.PermanentError("ga4: event %q: GA4 would drop it: %s", e.EventID, p)
			continue
		}
		key, err := json.Marshal(top)
		if err != nil {
			out[i] = destinations.PermanentError("ga4: event %q: encode: %v", e.EventID, err)
			continue
		}
		g := byKey[string(key)]
		if g == nil || len(g.indexes) == MaxEvents {
			g = &group{req: top}
			byKey[string(key)] = g
			groups = append(groups, g)
		}
		g.req.Events = append(g.req.Events, ev)
		g.indexes = append(g.indexes, i)
	}
	for _, g := range groups {
		a.sendGroup(ctx, g, batch, out)
	}
	return out
}

// sendGroup sends one group, split in halves while its body is over
// MaxBodyBytes, and sets the outcome of its events.
func (a *Adapter) sendGroup(ctx context.Context, g *group, batch []destinations.Event, out []error) {
	req := g.req
	req.TimestampMicros = req.Events[0].TimestampMicros
	body, err := json.Marshal(req)
	if err != nil {
		for _, i := range g.indexes {
			out[i] = destinations.PermanentError("ga4: encode request: %v", err)
		}
		return
	}
	if len(body) > MaxBodyBytes {
		if len(g.indexes) == 1 {
			out[g.indexes[0]] = destinations.PermanentError("ga4: event %q: its request is %d bytes; GA4 takes at most %d",
				batch[g.indexes[0]].EventID, len(body), MaxBodyBytes)
			return
		}
		h := len(g.indexes) / 2
		first := &group{req: g.req, indexes: g.indexes[:h]}
		first.req.Events = g.req.Events[:h]
		second := &group{req: g.req, indexes: g.indexes[h:]}
		second.req.Events = g.req.Events[h:]
		a.sendGroup(ctx, first, batch, out)
		a.sendGroup(ctx, second, batch, out)
		return
	}
	ids := make([]string, len(g.indexes))
	for j, i := range g.indexes {
		ids[j] = batch[i].EventID
	}
	err = a.send(ctx, body, ids)
	for _, i := range g.indexes {
		out[i] = err
	}
}

// send posts one request body (or, in dry-run, logs and records it) and
// returns the outcome shared by its events.
func (a *Adapter) send(ctx context.Context, body []byte, ids []string) error {
	if a.settings.dryRun() {
		a.api.DryRun(body, ids)
		return nil
	}
	q := url.Values{"measurement_id": {a.settings.MeasurementID}, "api_secret": {string(a.settings.APISecret)}}
	resp, err := a.api.Post(ctx, a.endpoint+"?"+q.Encode(), nil, body)
	if err != nil {
		return a.api.Failed(err, len(ids))
	}
	out := a.classify(resp.Status, resp.Header, resp.Body, resp.ReadErr, len(ids))
	if out != nil {
		a.api.Log.Warn("ga4 request rejected", "events", len(ids), "error", out.Error())
		return out
	}
	a.api.Log.Debug("ga4 request accepted", "events", len(ids))
	return nil
}

// validationResponse is the validation server's answer.
type validationResponse struct {
	ValidationMessages []struct {
		FieldPath      string `json:"fieldPath"`
		Description    string `json:"description"`
		ValidationCode string `json:"validationCode"`
	} `json:"validationMessages"`
}

// classify turns one response into the outcome of all the events it
// carried: nil, or a *destinations.Error free of the secret.
func (a *Adapter) classify(status int, header http.Header, body []byte, readErr error, sent int) *destinations.Error {
	if status < 200 || status > 299 {
		return a.api.ByStatus(status, header, a.api.StatusMessage(status, body))
	}
	if !a.settings.ValidateOnly {
		// The collection endpoint says nothing more than 2xx.
		return nil
	}
	if readErr != nil {
		return &destinations.Error{Kind: destinations.Retryable, Status: status,
			Message: "ga4: read validation response: " + a.api.Redact(readErr.Error())}
	}
	var v validationResponse
	if err := json.Unmarshal(body, &v); err != nil {
		return &destinations.Error{Kind: destinations.Retryable, Status: status, Message: "ga4: unreadable validation response"}
	}
	if len(v.ValidationMessages) == 0 {
		return nil
	}
	m := v.ValidationMessages[0]
	return &destinations.Error{Kind: destinations.Permanent, Status: status, Code: m.ValidationCode,
		Message:    a.api.Redact("ga4 validation: " + m.FieldPath + ": " + m.Description),
		WholeBatch: sent > 1}
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
