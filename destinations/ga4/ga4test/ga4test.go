// Package ga4test is a strict fake of GA4's Measurement Protocol for
// tests: the collection endpoint POST /mp/collect and the validation
// server POST /debug/mp/collect.
//
// Like GA4, the collection endpoint answers 204 to every POST, valid or
// not: it records the events that pass GA4's documented rules and drops
// the rest silently (Dropped tells a test what it dropped and why). The
// validation server applies the same rules and answers them in GA4's
// shape, {"validationMessages":[{"fieldPath","description",
// "validationCode"}]}, without recording anything; as GA4's, it does not
// check the API secret.
package ga4test

import (
	"bytes"
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
	"unicode/utf8"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits the fake enforces, from the Measurement Protocol reference and
// GA4's collection limits.
const (
	MaxEvents     = 25
	MaxParams     = 25
	MaxItems      = 200
	MaxAge        = 72 * time.Hour
	MaxBodyBytes  = 130_000
	maxUserIDLen  = 256
	maxUserValues = 3
)

// Validation codes of the validation server.
const (
	ValueInvalid        = "VALUE_INVALID"
	ValueRequired       = "VALUE_REQUIRED"
	NameInvalid         = "NAME_INVALID"
	NameReserved        = "NAME_RESERVED"
	ValueOutOfBounds    = "VALUE_OUT_OF_BOUNDS"
	ExceededMaxEntities = "EXCEEDED_MAX_ENTITIES"
)

// Message is one validation message. Event is the index of the event it
// concerns, -1 for the request as a whole; it is not part of GA4's JSON.
type Message struct {
	FieldPath      string `json:"fieldPath"`
	Description    string `json:"description"`
	ValidationCode string `json:"validationCode"`
	Event          int    `json:"-"`
}

// Received is one event the collection endpoint recorded.
type Received struct {
	MeasurementID string
	ClientID      string
	UserID        string
	Name          string
	// TimestampMicros is the event's own timestamp_micros, else the
	// request's; 0 when neither was sent.
	TimestampMicros int64
	// Params is the event's params (numbers as json.Number).
	Params map[string]any
	// Request is the whole request body, decoded.
	Request map[string]any
}

// Drop is a request, or an event of one, the collection endpoint dropped
// silently, with the reason GA4's validation server would give.
type Drop struct {
	MeasurementID string
	Event         int // -1: the whole request
	Reason        string
}

// Server is a running fake: the shared scaffolding (URL, Handler, SetNow,
// Events by measurement id, Requests, FailNext, WaitEvents), with what the
// collection endpoint dropped as its Rejections, and GA4's rules. Its
// methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, Drop]
	streams destinationstest.Accounts // measurement id → API secret
}

// NewServer starts a fake, closed when the test ends. It knows no stream
// until AddStream; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.Fake = destinationstest.NewFake[Received, Drop](t, destinationstest.FakeConfig{
		Name: "ga4test", Account: "stream", Serve: s.serveHTTP})
	return s
}

// AddStream registers a web stream and its API secret.
func (s *Server) AddStream(measurementID, apiSecret string) { s.streams.Add(measurementID, apiSecret) }

// Dropped returns what the collection endpoint dropped, in order.
func (s *Server) Dropped() []Drop { return s.Rejections() }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	debug := false
	switch r.URL.Path {
	case "/mp/collect":
	case "/debug/mp/collect":
		debug = true
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4*MaxBodyBytes))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.URL.Query().Get("measurement_id")
	var msgs []Message
	if id == "" {
		msgs = append(msgs, Message{FieldPath: "measurement_id", Description: "Measurement ID is required.",
			ValidationCode: ValueRequired, Event: -1})
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		msgs = append(msgs, Message{FieldPath: "", Description: "The body must be JSON (Content-Type application/json).",
			ValidationCode: ValueInvalid, Event: -1})
	}
	msgs = append(msgs, Validate(body, now)...)
	if debug {
		if msgs == nil {
			msgs = []Message{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string][]Message{"validationMessages": msgs})
		return
	}
	s.collect(id, r.URL.Query().Get("api_secret"), body, msgs)
	w.WriteHeader(http.StatusNoContent)
}

