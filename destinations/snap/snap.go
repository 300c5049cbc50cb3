// Package snap delivers canonical events to Snap's Conversions API v3: one
// destination is one Snap Pixel and its Conversions API token.
//
// Events go out in a JSON body posted to
// {api_url}/v3/{pixel_id}/events?access_token=TOKEN, test events to
// .../events/validate. Snap takes the token only in the query string, so
// the request URL is a secret: it is never logged, and every error is
// cleared of it (net/http's errors quote the URL).
package snap

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Limits of the Conversions API and of this adapter.
const (
	// MaxEvents is the most events Snap takes in one request.
	MaxEvents = 2000
	// MaxAge is how old an event may be: Snap reports events up to 37
	// days after they happened.
	MaxAge = 37 * 24 * time.Hour
	// ClickWindow is how long after its capture a ScCid is sent with an
	// event: Snap's longest swipe attribution window.
	ClickWindow = 28 * 24 * time.Hour

	// rateLimitDelay is the least delay after HTTP 429.
	rateLimitDelay = 10 * time.Second
)

// Adapter is the Snap Conversions API destination for one pixel.
type Adapter struct {
	settings Settings
	// events and validate are the endpoints with the token in the query.
	events, validate string
	header           http.Header
	api              *platform.Client
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
	base := strings.TrimRight(s.APIURL, "/") + "/v3/" + s.PixelID + "/events"
	query := "?" + url.Values{"access_token": {string(s.AccessToken)}}.Encode()
	// Messages show the endpoints without their query, and never the token.
	secrets := platform.NewRedactor(string(s.AccessToken))
	if s.AccessToken != "" {
		secrets = secrets.ShowAs(base+"/validate"+query, base+"/validate").ShowAs(base+query, base)
	}
	return &Adapter{
		settings: s,
		events:   base + query,
		validate: base + "/validate" + query,
		header:   http.Header{"Accept": {"application/json"}},
		api: platform.NewClient(deps, platform.Config{Type: Type, Name: "Snap", Timeout: time.Duration(s.Timeout),
			Secrets: secrets, LogAttrs: []any{"pixel_id", s.PixelID}}),
	}, nil
}

// MaxBatch is the most events Snap takes in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is MaxAge for every event.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is false: Snap refuses an event whose only customer
// information is the user agent, which is all an anonymous event keeps.
func (a *Adapter) AcceptsAnonymous() bool { return false }

// request is the JSON body of POST /v3/{pixel_id}/events.
type request struct {
	Data []snapEvent `json:"data"`
}

// snapEvent is one event in Snap's wire form.
type snapEvent struct {
	EventName                    string      `json:"event_name"`
	EventTime                    int64       `json:"event_time"`
	EventID                      string      `json:"event_id,omitempty"`
	ActionSource                 string      `json:"action_source"`
	EventSourceURL               string      `json:"event_source_url,omitempty"`
	OptOut                       bool        `json:"opt_out,omitempty"`
	UserData                     userData    `json:"user_data"`
	CustomData                   *customData `json:"custom_data,omitempty"`
	DataProcessingOptions        []string    `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int        `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int        `json:"data_processing_options_state,omitempty"`
}

// userData holds the match keys: SHA-256 digests in lists, the rest as they
// are.
type userData struct {
	Em              []string `json:"em,omitempty"`
	Ph              []string `json:"ph,omitempty"`
	Fn              []string `json:"fn,omitempty"`
	Ln              []string `json:"ln,omitempty"`
	Ge              []string `json:"ge,omitempty"`
	Ct              []string `json:"ct,omitempty"`
	St              []string `json:"st,omitempty"`
	Zp              []string `json:"zp,omitempty"`
	Country         []string `json:"country,omitempty"`
	ExternalID      []string `json:"external_id,omitempty"`
	ClientIPAddress string   `json:"client_ip_address,omitempty"`
	ClientUserAgent string   `json:"client_user_agent,omitempty"`
	ScClickID       string   `json:"sc_click_id,omitempty"`
	ScCookie1       string   `json:"sc_cookie1,omitempty"`
}

type customData struct {
	Currency         string    `json:"currency,omitempty"`
	Value            *float64  `json:"value,omitempty"`
	ContentIDs       []string  `json:"content_ids,omitempty"`
	ContentCategory  string    `json:"content_category,omitempty"`
	ContentType      string    `json:"content_type,omitempty"`
	Contents         []content `json:"contents,omitempty"`
	NumItems         *int      `json:"num_items,omitempty"`
	OrderID          string    `json:"order_id,omitempty"`
	SearchString     string    `json:"search_string,omitempty"`
	Status           string    `json:"status,omitempty"`
	DeliveryCategory string    `json:"delivery_category,omitempty"`
}

// content is one item; Snap's schema types quantity and item_price as
// strings.
type content struct {
	ID               string `json:"id"`
	Quantity         string `json:"quantity,omitempty"`
	ItemPrice        string `json:"item_price,omitempty"`
	DeliveryCategory string `json:"delivery_category,omitempty"`
}

