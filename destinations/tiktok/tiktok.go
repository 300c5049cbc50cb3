// Package tiktok delivers canonical events to TikTok's Events API 2.0: one
// destination is one pixel and its Events API access token.
//
// Events go out as web events in a JSON body posted to
// {api_url}/open_api/v1.3/event/track/, with the token in the Access-Token
// header, never in a URL. TikTok answers most failures with HTTP 200 and a
// non-zero code in the body, so outcomes are classified by that code first
// and by the HTTP status only when there is none.
package tiktok

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// Limits of the Events API and of this adapter.
const (
	// MaxEvents is the most events TikTok takes in one request.
	MaxEvents = 1000
	// MaxAge is how old an event may be when it reaches TikTok: past the
	// longest click-through attribution window (28 days) TikTok matches
	// it to no ad.
	MaxAge = 28 * 24 * time.Hour
	// ClickWindow is how long after its capture a ttclid is sent with an
	// event: TikTok's longest click-through attribution window.
	ClickWindow = 28 * 24 * time.Hour

	// rateLimitDelay is the least delay after code 40100.
	rateLimitDelay = time.Minute
)

// TikTok's response codes that change an outcome.
const (
	codeOK           = 0
	codePartial      = 20001 // some events were not processed; the request stands
	codeNoPermission = 40001 // the token may not report to this pixel
	codeRateLimited  = 40100 // too many requests
	codeServerBusy   = 40700 // a transient failure TikTok asks to retry
)

// Adapter is the TikTok Events API destination for one pixel.
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
		endpoint: strings.TrimRight(s.APIURL, "/") + TrackPath,
		header:   http.Header{"Accept": {"application/json"}, "Access-Token": {string(s.AccessToken)}},
		api: platform.NewClient(deps, platform.Config{Type: Type, Name: "TikTok", Timeout: time.Duration(s.Timeout),
			Secrets: platform.NewRedactor(string(s.AccessToken)), LogAttrs: []any{"pixel_code", s.PixelCode}}),
	}, nil
}

// MaxBatch is the most events TikTok takes in one request.
func (a *Adapter) MaxBatch() int { return MaxEvents }

// MaxEventAge is MaxAge for every event.
func (a *Adapter) MaxEventAge(destinations.Event) time.Duration { return MaxAge }

// AcceptsAnonymous is true: TikTok requires no customer information, so an
// event that kept only its user agent is taken (and counted unmatched).
func (a *Adapter) AcceptsAnonymous() bool { return true }

// trackRequest is the JSON body of POST /open_api/v1.3/event/track/.
type trackRequest struct {
	EventSource   string     `json:"event_source"`
	EventSourceID string     `json:"event_source_id"`
	TestEventCode string     `json:"test_event_code,omitempty"`
	Data          []webEvent `json:"data"`
}

// webEvent is one event in TikTok's wire form.
type webEvent struct {
	Event          string      `json:"event"`
	EventTime      int64       `json:"event_time"`
	EventID        string      `json:"event_id,omitempty"`
	User           user        `json:"user"`
	Page           *page       `json:"page,omitempty"`
	Properties     *properties `json:"properties,omitempty"`
	LimitedDataUse bool        `json:"limited_data_use,omitempty"`
}

// user holds the match keys: email, phone, external_id, first_name,
// last_name and zip_code as SHA-256 digests, the rest as they are.
type user struct {
	Email      []string `json:"email,omitempty"`
	Phone      []string `json:"phone,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`
	FirstName  string   `json:"first_name,omitempty"`
	LastName   string   `json:"last_name,omitempty"`
	ZipCode    string   `json:"zip_code,omitempty"`
	TTCLID     string   `json:"ttclid,omitempty"`
	TTP        string   `json:"ttp,omitempty"`
	IP         string   `json:"ip,omitempty"`
	UserAgent  string   `json:"user_agent,omitempty"`
}

type page struct {
	URL      string `json:"url,omitempty"`
	Referrer string `json:"referrer,omitempty"`
}

