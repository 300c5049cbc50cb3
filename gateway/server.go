package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/routing/model"
)

// serverRequest is the body of POST /v1/events: Meta's Conversions API
// request shape, plus tagway's consent extension: the visitor's consent
// for every event of the request (Consent Mode v2 words; a purpose not
// stated is granted: the store's back end answers for what it sends).
type serverRequest struct {
	Data          []json.RawMessage `json:"data"`
	TestEventCode string            `json:"test_event_code"`
	Consent       json.RawMessage   `json:"consent"`
}

// ingestEvent is one event of POST /v1/events: Meta's fields plus tagway's
// consent extension, the event's own consent, whose stated purposes win
// over the request's. The drop-in CAPI endpoint decodes serverEvent alone,
// refusing "consent" as Meta would.
type ingestEvent struct {
	serverEvent
	Consent json.RawMessage `json:"consent"`
}

// batchOptions say how serverBatch reads one request.
type batchOptions struct {
	testEventCode string
	// consent turns on the consent extension of /v1/events, with request
	// the request's consent (empty: none stated).
	consent bool
	request json.RawMessage
}

// serverEvent is one server event in Meta's field names.
type serverEvent struct {
	EventName                    string          `json:"event_name"`
	EventTime                    *int64          `json:"event_time"`
	EventID                      string          `json:"event_id"`
	EventSourceURL               string          `json:"event_source_url"`
	ReferrerURL                  string          `json:"referrer_url"`
	ActionSource                 string          `json:"action_source"`
	OptOut                       bool            `json:"opt_out"`
	UserData                     pii.RawUserData `json:"user_data"`
	CustomData                   json.RawMessage `json:"custom_data"`
	DataProcessingOptions        []string        `json:"data_processing_options"`
	DataProcessingOptionsCountry *int            `json:"data_processing_options_country"`
	DataProcessingOptionsState   *int            `json:"data_processing_options_state"`
}

// actionSources are Meta's accepted action_source values.
var actionSources = []string{"email", "website", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other"}

// serverEvents handles POST /v1/events.
func (g *Gateway) serverEvents(w http.ResponseWriter, r *http.Request) {
	n, site, messages, e := g.serverEventsDo(w, r)
	if e != nil {
		if e.Code == codeUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tagway"`)
		}
		g.reject(w, r, e)
		return
	}
	g.metrics.received.WithLabelValues(site, "server").Add(float64(n))
	writeJSON(w, http.StatusOK, struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages,omitempty"`
	}{n, messages})
}

func (g *Gateway) serverEventsDo(w http.ResponseWriter, r *http.Request) (int, string, []string, *apiError) {
	snap := g.opts.Sites.Snapshot()
	if snap == nil {
		return 0, "", nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "configuration not loaded yet"}
	}
	// Authenticate before reading the body.
	scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	site, ok := snap.SiteByIngestKey(strings.TrimSpace(key))
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		return 0, "", nil, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "a valid ingest key is required: Authorization: Bearer <key>"}
	}

	body, e := readBody(w, r, g.opts.MaxServerBodyBytes)
	if e != nil {
		return 0, "", nil, e
	}
	var req serverRequest
	if e := decodeStrict(body, &req, ""); e != nil {
		return 0, "", nil, e
	}
	events, messages, e := g.serverBatch(req.Data, site, batchOptions{testEventCode: req.TestEventCode, consent: true, request: req.Consent})
	if e != nil {
		return 0, "", nil, e
	}
	if err := g.opts.Enqueuer.Enqueue(r.Context(), site.ID, events); err != nil {
		g.log.Error("enqueue failed", "site", site.ID, "events", len(events), "err", err)
		return 0, "", nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "events could not be stored; retry later"}
	}
	return len(events), site.ID, messages, nil
}

