// Package metatest is a strict fake of Meta's Graph API Conversions API
// endpoint, POST /vNN.N/{pixel_id}/events, for tests.
//
// It accepts the three body encodings Meta does (JSON, form-encoded and
// multipart, with data as a JSON string in the last two) and rejects what
// Meta rejects, always the whole request, with Graph's error envelope and
// HTTP 400: unknown pixels (100/33), bad tokens (190), events older than
// 7 days (100/2804003; 62 days for physical_store), too little customer
// information (100/2804050), unhashed contact information, malformed fbc/fbp,
// and more (see validateEvent). Rules whose real error subcode is unknown
// answer code 100 without a subcode.
package metatest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits the fake enforces.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 1000
	// MaxAge is how old an event may be (except physical_store).
	MaxAge = 7 * 24 * time.Hour
	// MaxAgePhysicalStore is how old a physical_store event may be.
	MaxAgePhysicalStore = 62 * 24 * time.Hour
	// MaxFuture is how far ahead of the server clock event_time may be.
	MaxFuture = 5 * time.Minute

	maxBodyBytes = 32 << 20
)

// Received is one event the fake accepted.
type Received struct {
	// Event is the whole decoded server event (numbers as json.Number).
	Event map[string]any
	// EventName, EventID and EventTime are typed copies of those fields;
	// EventID is empty when the sender left it out (Meta allows that).
	EventName string
	EventID   string
	EventTime int64
	// ActionSource is the event's action_source.
	ActionSource string
	// UserData and CustomData are the event's user_data and custom_data
	// objects (CustomData is nil when absent).
	UserData   map[string]any
	CustomData map[string]any
	// TestEventCode and PartnerAgent are the request's parameters.
	TestEventCode string
	PartnerAgent  string
	// TokenIn says where the request carried its access token: "body",
	// "query" or "header".
	TokenIn string
	// ContentType is the request's media type.
	ContentType string
}

// GraphError is Graph API's error object, the value of "error" in an error
// response. Use Body to build a FailNext body.
type GraphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMsg     string `json:"error_user_msg,omitempty"`
	FBTraceID   string `json:"fbtrace_id"`
}

// Body is the JSON error envelope {"error":{...}} holding e.
func (e GraphError) Body() string {
	b, _ := json.Marshal(map[string]GraphError{"error": e})
	return string(b)
}

// Error describes e as code/subcode: message: user message.
func (e GraphError) Error() string {
	if e.Subcode != 0 {
		return fmt.Sprintf("%d/%d: %s: %s", e.Code, e.Subcode, e.Message, e.UserMsg)
	}
	return fmt.Sprintf("%d: %s: %s", e.Code, e.Message, e.UserMsg)
}

// Server is a running fake Graph API: the shared scaffolding (URL,
// Handler, SetNow, Events by pixel, Requests, Rejections, FailNext,
// WaitEvents) and Graph's rules. Its methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, GraphError]
	pixels destinationstest.Accounts
	fx     faultState // SetFaults, Acked
}

// NewServer starts a fake Graph API, closed when the test ends. It knows no
// pixel until AddPixel; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.Fake = destinationstest.NewFake[Received, GraphError](t, destinationstest.FakeConfig{
		Name: "metatest", Account: "pixel", Serve: s.serveHTTP})
	return s
}

// AddPixel registers a pixel and the one token allowed to post to it.
func (s *Server) AddPixel(pixelID, token string) { s.pixels.Add(pixelID, token) }

