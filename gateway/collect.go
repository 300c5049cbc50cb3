package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/routing/model"
)

// collectRequest is the body of POST /collect (see the wire contract).
type collectRequest struct {
	VID      string            `json:"vid"`
	URL      string            `json:"url"`
	Referrer string            `json:"referrer"`
	Consent  *wireConsent      `json:"consent"`
	Events   []json.RawMessage `json:"events"`
}

// wireConsent is the consent object a browser sends.
type wireConsent struct {
	AdStorage         string `json:"ad_storage"`
	AdUserData        string `json:"ad_user_data"`
	AdPersonalization string `json:"ad_personalization"`
	AnalyticsStorage  string `json:"analytics_storage"`
}

// collectEvent is one browser event.
type collectEvent struct {
	EventName      string          `json:"event_name"`
	EventID        string          `json:"event_id"`
	EventTime      *int64          `json:"event_time"`
	EventSourceURL string          `json:"event_source_url"`
	CustomData     json.RawMessage `json:"custom_data"`
	UserData       pii.RawUserData `json:"user_data"`
	// customData is CustomData decoded by fastCollect, when it could.
	customData *destinations.CustomData

	// Meta's other server-event fields, optional from a browser: the
	// action_source defaults to website and referrer_url to the request's
	// referrer.
	ActionSource                 string   `json:"action_source"`
	OptOut                       bool     `json:"opt_out"`
	ReferrerURL                  string   `json:"referrer_url"`
	DataProcessingOptions        []string `json:"data_processing_options"`
	DataProcessingOptionsCountry *int     `json:"data_processing_options_country"`
	DataProcessingOptionsState   *int     `json:"data_processing_options_state"`
}

// collect handles POST /collect.
func (g *Gateway) collect(w http.ResponseWriter, r *http.Request) {
	w.Header()["Vary"] = hdrVaryOrig
	n, site, err := g.collectEvents(w, r)
	if err != nil {
		g.reject(w, r, err)
		return
	}
	g.metrics.receivedFromBrowser(site).Add(float64(n))
	// 204 and no body: the script only needs the status, and every event
	// of a shopper's visit pays for the answer's bytes (errors are JSON).
	w.WriteHeader(http.StatusNoContent)
}

// reject answers an API error, counts it and logs it (without values).
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, e *apiError) {
	g.metrics.rejected.WithLabelValues(e.Code).Inc()
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	g.log.Debug("request refused", "path", r.URL.Path, "status", e.Status, "code", e.Code, "field", e.Field)
	writeError(w, e)
}

// preflight answers a CORS preflight for /collect.
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	w.Header().Add("Vary", "Access-Control-Request-Method")
	w.Header().Add("Vary", "Access-Control-Request-Headers")
	origin := r.Header.Get("Origin")
	snap := g.opts.Sites.Snapshot()
	if origin == "" || snap == nil {
		g.reject(w, r, &apiError{Status: http.StatusForbidden, Code: codeOriginNotAllowed, Message: "a CORS preflight needs an allowed Origin"})
		return
	}
	if _, e := g.siteForOrigin(snap, g.requestHost(r), origin); e != nil {
		g.reject(w, r, e)
		return
	}
	h := w.Header()
	setCORS(h, origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "7200")
	w.WriteHeader(http.StatusNoContent)
}

func setCORS(h http.Header, origin string) {
	h["Access-Control-Allow-Origin"] = []string{origin}
	h["Access-Control-Allow-Credentials"] = hdrTrue
}

// siteForOrigin resolves the site of a request that carries an Origin: the
// site whose domains cover the origin's host; else the site of the request's
// host if the origin is allowed there; else a site listing the origin in its
// allowed_origins. No match is 403 origin_not_allowed.
func (g *Gateway) siteForOrigin(snap *model.Snapshot, host, origin string) (*model.Site, *apiError) {
	if site, ok := g.originSites.get(snap, origin); ok {
		return site, nil
	}
	refused := &apiError{Status: http.StatusForbidden, Code: codeOriginNotAllowed, Message: "this origin may not send events to this gateway"}
	o, ok := model.ParseOrigin(origin)
	if !ok {
		return nil, refused
	}
	if site, ok := snap.SiteByHost(o.Host); ok && site.OriginAllowed(origin) {
		// Depends on the origin and the snapshot alone: remembered.
		g.originSites.put(snap, origin, site)
		return site, nil
	}
	if site, ok := snap.SiteByHost(host); ok && site.OriginAllowed(origin) {
		return site, nil
	}
	cfg := snap.Config()
	for i := range cfg.Sites {
		for _, a := range cfg.Sites[i].AllowedOrigins {
			if strings.EqualFold(a, origin) {
				site, _ := snap.Site(cfg.Sites[i].ID)
				return site, nil
			}
		}
	}
	return nil, refused
}