// serverBatch validates the server events of one request (Meta's data
// array) and builds their canonical form for site, with the request's
// test_event_code. Server senders assert consent themselves: an event is
// granted every purpose unless the consent extension (opts.consent, on
// /v1/events only) says otherwise, in which case an event without
// marketing consent loses its identifiers exactly as on /collect
// (applyConsentMode).
//
// An event that does not decode gets the type coercions Graph applies
// (graphCoerce) and is decoded again; customer information that cannot be
// used is dropped, and messages say so (as Graph's answer does). Anything
// else invalid refuses the request with the field named.
func (g *Gateway) serverBatch(data []json.RawMessage, site *model.Site, opts batchOptions) ([]destinations.Event, []string, *apiError) {
	switch {
	case len(data) == 0:
		return nil, nil, badField("data", "at least one event is required")
	case len(data) > g.opts.MaxServerEvents:
		return nil, nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooManyEvents, Field: "data",
			Message: fmt.Sprintf("at most %d events per request", g.opts.MaxServerEvents)}
	}
	if e := checkText("test_event_code", opts.testEventCode, maxTestEventCodeLen); e != nil {
		return nil, nil, e
	}
	request, e := decodeConsent(opts.request, "")
	if e != nil {
		return nil, nil, e
	}
	consent, e := resolveConsent(request, model.ConsentGranted)
	if e != nil {
		return nil, nil, e
	}
	now := g.now()
	events := make([]destinations.Event, 0, len(data))
	var messages []string
	for i, raw := range data {
		prefix := "data[" + strconv.Itoa(i) + "]."
		ev, dropped, e := g.serverEventFrom(prefix, raw, opts, request, consent)
		if e != nil && e.Code == codeInvalidJSON {
			if coerced, changed := graphCoerce(raw); changed {
				ev, dropped, e = g.serverEventFrom(prefix, coerced, opts, request, consent)
			}
		}
		if e != nil {
			return nil, nil, e
		}
		for _, d := range dropped {
			g.metrics.fixed.WithLabelValues(metricField("user_data."+d.key), d.reason).Inc()
			messages = append(messages, prefix+"user_data."+d.key+": a value was dropped ("+d.detail+")")
		}
		ev.Context.SiteID = site.ID
		ev.Context.ReceivedAt = now.UnixMilli()
		ev.Context.Source = "server"
		ev.Context.TestEventCode = opts.testEventCode
		events = append(events, ev)
	}
	applyConsentMode(site, events)
	return events, messages, nil
}

// serverEventFrom decodes and validates one server event, with its
// consent: the event's own over the request's (consent extension), else
// the request's resolved consent.
func (g *Gateway) serverEventFrom(prefix string, raw json.RawMessage, opts batchOptions, request *wireConsent, consent destinations.Consent) (destinations.Event, []droppedValue, *apiError) {
	var in ingestEvent
	var e *apiError
	if opts.consent {
		e = decodeStrict(raw, &in, prefix)
	} else {
		e = decodeStrict(raw, &in.serverEvent, prefix)
	}
	if e != nil {
		return destinations.Event{}, nil, e
	}
	ev, dropped, e := g.serverEvent(prefix, in.serverEvent)
	if e != nil {
		return ev, nil, e
	}
	ev.Context.Consent = consent
	if own, e := decodeConsent(in.Consent, prefix); e != nil {
		return ev, nil, e
	} else if own != nil {
		if ev.Context.Consent, e = resolveConsent(overConsent(own, request), model.ConsentGranted); e != nil {
			e.Field = prefix + e.Field
			return ev, nil, e
		}
	}
	return ev, dropped, nil
}

// decodeConsent reads a consent object strictly (nil when absent); errors
// name prefix + "consent.<key>".
func decodeConsent(raw json.RawMessage, prefix string) (*wireConsent, *apiError) {
	if len(raw) == 0 {
		return nil, nil
	}
	var c wireConsent
	if e := decodeStrict(raw, &c, prefix+"consent."); e != nil {
		return nil, e
	}
	return &c, nil
}