var pathPattern = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/([^/]+)/events$`)

// request is the parsed parameters of one call.
type request struct {
	data          []any
	token         string
	tokenIn       string
	testEventCode string
	partnerAgent  string
	contentType   string
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	n, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	trace := "AfakeTrace" + strconv.Itoa(n)

	fault := s.pickFault()
	if s.answerFault(fault, w, r, trace) {
		return
	}

	pixel, req, gerr := s.parse(w, r, now)
	if gerr == nil {
		var events []Received
		events, gerr = validateBatch(req, now)
		if gerr == nil {
			gerr = s.rejectMarked(events)
		}
		if gerr == nil {
			s.Accept(pixel, events...)
			if fault == FaultReset {
				resetConn(w)
				return
			}
			encodeOK(w, len(events), trace)
			s.ack(w, events)
			return
		}
	}
	gerr.FBTraceID = trace
	s.Reject(*gerr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, gerr.Body())
}

// parse checks the method, path, token and pixel, and decodes the body.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, now time.Time) (string, *request, *GraphError) {
	m := pathPattern.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return "", nil, &GraphError{Code: 2500, Type: "OAuthException",
			Message: "Unknown path components: " + r.URL.Path}
	}
	pixel := m[1]
	if r.Method != http.MethodPost {
		return "", nil, &GraphError{Code: 100, Subcode: 33, Type: "GraphMethodException",
			Message: "Unsupported " + strings.ToLower(r.Method) + " request. Object with ID '" + pixel +
				"' does not exist, cannot be loaded due to missing permissions, or does not support this operation"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	req, gerr := decodeBody(r)
	if gerr != nil {
		return "", nil, gerr
	}

	tokenKnown, _, allowed := s.pixels.Check(pixel, req.token)
	if !tokenKnown {
		return "", nil, &GraphError{Code: 190, Type: "OAuthException",
			Message: "Invalid OAuth access token - Cannot parse access token"}
	}
	if !allowed {
		return "", nil, &GraphError{Code: 100, Subcode: 33, Type: "GraphMethodException",
			Message: "Unsupported post request. Object with ID '" + pixel +
				"' does not exist, cannot be loaded due to missing permissions, or does not support this operation"}
	}
	return pixel, req, nil
}

func invalid(format string, args ...any) *GraphError {
	return &GraphError{Code: 100, Type: "OAuthException", Message: "Invalid parameter",
		UserMsg: fmt.Sprintf(format, args...)}
}

// decodeBody reads the parameters from a JSON, form-encoded or multipart body,
// and the token from the body, the query or the Authorization header.
func decodeBody(r *http.Request) (*request, *GraphError) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req := &request{contentType: mediaType}
	params := map[string]any{}
	switch mediaType {
	case "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, invalid("cannot read the request body: %v", err)
		}
		if err := destinationstest.DecodeJSON(body, &params); err != nil {
			return nil, invalid("the JSON body does not parse: %v", err)
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		var err error
		if mediaType == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			return nil, invalid("the form body does not parse: %v", err)
		}
		for k, v := range r.PostForm {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
	default:
		return nil, invalid("unsupported Content-Type %q", r.Header.Get("Content-Type"))
	}

	str := func(k string) (string, *GraphError) {
		switch v := params[k].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", invalid("(#100) param %s must be a string", k)
		}
	}
	var gerr *GraphError
	if req.token, gerr = str("access_token"); gerr != nil {
		return nil, gerr
	}
	req.tokenIn = "body"
	if req.token == "" {
		if q := r.URL.Query().Get("access_token"); q != "" {
			req.token, req.tokenIn = q, "query"
		} else if h := r.Header.Get("Authorization"); h != "" {
			for _, scheme := range []string{"Bearer ", "OAuth "} {
				if tok, ok := strings.CutPrefix(h, scheme); ok {
					req.token, req.tokenIn = tok, "header"
				}
			}
		}
	}
	if req.testEventCode, gerr = str("test_event_code"); gerr != nil {
		return nil, gerr
	}
	if req.partnerAgent, gerr = str("partner_agent"); gerr != nil {
		return nil, gerr
	}

	switch v := params["data"].(type) {
	case nil:
		return nil, invalid("(#100) The parameter data is required")
	case []any:
		req.data = v
	case string:
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&req.data); err != nil {
			return nil, invalid("(#100) param data must be an array: %v", err)
		}
	default:
		return nil, invalid("(#100) param data must be an array")
	}
	return req, nil
}

// validateBatch checks every event; the first problem rejects them all.
func validateBatch(req *request, now time.Time) ([]Received, *GraphError) {
	if len(req.data) == 0 {
		return nil, invalid("(#100) param data must be a non-empty array")
	}
	if len(req.data) > MaxEvents {
		return nil, invalid("(#100) param data must have at most %d events, got %d", MaxEvents, len(req.data))
	}
	out := make([]Received, 0, len(req.data))
	for i, raw := range req.data {
		ev, ok := raw.(map[string]any)
		if !ok {
			return nil, invalid("data[%d] must be an object", i)
		}
		rec, gerr := validateEvent(ev, now)
		if gerr != nil {
			gerr.UserMsg = fmt.Sprintf("data[%d]: %s", i, gerr.UserMsg)
			return nil, gerr
		}
		rec.TestEventCode = req.testEventCode
		rec.PartnerAgent = req.partnerAgent
		rec.TokenIn = req.tokenIn
		rec.ContentType = req.contentType
		out = append(out, rec)
	}
	return out, nil
}

// actionSources are the action_source values Meta accepts.
var actionSources = []string{"email", "website", "app", "phone_call", "chat",
	"physical_store", "system_generated", "business_messaging", "other"}

// hashedKeys must hold SHA-256 digests.
var hashedKeys = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country"}

var (
	// sha256Pattern is a lowercase hex digest, optionally followed by the
	// parameter builder's ".{appendix}", which Meta accepts.
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}(\.[A-Za-z0-9_-]+)?$`)
	// fbCookiePattern is fb.{subdomainIndex}.{creationTime}.{payload}, with
	// an optional parameter-builder appendix.
	fbCookiePattern = regexp.MustCompile(`^fb\.[0-9]\.[0-9]+\.[^.\s]+(\.[A-Za-z0-9_-]+)?$`)
	currencyPattern = regexp.MustCompile(`^[A-Za-z]{3}$`)
)