// collectEvents does the work of /collect and returns how many events were
// enqueued and for which site.
func (g *Gateway) collectEvents(w http.ResponseWriter, r *http.Request) (int, string, *apiError) {
	snap := g.opts.Sites.Snapshot()
	if snap == nil {
		return 0, "", &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "configuration not loaded yet"}
	}
	host := g.requestHost(r)
	var site *model.Site
	if origin := r.Header.Get("Origin"); origin != "" {
		s, e := g.siteForOrigin(snap, host, origin)
		if e != nil {
			return 0, "", e
		}
		site = s
		setCORS(w.Header(), origin)
	}

	body, e := readBody(w, r, g.opts.MaxBodyBytes)
	if e != nil {
		return 0, "", e
	}
	var req collectRequest // on the stack: the strict decoder gets its own
	fast, ok := fastCollect(body, &req)
	if !ok {
		strict := new(collectRequest)
		if e := decodeStrict(body, strict, ""); e != nil {
			return 0, "", e
		}
		req, fast = *strict, nil
	}
	count := len(req.Events) + len(fast)
	switch {
	case count == 0:
		return 0, "", badField("events", "at least one event is required")
	case count > g.opts.MaxEvents:
		return 0, "", &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooManyEvents, Field: "events",
			Message: fmt.Sprintf("at most %d events per request", g.opts.MaxEvents)}
	}
	if e := checkURL("url", req.URL); e != nil {
		return 0, "", e
	}
	if len(req.Referrer) > maxURLLen {
		return 0, "", badField("referrer", "longer than %d characters", maxURLLen)
	}
	if len(req.VID) > maxVIDLen {
		return 0, "", badField("vid", "longer than %d characters", maxVIDLen)
	}

	if site == nil {
		if s, ok := snap.SiteByHost(host); ok {
			site = s
		} else if u, err := url.Parse(req.URL); err == nil && req.URL != "" {
			if s, ok := snap.SiteByHost(u.Hostname()); ok {
				site = s
			}
		}
		if site == nil {
			return 0, "", &apiError{Status: http.StatusNotFound, Code: codeUnknownSite, Message: "no site is configured for this host"}
		}
	}

	consent, e := resolveConsent(req.Consent, site.ConsentDefault)
	if e != nil {
		return 0, "", e
	}
	now := g.now()
	var cookies cookieState
	var target cookieTarget
	if consent.AdStorage == destinations.Granted {
		target = g.cookieTarget(r, host, site)
		c, err := g.visitorCookies(r, target, req.VID, req.URL, req.Referrer, now)
		if err != nil {
			g.log.Error("minting cookies", "err", err)
			return 0, "", &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "try again later"}
		}
		cookies = c
	}
	ids := g.browserIDs(r, target, consent, req.VID, req.URL, req.Referrer, now)

	base := destinations.Event{
		EventSourceURL: g.pageURL(r, req.URL),
		ReferrerURL:    referrerURL(req.Referrer),
		ActionSource:   actionSourceWebsite,
		Context: destinations.Context{
			SiteID:     site.ID,
			ReceivedAt: now.UnixMilli(),
			Source:     "browser",
			Consent:    consent,
		},
	}
	ids.annotate(&base.Context)
	base.Context.Country, base.Context.Region = g.visitorRegion(r)
	ip, ua := g.clientIP(r), userAgent(r)
	events := make([]destinations.Event, 0, count)
	for i := range count {
		prefix := eventPrefix(i)
		var in *collectEvent
		if fast != nil {
			in = &fast[i]
		} else {
			in = new(collectEvent)
			if e := decodeStrict(req.Events[i], in, prefix); e != nil {
				return 0, "", e
			}
		}
		// Built in place: an Event is ~700 bytes, not copied around.
		events = append(events, base)
		ev := &events[i]
		if e := g.browserEvent(prefix, in, ev, now); e != nil {
			return 0, "", e
		}
		ev.UserData.ClientIPAddress = ip
		ev.UserData.ClientUserAgent = ua
		ev.UserData.Fbp, ev.UserData.Fbc = cookies.Fbp, cookies.Fbc
		if e := checkMetaRules(prefix, ev); e != nil {
			return 0, "", e
		}
	}
	applyConsentMode(site, events)

	// The write outlives the browser: once begun it ends on its own bounds
	// (the queue's write timeout, the spool), whether or not the sender
	// is still there to read the answer.
	if err := g.opts.Enqueuer.Enqueue(context.WithoutCancel(r.Context()), site.ID, events); err != nil {
		g.log.Error("enqueue failed", "site", site.ID, "events", len(events), "err", err)
		return 0, "", &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "events could not be stored; retry later"}
	}
	target.setCookies(w.Header(), cookies.Set, ids.set)
	return len(events), site.ID, nil
}

// under names a problem's field under prefix ("events[0]."): the field
// path is only built when there is a problem.
func under(prefix string, e *apiError) *apiError {
	if e != nil {
		e.Field = prefix + e.Field
	}
	return e
}

