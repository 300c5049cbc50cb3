// Package snaptest is a strict fake of Snap's Conversions API v3 for tests:
// POST /v3/{pixel_id}/events and its test endpoint
// POST /v3/{pixel_id}/events/validate.
//
// It takes the token from the access_token query parameter (or an
// Authorization: Bearer header) and answers as Snap documents: HTTP 200
// {"status":"VALID"} when it keeps the events; HTTP 401 for a missing or
// unknown token, 403 for a pixel the token may not report to; HTTP 400
// {"status":"INVALID","event":i,"reason":...,"errors":{...}} refusing the
// whole request for its first bad event (an unknown event name, a time in
// milliseconds or older than 37 days, a website event without its URL, a
// purchase without value or currency, unhashed contact information, too
// little customer information, an unknown field...). The validation
// endpoint judges every event in event_logs and keeps none.
package snaptest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits the fake enforces.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 2000
	// MaxAge is how old an event may be.
	MaxAge = 37 * 24 * time.Hour
	// MaxFuture is how far ahead of the server clock event_time may be.
	MaxFuture = 5 * time.Minute

	maxBodyBytes = 32 << 20
)

// Reply is Snap's response body: EventResponse from the events endpoint,
// ValidateResponse from the validation endpoint. Use Body to build a
// FailNext body.
type Reply struct {
	Status    string     `json:"status"`
	Reason    string     `json:"reason,omitempty"`
	Event     *int       `json:"event,omitempty"`
	Errors    *Details   `json:"errors,omitempty"`
	TestEvent *bool      `json:"test_event,omitempty"`
	EventLogs []EventLog `json:"event_logs,omitempty"`
}

// Details are the codes and messages of an error.
type Details struct {
	Codes     []string `json:"codes,omitempty"`
	ErrorMsgs []string `json:"error_msgs"`
}

// EventLog is the validation endpoint's verdict on one event.
type EventLog struct {
	Event    int      `json:"event"`
	Status   string   `json:"status"`
	Errors   *Details `json:"errors,omitempty"`
	Warnings []string `json:"warnings"`
}

// Body is the JSON form of r.
func (r Reply) Body() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// Invalid is Snap's error reply for the event at index event: status
// INVALID with the messages.
func Invalid(event int, reason string, msgs ...string) Reply {
	return Reply{Status: "INVALID", Reason: reason, Event: &event, Errors: &Details{ErrorMsgs: msgs}}
}

// Received is one event the fake accepted (or validated).
type Received struct {
	// Event is the whole decoded event (numbers as json.Number).
	Event map[string]any
	// EventName, EventID, EventTime and ActionSource are typed copies of
	// those fields; EventID is empty when the sender left it out.
	EventName    string
	EventID      string
	EventTime    int64
	ActionSource string
	// UserData and CustomData are the event's objects (CustomData is nil
	// when absent).
	UserData   map[string]any
	CustomData map[string]any
	// PixelID is the pixel of the request; TokenIn says where it carried
	// its token: "query" or "header".
	PixelID string
	TokenIn string
}

// Server is a running fake Conversions API: the shared scaffolding (URL,
// Handler, SetNow, Events by pixel, Requests, Rejections, FailNext,
// WaitEvents), the events its validation endpoint found valid, and Snap's
// rules. Its methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, Reply]
	pixels destinationstest.Accounts

	mu        sync.Mutex
	validated map[string][]Received
}

// NewServer starts a fake Conversions API, closed when the test ends. It
// knows no pixel until AddPixel; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{validated: map[string][]Received{}}
	s.Fake = destinationstest.NewFake[Received, Reply](t, destinationstest.FakeConfig{
		Name: "snaptest", Account: "pixel", Serve: s.serveHTTP})
	return s
}

// AddPixel registers a pixel id and the one token allowed to report to it.
func (s *Server) AddPixel(pixelID, token string) { s.pixels.Add(pixelID, token) }

// Validated returns a copy of the events the validation endpoint found
// valid for a pixel (never kept as conversions), in arrival order.
func (s *Server) Validated(pixelID string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.validated[pixelID])
}

