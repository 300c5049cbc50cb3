package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/routing/model"
)

// collectRequest is the body of POST /collect (see the wire contract).
type collectRequest struct {
	VID      string       `json:"vid"`
	URL      string       `json:"url"`
	Referrer string       `json:"referrer"`
	Consent  *wireConsent `json:"consent"`
	// SentAt is when the script sent the request, Unix milliseconds by
	// the device's clock (0: not sent); Debug asks for each event's
	// outcome.
	SentAt int64             `json:"sent_at"`
	Debug  bool              `json:"debug"`
	Events []json.RawMessage `json:"events"`
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
	w.Header()["Vary"] = hdrVaryOrigin
	n, site, answer, err := g.collectEvents(w, r)
	if err != nil {
		g.reject(w, r, err)
		return
	}
	g.metrics.receivedFromBrowser(site).Add(float64(n))
	if answer != nil {
		writeAnswer(w, answer)
		return
	}
	// 204 and no body when every event was kept as sent: the script only
	// needs the status, and every event of a shopper's visit pays for the
	// answer's bytes.
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

// collectEvents does the work of /collect: it returns how many events were
// stored and for which site, and the 200 answer when some event was fixed
// or refused (or the page asked for debug), nil for a 204. An error is a
// problem of the whole request.
//
// Each event is decided on its own: a clean one goes the fast, strict way;
// one that fails it is repaired (repairBrowserEvent) and validated again,
// keeping what can be kept; only an event with nothing usable left is
// refused, never its neighbours.
func (g *Gateway) collectEvents(w http.ResponseWriter, r *http.Request) (int, string, *collectAnswer, *apiError) {
	snap := g.opts.Sites.Snapshot()
	if snap == nil {
		return 0, "", nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "configuration not loaded yet"}
	}
	host := g.requestHost(r)
	var site *model.Site
	if origin := r.Header.Get("Origin"); origin != "" {
		s, e := g.siteForOrigin(snap, host, origin)
		if e != nil {
			return 0, "", nil, e
		}
		site = s
		setCORS(w.Header(), origin)
	}

	body, e := readBody(w, r, g.opts.MaxBodyBytes)
	if e != nil {
		return 0, "", nil, e
	}
	var req collectRequest // on the stack: the slow path gets its own
	var out batchOutcomes
	fast, ok := fastCollect(body, &req, g.opts.MaxEvents)
	if !ok {
		slow, fixes, e := readEnvelope(body, g.opts.MaxEvents)
		if e != nil {
			return 0, "", nil, e
		}
		req, fast, out.request = *slow, nil, fixes
	}
	count := len(req.Events) + len(fast)
	switch {
	case count == 0:
		return 0, "", nil, badField("events", "at least one event is required")
	case count > g.opts.MaxEvents:
		return 0, "", nil, tooManyEvents(g.opts.MaxEvents)
	}
	out.n, out.debug = count, req.Debug
	page := readPage(&req, &out)

	if site == nil {
		if s, ok := snap.SiteByHost(host); ok {
			site = s
		} else if u, err := url.Parse(page.fullURL); err == nil && page.fullURL != "" {
			if s, ok := snap.SiteByHost(u.Hostname()); ok {
				site = s
			}
		}
		if site == nil {
			return 0, "", nil, &apiError{Status: http.StatusNotFound, Code: codeUnknownSite, Message: "no site is configured for this host"}
		}
	}

	consent := collectConsent(req.Consent, site.ConsentDefault, &out)
	now := g.now()
	clk := batchClock{now: now}
	if req.SentAt != 0 {
		if sentAtUsable(req.SentAt) {
			clk.shift = skewSeconds(now, req.SentAt)
		} else {
			out.requestFix("sent_at", reasonInvalid)
		}
	}
	var cookies cookieState
	var target cookieTarget
	if consent.AdStorage == destinations.Granted {
		target = g.cookieTarget(r, host, site)
		c, err := g.visitorCookies(r, target, req.VID, page.fullURL, page.fullReferrer, now)
		if err != nil {
			g.log.Error("minting cookies", "err", err)
			return 0, "", nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "try again later"}
		}
		cookies = c
	}
	ids := g.browserIDs(r, target, consent, req.VID, page.fullURL, page.fullReferrer, now)
	out.request = append(out.request, ids.dropped...)

	base := destinations.Event{
		EventSourceURL: g.pageURL(r, page.url),
		ReferrerURL:    referrerURL(page.referrer),
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
		var in *collectEvent
		var raw []byte
		if fast != nil {
			in, raw = &fast[i], nil // found again only if it needs repair
		} else {
			raw = req.Events[i]
			if in = new(collectEvent); decodeStrict(raw, in, "") != nil {
				in = nil
			}
		}
		// Built in place in events.
		events = append(events, base)
		ev := &events[len(events)-1]
		id, fixes, refused, e := g.decideEvent(in, raw, body, i, ev, &base, clk)
		if e != nil {
			return 0, "", nil, e
		}
		if refused != nil {
			events = events[:len(events)-1]
			out.refuse(i, id, refused)
			continue
		}
		ev.UserData.ClientIPAddress = ip
		ev.UserData.ClientUserAgent = ua
		ev.UserData.Fbp, ev.UserData.Fbc = cookies.Fbp, cookies.Fbc
		ev.Context.Incomplete = metaShortfall(ev)
		out.accept(i, ev.EventID, fixes)
	}
	applyConsentMode(site, events)

	if len(events) > 0 {
		// The write outlives the browser: once begun it ends on its own
		// bounds (the queue's write timeout, the spool), whether or not
		// the sender is still there to read the answer.
		if err := g.opts.Enqueuer.Enqueue(context.WithoutCancel(r.Context()), site.ID, events); err != nil {
			g.log.Error("enqueue failed", "site", site.ID, "events", len(events), "err", err)
			return 0, "", nil, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "events could not be stored; retry later"}
		}
		target.setCookies(w.Header(), cookies.Set, ids.set)
	}
	g.metrics.count(&out)
	return len(events), site.ID, out.answer(events), nil
}

