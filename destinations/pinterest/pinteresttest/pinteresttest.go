// Package pinteresttest is a strict fake of Pinterest's Conversions API
// endpoint, POST /v5/ad_accounts/{ad_account_id}/events, for tests.
//
// It answers as Pinterest documents (API reference v5.23): a request it
// cannot take at all is refused whole with its error object {code,
// message} — 401 code 2 for a missing or unknown token, 403 code 29 for an
// ad account the token cannot reach, 400 code 4196 for a body that breaks
// the request schema (every object there refuses unknown properties) or
// holds more than 1,000 events. Otherwise each event is judged on its own
// (a name Pinterest does not know, an action source, a time older than
// 7 days or in milliseconds, a hashed field that is not a lowercase hex
// SHA-256, an IP address, a currency, an amount that is no decimal
// string): 200 when all were processed, 422 with the per-event statuses in
// details when some failed. The code of that 422 is not documented; the
// fake uses 4196.
package pinteresttest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
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
	MaxEvents = 1000
	// MaxAge is how old an event may be.
	MaxAge = 7 * 24 * time.Hour

	maxBodyBytes = 32 << 20
)

// Pinterest's error codes the fake answers with.
const (
	CodeAuthFailed     = 2
	CodeRateLimited    = 8
	CodeNotPermitted   = 29
	CodeInvalidRequest = 4196
	CodeRampedDown     = 4197
)

// EventNames are the event_name values the fake accepts: Pinterest's API
// reference (v5.23) and its conversion guide's event table.
var EventNames = []string{
	"add_payment_info", "add_to_cart", "add_to_wishlist", "app_install", "app_open", "checkout",
	"contact", "custom", "customize_product", "find_location", "initiate_checkout", "lead",
	"page_visit", "schedule", "search", "signup", "start_trial", "submit_application",
	"subscribe", "view_category", "view_content", "watch_video",
}

// ActionSources are the action_source values Pinterest accepts.
var ActionSources = []string{"app_android", "app_ios", "web", "offline"}

// hashedKeys are the user_data arrays that must hold SHA-256 digests.
var hashedKeys = []string{"em", "ph", "ge", "db", "ln", "fn", "ct", "st", "zp", "country", "external_id", "hashed_maids"}