var pathPattern = regexp.MustCompile(`^/v3/([^/]+)/events(/validate)?$`)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	m := pathPattern.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	pixel, validate := m[1], m[2] != ""

	var (
		status = http.StatusOK
		reply  Reply
		kept   []Received
	)
	if st, rej := s.authorize(r, pixel); rej != nil {
		status, reply = st, *rej
	} else if events, rej := s.decode(w, r, pixel); rej != nil {
		status, reply = http.StatusBadRequest, *rej
	} else if validate {
		status, reply, kept = validateAll(events, now)
	} else {
		status, reply, kept = acceptAll(events, now)
	}
	if status != http.StatusOK {
		s.Reject(reply)
	}
	if validate {
		s.mu.Lock()
		s.validated[pixel] = append(s.validated[pixel], kept...)
		s.mu.Unlock()
	} else {
		s.Accept(pixel, kept...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply.Body())
}

// authorize checks the token and its right to the pixel.
func (s *Server) authorize(r *http.Request, pixel string) (int, *Reply) {
	token := r.URL.Query().Get("access_token")
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	tokenKnown, _, allowed := s.pixels.Check(pixel, token)
	if !tokenKnown {
		return http.StatusUnauthorized, &Reply{Status: "INVALID", Reason: "Unauthorized: the access token is missing, invalid or revoked"}
	}
	if !allowed {
		return http.StatusForbidden, &Reply{Status: "INVALID", Reason: "Forbidden: the access token may not report to pixel " + pixel}
	}
	return 0, nil
}

type parsed struct {
	raw       map[string]any
	rec       Received
	notObject bool
}

// decode reads the body into its events, with where the token came from.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, pixel string) ([]parsed, *Reply) {
	in := "query"
	if r.URL.Query().Get("access_token") == "" {
		in = "header"
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, invalidRequest("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, invalidRequest("cannot read the request body: %v", err)
	}
	var req map[string]any
	if err := destinationstest.DecodeJSON(body, &req); err != nil {
		return nil, invalidRequest("the JSON body does not parse: %v", err)
	}
	for k := range req {
		if k != "data" {
			return nil, invalidRequest("%s: unknown field", k)
		}
	}
	data, ok := req["data"].([]any)
	switch {
	case !ok:
		return nil, invalidRequest("data: required, an array of events")
	case len(data) == 0:
		return nil, invalidRequest("data: must hold at least one event")
	case len(data) > MaxEvents:
		return nil, invalidRequest("data: at most %d events per request, got %d", MaxEvents, len(data))
	}
	out := make([]parsed, len(data))
	for i, v := range data {
		ev, ok := v.(map[string]any)
		out[i] = parsed{raw: ev, rec: Received{Event: ev, PixelID: pixel, TokenIn: in}, notObject: !ok}
	}
	return out, nil
}

func invalidRequest(format string, args ...any) *Reply {
	return &Reply{Status: "INVALID", Reason: "Invalid request", Errors: &Details{ErrorMsgs: []string{fmt.Sprintf(format, args...)}}}
}

// acceptAll keeps every event, or none when one is bad.
func acceptAll(events []parsed, now time.Time) (int, Reply, []Received) {
	out := make([]Received, 0, len(events))
	for i := range events {
		if msg := validateEvent(&events[i], now); msg != "" {
			return http.StatusBadRequest, Invalid(i, "Invalid event", msg), nil
		}
		out = append(out, events[i].rec)
	}
	return http.StatusOK, Reply{Status: "VALID", Reason: "Events received"}, out
}

// validateAll judges every event and keeps the valid ones as validated.
func validateAll(events []parsed, now time.Time) (int, Reply, []Received) {
	yes := true
	reply := Reply{Status: "VALID", TestEvent: &yes, Reason: "Events validated"}
	var valid []Received
	for i := range events {
		l := EventLog{Event: i, Status: "VALID", Warnings: []string{}}
		if msg := validateEvent(&events[i], now); msg != "" {
			l.Status, l.Errors = "INVALID", &Details{ErrorMsgs: []string{msg}}
			reply.Status, reply.Reason = "INVALID", "Some events are invalid"
		} else {
			valid = append(valid, events[i].rec)
		}
		reply.EventLogs = append(reply.EventLogs, l)
	}
	if reply.Status == "INVALID" {
		return http.StatusBadRequest, reply, valid
	}
	return http.StatusOK, reply, valid
}