// decideEvent builds the canonical form of one browser event in ev (which
// holds base): in is the event as the strict decoder read it (nil when it
// could not), raw its JSON (nil for the i-th event fastCollect read from
// body: found again there if needed). It returns the event's id and the
// fixes made, or why the event is refused; an error is a problem of the
// whole request.
func (g *Gateway) decideEvent(in *collectEvent, raw, body []byte, i int, ev, base *destinations.Event, clk batchClock) (id string, fixes []fix, refused *eventError, err *apiError) {
	if in != nil {
		e := g.browserEvent(in, ev, clk, &fixes, false)
		switch {
		case e == nil:
			return ev.EventID, fixes, nil, nil
		case e.Status == http.StatusServiceUnavailable:
			return "", nil, nil, e
		case e.refusal == refusedTooOld:
			return in.EventID, nil, &eventError{Field: e.Field, Reason: e.refusal, Message: e.Message}, nil
		}
	}
	*ev = *base
	if raw == nil {
		raw = fastEventJSON(body, i)
	}
	clean, id, fixes, refused := repairBrowserEvent(raw)
	if refused != nil {
		return id, nil, refused, nil
	}
	in = new(collectEvent)
	if e := decodeStrict(clean, in, ""); e != nil {
		return id, nil, &eventError{Field: e.Field, Reason: refusedInvalid, Message: e.Message}, nil
	}
	switch e := g.browserEvent(in, ev, clk, &fixes, true); {
	case e == nil:
		return ev.EventID, fixes, nil, nil
	case e.Status == http.StatusServiceUnavailable:
		return "", nil, nil, e
	default:
		return id, nil, &eventError{Field: e.Field, Reason: cmp.Or(e.refusal, refusedInvalid), Message: e.Message}, nil
	}
}

func tooManyEvents(max int) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooManyEvents, Field: "events",
		Message: fmt.Sprintf("at most %d events per request", max)}
}