// collect records what GA4 would keep of one request and notes the rest.
func (s *Server) collect(id, secret string, body []byte, msgs []Message) {
	if _, _, allowed := s.streams.Check(id, secret); !allowed {
		s.Reject(Drop{MeasurementID: id, Event: -1, Reason: "unknown measurement_id or wrong api_secret"})
		return
	}
	badEvent := map[int]string{}
	for _, m := range msgs {
		if m.Event < 0 {
			s.Reject(Drop{MeasurementID: id, Event: -1, Reason: m.ValidationCode + ": " + m.Description})
			return
		}
		if _, seen := badEvent[m.Event]; !seen {
			badEvent[m.Event] = m.ValidationCode + ": " + m.Description
		}
	}
	req := decode(body)
	events, _ := req["events"].([]any)
	for i, raw := range events {
		if why, bad := badEvent[i]; bad {
			s.Reject(Drop{MeasurementID: id, Event: i, Reason: why})
			continue
		}
		ev := raw.(map[string]any)
		rec := Received{MeasurementID: id, Request: req}
		rec.ClientID, _ = req["client_id"].(string)
		rec.UserID, _ = req["user_id"].(string)
		rec.Name, _ = ev["name"].(string)
		rec.Params, _ = ev["params"].(map[string]any)
		rec.TimestampMicros = micros(req["timestamp_micros"])
		if ts := micros(ev["timestamp_micros"]); ts != 0 {
			rec.TimestampMicros = ts
		}
		s.Accept(id, rec)
	}
}

func decode(body []byte) map[string]any {
	var v map[string]any
	if destinationstest.DecodeJSON(body, &v) != nil {
		return nil
	}
	return v
}

func micros(v any) int64 {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, _ := strconv.ParseInt(n.String(), 10, 64)
	return i
}

var (
	namePattern    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	regionPattern  = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
)

var reservedEvents = []string{
	"ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward",
	"adunit_exposure", "app_background", "app_clear_data", "app_exception", "app_remove",
	"app_store_refund", "app_store_subscription_cancel", "app_store_subscription_convert",
	"app_store_subscription_renew", "app_uninstall", "app_update", "app_upgrade",
	"dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error",
	"firebase_campaign", "firebase_in_app_message_action", "firebase_in_app_message_dismiss",
	"firebase_in_app_message_impression", "first_open", "first_visit", "in_app_purchase",
	"notification_dismiss", "notification_foreground", "notification_open",
	"notification_receive", "os_update", "session_start", "session_start_with_rollout",
	"user_engagement",
}

var reservedPrefixes = []string{"_", "firebase_", "ga_", "google_", "gtag."}

var topKeys = []string{"client_id", "app_instance_id", "user_id", "timestamp_micros", "user_properties",
	"user_data", "consent", "non_personalized_ads", "user_location", "ip_override", "device",
	"validation_behavior", "events"}

