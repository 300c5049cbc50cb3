// Package tiktoktest is a strict fake of TikTok's Events API 2.0 endpoint,
// POST /open_api/v1.3/event/track/, for tests.
//
// Like the Business API it answers business errors with HTTP 200 and a
// non-zero code in the JSON envelope {"code","message","request_id","data"},
// and it refuses a whole request for one bad event: a missing token
// (40104), a wrong or "Bearer"-prefixed one (40105), a pixel the token may
// not report to (40001), and every parameter error (40002): more than 1,000
// events, an event older than 28 days, a time in milliseconds, an
// unhashed email, phone or external_id, an unknown field, a malformed
// currency, value or URL.
package tiktoktest

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
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits the fake enforces.
const (
	// MaxEvents is the most events one request may carry.
	MaxEvents = 1000
	// MaxAge is how old an event may be.
	MaxAge = 28 * 24 * time.Hour
	// MaxFuture is how far ahead of the server clock event_time may be.
	MaxFuture = 5 * time.Minute
	// Path is the endpoint's path.
	Path = "/open_api/v1.3/event/track/"

	maxBodyBytes = 32 << 20
)

// TikTok's response codes the fake answers with.
const (
	CodeOK           = 0
	CodeNoPermission = 40001
	CodeInvalidParam = 40002
	CodeRateLimited  = 40100
	CodeTokenEmpty   = 40104
	CodeTokenInvalid = 40105
	CodeSystemError  = 50000
)

