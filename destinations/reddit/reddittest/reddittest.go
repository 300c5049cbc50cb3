// Package reddittest is a strict fake of Reddit's Conversions API v3
// endpoint, POST /api/v3/pixels/{pixel_id}/conversion_events, for tests.
//
// It answers as Reddit does: 401 for a missing or unknown token, 403 for a
// pixel the token cannot reach, 404 for an unknown pixel; and a request
// holding any invalid event is refused whole, 400
// {"error":{"code":400,"message":"There were N invalid conversion events.
// None were processed.","fields":[{"field":"$.data.events[i]…","message"}]}},
// nothing recorded. An event is invalid for an event_at older than 168 hours
// or more than 5 minutes ahead, an action_source or tracking_type Reddit
// does not know, a CUSTOM event without a name, a currency, a uuid that is
// no RFC 4122 UUID, no match key at all, or any field Reddit does not list.
// Stricter than Reddit, which also takes them in plaintext, it wants the
// e-mail, phone and external id as lowercase hex SHA-256.
package reddittest

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
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits the fake enforces.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 1000
	// MaxAge is how old an event may be.
	MaxAge = 168 * time.Hour
	// MaxFuture is how far ahead of the server clock event_at may be.
	MaxFuture = 5 * time.Minute

	maxBodyBytes = 32 << 20
)

// TrackingTypes are the tracking types Reddit accepts (CUSTOM with a
// custom_event_name).
var TrackingTypes = []string{"PAGE_VISIT", "VIEW_CONTENT", "SEARCH", "ADD_TO_CART", "ADD_TO_WISHLIST",
	"PURCHASE", "LEAD", "SIGN_UP", "CUSTOM"}

// ActionSources are the action_source values Reddit accepts.
var ActionSources = []string{"WEBSITE", "APP", "PHYSICAL_STORE", "OTHER"}

var (
	pathPattern     = regexp.MustCompile(`^/api/v3/pixels/([^/]+)/conversion_events$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	uuidPattern     = regexp.MustCompile(`^([0-9]+\.)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	regionPattern   = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
)

// FieldError names one invalid field by its path ("$.data.events[2].user.uuid").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ErrorBody is Reddit's v3 error envelope's content.
type ErrorBody struct {
	Code    int          `json:"code"`
	Message string       `json:"message"`
	Fields  []FieldError `json:"fields,omitempty"`
}

// Body is the JSON error envelope {"error":{...}} holding e, for FailNext.
func (e ErrorBody) Body() string {
	b, _ := json.Marshal(map[string]ErrorBody{"error": e})
	return string(b)
}

// Received is one event the fake accepted.
type Received struct {
	// Event is the whole decoded event (numbers as json.Number).
	Event map[string]any
	// Typed copies of the event's fields.
	EventAt         int64
	ActionSource    string
	TrackingType    string
	CustomEventName string
	ClickID         string
	ConversionID    string
	// User and Metadata are the event's objects (nil when absent).
	User     map[string]any
	Metadata map[string]any
	// TestID is the request's data.test_id.
	TestID string
}

// Server is a running fake Conversions API: the shared scaffolding (URL,
// Handler, SetNow, Events by pixel, Requests, Rejections, FailNext,
// WaitEvents) and Reddit's rules. Its methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, ErrorBody]
	pixels destinationstest.Accounts
}

// NewServer starts a fake, closed when the test ends. It knows no pixel
// until AddPixel; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.Fake = destinationstest.NewFake[Received, ErrorBody](t, destinationstest.FakeConfig{
		Name: "reddittest", Account: "pixel", Serve: s.serveHTTP})
	return s
}

// AddPixel registers a pixel and the conversion access token of it.
func (s *Server) AddPixel(pixelID, token string) { s.pixels.Add(pixelID, token) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	pixel, recs, status, eb := s.handle(w, r, now)
	if eb != nil {
		s.Reject(*eb)
		destinationstest.WriteJSON(w, status, map[string]ErrorBody{"error": *eb})
		return
	}
	s.Accept(pixel, recs...)
	destinationstest.WriteJSON(w, http.StatusOK, map[string]string{"message": fmt.Sprintf("Successfully processed %d conversion events.", len(recs))})
}