// overConsent is the event's consent over the request's: each purpose the
// event states, else the request's.
func overConsent(event, request *wireConsent) *wireConsent {
	out := *event
	if request == nil {
		return &out
	}
	if out.AdStorage == "" {
		out.AdStorage = request.AdStorage
	}
	if out.AdUserData == "" {
		out.AdUserData = request.AdUserData
	}
	if out.AdPersonalization == "" {
		out.AdPersonalization = request.AdPersonalization
	}
	if out.AnalyticsStorage == "" {
		out.AnalyticsStorage = request.AnalyticsStorage
	}
	return &out
}

// serverEvent validates one server event and builds its canonical form;
// dropped is the customer information it left out (cleanUserData).
func (g *Gateway) serverEvent(prefix string, in serverEvent) (ev destinations.Event, dropped []droppedValue, e *apiError) {
	now := g.now()
	ev = destinations.Event{OptOut: in.OptOut}
	if e := under(prefix, checkEventName("event_name", in.EventName)); e != nil {
		return ev, nil, e
	}
	ev.EventName = in.EventName
	if e := under(prefix, checkActionSource("action_source", in.ActionSource)); e != nil {
		return ev, nil, e
	}
	ev.ActionSource = in.ActionSource
	if in.EventTime == nil {
		return ev, nil, badField(prefix+"event_time", "required (Unix seconds)")
	}
	maxAge := maxEventAge
	if in.ActionSource == "physical_store" {
		maxAge = maxPhysicalEventAge
	}
	if e := under(prefix, checkEventTime("event_time", *in.EventTime, now, maxAge)); e != nil {
		return ev, nil, e
	}
	ev.EventTime = *in.EventTime
	if e := under(prefix, checkText("event_id", in.EventID, maxEventIDLen)); e != nil {
		return ev, nil, e
	}
	ev.EventID = in.EventID
	if ev.EventID == "" {
		id, err := g.mintEventID()
		if err != nil {
			g.log.Error("minting event id", "err", err)
			return ev, nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "try again later"}
		}
		ev.EventID = id
	}
	if e := under(prefix, checkURL("event_source_url", in.EventSourceURL)); e != nil {
		return ev, nil, e
	}
	ev.EventSourceURL = in.EventSourceURL
	if e := under(prefix, checkURL("referrer_url", in.ReferrerURL)); e != nil {
		return ev, nil, e
	}
	ev.ReferrerURL = in.ReferrerURL
	if e := checkDataProcessing(prefix, in.DataProcessingOptions, in.DataProcessingOptionsCountry, in.DataProcessingOptionsState); e != nil {
		return ev, nil, e
	}
	ev.DataProcessingOptions = in.DataProcessingOptions
	ev.DataProcessingOptionsCountry = in.DataProcessingOptionsCountry
	ev.DataProcessingOptionsState = in.DataProcessingOptionsState
	cd, e := decodeCustomData(prefix, in.CustomData, nil)
	if e != nil {
		return ev, nil, e
	}
	ev.CustomData = cd
	u, dropped, e := serverUserData(prefix, in.UserData, now)
	if e != nil {
		return ev, nil, e
	}
	ev.UserData = u
	if e := checkMetaRules(prefix, &ev); e != nil {
		return ev, nil, e
	}
	return ev, dropped, nil
}

// serverUserData hashes a server event's customer information. A value
// that cannot be used (one that cannot be normalized, or over its bound)
// is dropped rather than refusing the event, and returned in dropped; an
// unknown key, or several values for a single-valued key, still refuses
// it.
func serverUserData(prefix string, raw pii.RawUserData, now time.Time) (destinations.UserData, []droppedValue, *apiError) {
	u, e := hashUserData(prefix, raw, now)
	if e == nil {
		return u, nil, nil
	}
	clean, dropped := cleanUserData(raw, now, true)
	if len(dropped) == 0 {
		return u, nil, e
	}
	if u, e = hashUserData(prefix, clean, now); e != nil {
		return u, nil, e
	}
	return u, dropped, nil
}