// weakSets are Meta's baseline matching rule: an event whose customer
// information keys are a subset of one of these is refused.
var weakSets = [][]string{
	{"ct", "country", "st", "zp", "ge", "client_user_agent"},
	{"db", "client_user_agent"},
	{"fn", "ge"},
	{"ln", "ge"},
}

// validateEvent applies Meta's rules to one server event.
func validateEvent(ev map[string]any, now time.Time) (Received, *GraphError) {
	var rec Received
	rec.Event = ev

	name, ok := ev["event_name"].(string)
	if !ok || name == "" {
		return rec, invalid("event_name is required and must be a non-empty string")
	}
	rec.EventName = name

	if v, present := ev["event_id"]; present {
		id, ok := v.(string)
		if !ok {
			return rec, invalid("event_id must be a string")
		}
		rec.EventID = id
	}

	src, _ := ev["action_source"].(string)
	if !slices.Contains(actionSources, src) {
		return rec, invalid("action_source %q is not one of %v", ev["action_source"], actionSources)
	}
	rec.ActionSource = src

	num, ok := ev["event_time"].(json.Number)
	if !ok {
		return rec, invalid("event_time is required and must be an integer (Unix seconds)")
	}
	secs, err := strconv.ParseInt(num.String(), 10, 64)
	if err != nil || secs <= 0 {
		return rec, invalid("event_time %s must be a positive integer (Unix seconds)", num)
	}
	if secs > 100_000_000_000 {
		return rec, invalid("event_time %d looks like milliseconds; send Unix seconds", secs)
	}
	rec.EventTime = secs
	t := time.Unix(secs, 0)
	limit := MaxAge
	if src == "physical_store" {
		limit = MaxAgePhysicalStore
	}
	if now.Sub(t) > limit {
		return rec, &GraphError{Code: 100, Subcode: 2804003, Type: "OAuthException",
			Message: "Invalid parameter", UserTitle: "Event Timestamp Too Old",
			UserMsg: fmt.Sprintf("The timestamp for this event is too far in the past. Events need to be sent from your server within %d days of when they occurred.", int(limit.Hours()/24))}
	}
	if t.Sub(now) > MaxFuture {
		return rec, invalid("event_time %d is in the future", secs)
	}

	if src == "website" {
		u, _ := ev["event_source_url"].(string)
		pu, err := url.Parse(u)
		if u == "" || err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return rec, invalid("website events need an http(s) event_source_url, got %q", ev["event_source_url"])
		}
	}

	ud, ok := ev["user_data"].(map[string]any)
	if !ok {
		return rec, invalid("user_data is required and must be an object")
	}
	rec.UserData = ud
	if gerr := validateUserData(ud, src); gerr != nil {
		return rec, gerr
	}

	if v, present := ev["custom_data"]; present {
		cd, ok := v.(map[string]any)
		if !ok {
			return rec, invalid("custom_data must be an object")
		}
		rec.CustomData = cd
	}
	if gerr := validateCustomData(rec.CustomData, name); gerr != nil {
		return rec, gerr
	}
	return rec, nil
}