// pageParams are the page's URL and referrer as a request gives them:
// whole, to read click ids from, and bounded, for the events.
type pageParams struct {
	fullURL, url           string
	fullReferrer, referrer string
}

// readPage reads the request's url, referrer and vid, fixing what can be
// fixed: a URL or referrer longer than 2,048 bytes is truncated for the
// events (its click ids are read from all of it), an unusable URL or an
// over-long vid dropped.
func readPage(req *collectRequest, out *batchOutcomes) pageParams {
	var p pageParams
	p.fullURL, p.url = boundURL("url", req.URL, checkURL("url", req.URL) != nil, out)
	p.fullReferrer, p.referrer = boundURL("referrer", req.Referrer, len(req.Referrer) > maxURLLen, out)
	if len(req.VID) > maxVIDLen {
		req.VID = ""
		out.requestFix("vid", reasonTooLong)
	}
	return p
}

// boundURL returns a URL of the request whole and bounded for the events:
// unchanged unless bad, else truncated to 2,048 bytes when that leaves a
// valid URL, else dropped.
func boundURL(field, v string, bad bool, out *batchOutcomes) (full, bounded string) {
	if !bad {
		return v, v
	}
	if t, ok := truncateURL(v, maxURLLen); ok {
		out.requestFix(field, reasonTruncated)
		return v, t
	}
	out.requestFix(field, reasonInvalid)
	return "", ""
}

// batchClock is a request's time: now, and the shift in seconds that
// corrects the device clock's times (see skewSeconds).
type batchClock struct {
	now   time.Time
	shift int64
}

// clockSkewShown is the smallest shift recorded as a fix: below it, the
// shift mostly measures the request's own travel time.
const clockSkewShown = 60

// skewSeconds is the error of the device's clock as a shift for its
// event_time values: the gateway's now minus the device's sent_at
// (milliseconds), in whole seconds.
func skewSeconds(now time.Time, sentAt int64) int64 {
	d := now.UnixMilli() - sentAt
	if d >= 0 {
		return (d + 500) / 1000
	}
	return -((-d + 500) / 1000)
}

// browserEvent validates one browser event and builds its canonical form
// in ev, which holds the request's base event; clk is the request's time.
// fixes receives what it fixed (a shifted or clamped event_time; with
// lenient, customer information dropped). A refusal that no repair can
// change (too old) carries its reason in refusal.
//
// The clean path asks for it strictly (lenient false) and repairs the
// event when it fails; a repaired event is asked for it leniently.
func (g *Gateway) browserEvent(in *collectEvent, ev *destinations.Event, clk batchClock, fixes *[]fix, lenient bool) *apiError {
	if e := checkEventName("event_name", in.EventName); e != nil {
		e.refusal = refusedInvalid
		if in.EventName == "" {
			e.refusal = refusedMissing
		}
		return e
	}
	ev.EventName = in.EventName
	if e := checkText("event_id", in.EventID, maxEventIDLen); e != nil {
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
		if e := checkActionSource("action_source", in.ActionSource); e != nil {
			return e
		}
		ev.ActionSource = in.ActionSource
	}
	if e := eventTime(in.EventTime, ev, clk, fixes); e != nil {
		return e
	}
	if in.EventSourceURL != "" {
		if e := checkURL("event_source_url", in.EventSourceURL); e != nil {
			return e
		}
		ev.EventSourceURL = in.EventSourceURL
	}
	if in.ReferrerURL != "" {
		if e := checkURL("referrer_url", in.ReferrerURL); e != nil {
			return e
		}
		ev.ReferrerURL = in.ReferrerURL
	}
	ev.OptOut = in.OptOut
	if e := checkDataProcessing("", in.DataProcessingOptions, in.DataProcessingOptionsCountry, in.DataProcessingOptionsState); e != nil {
		return e
	}
	ev.DataProcessingOptions = in.DataProcessingOptions
	ev.DataProcessingOptionsCountry = in.DataProcessingOptionsCountry
	ev.DataProcessingOptionsState = in.DataProcessingOptionsState
	cd, e := decodeCustomData("", in.CustomData, in.customData)
	if e != nil {
		return e
	}
	if !lenient && in.customData == nil && customDataNeedsRepair(in.CustomData) {
		return badField("custom_data", "holds values to repair")
	}
	ev.CustomData = cd
	// The gateway fills these itself; a browser does not get to choose them.
	raw := in.UserData
	for _, k := range []string{"client_ip_address", "client_user_agent", "fbc", "fbp"} {
		delete(raw, k)
	}
	if !lenient {
		u, e := hashUserData("", raw, clk.now)
		if e != nil {
			return e
		}
		ev.UserData = u
		return nil
	}
	clean, dropped := cleanUserData(raw, clk.now, false)
	for _, d := range dropped {
		*fixes = append(*fixes, fix{"user_data." + d.key, d.reason})
	}
	u, err := pii.HashUserData(clean, clk.now)
	if err != nil {
		return badField("user_data", "%s", err.Error())
	}
	ev.UserData = u
	return nil
}