// Reply is the Business API's response envelope. Use Body to build a
// FailNext body.
type Reply struct {
	Code      int            `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Data      map[string]any `json:"data"`
}

// Body is the JSON form of r.
func (r Reply) Body() string {
	if r.Data == nil {
		r.Data = map[string]any{}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// Error describes r as code: message.
func (r Reply) Error() string { return strconv.Itoa(r.Code) + ": " + r.Message }

// Received is one event the fake accepted.
type Received struct {
	// Event is the whole decoded event (numbers as json.Number).
	Event map[string]any
	// EventName, EventID and EventTime are typed copies of event,
	// event_id and event_time; EventID is empty when the sender left it
	// out.
	EventName string
	EventID   string
	EventTime int64
	// User, Page and Properties are the event's objects (nil when absent).
	User       map[string]any
	Page       map[string]any
	Properties map[string]any
	// PixelCode and TestEventCode are the request's event_source_id and
	// test_event_code.
	PixelCode     string
	TestEventCode string
}

// Server is a running fake Events API: the shared scaffolding (URL,
// Handler, SetNow, Events by pixel code, Requests, Rejections, FailNext,
// WaitEvents) and TikTok's rules. Its methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, Reply]
	pixels destinationstest.Accounts
}

// NewServer starts a fake Events API, closed when the test ends. It knows
// no pixel until AddPixel; its clock is time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.Fake = destinationstest.NewFake[Received, Reply](t, destinationstest.FakeConfig{
		Name: "tiktoktest", Account: "pixel", Serve: s.serveHTTP})
	return s
}

// AddPixel registers a pixel code and the one token allowed to report to it.
func (s *Server) AddPixel(code, token string) { s.pixels.Add(code, token) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	n, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	requestID := fmt.Sprintf("2026112812000000FAKE%06d", n)
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	pixel, events, rej := s.check(w, r, now)
	reply := Reply{Code: CodeOK, Message: "OK", RequestID: requestID}
	if rej != nil {
		reply = *rej
		reply.RequestID = requestID
		s.Reject(reply)
	} else {
		s.Accept(pixel, events...)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, reply.Body())
}

func reject(code int, format string, args ...any) *Reply {
	return &Reply{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Reply { return reject(CodeInvalidParam, format, args...) }

// check authenticates the request and validates its body.
func (s *Server) check(w http.ResponseWriter, r *http.Request, now time.Time) (string, []Received, *Reply) {
	token := r.Header.Get("Access-Token")
	switch {
	case token == "":
		return "", nil, reject(CodeTokenEmpty, "Access token is null, please pass it in the Access-Token header.")
	case strings.HasPrefix(token, "Bearer "):
		return "", nil, reject(CodeTokenInvalid, "Access token is incorrect or has been revoked.")
	}
	if tokenKnown, _, _ := s.pixels.Check("", token); !tokenKnown {
		return "", nil, reject(CodeTokenInvalid, "Access token is incorrect or has been revoked.")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return "", nil, invalid("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return "", nil, invalid("cannot read the request body: %v", err)
	}
	var req map[string]any
	if err := destinationstest.DecodeJSON(body, &req); err != nil {
		return "", nil, invalid("the JSON body does not parse: %v", err)
	}
	if rej := onlyKeys(req, "", "event_source", "event_source_id", "test_event_code", "partner_name", "data"); rej != nil {
		return "", nil, rej
	}
	if src, _ := req["event_source"].(string); src != "web" {
		return "", nil, invalid("event_source: the fake takes web events only, got %v", req["event_source"])
	}
	pixel, _ := req["event_source_id"].(string)
	if pixel == "" {
		return "", nil, invalid("event_source_id: required")
	}
	if _, _, allowed := s.pixels.Check(pixel, token); !allowed {
		return "", nil, reject(CodeNoPermission, "No permission to operate pixel code %s.", pixel)
	}
	testCode := ""
	if v, present := req["test_event_code"]; present {
		var ok bool
		if testCode, ok = v.(string); !ok {
			return "", nil, invalid("test_event_code: must be a string")
		}
	}
	data, ok := req["data"].([]any)
	switch {
	case !ok:
		return "", nil, invalid("data: required, an array of events")
	case len(data) == 0:
		return "", nil, invalid("data: must hold at least one event")
	case len(data) > MaxEvents:
		return "", nil, invalid("data: at most %d events per request, got %d", MaxEvents, len(data))
	}
	out := make([]Received, 0, len(data))
	for i, raw := range data {
		ev, ok := raw.(map[string]any)
		if !ok {
			return "", nil, invalid("data[%d]: must be an object", i)
		}
		rec, rej := validateEvent(ev, now)
		if rej != nil {
			rej.Message = fmt.Sprintf("data[%d].%s", i, rej.Message)
			return "", nil, rej
		}
		rec.PixelCode, rec.TestEventCode = pixel, testCode
		out = append(out, rec)
	}
	return pixel, out, nil
}

var (
	eventPattern    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,49}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// The user fields: lists of SHA-256 digests, single digests, and plain
// values.
var (
	hashedListKeys = []string{"email", "phone", "external_id"}
	hashedKeys     = []string{"first_name", "last_name", "zip_code"}
	plainUserKeys  = []string{"ttclid", "ttp", "ip", "user_agent", "locale", "city", "state", "country"}
)

func validateEvent(ev map[string]any, now time.Time) (Received, *Reply) {
	rec := Received{Event: ev}
	if rej := onlyKeys(ev, "", "event", "event_time", "event_id", "user", "page", "properties", "limited_data_use"); rej != nil {
		return rec, rej
	}
	name, _ := ev["event"].(string)
	if !eventPattern.MatchString(name) {
		return rec, invalid("event: %v is not an event name", ev["event"])
	}
	rec.EventName = name
	if v, present := ev["event_id"]; present {
		id, ok := v.(string)
		if !ok || id == "" {
			return rec, invalid("event_id: must be a non-empty string")
		}
		rec.EventID = id
	}
	num, ok := ev["event_time"].(json.Number)
	if !ok {
		return rec, invalid("event_time: required, Unix seconds")
	}
	secs, err := strconv.ParseInt(num.String(), 10, 64)
	switch {
	case err != nil || secs <= 0:
		return rec, invalid("event_time: %s must be a positive integer (Unix seconds)", num)
	case secs > 100_000_000_000:
		return rec, invalid("event_time: %d looks like milliseconds; send Unix seconds", secs)
	}
	rec.EventTime = secs
	t := time.Unix(secs, 0)
	if now.Sub(t) > MaxAge {
		return rec, invalid("event_time: %d is more than %d days ago", secs, int(MaxAge.Hours()/24))
	}
	if t.Sub(now) > MaxFuture {
		return rec, invalid("event_time: %d is in the future", secs)
	}
	if v, present := ev["limited_data_use"]; present {
		if _, ok := v.(bool); !ok {
			return rec, invalid("limited_data_use: must be a boolean")
		}
	}
	var rej *Reply
	if rec.User, rej = object(ev, "user"); rej != nil {
		return rec, rej
	}
	if rej = validateUser(rec.User); rej != nil {
		return rec, rej
	}
	if rec.Page, rej = object(ev, "page"); rej != nil {
		return rec, rej
	}
	if rej = validatePage(rec.Page); rej != nil {
		return rec, rej
	}
	if rec.Properties, rej = object(ev, "properties"); rej != nil {
		return rec, rej
	}
	return rec, validateProperties(rec.Properties)
}

func validateUser(u map[string]any) *Reply {
	keys := slices.Concat(hashedListKeys, hashedKeys, plainUserKeys)
	if rej := onlyKeys(u, "user.", keys...); rej != nil {
		return rej
	}
	for _, k := range hashedListKeys {
		vals, ok := destinationstest.StringOrList(u[k])
		if !ok {
			return invalid("user.%s: must be a string or an array of strings", k)
		}
		for _, v := range vals {
			if !destinationstest.IsSHA256(v) {
				return invalid("user.%s: must be SHA-256 hashed (64 lowercase hex characters)", k)
			}
		}
	}
	for _, k := range hashedKeys {
		if v, present := u[k]; present {
			if s, ok := v.(string); !ok || !destinationstest.IsSHA256(s) {
				return invalid("user.%s: must be SHA-256 hashed (64 lowercase hex characters)", k)
			}
		}
	}
	for _, k := range plainUserKeys {
		if v, present := u[k]; present {
			if s, ok := v.(string); !ok || s == "" {
				return invalid("user.%s: must be a non-empty string", k)
			}
		}
	}
	if v, present := u["ip"]; present {
		if _, err := netip.ParseAddr(v.(string)); err != nil {
			return invalid("user.ip: %q is not an IP address", v)
		}
	}
	return nil
}

func validatePage(p map[string]any) *Reply {
	if rej := onlyKeys(p, "page.", "url", "referrer"); rej != nil {
		return rej
	}
	for _, k := range []string{"url", "referrer"} {
		v, present := p[k]
		if !present {
			continue
		}
		s, _ := v.(string)
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("page.%s: %v is not an http(s) URL", k, v)
		}
	}
	return nil
}

func validateProperties(p map[string]any) *Reply {
	if v, present := p["currency"]; present {
		if s, ok := v.(string); !ok || !currencyPattern.MatchString(s) {
			return invalid("properties.currency: %v is not an ISO 4217 code", v)
		}
	}
	for _, k := range []string{"value", "predicted_ltv"} {
		if v, present := p[k]; present {
			n, ok := v.(json.Number)
			if f, err := n.Float64(); !ok || err != nil || f < 0 {
				return invalid("properties.%s: %v must be a non-negative number", k, v)
			}
		}
	}
	if v, present := p["num_items"]; present {
		if !isCount(v) {
			return invalid("properties.num_items: %v must be a non-negative integer", v)
		}
	}
	if v, present := p["content_type"]; present && v != "product" && v != "product_group" {
		return invalid("properties.content_type: %v must be product or product_group", v)
	}
	if v, present := p["content_ids"]; present {
		if ids, ok := destinationstest.StringOrList(v); !ok || len(ids) == 0 {
			return invalid("properties.content_ids: must be an array of strings")
		}
	}
	if v, present := p["contents"]; present {
		items, ok := v.([]any)
		if !ok {
			return invalid("properties.contents: must be an array")
		}
		for i, it := range items {
			c, ok := it.(map[string]any)
			if !ok {
				return invalid("properties.contents[%d]: must be an object", i)
			}
			if rej := onlyKeys(c, fmt.Sprintf("properties.contents[%d].", i),
				"content_id", "content_name", "content_category", "price", "quantity", "brand"); rej != nil {
				return rej
			}
			if id, ok := c["content_id"].(string); !ok || id == "" {
				return invalid("properties.contents[%d].content_id: required, a string", i)
			}
			if v, present := c["price"]; present {
				if n, ok := v.(json.Number); !ok || !isNumber(n) {
					return invalid("properties.contents[%d].price: %v must be a number", i, v)
				}
			}
			if v, present := c["quantity"]; present && !isCount(v) {
				return invalid("properties.contents[%d].quantity: %v must be a non-negative integer", i, v)
			}
		}
	}
	return nil
}

// onlyKeys refuses a key of m outside allowed, naming it after prefix.
func onlyKeys(m map[string]any, prefix string, allowed ...string) *Reply {
	if k, ok := destinationstest.UnknownKey(m, allowed...); ok {
		return invalid("%s%s: unknown field", prefix, k)
	}
	return nil
}

// object reads m[k] as an object; absent gives nil.
func object(m map[string]any, k string) (map[string]any, *Reply) {
	v, present := m[k]
	if !present {
		return nil, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("%s: must be an object", k)
	}
	return o, nil
}

func isNumber(n json.Number) bool {
	_, err := n.Float64()
	return err == nil
}

func isCount(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	return err == nil && i >= 0
}