// handle checks the request and its events: the events to record, or the
// status and error to answer.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, now time.Time) (string, []Received, int, *ErrorBody) {
	m := pathPattern.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return "", nil, http.StatusNotFound, &ErrorBody{Code: 404, Message: "Not Found"}
	}
	pixel := m[1]
	if r.Method != http.MethodPost {
		return "", nil, http.StatusMethodNotAllowed, &ErrorBody{Code: 405, Message: "Method Not Allowed"}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = ""
	}
	tokenKnown, known, allowed := s.pixels.Check(pixel, token)
	switch {
	case !tokenKnown:
		return "", nil, http.StatusUnauthorized, &ErrorBody{Code: 401, Message: "Unauthorized: invalid or expired access token"}
	case !known:
		return "", nil, http.StatusNotFound, &ErrorBody{Code: 404, Message: "pixel " + pixel + " not found"}
	case !allowed:
		return "", nil, http.StatusForbidden, &ErrorBody{Code: 403, Message: "Forbidden: the token cannot send events to pixel " + pixel}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return "", nil, http.StatusUnsupportedMediaType, &ErrorBody{Code: 415, Message: "Content-Type must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return "", nil, http.StatusRequestEntityTooLarge, &ErrorBody{Code: 413, Message: "request body too large"}
	}
	var top map[string]any
	if err := destinationstest.DecodeJSON(body, &top); err != nil {
		return "", nil, http.StatusBadRequest, requestError("$", "the body is not one JSON object")
	}
	if fe := unknownFields("$", top, "data"); fe != nil {
		return "", nil, http.StatusBadRequest, requestError(fe.Field, fe.Message)
	}
	data, ok := top["data"].(map[string]any)
	if !ok {
		return "", nil, http.StatusBadRequest, requestError("$.data", "data is required and must be an object")
	}
	if fe := unknownFields("$.data", data, "events", "test_id", "partner"); fe != nil {
		return "", nil, http.StatusBadRequest, requestError(fe.Field, fe.Message)
	}
	testID, ok := data["test_id"].(string)
	if _, present := data["test_id"]; present && !ok {
		return "", nil, http.StatusBadRequest, requestError("$.data.test_id", "test_id must be a string")
	}
	events, ok := data["events"].([]any)
	switch {
	case !ok || len(events) == 0:
		return "", nil, http.StatusBadRequest, requestError("$.data.events", "events must be a non-empty array")
	case len(events) > MaxEvents:
		return "", nil, http.StatusBadRequest, requestError("$.data.events",
			fmt.Sprintf("events holds %d conversion events; at most %d", len(events), MaxEvents))
	}
	var fields []FieldError
	invalid := 0
	recs := make([]Received, 0, len(events))
	for i, raw := range events {
		path := fmt.Sprintf("$.data.events[%d]", i)
		ev, ok := raw.(map[string]any)
		var errs []FieldError
		var rec Received
		if !ok {
			errs = []FieldError{{path, "an event must be an object"}}
		} else {
			rec, errs = validateEvent(path, ev, now)
		}
		if len(errs) > 0 {
			invalid++
			fields = append(fields, errs...)
			continue
		}
		rec.TestID = testID
		recs = append(recs, rec)
	}
	if invalid > 0 {
		return "", nil, http.StatusBadRequest, &ErrorBody{Code: 400,
			Message: fmt.Sprintf("There were %d invalid conversion events. None were processed.", invalid), Fields: fields}
	}
	return pixel, recs, 0, nil
}

func requestError(field, msg string) *ErrorBody {
	return &ErrorBody{Code: 400, Message: "The request is invalid. None were processed.", Fields: []FieldError{{field, msg}}}
}

// unknownFields names the first key of obj not in allowed.
func unknownFields(path string, obj map[string]any, allowed ...string) *FieldError {
	if k, ok := destinationstest.UnknownKey(obj, allowed...); ok {
		return &FieldError{path + "." + k, "unknown field " + strconv.Quote(k)}
	}
	return nil
}