// Validate applies GA4's rules to a request body at now and returns the
// messages the validation server would give (nil: valid).
func Validate(body []byte, now time.Time) []Message {
	v := &validator{now: now}
	if len(body) > MaxBodyBytes {
		v.add(-1, "", ValueOutOfBounds, "The request body is %d bytes; the limit is %d.", len(body), MaxBodyBytes)
		return v.msgs
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil || dec.More() {
		v.add(-1, "", ValueInvalid, "Unable to parse Measurement Protocol JSON payload.")
		return v.msgs
	}
	v.request(req)
	return v.msgs
}

type validator struct {
	now     time.Time
	enforce bool // validation_behavior ENFORCE_RECOMMENDATIONS
	msgs    []Message
}

func (v *validator) add(event int, path, code, format string, args ...any) {
	v.msgs = append(v.msgs, Message{FieldPath: path, Description: fmt.Sprintf(format, args...), ValidationCode: code, Event: event})
}

func (v *validator) request(req map[string]any) {
	for k := range req {
		if !slices.Contains(topKeys, k) {
			v.add(-1, k, ValueInvalid, "Unable to parse Measurement Protocol JSON payload. (root): Cannot find field: %s.", k)
		}
	}
	if b, present := req["validation_behavior"]; present {
		switch b {
		case "RELAXED":
		case "ENFORCE_RECOMMENDATIONS":
			v.enforce = true
		default:
			v.add(-1, "validation_behavior", ValueInvalid, "validation_behavior %v is not RELAXED or ENFORCE_RECOMMENDATIONS.", b)
		}
	}
	if id, ok := req["client_id"].(string); !ok || id == "" {
		v.add(-1, "client_id", ValueRequired, "Measurement requires a client_id.")
	}
	if raw, present := req["user_id"]; present {
		id, ok := raw.(string)
		switch {
		case !ok:
			v.add(-1, "user_id", ValueInvalid, "user_id must be a string.")
		case utf8.RuneCountInString(id) > maxUserIDLen:
			v.add(-1, "user_id", ValueOutOfBounds, "user_id is longer than %d characters.", maxUserIDLen)
		}
	}
	if raw, present := req["timestamp_micros"]; present {
		v.timestamp(-1, "timestamp_micros", raw)
	}
	if raw, present := req["consent"]; present {
		v.consent(raw)
	}
	if raw, present := req["user_data"]; present {
		v.userData(raw)
	}
	if raw, present := req["user_location"]; present {
		v.location(raw)
	}
	if raw, present := req["ip_override"]; present {
		s, _ := raw.(string)
		if _, err := netip.ParseAddr(s); err != nil {
			v.add(-1, "ip_override", ValueInvalid, "ip_override %v is not an IP address.", raw)
		}
	}
	events, ok := req["events"].([]any)
	switch {
	case !ok || len(events) == 0:
		v.add(-1, "events", ValueRequired, "Measurement requires at least one event.")
		return
	case len(events) > MaxEvents:
		v.add(-1, "events", ExceededMaxEntities, "A request can have a maximum of %d events; it has %d.", MaxEvents, len(events))
		return
	}
	for i, raw := range events {
		v.event(i, raw)
	}
}

// timestamp checks a timestamp_micros value.
func (v *validator) timestamp(event int, path string, raw any) {
	n, ok := raw.(json.Number)
	us, err := strconv.ParseInt(string(n), 10, 64)
	if !ok || err != nil || us <= 0 {
		v.add(event, path, ValueInvalid, "timestamp_micros must be a positive integer (Unix microseconds).")
		return
	}
	if len(string(n)) < 16 {
		v.add(event, path, ValueInvalid, "timestamp_micros %s is not in microseconds.", n)
		return
	}
	t := time.UnixMicro(us)
	if v.now.Sub(t) > MaxAge {
		v.add(event, path, ValueOutOfBounds, "timestamp_micros is more than 72 hours in the past.")
	}
	if t.After(v.now.Add(time.Minute)) {
		v.add(event, path, ValueOutOfBounds, "timestamp_micros is in the future.")
	}
}

func (v *validator) consent(raw any) {
	c, ok := raw.(map[string]any)
	if !ok {
		v.add(-1, "consent", ValueInvalid, "consent must be an object.")
		return
	}
	for k, val := range c {
		switch k {
		case "ad_user_data", "ad_personalization":
			if val != "GRANTED" && val != "DENIED" {
				v.add(-1, "consent."+k, ValueInvalid, "consent.%s must be GRANTED or DENIED.", k)
			}
		default:
			v.add(-1, "consent."+k, ValueInvalid, "Cannot find field: %s.", k)
		}
	}
}

func (v *validator) userData(raw any) {
	u, ok := raw.(map[string]any)
	if !ok {
		v.add(-1, "user_data", ValueInvalid, "user_data must be an object.")
		return
	}
	hashes := func(path string, raw any) {
		list, ok := raw.([]any)
		if !ok {
			v.add(-1, path, ValueInvalid, "%s must be an array of strings.", path)
			return
		}
		if len(list) > maxUserValues {
			v.add(-1, path, ExceededMaxEntities, "%s has more than %d values.", path, maxUserValues)
		}
		for _, h := range list {
			if s, _ := h.(string); !destinationstest.IsSHA256(s) {
				v.add(-1, path, ValueInvalid, "%s must hold hex-encoded SHA-256 digests.", path)
				return
			}
		}
	}
	for k, val := range u {
		switch k {
		case "sha256_email_address", "sha256_phone_number":
			hashes("user_data."+k, val)
		case "address":
			list, ok := val.([]any)
			if !ok || len(list) > maxUserValues {
				v.add(-1, "user_data.address", ValueInvalid, "user_data.address must be an array of at most %d addresses.", maxUserValues)
				continue
			}
			for i, a := range list {
				m, ok := a.(map[string]any)
				if !ok {
					v.add(-1, "user_data.address", ValueInvalid, "an address must be an object.")
					continue
				}
				for ak, av := range m {
					path := fmt.Sprintf("user_data.address[%d].%s", i, ak)
					switch ak {
					case "sha256_first_name", "sha256_last_name", "sha256_street":
						if s, _ := av.(string); !destinationstest.IsSHA256(s) {
							v.add(-1, path, ValueInvalid, "%s must be a hex-encoded SHA-256 digest.", path)
						}
					case "city", "region", "postal_code", "country":
						if _, ok := av.(string); !ok {
							v.add(-1, path, ValueInvalid, "%s must be a string.", path)
						}
					default:
						v.add(-1, path, ValueInvalid, "Cannot find field: %s.", ak)
					}
				}
			}
		default:
			v.add(-1, "user_data."+k, ValueInvalid, "Cannot find field: %s.", k)
		}
	}
}

func (v *validator) location(raw any) {
	l, ok := raw.(map[string]any)
	if !ok {
		v.add(-1, "user_location", ValueInvalid, "user_location must be an object.")
		return
	}
	for k, val := range l {
		s, _ := val.(string)
		switch {
		case k == "country_id" && !countryPattern.MatchString(s), k == "region_id" && !regionPattern.MatchString(s):
			v.add(-1, "user_location."+k, ValueInvalid, "user_location.%s %q is not an ISO 3166 code.", k, s)
		case k != "country_id" && k != "region_id" && k != "city" && k != "continent_id" && k != "subcontinent_id":
			v.add(-1, "user_location."+k, ValueInvalid, "Cannot find field: %s.", k)
		}
	}
}

// nameProblem gives the code and description of an invalid event or
// parameter name; "" when valid.
func nameProblem(kind, name string, reserved []string) (string, string) {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return NameReserved, fmt.Sprintf("%s name [%s] starts with the reserved prefix [%s].", kind, name, p)
		}
	}
	switch {
	case name == "" || !namePattern.MatchString(name):
		return NameInvalid, fmt.Sprintf("%s name [%s] is invalid. Names must start with an alphabetic character and contain only alphanumeric characters and underscores.", kind, name)
	case utf8.RuneCountInString(name) > 40:
		return NameInvalid, fmt.Sprintf("%s name [%s] is longer than 40 characters.", kind, name)
	case slices.Contains(reserved, name):
		return NameReserved, fmt.Sprintf("%s name [%s] is reserved.", kind, name)
	}
	return "", ""
}