var (
	pathPattern     = regexp.MustCompile(`^/v5/ad_accounts/([0-9]{1,18})/events$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	partnerPattern  = regexp.MustCompile(`^ss-[a-z0-9_-]+$`)
)

// Error is Pinterest's error object, and with Details its DetailedError.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// Body is the JSON of e, for FailNext.
func (e Error) Body() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// EventStatus is one entry of a response's events array.
type EventStatus struct {
	Status         string `json:"status"`
	ErrorMessage   string `json:"error_message,omitempty"`
	WarningMessage string `json:"warning_message,omitempty"`
}

// Response is ConversionApiResponse.
type Response struct {
	NumEventsReceived  int           `json:"num_events_received"`
	NumEventsProcessed int           `json:"num_events_processed"`
	Events             []EventStatus `json:"events"`
}

// Received is one event the fake accepted.
type Received struct {
	// Event is the whole decoded event (numbers as json.Number).
	Event map[string]any
	// Typed copies of the event's fields.
	EventName    string
	EventID      string
	EventTime    int64
	ActionSource string
	// UserData and CustomData are the event's objects (CustomData nil
	// when absent).
	UserData   map[string]any
	CustomData map[string]any
	// Test reports a request marked ?test=true (Pinterest records
	// nothing of it; the fake keeps it, marked).
	Test bool
}

// Rejection is one refusal the fake answered with: a whole request
// (Index -1) or one event of it.
type Rejection struct {
	Status  int
	Index   int
	Code    int
	Message string
}

// Server is a running fake Conversions API: the shared scaffolding (URL,
// Handler, SetNow, Events by ad account, test ones included and marked,
// Requests, Rejections, FailNext, WaitEvents) and Pinterest's rules. Its
// methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, Rejection]

	mu     sync.Mutex
	tokens map[string][]string // token → the ad accounts it reaches
}

// NewServer starts a fake, closed when the test ends. It knows no ad account
// until AddAccount; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{tokens: map[string][]string{}}
	s.Fake = destinationstest.NewFake[Received, Rejection](t, destinationstest.FakeConfig{
		Name: "pinteresttest", Account: "ad account", Serve: s.serveHTTP})
	return s
}

// AddAccount lets token post to adAccountID. A token may reach several ad
// accounts (of one Pinterest user), as Pinterest allows.
func (s *Server) AddAccount(adAccountID, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = append(s.tokens[token], adAccountID)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	account, test, events, status, perr := s.parse(w, r, now)
	if perr != nil {
		s.Reject(Rejection{Status: status, Index: -1, Code: perr.Code, Message: perr.Message})
		destinationstest.WriteJSON(w, status, perr)
		return
	}

	resp := Response{NumEventsReceived: len(events), Events: make([]EventStatus, len(events))}
	var accepted []Received
	rejected := 0
	for i, ev := range events {
		rec, msg := validateEvent(ev, now)
		if msg != "" {
			resp.Events[i] = EventStatus{Status: "failed", ErrorMessage: msg}
			s.Reject(Rejection{Status: http.StatusUnprocessableEntity, Index: i, Message: msg})
			rejected++
			continue
		}
		rec.Test = test
		accepted = append(accepted, rec)
		resp.NumEventsProcessed++
		resp.Events[i] = EventStatus{Status: "processed"}
	}
	s.Accept(account, accepted...)
	if rejected > 0 {
		destinationstest.WriteJSON(w, http.StatusUnprocessableEntity, Error{Code: CodeInvalidRequest,
			Message: "Not all events were successfully processed.", Details: resp})
		return
	}
	destinationstest.WriteJSON(w, http.StatusOK, resp)
}

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "Invalid request: " + fmt.Sprintf(format, args...)}
}

// parse checks the path, method, token, ad account and query, and decodes
// and checks the body against the request schema.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, now time.Time) (string, bool, []map[string]any, int, *Error) {
	m := pathPattern.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return "", false, nil, http.StatusNotFound, &Error{Code: 404, Message: "Resource not found: " + r.URL.Path}
	}
	account := m[1]
	if r.Method != http.MethodPost {
		return "", false, nil, http.StatusMethodNotAllowed, &Error{Code: 405, Message: "Method not allowed."}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	reach, known := s.tokens[token]
	s.mu.Unlock()
	if !ok || token == "" || !known {
		return "", false, nil, http.StatusUnauthorized, &Error{Code: CodeAuthFailed, Message: "Authentication failed."}
	}
	if !slices.Contains(reach, account) {
		return "", false, nil, http.StatusForbidden, &Error{Code: CodeNotPermitted, Message: "You are not permitted to access that resource."}
	}
	test := false
	for k, vs := range r.URL.Query() {
		if k != "test" || len(vs) != 1 {
			return "", false, nil, http.StatusBadRequest, invalid("unknown query parameter %q", k)
		}
		b, err := strconv.ParseBool(vs[0])
		if err != nil {
			return "", false, nil, http.StatusBadRequest, invalid("test %q is not a boolean", vs[0])
		}
		test = b
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return "", false, nil, http.StatusBadRequest, invalid("the body must be application/json, got %q", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return "", false, nil, http.StatusBadRequest, invalid("cannot read the body: %v", err)
	}
	var top map[string]any
	if err := destinationstest.DecodeJSON(body, &top); err != nil {
		return "", false, nil, http.StatusBadRequest, invalid("the body is not one JSON object")
	}
	for k := range top {
		if k != "data" {
			return "", false, nil, http.StatusBadRequest, invalid("Additional properties are not allowed (%q was unexpected)", k)
		}
	}
	data, ok := top["data"].([]any)
	switch {
	case !ok:
		return "", false, nil, http.StatusBadRequest, invalid("'data' is a required property and must be an array")
	case len(data) == 0:
		return "", false, nil, http.StatusBadRequest, invalid("data: [] should be non-empty")
	case len(data) > MaxEvents:
		return "", false, nil, http.StatusBadRequest, invalid("data: is too long (%d events; at most %d)", len(data), MaxEvents)
	}
	events := make([]map[string]any, len(data))
	for i, d := range data {
		ev, ok := d.(map[string]any)
		if !ok {
			return "", false, nil, http.StatusBadRequest, invalid("data[%d] is not of type 'object'", i)
		}
		path := fmt.Sprintf("data[%d]", i)
		if err := checkObject(path, ev, eventFields); err != nil {
			return "", false, nil, http.StatusBadRequest, invalid("%v", err)
		}
		// user_data: at least em, hashed_maids, or the IP address with
		// the user agent (anyOf in the schema).
		ud := ev["user_data"].(map[string]any)
		_, em := ud["em"]
		_, maids := ud["hashed_maids"]
		_, ip := ud["client_ip_address"]
		_, ua := ud["client_user_agent"]
		if !em && !maids && !(ip && ua) {
			return "", false, nil, http.StatusBadRequest,
				invalid("%s.user_data: needs em, hashed_maids, or client_ip_address with client_user_agent", path)
		}
		events[i] = ev
	}
	return account, test, events, 0, nil
}

// validateEvent applies Pinterest's per-event rules to an event that passed
// the schema; a non-empty message fails it.
func validateEvent(ev map[string]any, now time.Time) (Received, string) {
	rec := Received{Event: ev}
	rec.EventName, _ = ev["event_name"].(string)
	rec.EventID, _ = ev["event_id"].(string)
	rec.ActionSource, _ = ev["action_source"].(string)
	rec.UserData, _ = ev["user_data"].(map[string]any)
	rec.CustomData, _ = ev["custom_data"].(map[string]any)
	secs, _ := strconv.ParseInt(ev["event_time"].(json.Number).String(), 10, 64)
	rec.EventTime = secs

	switch {
	case !slices.Contains(EventNames, rec.EventName):
		return rec, fmt.Sprintf("event_name %q is not a valid event name", rec.EventName)
	case !slices.Contains(ActionSources, rec.ActionSource):
		return rec, fmt.Sprintf("action_source %q must be one of %v", rec.ActionSource, ActionSources)
	case rec.EventID == "":
		return rec, "event_id must not be empty"
	case secs > 100_000_000_000:
		return rec, fmt.Sprintf("event_time %d looks like milliseconds; send Unix seconds", secs)
	case secs <= 0 || now.Sub(time.Unix(secs, 0)) > MaxAge:
		return rec, fmt.Sprintf("event_time %d is older than %d days", secs, int(MaxAge.Hours()/24))
	}
	if p, ok := ev["partner_name"].(string); ok && !partnerPattern.MatchString(p) {
		return rec, fmt.Sprintf("partner_name %q must follow the ss-partnername convention, lowercase", p)
	}
	for _, k := range hashedKeys {
		list, _ := rec.UserData[k].([]any)
		for _, v := range list {
			if !destinationstest.IsSHA256(v.(string)) {
				return rec, fmt.Sprintf("user_data.%s must hold lowercase hex SHA-256 digests", k)
			}
		}
	}
	if v, ok := rec.UserData["client_ip_address"].(string); ok {
		if _, err := netip.ParseAddr(v); err != nil {
			return rec, fmt.Sprintf("user_data.client_ip_address %q is not an IP address", v)
		}
	}
	cd := rec.CustomData
	if c, ok := cd["currency"].(string); ok && !currencyPattern.MatchString(c) {
		return rec, fmt.Sprintf("custom_data.currency %q is not an ISO-4217 code", c)
	}
	for _, k := range []string{"value", "predicted_ltv"} {
		if v, ok := cd[k].(string); ok {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return rec, fmt.Sprintf("custom_data.%s %q cannot be parsed into a double", k, v)
			}
		}
	}
	contents, _ := cd["contents"].([]any)
	for i, c := range contents {
		if v, ok := c.(map[string]any)["item_price"].(string); ok {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return rec, fmt.Sprintf("custom_data.contents[%d].item_price %q cannot be parsed into a double", i, v)
			}
		}
	}
	if v, ok := cd["opt_out_type"].(string); ok {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) != "LDP" {
				return rec, fmt.Sprintf("custom_data.opt_out_type %q holds an unknown flag", v)
			}
		}
	}
	return rec, ""
}