type properties struct {
	Currency         string    `json:"currency,omitempty"`
	Value            *float64  `json:"value,omitempty"`
	ContentType      string    `json:"content_type,omitempty"`
	Contents         []content `json:"contents,omitempty"`
	ContentIDs       []string  `json:"content_ids,omitempty"`
	NumItems         *int      `json:"num_items,omitempty"`
	OrderID          string    `json:"order_id,omitempty"`
	SearchString     string    `json:"search_string,omitempty"`
	PredictedLTV     *float64  `json:"predicted_ltv,omitempty"`
	DeliveryCategory string    `json:"delivery_category,omitempty"`
}

type content struct {
	ContentID   string   `json:"content_id"`
	ContentName string   `json:"content_name,omitempty"`
	Price       *float64 `json:"price,omitempty"`
	Quantity    *int     `json:"quantity,omitempty"`
}

// toWebEvent maps a canonical event whose TikTok name is name.
func toWebEvent(e destinations.Event, name string) webEvent {
	ud := e.UserData
	phones := ud.PhE164
	if len(phones) == 0 {
		phones = ud.Ph // the sender gave digests: no E.164 variant exists
	}
	u := user{
		Email:      ud.Em,
		Phone:      phones,
		ExternalID: ud.ExternalID,
		FirstName:  first(ud.Fn),
		LastName:   first(ud.Ln),
		ZipCode:    first(ud.Zp),
		TTCLID:     platform.ClickID(&e, "ttclid", ClickWindow),
		TTP:        e.Context.Cookies["_ttp"],
		IP:         ud.ClientIPAddress,
		UserAgent:  ud.ClientUserAgent,
	}
	w := webEvent{
		Event:          name,
		EventTime:      e.EventTime,
		EventID:        e.EventID,
		User:           u,
		Properties:     toProperties(e.CustomData),
		LimitedDataUse: slices.Contains(e.DataProcessingOptions, "LDU"),
	}
	if e.EventSourceURL != "" || e.ReferrerURL != "" {
		w.Page = &page{URL: e.EventSourceURL, Referrer: e.ReferrerURL}
	}
	return w
}

func toProperties(cd *destinations.CustomData) *properties {
	if cd == nil {
		return nil
	}
	p := &properties{
		Currency:         cd.Currency,
		Value:            cd.Value,
		ContentIDs:       cd.ContentIDs,
		NumItems:         cd.NumItems,
		OrderID:          cd.OrderID,
		SearchString:     cd.SearchString,
		PredictedLTV:     cd.PredictedLTV,
		DeliveryCategory: cd.DeliveryCategory,
	}
	for _, c := range cd.Contents {
		p.Contents = append(p.Contents, content{ContentID: c.ID, ContentName: c.Title, Price: c.ItemPrice, Quantity: c.Quantity})
	}
	switch cd.ContentType {
	case "product", "product_group":
		p.ContentType = cd.ContentType
	default:
		if len(p.Contents) > 0 || len(p.ContentIDs) > 0 {
			p.ContentType = "product"
		}
	}
	if p.Currency == "" && p.Value == nil && len(p.Contents) == 0 && len(p.ContentIDs) == 0 && p.NumItems == nil &&
		p.OrderID == "" && p.SearchString == "" && p.PredictedLTV == nil && p.DeliveryCategory == "" {
		return nil
	}
	return p
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Deliver sends batch to TikTok and returns one outcome per event. Events
// TikTok would certainly refuse (no TikTok name, no time, past the age
// limit) fail on their own as permanent. The rest go in one request per
// test event code, in chunks of MaxEvents.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[string, webEvent](MaxEvents, len(batch))
	now := a.api.Now()
	for i, e := range batch {
		name, err := a.precheck(e, now)
		if err != nil {
			out[i] = err
			continue
		}
		groups.Add(cmp.Or(e.Context.TestEventCode, a.settings.TestEventCode), i, toWebEvent(e, name))
	}
	for _, g := range groups.All() {
		g.Set(out, a.send(ctx, trackRequest{
			EventSource:   "web",
			EventSourceID: a.settings.PixelCode,
			TestEventCode: g.Key,
			Data:          g.Events,
		}))
	}
	return out
}