// actionSources maps canonical action sources to Snap's: website events
// are WEB, the store's own channels OFFLINE. App events have none on a
// pixel.
var actionSources = map[string]string{
	"website": "WEB", "physical_store": "OFFLINE", "phone_call": "OFFLINE", "email": "OFFLINE",
	"chat": "OFFLINE", "system_generated": "OFFLINE", "business_messaging": "OFFLINE", "other": "OFFLINE",
}

// toSnapEvent maps a canonical event whose Snap name is name and Snap
// action source is source.
func toSnapEvent(e destinations.Event, name, source string) snapEvent {
	ud := e.UserData
	u := userData{
		Em: ud.Em, Ph: ud.Ph, Fn: ud.Fn, Ln: ud.Ln, Ge: ud.Ge, Ct: ud.Ct, St: ud.St, Zp: ud.Zp,
		Country: ud.Country, ExternalID: ud.ExternalID,
		ClientIPAddress: ud.ClientIPAddress,
		ClientUserAgent: ud.ClientUserAgent,
		ScClickID:       platform.ClickID(&e, "ScCid", ClickWindow),
		ScCookie1:       e.Context.Cookies["_scid"],
	}
	return snapEvent{
		EventName:                    name,
		EventTime:                    e.EventTime,
		EventID:                      e.EventID,
		ActionSource:                 source,
		EventSourceURL:               e.EventSourceURL,
		OptOut:                       e.OptOut,
		UserData:                     u,
		CustomData:                   toCustomData(e.CustomData),
		DataProcessingOptions:        e.DataProcessingOptions,
		DataProcessingOptionsCountry: e.DataProcessingOptionsCountry,
		DataProcessingOptionsState:   e.DataProcessingOptionsState,
	}
}

func toCustomData(cd *destinations.CustomData) *customData {
	if cd == nil {
		return nil
	}
	c := &customData{
		Currency:         cd.Currency,
		Value:            cd.Value,
		ContentIDs:       cd.ContentIDs,
		ContentCategory:  cd.ContentCategory,
		ContentType:      cd.ContentType,
		NumItems:         cd.NumItems,
		OrderID:          cd.OrderID,
		SearchString:     cd.SearchString,
		Status:           cd.Status,
		DeliveryCategory: cd.DeliveryCategory,
	}
	for _, it := range cd.Contents {
		item := content{ID: it.ID, DeliveryCategory: it.DeliveryCategory}
		if it.Quantity != nil {
			item.Quantity = strconv.Itoa(*it.Quantity)
		}
		if it.ItemPrice != nil {
			item.ItemPrice = strconv.FormatFloat(*it.ItemPrice, 'f', -1, 64)
		}
		c.Contents = append(c.Contents, item)
	}
	if c.Currency == "" && c.Value == nil && len(c.ContentIDs) == 0 && c.ContentCategory == "" && c.ContentType == "" &&
		len(c.Contents) == 0 && c.NumItems == nil && c.OrderID == "" && c.SearchString == "" && c.Status == "" &&
		c.DeliveryCategory == "" {
		return nil
	}
	return c
}

// Deliver sends batch to Snap and returns one outcome per event. Events
// Snap would certainly refuse (no Snap name, no time, past the age limit,
// an app event) fail on their own as permanent. The rest go in chunks of
// MaxEvents: test events (Context.TestEventCode, or the test_mode setting)
// to the validation endpoint, the others to the events endpoint.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[bool, snapEvent](MaxEvents, len(batch))
	now := a.api.Now()
	for i, e := range batch {
		ev, err := a.precheck(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		groups.Add(a.settings.TestMode || e.Context.TestEventCode != "", i, ev)
	}
	for _, g := range groups.All() {
		g.SetEach(out, a.send(ctx, g.Events, g.Key))
	}
	return out
}

// precheck maps e, or returns the permanent error of an event Snap would
// refuse, so that one of them cannot sink a whole request.
func (a *Adapter) precheck(e destinations.Event, now time.Time) (snapEvent, error) {
	name, ok := EventName(e.EventName)
	if !ok {
		return snapEvent{}, destinations.PermanentError("snap: event %q: Snap has no event named %q", e.EventID, e.EventName)
	}
	source, ok := actionSources[e.ActionSource]
	if !ok {
		return snapEvent{}, destinations.PermanentError("snap: event %q: action_source %q has no Snap equivalent on a pixel", e.EventID, e.ActionSource)
	}
	if err := a.api.CheckTime(&e, now, MaxAge); err != nil {
		return snapEvent{}, err
	}
	return toSnapEvent(e, name, source), nil
}

