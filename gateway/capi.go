package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

	"github.com/tagway/tagway/routing/model"
)

// The drop-in Conversions API endpoint, POST /{version}/{pixel_id}/events,
// takes what Meta's Graph API takes there and answers in Meta's shapes;
// its access token is the site's ingest key. Its events go to every route
// of the site, like those of /v1/events, and the pixel must be a Meta
// destination of the site (README, "Drop-in endpoint").

// capiParams are the body parameters of POST /{pixel_id}/events that Meta
// documents or its Business SDK sends; the ones tagway has no use for are
// accepted and ignored. Any other parameter is refused.
var capiParams = map[string]bool{
	"data": true, "access_token": true, "test_event_code": true, "partner_agent": true,
	"namespace_id": true, "upload_id": true, "upload_tag": true, "upload_source": true,
	"appsecret_proof": true, "platforms": true, "progress": true,
}

var graphVersionPattern = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,3}$`)

// graphError is Meta's Graph API error object.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMsg     string `json:"error_user_msg,omitempty"`
	FBTraceID   string `json:"fbtrace_id"`

	status int
	reason string // metrics label
}

// capiRequest is the parameters of one call, whatever the encoding.
type capiRequest struct {
	data          []json.RawMessage
	token         string
	testEventCode string
}

// capi handles POST /{version}/{pixel_id}/events.
func (g *Gateway) capi(w http.ResponseWriter, r *http.Request) {
	trace := g.fbTraceID()
	n, site, messages, gerr := g.capiDo(w, r)
	if gerr != nil && gerr.reason == codeUnauthorized {
		g.authFailed(r)
	}
	if gerr != nil {
		gerr.FBTraceID = trace
		g.metrics.rejected.WithLabelValues(gerr.reason).Inc()
		// The path names a pixel id, never a secret; the token is never logged.
		g.log.Debug("capi request refused", "path", r.URL.Path, "code", gerr.Code, "subcode", gerr.Subcode)
		if gerr.IsTransient {
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, gerr.status, map[string]*graphError{"error": gerr})
		return
	}
	g.metrics.received.WithLabelValues(site, "capi").Add(float64(n))
	if messages == nil {
		messages = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages"`
		FBTraceID      string   `json:"fbtrace_id"`
	}{n, messages, trace})
}

func (g *Gateway) capiDo(w http.ResponseWriter, r *http.Request) (int, string, []string, *graphError) {
	vars := mux.Vars(r)
	version, pixel := vars["version"], vars["pixel"]
	switch {
	case !graphVersionPattern.MatchString(version):
		return 0, "", nil, &graphError{status: http.StatusBadRequest, reason: "capi_path", Code: 2500, Type: "OAuthException",
			Message: "Unknown path components: /" + version + "/" + pixel + "/events"}
	case r.Method != http.MethodPost:
		return 0, "", nil, unsupported(r.Method, pixel)
	}
	snap := g.opts.Sites.Snapshot()
	if snap == nil {
		return 0, "", nil, &graphError{status: http.StatusServiceUnavailable, reason: codeUnavailable, Code: 2, Type: "OAuthException",
			Message: "Service temporarily unavailable", IsTransient: true}
	}
	// The key before the body: one in the query or a header is checked
	// before a byte of the body is read, one in the body before its data
	// is decoded (readCAPI).
	known := func(token string) bool { _, ok := snap.SiteByIngestKey(token); return ok }
	if token := outerToken(r); token != "" && !known(token) {
		return 0, "", nil, invalidToken()
	}
	req, gerr := g.readCAPI(w, r, known)
	if gerr != nil {
		return 0, "", nil, gerr
	}
	site, ok := snap.SiteByIngestKey(req.token)
	if !ok {
		return 0, "", nil, invalidToken()
	}
	if !siteHasMetaPixel(snap, site.ID, pixel) {
		return 0, "", nil, unsupported(r.Method, pixel)
	}
	// Exactly Meta's fields: no tagway extension (consent) on this endpoint.
	events, messages, e := g.serverBatch(req.data, site, batchOptions{testEventCode: req.testEventCode})
	if e != nil {
		return 0, "", nil, invalidParameter(e)
	}
	if err := g.opts.Enqueuer.Enqueue(r.Context(), site.ID, events); err != nil {
		g.log.Error("enqueue failed", "site", site.ID, "events", len(events), "err", err)
		return 0, "", nil, &graphError{status: http.StatusServiceUnavailable, reason: codeUnavailable, Code: 2, Type: "OAuthException",
			Message: "Service temporarily unavailable: events could not be stored; retry later", IsTransient: true}
	}
	return len(events), site.ID, messages, nil
}

// invalidToken is Graph's answer for an access token it does not know.
func invalidToken() *graphError {
	return &graphError{status: http.StatusBadRequest, reason: codeUnauthorized, Code: 190, Type: "OAuthException",
		Message: "Invalid OAuth access token - Cannot parse access token (use the site's tagway ingest key)"}
}

// outerToken is the access token of the query (access_token), else of an
// Authorization header (Bearer or OAuth); "" when neither has one.
func outerToken(r *http.Request) string {
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok &&
		(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")) {
		return strings.TrimSpace(tok)
	}
	return ""
}

// unsupported is Graph's answer for an object the token cannot reach
// (100/33), and for a method the edge does not support.
func unsupported(method, pixel string) *graphError {
	return &graphError{status: http.StatusBadRequest, reason: "capi_unknown_pixel", Code: 100, Subcode: 33, Type: "GraphMethodException",
		Message: "Unsupported " + strings.ToLower(method) + " request. Object with ID '" + pixel +
			"' does not exist, cannot be loaded due to missing permissions, or does not support this operation"}
}