func validateUserData(ud map[string]any, src string) *GraphError {
	present := map[string]bool{}
	for k, v := range ud {
		if !emptyValue(v) {
			present[k] = true
		}
	}
	for _, k := range hashedKeys {
		vals, ok := destinationstest.StringOrList(ud[k])
		if !ok {
			return invalid("user_data.%s must be a string or an array of strings", k)
		}
		for _, v := range vals {
			if !sha256Pattern.MatchString(v) {
				return invalid("user_data.%s must be a lowercase hex SHA-256 digest of the normalized value; unhashed contact information is not accepted", k)
			}
		}
	}
	if _, ok := destinationstest.StringOrList(ud["external_id"]); !ok {
		return invalid("user_data.external_id must be a string or an array of strings")
	}
	for _, k := range []string{"fbc", "fbp"} {
		v, present := ud[k]
		if !present {
			continue
		}
		s, ok := v.(string)
		if !ok || !fbCookiePattern.MatchString(s) {
			return invalid("user_data.%s %q must look like fb.1.1732752000000.payload and must not be hashed", k, v)
		}
	}
	if v, present := ud["client_ip_address"]; present {
		s, ok := v.(string)
		if _, err := netip.ParseAddr(s); !ok || err != nil {
			return invalid("user_data.client_ip_address %q is not an IP address", v)
		}
	}
	if v, present := ud["client_user_agent"]; present {
		if _, ok := v.(string); !ok {
			return invalid("user_data.client_user_agent must be a string")
		}
	}
	if src == "website" && !present["client_user_agent"] {
		return invalid("website events need user_data.client_user_agent")
	}
	for _, weak := range weakSets {
		if subset(present, weak) {
			return &GraphError{Code: 100, Subcode: 2804050, Type: "OAuthException",
				Message:   "Invalid parameter",
				UserTitle: "You haven't added sufficient customer information parameter data for this event",
				UserMsg:   fmt.Sprintf("customer information %v is too little to match", slices.Sorted(maps.Keys(present)))}
		}
	}
	return nil
}

func validateCustomData(cd map[string]any, eventName string) *GraphError {
	if v, present := cd["currency"]; present {
		s, ok := v.(string)
		if !ok || !currencyPattern.MatchString(s) {
			return invalid("custom_data.currency %q must be an ISO 4217 code", v)
		}
	}
	if v, present := cd["value"]; present {
		var f string
		switch n := v.(type) {
		case json.Number:
			f = n.String()
		case string:
			f = n // Meta's own examples send "142.52".
		}
		if _, err := strconv.ParseFloat(f, 64); err != nil {
			return invalid("custom_data.value %v must be a number", v)
		}
	}
	if eventName == "Purchase" {
		if _, ok := cd["value"]; !ok {
			return invalid("Purchase events need custom_data.value")
		}
		if _, ok := cd["currency"]; !ok {
			return invalid("Purchase events need custom_data.currency")
		}
	}
	return nil
}

func emptyValue(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}

// subset reports whether every key in have is in set.
func subset(have map[string]bool, set []string) bool {
	for k := range have {
		if !slices.Contains(set, k) {
			return false
		}
	}
	return true
}