// precheck returns TikTok's name for e, or the permanent error of an event
// TikTok would refuse, so that one of them cannot sink a whole request.
func (a *Adapter) precheck(e destinations.Event, now time.Time) (string, error) {
	name, ok := EventName(e.EventName)
	if !ok {
		return "", destinations.PermanentError("tiktok: event %q: TikTok has no event named %q", e.EventID, e.EventName)
	}
	if err := a.api.CheckTime(&e, now, MaxAge); err != nil {
		return "", err
	}
	return name, nil
}

// send posts one request (or, in dry-run, logs and records it) and returns
// the outcome shared by all its events.
func (a *Adapter) send(ctx context.Context, req trackRequest) error {
	b, err := json.Marshal(req)
	if err != nil {
		return destinations.PermanentError("tiktok: encode request: %v", err)
	}
	if a.settings.dryRun() {
		// The token is in a header, never in the body.
		a.api.DryRun(b, platform.IDs(req.Data, func(e *webEvent) string { return e.EventID }))
		return nil
	}
	resp, err := a.api.Post(ctx, a.endpoint, a.header, b)
	if err != nil {
		return a.api.Failed(err, len(req.Data))
	}
	if err := a.api.ReadFailure(resp); err != nil {
		return err
	}
	reply, out := a.classify(resp.Status, resp.Header, resp.Body, len(req.Data))
	if out != nil {
		a.api.Log.Warn("tiktok request rejected", "events", len(req.Data), "error", out.Error())
		return out
	}
	if reply.Code == codePartial {
		// TikTok kept the request but not every event, without saying
		// which in a form we can read; a resend would not change that.
		a.api.Log.Warn("tiktok accepted the request partly", "events", len(req.Data),
			"message", a.api.Redact(reply.Message), "request_id", reply.RequestID)
		return nil
	}
	a.api.Log.Debug("tiktok request accepted", "events", len(req.Data), "request_id", reply.RequestID)
	return nil
}

// reply is the Business API's response envelope.
type reply struct {
	Code      int    `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// classify turns one response into the outcome of all the events it
// carried: nil, or a *destinations.Error free of the token.
func (a *Adapter) classify(status int, header http.Header, body []byte, sent int) (reply, *destinations.Error) {
	var env struct {
		Code *int `json:"code"`
		reply
	}
	parsed := json.Unmarshal(body, &env) == nil && env.Code != nil
	if parsed {
		env.reply.Code = *env.Code
	}
	r := env.reply
	ok2xx := status >= 200 && status < 300
	if parsed && ok2xx && (r.Code == codeOK || r.Code == codePartial) {
		return r, nil
	}
	if !parsed || r.Code == codeOK {
		if ok2xx {
			return r, &destinations.Error{Kind: destinations.Retryable, Status: status,
				Message: "tiktok: success status without a response code"}
		}
		return r, a.api.ByStatus(status, header, a.api.StatusMessage(status, body))
	}

	e := &destinations.Error{Status: status, Code: strconv.Itoa(r.Code), Message: a.api.Redact(describe(r))}
	retryAfter := destinations.RetryAfter(header, a.api.Now())
	switch c := r.Code; {
	case c == codeRateLimited:
		e.Kind = destinations.Retryable
		e.RetryAfter = max(rateLimitDelay, retryAfter)
	case c == codeNoPermission, c > codeRateLimited && c < 40200:
		// The token is missing, wrong, expired or revoked, or may not
		// report to this pixel: the destination's configuration is wrong,
		// not the events.
		e.Kind = destinations.Paused
	case c == codeServerBusy, c >= 50000 && c < 60000:
		e.Kind = destinations.Retryable
		e.RetryAfter = retryAfter
	case c >= 40000 && c < 50000:
		// A parameter TikTok refuses. It names the field in its message but
		// refuses the whole request: the queue splits a multi-event request
		// to find the event at fault.
		e.Kind = destinations.Permanent
		e.WholeBatch = sent > 1
	case ok2xx:
		e.Kind = destinations.Retryable
		e.RetryAfter = retryAfter
	default:
		de := a.api.ByStatus(status, header, e.Message)
		e.Kind, e.RetryAfter = de.Kind, de.RetryAfter
	}
	return r, e
}

func describe(r reply) string {
	s := "tiktok"
	if m := strings.TrimSpace(r.Message); m != "" {
		s += ": " + m
	}
	if r.RequestID != "" {
		s += " (request_id " + r.RequestID + ")"
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