// eventNames are Snap's event names (Conversions API v3).
var eventNames = []string{
	"PAGE_VIEW", "VIEW_CONTENT", "LIST_VIEW", "SEARCH", "ADD_CART", "ADD_TO_WISHLIST", "START_CHECKOUT",
	"ADD_BILLING", "PURCHASE", "SIGN_UP", "SUBSCRIBE", "START_TRIAL", "SAVE", "SHARE", "INVITE", "LOGIN",
	"RESERVE", "RATE", "AD_CLICK", "AD_VIEW", "COMPLETE_TUTORIAL", "LEVEL_COMPLETE", "ACHIEVEMENT_UNLOCKED",
	"SPEND_CREDITS", "APP_OPEN", "APP_INSTALL",
	"CUSTOM_EVENT_1", "CUSTOM_EVENT_2", "CUSTOM_EVENT_3", "CUSTOM_EVENT_4", "CUSTOM_EVENT_5",
}

var (
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	digitsPattern   = regexp.MustCompile(`^[0-9]+$`)
)

// The user_data fields: lists of SHA-256 digests, and plain values.
var (
	hashedKeys = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}
	plainKeys  = []string{"client_ip_address", "client_user_agent", "sc_click_id", "sc_cookie1", "madid", "idfa", "idfv"}
	eventKeys  = []string{"event_name", "event_time", "event_id", "action_source", "event_source_url", "opt_out",
		"user_data", "custom_data", "data_processing_options", "data_processing_options_country",
		"data_processing_options_state", "integration"}
	customKeys = []string{"currency", "value", "content_ids", "content_category", "content_type", "contents",
		"num_items", "order_id", "search_string", "status", "delivery_category", "brands", "sign_up_method"}
)

// validateEvent applies Snap's rules to one event, filling its record;
// it returns what is wrong, or "".
func validateEvent(p *parsed, now time.Time) string {
	ev, rec := p.raw, &p.rec
	if p.notObject {
		return "must be an object"
	}
	for k := range ev {
		if !slices.Contains(eventKeys, k) {
			return k + ": unknown field"
		}
	}
	name, _ := ev["event_name"].(string)
	if !slices.Contains(eventNames, name) {
		return fmt.Sprintf("event_name: %v is not a Snap event", ev["event_name"])
	}
	rec.EventName = name
	if v, present := ev["event_id"]; present {
		id, ok := v.(string)
		if !ok || id == "" {
			return "event_id: must be a non-empty string"
		}
		rec.EventID = id
	}
	num, ok := ev["event_time"].(json.Number)
	if !ok {
		return "event_time: required, Unix seconds"
	}
	secs, err := strconv.ParseInt(num.String(), 10, 64)
	switch {
	case err != nil || secs <= 0:
		return "event_time: " + num.String() + " must be a positive integer (Unix seconds)"
	case secs > 100_000_000_000:
		return "event_time: " + num.String() + " looks like milliseconds; send Unix seconds"
	}
	rec.EventTime = secs
	if t := time.Unix(secs, 0); now.Sub(t) > MaxAge {
		return fmt.Sprintf("event_time: timestamp out of range, more than %d days ago", int(MaxAge.Hours()/24))
	} else if t.Sub(now) > MaxFuture {
		return "event_time: timestamp out of range, in the future"
	}
	src, _ := ev["action_source"].(string)
	switch src {
	case "WEB", "OFFLINE":
	case "MOBILE_APP":
		return "action_source: MOBILE_APP events go to a Snap App ID, not a pixel"
	default:
		return fmt.Sprintf("action_source: %v must be WEB, MOBILE_APP or OFFLINE", ev["action_source"])
	}
	rec.ActionSource = src
	if v, present := ev["event_source_url"]; present || src == "WEB" {
		s, _ := v.(string)
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("event_source_url: required for WEB events, an http(s) URL; got %v", v)
		}
	}
	if v, present := ev["opt_out"]; present {
		if _, ok := v.(bool); !ok {
			return "opt_out: must be a boolean"
		}
	}
	if msg := validateProcessing(ev); msg != "" {
		return msg
	}
	ud, ok := ev["user_data"].(map[string]any)
	if !ok {
		return "user_data: required, an object"
	}
	rec.UserData = ud
	if msg := validateUserData(ud); msg != "" {
		return msg
	}
	if v, present := ev["custom_data"]; present {
		if rec.CustomData, ok = v.(map[string]any); !ok {
			return "custom_data: must be an object"
		}
	}
	return validateCustomData(rec.CustomData, name)
}