// invalidParameter turns an ingest error into Graph's code 100, with the
// field and reason in error_user_msg and Meta's subcode when there is one.
func invalidParameter(e *apiError) *graphError {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	ge := &graphError{status: http.StatusBadRequest, reason: e.Code, Code: 100, Subcode: e.metaSubcode, Type: "OAuthException",
		Message: "(#100) Invalid parameter: " + msg, UserTitle: "Invalid parameter", UserMsg: msg}
	switch e.metaSubcode {
	case subcodeTooOld:
		ge.UserTitle = "Event Timestamp Too Old"
	case subcodeTooLittleInfo:
		ge.UserTitle = "You haven't added sufficient customer information parameter data for this event"
	}
	if e.Status == http.StatusRequestEntityTooLarge {
		ge.status = e.Status
	}
	return ge
}

// readCAPI reads the parameters from a JSON, form-encoded or multipart body
// (in the last two, data is a JSON string), and the access token from the
// body, else the query or the Authorization header (outerToken). A token
// in a JSON or form body is looked for first and must be known (known)
// before the rest of the body is decoded.
func (g *Gateway) readCAPI(w http.ResponseWriter, r *http.Request, known func(string) bool) (*capiRequest, *graphError) {
	body, e := readBody(w, r, g.opts.MaxServerBodyBytes)
	if e != nil {
		return nil, invalidParameter(e)
	}
	mediaType, mparams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if t, found := bodyToken(mediaType, body); found && !known(t) {
		return nil, invalidToken()
	}
	params := map[string]json.RawMessage{}
	switch mediaType {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, invalidParameter(badField("", "the form body does not parse"))
		}
		formParams(form, params)
	case "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(body), mparams["boundary"]).ReadForm(g.opts.MaxServerBodyBytes)
		if err != nil {
			return nil, invalidParameter(badField("", "the multipart body does not parse"))
		}
		defer func() { _ = form.RemoveAll() }()
		formParams(form.Value, params)
	default: // application/json, or no type: Graph reads JSON.
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&params); err != nil {
			return nil, invalidParameter(jsonError(err, ""))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, invalidParameter(badField("", "unexpected data after the JSON object"))
		}
	}
	req := &capiRequest{}
	str := func(k string) (string, *graphError) {
		raw, ok := params[k]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalidParameter(badField(k, "must be a string"))
		}
		return s, nil
	}
	var gerr *graphError
	if req.token, gerr = str("access_token"); gerr != nil {
		return nil, gerr
	}
	if req.token == "" {
		req.token = outerToken(r)
	}
	if !known(req.token) {
		return nil, invalidToken()
	}
	for k := range params {
		if !capiParams[k] {
			return nil, invalidParameter(badField(k, "unknown parameter"))
		}
	}
	if req.testEventCode, gerr = str("test_event_code"); gerr != nil {
		return nil, gerr
	}
	raw := bytes.TrimSpace(params["data"])
	if len(raw) > 0 && raw[0] == '"' {
		// Form encodings (and some JSON senders) give data as a JSON string.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalidParameter(badField("data", "must be a JSON array of events"))
		}
		raw = []byte(s)
	}
	if len(raw) == 0 {
		return nil, invalidParameter(badField("data", "the parameter data is required"))
	}
	if err := json.Unmarshal(raw, &req.data); err != nil {
		return nil, invalidParameter(badField("data", "must be a JSON array of events"))
	}
	return req, nil
}

// bodyToken finds the access_token of a JSON or form-encoded body without
// decoding the rest of it; found is false when the body has none before
// anything it cannot read (or is multipart: the full decode then decides).
func bodyToken(mediaType string, body []byte) (token string, found bool) {
	switch mediaType {
	case "multipart/form-data":
		return "", false
	case "application/x-www-form-urlencoded":
		for rest := string(body); rest != ""; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			if k, v, ok := strings.Cut(pair, "="); ok && k == "access_token" {
				t, err := url.QueryUnescape(v)
				token, found = t, err == nil // the last one wins, as in the form
			}
		}
		return token, found
	}
	// The top-level keys in order, up to the end or to what does not
	// read: a token seen before that is the body's (a later repeat of
	// the key would win, and is then checked after the full decode).
	s := fastScanner{b: body}
	s.object(func(key []byte) bool {
		if string(key) == "access_token" && s.peek('"') {
			v, ok := s.rawString()
			token, found = string(v), ok
			return ok
		}
		return s.skip(0)
	})
	return token, found
}

// formParams copies form values into params as JSON strings (the last
// value of a repeated key wins).
func formParams(form url.Values, params map[string]json.RawMessage) {
	for k, v := range form {
		if len(v) > 0 {
			b, _ := json.Marshal(v[len(v)-1])
			params[k] = b
		}
	}
}

// siteHasMetaPixel reports whether one of the site's destinations is a
// Meta pixel with this id.
func siteHasMetaPixel(snap *model.Snapshot, siteID, pixel string) bool {
	for _, d := range snap.Config().Destinations {
		if d.SiteID != siteID || d.Type != "meta" {
			continue
		}
		var s struct {
			PixelID string `json:"pixel_id"`
		}
		if json.Unmarshal(d.Settings, &s) == nil && s.PixelID == pixel {
			return true
		}
	}
	return false
}

// fbTraceID mints an opaque request id in the style of Graph's fbtrace_id,
// for the sender's logs and ours.
func (g *Gateway) fbTraceID() string {
	var b [8]byte
	if err := g.readRand(b[:]); err != nil {
		return "tagway"
	}
	return "tw" + base64.RawURLEncoding.EncodeToString(b[:])
}