// validateEvent applies Reddit's rules to one event, naming every problem.
func validateEvent(path string, ev map[string]any, now time.Time) (Received, []FieldError) {
	rec := Received{Event: ev}
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{path + "." + field, field + ": " + fmt.Sprintf(format, args...)})
	}
	if fe := unknownFields(path, ev, "event_at", "action_source", "type", "click_id", "event_source_url", "metadata", "user"); fe != nil {
		errs = append(errs, *fe)
	}

	if n, ok := ev["event_at"].(json.Number); !ok {
		bad("event_at", "required, Unix time in milliseconds")
	} else if ms, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
		bad("event_at", "%s is not an integer", n)
	} else {
		rec.EventAt = ms
		at := time.UnixMilli(ms)
		switch {
		case now.Sub(at) > MaxAge:
			bad("event_at", "timestamp must be less than %s old", MaxAge)
		case at.Sub(now) > MaxFuture:
			bad("event_at", "timestamp must not be more than %s in the future", MaxFuture)
		}
	}

	rec.ActionSource, _ = ev["action_source"].(string)
	if !slices.Contains(ActionSources, rec.ActionSource) {
		bad("action_source", "invalid action_source: %v", ev["action_source"])
	}

	if typ, ok := ev["type"].(map[string]any); !ok {
		bad("type", "required")
	} else {
		if fe := unknownFields(path+".type", typ, "tracking_type", "custom_event_name"); fe != nil {
			errs = append(errs, *fe)
		}
		rec.TrackingType, _ = typ["tracking_type"].(string)
		rec.CustomEventName, _ = typ["custom_event_name"].(string)
		_, named := typ["custom_event_name"]
		switch {
		case !slices.Contains(TrackingTypes, rec.TrackingType):
			bad("type.tracking_type", "invalid tracking_type: %v", typ["tracking_type"])
		case rec.TrackingType == "CUSTOM" && strings.TrimSpace(rec.CustomEventName) == "":
			bad("type.custom_event_name", "required for CUSTOM events")
		case rec.TrackingType != "CUSTOM" && named:
			bad("type.custom_event_name", "only CUSTOM events take a custom_event_name")
		}
	}

	for _, k := range []string{"click_id", "event_source_url"} {
		if v, present := ev[k]; present {
			if _, ok := v.(string); !ok {
				bad(k, "must be a string")
			}
		}
	}
	rec.ClickID, _ = ev["click_id"].(string)
	if u, ok := ev["event_source_url"].(string); ok && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		bad("event_source_url", "%q is not an absolute http(s) URL", u)
	}

	if v, present := ev["metadata"]; present {
		md, ok := v.(map[string]any)
		if !ok {
			bad("metadata", "must be an object")
		} else {
			rec.Metadata = md
			rec.ConversionID, _ = md["conversion_id"].(string)
			errs = append(errs, validateMetadata(path+".metadata", md)...)
		}
	}

	keys := 0
	if v, present := ev["user"]; present {
		u, ok := v.(map[string]any)
		if !ok {
			bad("user", "must be an object")
		} else {
			rec.User = u
			var uerrs []FieldError
			keys, uerrs = validateUser(path+".user", u)
			errs = append(errs, uerrs...)
		}
	}
	if rec.ClickID != "" {
		keys++
	}
	if keys == 0 {
		bad("user", "at least one match key is required (click_id, uuid, email, phone_number, external_id, idfa, aaid, or ip_address with user_agent)")
	}
	return rec, errs
}