func (v *validator) event(i int, raw any) {
	ev, ok := raw.(map[string]any)
	if !ok {
		v.add(i, "events", ValueInvalid, "Event at index: [%d] must be an object.", i)
		return
	}
	for k := range ev {
		if k != "name" && k != "params" && k != "timestamp_micros" {
			v.add(i, "events", ValueInvalid, "Event at index: [%d]: Cannot find field: %s.", i, k)
		}
	}
	name, _ := ev["name"].(string)
	if code, why := nameProblem("Event", name, reservedEvents); code != "" {
		v.add(i, "events", code, "Event at index: [%d] has invalid name. %s", i, why)
	}
	if raw, present := ev["timestamp_micros"]; present {
		v.timestamp(i, "events", raw)
	}
	raw, present := ev["params"]
	if !present {
		return
	}
	params, ok := raw.(map[string]any)
	if !ok {
		v.add(i, "events.params", ValueInvalid, "Event at index: [%d] has params that are not an object.", i)
		return
	}
	if len(params) > MaxParams {
		v.add(i, "events.params", ExceededMaxEntities, "Event at index: [%d] has %d params; the limit is %d.", i, len(params), MaxParams)
	}
	for k, val := range params {
		if code, why := nameProblem("Param", k, []string{"firebase_conversion"}); code != "" {
			v.add(i, "events.params", code, "Event at index: [%d] has an invalid param. %s", i, why)
			continue
		}
		v.paramValue(i, k, val)
	}
	if v.enforce {
		if _, hasValue := params["value"]; hasValue {
			if _, hasCurrency := params["currency"]; !hasCurrency {
				v.add(i, "events.params.currency", ValueRequired, "Event at index: [%d]: currency is required when value is set.", i)
			}
		}
		if _, ok := params["transaction_id"]; name == "purchase" && !ok {
			v.add(i, "events.params.transaction_id", ValueRequired, "Event at index: [%d]: a purchase needs a transaction_id.", i)
		}
	}
}