// eventPrefixes are the field prefixes of a request's first events, made
// once.
var eventPrefixes = func() (out [8]string) {
	for i := range out {
		out[i] = makeEventPrefix(i)
	}
	return out
}()

// eventPrefix is the field prefix of the i-th event of a request.
func eventPrefix(i int) string {
	if i < len(eventPrefixes) {
		return eventPrefixes[i]
	}
	return makeEventPrefix(i)
}

func makeEventPrefix(i int) string { return "events[" + strconv.Itoa(i) + "]." }

// browserEvent validates one browser event and builds its canonical form
// in ev, which holds the request's base event; now is the request's time.
func (g *Gateway) browserEvent(prefix string, in *collectEvent, ev *destinations.Event, now time.Time) *apiError {
	if e := under(prefix, checkEventName("event_name", in.EventName)); e != nil {
		return e
	}
	ev.EventName = in.EventName
	if e := under(prefix, checkText("event_id", in.EventID, maxEventIDLen)); e != nil {
		return e
	}
	ev.EventID = in.EventID
	if ev.EventID == "" {
		id, err := g.mintEventID()
		if err != nil {
			g.log.Error("minting event id", "err", err)
			return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "try again later"}
		}
		ev.EventID = id
	}
	if in.ActionSource != "" {
		if e := under(prefix, checkActionSource("action_source", in.ActionSource)); e != nil {
			return e
		}
		ev.ActionSource = in.ActionSource
	}
	maxAge := maxEventAge
	if ev.ActionSource == "physical_store" {
		maxAge = maxPhysicalEventAge
	}
	ev.EventTime = now.Unix()
	if in.EventTime != nil {
		if e := under(prefix, checkEventTime("event_time", *in.EventTime, now, maxAge)); e != nil {
			return e
		}
		ev.EventTime = *in.EventTime
	}
	if in.EventSourceURL != "" {
		if e := under(prefix, checkURL("event_source_url", in.EventSourceURL)); e != nil {
			return e
		}
		ev.EventSourceURL = in.EventSourceURL
	}
	if in.ReferrerURL != "" {
		if e := under(prefix, checkURL("referrer_url", in.ReferrerURL)); e != nil {
			return e
		}
		ev.ReferrerURL = in.ReferrerURL
	}
	ev.OptOut = in.OptOut
	if e := checkDataProcessing(prefix, in.DataProcessingOptions, in.DataProcessingOptionsCountry, in.DataProcessingOptionsState); e != nil {
		return e
	}
	ev.DataProcessingOptions = in.DataProcessingOptions
	ev.DataProcessingOptionsCountry = in.DataProcessingOptionsCountry
	ev.DataProcessingOptionsState = in.DataProcessingOptionsState
	cd, e := decodeCustomData(prefix, in.CustomData, in.customData)
	if e != nil {
		return e
	}
	ev.CustomData = cd
	// The gateway fills these itself; a browser does not get to choose them.
	raw := in.UserData
	for _, k := range []string{"client_ip_address", "client_user_agent", "fbc", "fbp"} {
		delete(raw, k)
	}
	u, e := hashUserData(prefix, raw, now)
	if e != nil {
		return e
	}
	ev.UserData = u
	return nil
}

// referrerURL keeps an http(s) referrer and drops others (an app referrer
// such as android-app://...), which Meta would not read.
func referrerURL(v string) string {
	if plainHTTPURL(v) {
		return v
	}
	if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return v
	}
	return ""
}

// consentState reads one consent key (field): def when unstated; prev,
// the error of an earlier key, wins over this key's.
func consentState(field, in string, def destinations.ConsentState, prev *apiError) (destinations.ConsentState, *apiError) {
	switch st := destinations.ConsentState(in); st {
	case "":
		return def, prev
	case destinations.Granted, destinations.Denied:
		return st, prev
	default:
		return "", cmp.Or(prev, badField(field, "must be granted or denied"))
	}
}

// resolveConsent applies the site's default to the keys the browser did not
// state. "wait" counts as denied here: events are accepted, identifiers not.
func resolveConsent(in *wireConsent, siteDefault string) (destinations.Consent, *apiError) {
	def := destinations.Denied
	if siteDefault == model.ConsentGranted || siteDefault == "" {
		def = destinations.Granted
	}
	var w wireConsent
	if in != nil {
		w = *in
	}
	var out destinations.Consent
	var e *apiError
	out.AdStorage, e = consentState("consent.ad_storage", w.AdStorage, def, e)
	out.AdUserData, e = consentState("consent.ad_user_data", w.AdUserData, def, e)
	out.AdPersonalization, e = consentState("consent.ad_personalization", w.AdPersonalization, def, e)
	out.AnalyticsStorage, e = consentState("consent.analytics_storage", w.AnalyticsStorage, def, e)
	return out, e
}