// eventTime sets ev's event_time: the time it was made (t, by the device's
// clock) corrected by the request's shift, or now when the event has none.
// An event too old for the platforms is refused; one ahead of the gateway
// by more than maxFutureSkew takes the gateway's now.
func eventTime(t *int64, ev *destinations.Event, clk batchClock, fixes *[]fix) *apiError {
	now := clk.now
	ev.EventTime = now.Unix()
	if t == nil {
		return nil
	}
	if *t <= 0 || *t > millisecondsThreshold {
		return checkEventTime("event_time", *t, now, maxEventAge)
	}
	v := *t + clk.shift
	if clk.shift >= clockSkewShown || clk.shift <= -clockSkewShown {
		*fixes = append(*fixes, fix{"event_time", reasonClockSkew})
	}
	maxAge := maxEventAge
	if ev.ActionSource == "physical_store" {
		maxAge = maxPhysicalEventAge
	}
	switch {
	case v < now.Add(-maxAge).Unix():
		e := badField("event_time", "older than %s: the platforms refuse such events", humanDays(maxAge))
		e.refusal = refusedTooOld
		return e
	case v > now.Add(maxFutureSkew).Unix():
		*fixes = append(*fixes, fix{"event_time", reasonClockAhead})
		v = now.Unix()
	}
	ev.EventTime = v
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

// resolveConsent applies the site's default to the keys the browser did not
// state. "wait" counts as denied here: events are accepted, identifiers not.
// A word other than granted or denied is an error naming the first such key.
func resolveConsent(in *wireConsent, siteDefault string) (destinations.Consent, *apiError) {
	var first *apiError
	c := mergeConsent(in, siteDefault, func(field string) {
		first = cmp.Or(first, badField(field, "must be granted or denied"))
	})
	return c, first
}

// mergeConsent is in over the site's default: each purpose in states,
// else the default; a word other than granted or denied is denied, and
// invalid is told its field.
func mergeConsent(in *wireConsent, siteDefault string, invalid func(field string)) destinations.Consent {
	def := destinations.Denied
	if siteDefault == model.ConsentGranted || siteDefault == "" {
		def = destinations.Granted
	}
	var w wireConsent
	if in != nil {
		w = *in
	}
	state := func(field, v string) destinations.ConsentState {
		switch st := destinations.ConsentState(v); st {
		case "":
			return def
		case destinations.Granted, destinations.Denied:
			return st
		}
		invalid(field)
		return destinations.Denied
	}
	return destinations.Consent{
		AdStorage:         state("consent.ad_storage", w.AdStorage),
		AdUserData:        state("consent.ad_user_data", w.AdUserData),
		AdPersonalization: state("consent.ad_personalization", w.AdPersonalization),
		AnalyticsStorage:  state("consent.analytics_storage", w.AnalyticsStorage),
	}
}