// valueLimit is the longest string value of parameter name.
func valueLimit(name string) int {
	switch name {
	case "page_location":
		return 1000
	case "page_referrer":
		return 420
	case "page_title":
		return 300
	}
	return 100
}

func (v *validator) paramValue(i int, k string, val any) {
	switch val := val.(type) {
	case string:
		if n := utf8.RuneCountInString(val); n > valueLimit(k) {
			v.add(i, "events.params."+k, ValueOutOfBounds, "Event at index: [%d] has param [%s] of %d characters; the limit is %d.", i, k, n, valueLimit(k))
		}
	case json.Number, bool:
	case []any:
		if k != "items" {
			v.add(i, "events.params."+k, ValueInvalid, "Event at index: [%d] has param [%s] with an array value.", i, k)
			return
		}
		v.items(i, val)
	default:
		v.add(i, "events.params."+k, ValueInvalid, "Event at index: [%d] has param [%s] of an unsupported type.", i, k)
	}
}

func (v *validator) items(i int, list []any) {
	if len(list) > MaxItems {
		v.add(i, "events.params.items", ExceededMaxEntities, "Event at index: [%d] has %d items; the limit is %d.", i, len(list), MaxItems)
		return
	}
	for j, raw := range list {
		it, ok := raw.(map[string]any)
		if !ok {
			v.add(i, "events.params.items", ValueInvalid, "Event at index: [%d]: item [%d] must be an object.", i, j)
			continue
		}
		id, _ := it["item_id"].(string)
		name, _ := it["item_name"].(string)
		if id == "" && name == "" {
			v.add(i, "events.params.items", ValueRequired, "Event at index: [%d]: item [%d] needs item_id or item_name.", i, j)
		}
		for k, val := range it {
			switch val := val.(type) {
			case string:
				if utf8.RuneCountInString(val) > 100 {
					v.add(i, "events.params.items", ValueOutOfBounds, "Event at index: [%d]: item [%d] has [%s] longer than 100 characters.", i, j, k)
				}
			case json.Number:
			default:
				v.add(i, "events.params.items", ValueInvalid, "Event at index: [%d]: item [%d] has [%s] of an unsupported type.", i, j, k)
			}
		}
	}
}