func validateProcessing(ev map[string]any) string {
	if v, present := ev["data_processing_options"]; present {
		opts, ok := v.([]any)
		if !ok {
			return "data_processing_options: must be an array"
		}
		for _, o := range opts {
			if o != "LDU" {
				return fmt.Sprintf("data_processing_options: %v is not LDU", o)
			}
		}
	}
	for _, k := range []string{"data_processing_options_country", "data_processing_options_state"} {
		if v, present := ev[k]; present && !isInteger(v) {
			return k + ": must be an integer"
		}
	}
	return ""
}

func validateUserData(ud map[string]any) string {
	for k := range ud {
		if !slices.Contains(hashedKeys, k) && !slices.Contains(plainKeys, k) {
			return "user_data." + k + ": unknown field"
		}
	}
	for _, k := range hashedKeys {
		vals, ok := destinationstest.StringOrList(ud[k])
		if !ok {
			return "user_data." + k + ": must be a string or an array of strings"
		}
		for _, v := range vals {
			if !destinationstest.IsSHA256(v) {
				return "user_data." + k + ": unhashed PII; send the lowercase hex SHA-256 of the normalized value"
			}
		}
	}
	for _, k := range plainKeys {
		if v, present := ud[k]; present {
			if s, ok := v.(string); !ok || s == "" {
				return "user_data." + k + ": must be a non-empty string"
			}
		}
	}
	ip, _ := ud["client_ip_address"].(string)
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return "user_data.client_ip_address: invalid IP address"
		}
	}
	ua, _ := ud["client_user_agent"].(string)
	if !present(ud, "em") && !present(ud, "ph") && !present(ud, "madid") && (ip == "" || ua == "") {
		return "user_data: insufficient PII: send em, ph, madid, or both client_ip_address and client_user_agent"
	}
	return ""
}

func validateCustomData(cd map[string]any, name string) string {
	for k := range cd {
		if !slices.Contains(customKeys, k) {
			return "custom_data." + k + ": unknown field"
		}
	}
	if v, present := cd["currency"]; present {
		if s, ok := v.(string); !ok || !currencyPattern.MatchString(s) {
			return fmt.Sprintf("custom_data.currency: %v is not an ISO 4217 code", v)
		}
	}
	if v, present := cd["value"]; present && !isNumeric(v) {
		return fmt.Sprintf("custom_data.value: %v must be a number", v)
	}
	if v, present := cd["num_items"]; present && !isInteger(v) {
		return fmt.Sprintf("custom_data.num_items: %v must be an integer", v)
	}
	if v, present := cd["content_ids"]; present {
		if ids, ok := destinationstest.StringOrList(v); !ok || len(ids) == 0 {
			return "custom_data.content_ids: must be an array of strings"
		}
	}
	if v, present := cd["contents"]; present {
		items, ok := v.([]any)
		if !ok {
			return "custom_data.contents: must be an array"
		}
		for i, it := range items {
			c, ok := it.(map[string]any)
			if !ok {
				return fmt.Sprintf("custom_data.contents[%d]: must be an object", i)
			}
			for k, v := range c {
				s, isString := v.(string)
				switch {
				case !slices.Contains([]string{"id", "quantity", "item_price", "delivery_category", "brand"}, k):
					return fmt.Sprintf("custom_data.contents[%d].%s: unknown field", i, k)
				case !isString:
					return fmt.Sprintf("custom_data.contents[%d].%s: must be a string", i, k)
				case k == "quantity" && !digitsPattern.MatchString(s):
					return fmt.Sprintf("custom_data.contents[%d].quantity: %q is not a count", i, s)
				case k == "item_price" && !isNumeric(s):
					return fmt.Sprintf("custom_data.contents[%d].item_price: %q is not a number", i, s)
				}
			}
			if id, _ := c["id"].(string); id == "" {
				return fmt.Sprintf("custom_data.contents[%d].id: required", i)
			}
		}
	}
	if name == "PURCHASE" && (!present(cd, "value") || !present(cd, "currency")) {
		return "custom_data: missing price and/or currency in a PURCHASE event"
	}
	return ""
}

func present(m map[string]any, k string) bool {
	switch v := m[k].(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	}
	return true
}

// isNumeric reports whether v is a JSON number or a numeric string (Snap's
// own examples send "10").
func isNumeric(v any) bool {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := strconv.ParseInt(n.String(), 10, 64)
	return err == nil
}