// send posts one request (or, in dry-run, logs and records it) and returns
// one outcome per event.
func (a *Adapter) send(ctx context.Context, events []snapEvent, test bool) []error {
	n := len(events)
	b, err := json.Marshal(request{Data: events})
	if err != nil {
		return destinations.All(n, destinations.PermanentError("snap: encode request: %v", err))
	}
	if a.settings.dryRun() {
		// The token is in the URL, never in the body.
		a.api.DryRun(b, platform.IDs(events, func(e *snapEvent) string { return e.EventID }), "test", test)
		return make([]error, n)
	}

	endpoint := a.events
	if test {
		endpoint = a.validate
	}
	resp, err := a.api.Post(ctx, endpoint, a.header, b)
	if err != nil {
		return destinations.All(n, a.api.Failed(err, n))
	}
	if err := a.api.ReadFailure(resp); err != nil {
		return destinations.All(n, err)
	}
	outs := a.classify(resp.Status, resp.Header, resp.Body, n, test)
	failed := 0
	for _, o := range outs {
		if o != nil {
			failed++
		}
	}
	if failed > 0 {
		a.api.Log.Warn("snap request rejected", "events", n, "failed", failed, "test", test, "error", firstError(outs))
	} else {
		a.api.Log.Debug("snap request accepted", "events", n, "test", test)
	}
	return outs
}

func firstError(errs []error) string {
	for _, err := range errs {
		if err != nil {
			return err.Error()
		}
	}
	return ""
}

// reply is Snap's response: EventResponse from the events endpoint,
// ValidateResponse (with event_logs) from the validation endpoint.
type reply struct {
	Status    string       `json:"status"`
	Reason    string       `json:"reason"`
	Event     *int         `json:"event"`
	Errors    errorDetails `json:"errors"`
	EventLogs []eventLog   `json:"event_logs"`
}

type errorDetails struct {
	Codes     []string `json:"codes"`
	ErrorMsgs []string `json:"error_msgs"`
}

// eventLog is the validation endpoint's verdict on one event.
type eventLog struct {
	Event    *int         `json:"event"`
	Status   string       `json:"status"`
	Errors   errorDetails `json:"errors"`
	Warnings []string     `json:"warnings"`
}

// classify turns one response into an outcome per event carried: nil or a
// *destinations.Error free of the token.
func (a *Adapter) classify(status int, header http.Header, body []byte, n int, test bool) []error {
	var r reply
	parsed := json.Unmarshal(body, &r) == nil && r.Status != ""
	state := strings.ToUpper(r.Status)
	ok2xx := status >= 200 && status < 300

	if parsed && test && len(r.EventLogs) == n && (ok2xx || status == http.StatusBadRequest) {
		// The validation endpoint judges each event: an invalid one fails
		// alone, the others passed validation.
		outs := make([]error, n)
		for i, l := range r.EventLogs {
			if strings.ToUpper(l.Status) == "INVALID" {
				outs[i] = &destinations.Error{Kind: destinations.Permanent, Status: status, Code: first(l.Errors.Codes),
					Message: a.api.Redact(describe("snap validation", "", l.Errors, i))}
			}
		}
		return outs
	}
	switch {
	case parsed && ok2xx && (state == "VALID" || state == "SUCCESS"):
		return make([]error, n)
	case !parsed && ok2xx:
		return destinations.All(n, &destinations.Error{Kind: destinations.Retryable, Status: status,
			Message: "snap: success status without a readable status field"})
	}

	e := &destinations.Error{Status: status}
	if parsed {
		idx := -1
		if r.Event != nil {
			idx = *r.Event
		}
		e.Code = first(r.Errors.Codes)
		e.Message = a.api.Redact(describe("snap", r.Reason, r.Errors, idx))
	} else {
		e.Message = a.api.StatusMessage(status, body)
	}
	retryAfter := destinations.RetryAfter(header, a.api.Now())
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = destinations.Retryable
		e.RetryAfter = max(rateLimitDelay, retryAfter)
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		// A wrong or revoked token, a token of another organisation, or no
		// such pixel: the destination's configuration is wrong.
		e.Kind = destinations.Paused
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooEarly:
		e.Kind = destinations.Retryable
		e.RetryAfter = retryAfter
	case state == "INVALID" && (ok2xx || status == http.StatusBadRequest || status == http.StatusUnprocessableEntity):
		// Snap refuses the whole request for its first bad event; the
		// queue splits a multi-event request to find it.
		e.Kind = destinations.Permanent
		e.WholeBatch = n > 1
	case ok2xx:
		e.Kind = destinations.Retryable
	default:
		de := a.api.ByStatus(status, header, e.Message)
		e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
	}
	return destinations.All(n, e)
}

// describe joins Snap's explanations into one line; idx ≥ 0 names the
// event at fault.
func describe(prefix, reason string, d errorDetails, idx int) string {
	parts := []string{prefix}
	if reason = strings.TrimSpace(reason); reason != "" {
		parts = append(parts, reason)
	}
	if idx >= 0 {
		parts = append(parts, "event "+strconv.Itoa(idx))
	}
	parts = append(parts, slices.DeleteFunc(slices.Clone(d.ErrorMsgs), func(s string) bool { return strings.TrimSpace(s) == "" })...)
	if len(d.Codes) > 0 {
		parts = append(parts, "codes "+strings.Join(d.Codes, ","))
	}
	return strings.Join(parts, ": ")
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AgeLimiter        = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
)