func validateMetadata(path string, md map[string]any) []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{path + "." + field, "metadata." + field + ": " + fmt.Sprintf(format, args...)})
	}
	if fe := unknownFields(path, md, "conversion_id", "currency", "value", "item_count", "products"); fe != nil {
		errs = append(errs, *fe)
	}
	if v, present := md["conversion_id"]; present {
		if _, ok := v.(string); !ok {
			bad("conversion_id", "must be a string")
		}
	}
	if v, present := md["currency"]; present {
		if c, ok := v.(string); !ok || !currencyPattern.MatchString(c) {
			bad("currency", "%v is not an ISO 4217 currency code", v)
		}
	}
	if v, present := md["value"]; present {
		if _, ok := v.(json.Number); !ok {
			bad("value", "must be a number")
		}
	}
	if v, present := md["item_count"]; present {
		if n, ok := v.(json.Number); !ok || strings.ContainsAny(n.String(), ".eE-") {
			bad("item_count", "must be a non-negative integer")
		}
	}
	if v, present := md["products"]; present {
		list, ok := v.([]any)
		if !ok {
			bad("products", "must be an array")
		}
		for i, p := range list {
			prod, ok := p.(map[string]any)
			pp := fmt.Sprintf("%s.products[%d]", path, i)
			if !ok {
				errs = append(errs, FieldError{pp, "a product must be an object"})
				continue
			}
			if fe := unknownFields(pp, prod, "id", "name", "category", "quantity", "item_price"); fe != nil {
				errs = append(errs, *fe)
			}
			if q, present := prod["quantity"]; present {
				if n, ok := q.(json.Number); !ok || strings.ContainsAny(n.String(), ".eE") {
					errs = append(errs, FieldError{pp + ".quantity", "quantity must be an integer"})
				}
			}
			if q, present := prod["item_price"]; present {
				if _, ok := q.(json.Number); !ok {
					errs = append(errs, FieldError{pp + ".item_price", "item_price must be a number"})
				}
			}
		}
	}
	return errs
}

// validateUser checks the user object and counts its match keys.
func validateUser(path string, u map[string]any) (int, []FieldError) {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{path + "." + field, "user." + field + ": " + fmt.Sprintf(format, args...)})
	}
	if fe := unknownFields(path, u, "email", "phone_number", "external_id", "ip_address", "user_agent", "uuid",
		"idfa", "aaid", "screen_dimensions", "data_processing_options"); fe != nil {
		errs = append(errs, *fe)
	}
	str := func(k string) (string, bool) {
		v, present := u[k]
		if !present {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad(k, "must be a string")
		}
		return s, ok && s != ""
	}
	keys := 0
	for _, k := range []string{"email", "phone_number", "external_id"} {
		if v, ok := str(k); ok {
			keys++
			if !destinationstest.IsSHA256(v) {
				bad(k, "must be the lowercase hex SHA-256 of the normalized value")
			}
		}
	}
	for _, k := range []string{"idfa", "aaid"} {
		if _, ok := str(k); ok {
			keys++
		}
	}
	ip, hasIP := str("ip_address")
	if hasIP {
		if _, err := netip.ParseAddr(ip); err != nil && !destinationstest.IsSHA256(ip) {
			bad("ip_address", "%q is neither an IP address nor its SHA-256", ip)
		}
	}
	_, hasUA := str("user_agent")
	if hasIP && hasUA {
		keys++
	}
	if id, ok := str("uuid"); ok {
		keys++
		if !uuidPattern.MatchString(id) {
			bad("uuid", "invalid UUID: UUID must be RFC-4122 compliant")
		}
	}
	if v, present := u["data_processing_options"]; present {
		d, ok := v.(map[string]any)
		if !ok {
			bad("data_processing_options", "must be an object")
		} else {
			if fe := unknownFields(path+".data_processing_options", d, "modes", "country", "region"); fe != nil {
				errs = append(errs, *fe)
			}
			modes, _ := d["modes"].([]any)
			for _, m := range modes {
				if m != "LDU" {
					bad("data_processing_options.modes", "%v is not a mode (LDU)", m)
				}
			}
			if c, present := d["country"]; present && !countryPattern.MatchString(fmt.Sprint(c)) {
				bad("data_processing_options.country", "%v is not an ISO 3166-1 alpha-2 code", c)
			}
			if r, present := d["region"]; present && !regionPattern.MatchString(fmt.Sprint(r)) {
				bad("data_processing_options.region", "%v is not an ISO 3166-2 code", r)
			}
		}
	}
	return keys, errs
}
