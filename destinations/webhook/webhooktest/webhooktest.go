// Package webhooktest is a strict fake receiver of tagway's webhooks, for
// tests: it verifies each request's Standard Webhooks signature as the
// specification tells receivers to (webhook-id, webhook-timestamp within
// five minutes, one matching v1 HMAC-SHA256 of "<id>.<timestamp>.<body>"
// compared in constant time, the key decoded from its whsec_ form), drops a
// repeated webhook-id as a duplicate, checks the body against the documented
// message schema (unknown fields refused), and records what it accepted.
//
// It answers as a careful receiver would: 401 for a bad signature, a stale
// timestamp or a missing required header, 400 for a body outside the
// schema, 405, 413 and 415 for the wrong method, size or media type, and
// 409 when a webhook-id comes back with another body.
package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits and rules the fake enforces.
const (
	// Tolerance is how far webhook-timestamp may be from the receiver's
	// clock (Standard Webhooks' recommendation).
	Tolerance = 5 * time.Minute
	// MaxEvents is the most events one message may carry.
	MaxEvents = 1000
	// MaxBodyBytes is the largest body accepted.
	MaxBodyBytes = 8 << 20
	// PayloadType is the type every message must have.
	PayloadType = "tagway.events"
)

// VerifyError is a request whose signature does not verify; Check names
// the rule it broke.
type VerifyError struct {
	// Check is one of "headers", "id", "timestamp", "signature".
	Check  string
	Detail string
}

func (e *VerifyError) Error() string { return "webhook " + e.Check + ": " + e.Detail }

// DecodeSecret reads a signing secret in Standard Webhooks' form, "whsec_"
// and the standard base64 of the key.
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("webhooktest: the secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhooktest: the secret is not whsec_ and base64")
	}
	return key, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Verify checks a request's Standard Webhooks signature headers against
// body with key, at now, per the specification: the three headers present,
// a webhook-id without full stops, an integer webhook-timestamp within
// Tolerance of now, and among the space-separated signatures at least one
// "v1,<base64>" equal, compared in constant time, to the base64 of
// HMAC-SHA256(key, "<id>.<timestamp>.<body>"). Signatures of other
// versions (v1a...) are skipped.
func Verify(key []byte, header http.Header, body []byte, now time.Time) error {
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return &VerifyError{Check: "headers", Detail: "webhook-id, webhook-timestamp and webhook-signature are required"}
	}
	if !idPattern.MatchString(id) {
		return &VerifyError{Check: "id", Detail: fmt.Sprintf("%q is not an id of letters, digits, _ and - (no full stop)", id)}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strings.TrimLeft(ts, "0123456789") != "" {
		return &VerifyError{Check: "timestamp", Detail: fmt.Sprintf("%q is not integer Unix seconds", ts)}
	}
	if d := now.Sub(time.Unix(sec, 0)); d > Tolerance || d < -Tolerance {
		return &VerifyError{Check: "timestamp", Detail: fmt.Sprintf("%s off the receiver's clock, more than %s", d.Abs(), Tolerance)}
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return &VerifyError{Check: "signature", Detail: "no v1 signature matches"}
}

// Message is one message the fake accepted.
type Message struct {
	// ID, Timestamp and Signature are the Standard Webhooks headers.
	ID        string
	Timestamp int64
	Signature string
	// Header is the whole request header.
	Header http.Header
	// Body is the raw body as signed.
	Body []byte
	// Payload is the decoded body.
	Payload Payload
}

// Payload is the documented message body. Decoding refuses any field
// that is not here.
type Payload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Site   string  `json:"site"`
		Events []Event `json:"events"`
	} `json:"data"`
}

// Event is one event of a message, in the documented schema.
type Event struct {
	EventName                    string         `json:"event_name"`
	EventTime                    int64          `json:"event_time"`
	EventID                      string         `json:"event_id"`
	EventSourceURL               string         `json:"event_source_url"`
	ReferrerURL                  string         `json:"referrer_url"`
	ActionSource                 string         `json:"action_source"`
	OptOut                       bool           `json:"opt_out"`
	UserData                     UserData       `json:"user_data"`
	CustomData                   map[string]any `json:"custom_data"`
	DataProcessingOptions        []string       `json:"data_processing_options"`
	DataProcessingOptionsCountry *int           `json:"data_processing_options_country"`
	DataProcessingOptionsState   *int           `json:"data_processing_options_state"`
	Context                      Context        `json:"context"`
}

// UserData is an event's customer information: digests (lowercase hex
// SHA-256) in the list fields, the rest as is.
type UserData struct {
	Em              []string `json:"em"`
	Ph              []string `json:"ph"`
	Fn              []string `json:"fn"`
	Ln              []string `json:"ln"`
	Ge              []string `json:"ge"`
	Db              []string `json:"db"`
	Ct              []string `json:"ct"`
	St              []string `json:"st"`
	Zp              []string `json:"zp"`
	Country         []string `json:"country"`
	ExternalID      []string `json:"external_id"`
	ClientIPAddress string   `json:"client_ip_address"`
	ClientUserAgent string   `json:"client_user_agent"`
	Fbc             string   `json:"fbc"`
	Fbp             string   `json:"fbp"`
	SubscriptionID  string   `json:"subscription_id"`
	FbLoginID       string   `json:"fb_login_id"`
	LeadID          string   `json:"lead_id"`
}

// Context is what tagway knew about an event.
type Context struct {
	Source     string `json:"source"`
	ReceivedAt int64  `json:"received_at"`
	Consent    struct {
		AdStorage         string `json:"ad_storage"`
		AdUserData        string `json:"ad_user_data"`
		AdPersonalization string `json:"ad_personalization"`
		AnalyticsStorage  string `json:"analytics_storage"`
	} `json:"consent"`
	Country   string `json:"country"`
	Region    string `json:"region"`
	VisitorID string `json:"visitor_id"`
	ClickIDs  map[string]struct {
		Value string `json:"value"`
		At    int64  `json:"at"`
	} `json:"click_ids"`
	Cookies       map[string]string `json:"cookies"`
	Anonymous     bool              `json:"anonymous"`
	TestEventCode string            `json:"test_event_code"`
}

// Rejection is a request the fake refused, and why.
type Rejection struct {
	Status int
	Reason string
}

// Server is a running fake receiver. Its methods are safe for concurrent
// use.
type Server struct {
	// fake keeps the messages accepted (under ""), the requests, the
	// refusals and the queued failures.
	fake *destinationstest.Fake[Message, Rejection]

	mu         sync.Mutex
	key        []byte
	required   http.Header
	bodies     map[string][]byte // webhook-id → body
	duplicates int
}

// NewServer starts a fake receiver verifying with secret (whsec_...),
// closed when the test ends. Its clock is time.Now until SetNow.
func NewServer(t testing.TB, secret string) *Server {
	t.Helper()
	key, err := DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{key: key, required: http.Header{}, bodies: map[string][]byte{}}
	s.fake = destinationstest.NewFake[Message, Rejection](t, destinationstest.FakeConfig{
		Name: "webhooktest", Account: "receiver", Serve: s.serveHTTP})
	return s
}

// URL is the receiver's endpoint (any path is served).
func (s *Server) URL() string { return s.fake.URL() + "/hooks/tagway" }

// Handler serves the fake receiver, for a test that runs its own server
// in front of it.
func (s *Server) Handler() http.Handler { return s.fake.Handler() }

// SetNow sets the receiver's clock, against which timestamps are checked.
func (s *Server) SetNow(now func() time.Time) { s.fake.SetNow(now) }

// SetSecret changes the receiver's secret (whsec_...), as in a rotation.
func (s *Server) SetSecret(secret string) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
	return nil
}

// RequireHeader makes every request need header name with value, or be
// refused with 401, as a receiver behind an API gateway is.
func (s *Server) RequireHeader(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.required.Set(name, value)
}

// FailNext answers the next n requests with status, header and body,
// before any check.
func (s *Server) FailNext(n, status int, header http.Header, body string) {
	s.fake.FailNextWith(n, status, header, body)
}

// Messages returns the messages accepted so far, duplicates left out.
func (s *Server) Messages() []Message { return s.fake.Events("") }

// Events returns the events of the messages accepted so far, in order.
func (s *Server) Events() []Event {
	var out []Event
	for _, m := range s.Messages() {
		out = append(out, m.Payload.Data.Events...)
	}
	return out
}

// WaitEvents waits until at least n events were accepted, or timeout
// passes, and returns them.
func (s *Server) WaitEvents(n int, timeout time.Duration) []Event {
	deadline := time.Now().Add(timeout)
	for {
		evs := s.Events()
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Duplicates counts requests that repeated an accepted webhook-id with the
// same body: acknowledged, not recorded again.
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// Requests counts every request received.
func (s *Server) Requests() int { return s.fake.Requests() }

// Rejections returns the requests the fake refused (forced failures aside).
func (s *Server) Rejections() []Rejection { return s.fake.Rejections() }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, now, ok := s.fake.Begin(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	key, required := s.key, s.required.Clone()
	s.mu.Unlock()

	msg, status, reason := check(w, r, key, now, required)
	if status == http.StatusOK {
		s.mu.Lock()
		prev, seen := s.bodies[msg.ID]
		switch {
		case !seen:
			s.bodies[msg.ID] = msg.Body
			s.fake.Accept("", *msg)
		case bytes.Equal(prev, msg.Body):
			s.duplicates++
		default:
			status, reason = http.StatusConflict, "webhook-id "+msg.ID+" was accepted before with another body"
		}
		s.mu.Unlock()
	}
	if status != http.StatusOK {
		s.fake.Reject(Rejection{Status: status, Reason: reason})
		destinationstest.WriteJSON(w, status, map[string]string{"error": reason})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// check applies every rule to one request: the status to answer (200 to
// accept), and why not.
func check(w http.ResponseWriter, r *http.Request, key []byte, now time.Time, required http.Header) (*Message, int, string) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, "only POST"
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, "Content-Type must be application/json"
	}
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "tagway-webhook/") {
		return nil, http.StatusBadRequest, "User-Agent must be tagway-webhook/..."
	}
	for name := range required {
		if r.Header.Get(name) != required.Get(name) {
			return nil, http.StatusUnauthorized, "missing or wrong " + name
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return nil, http.StatusRequestEntityTooLarge, "body larger than " + strconv.Itoa(MaxBodyBytes) + " bytes"
	}
	// The signature is checked on the raw bytes, before any parsing.
	if err := Verify(key, r.Header, body, now); err != nil {
		return nil, http.StatusUnauthorized, err.Error()
	}
	msg := &Message{
		ID:        r.Header.Get("webhook-id"),
		Signature: r.Header.Get("webhook-signature"),
		Header:    r.Header.Clone(),
		Body:      body,
	}
	msg.Timestamp, _ = strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg.Payload); err != nil {
		return nil, http.StatusBadRequest, "body: " + err.Error()
	}
	if dec.More() {
		return nil, http.StatusBadRequest, "body: data after the JSON object"
	}
	if err := validate(&msg.Payload); err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	return msg, http.StatusOK, ""
}

// validate applies the schema's rules beyond field names and types.
func validate(p *Payload) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Type != PayloadType {
		bad("type %q, want %q", p.Type, PayloadType)
	}
	ts, err := time.Parse(time.RFC3339, p.Timestamp)
	if err != nil || !strings.HasSuffix(p.Timestamp, "Z") {
		bad("timestamp %q is not RFC 3339 in UTC", p.Timestamp)
	}
	if p.Data.Site == "" {
		bad("data.site is empty")
	}
	evs := p.Data.Events
	if len(evs) == 0 || len(evs) > MaxEvents {
		bad("data.events holds %d events, want 1 to %d", len(evs), MaxEvents)
	}
	var newest int64
	ids := map[string]bool{}
	for i, e := range evs {
		at := func(field string) string { return fmt.Sprintf("data.events[%d].%s", i, field) }
		if e.EventName == "" {
			bad("%s is empty", at("event_name"))
		}
		if e.EventID == "" {
			bad("%s is empty", at("event_id"))
		} else if ids[e.EventName+"\x00"+e.EventID] {
			bad("%s %q appears twice", at("event_id"), e.EventID)
		}
		ids[e.EventName+"\x00"+e.EventID] = true
		if e.EventTime <= 0 {
			bad("%s is not positive", at("event_time"))
		}
		newest = max(newest, e.EventTime)
		u := e.UserData
		for name, list := range map[string][]string{"em": u.Em, "ph": u.Ph, "fn": u.Fn, "ln": u.Ln, "ge": u.Ge,
			"db": u.Db, "ct": u.Ct, "st": u.St, "zp": u.Zp, "country": u.Country, "external_id": u.ExternalID} {
			for _, v := range list {
				if !destinationstest.IsSHA256(v) {
					bad("%s holds %q, not a lowercase hex SHA-256 digest", at("user_data."+name), v)
				}
			}
		}
		c := e.Context
		for name, v := range map[string]string{"ad_storage": c.Consent.AdStorage, "ad_user_data": c.Consent.AdUserData,
			"ad_personalization": c.Consent.AdPersonalization, "analytics_storage": c.Consent.AnalyticsStorage} {
			if v != "" && v != "granted" && v != "denied" {
				bad("%s is %q, not granted or denied", at("context.consent."+name), v)
			}
		}
		for name, id := range c.ClickIDs {
			if id.Value == "" || id.At <= 0 {
				bad("%s needs a value and a capture time", at("context.click_ids."+name))
			}
		}
		if c.Anonymous && (len(c.ClickIDs) > 0 || len(c.Cookies) > 0 || c.VisitorID != "") {
			bad("%s is anonymous but carries identifiers", at("context"))
		}
	}
	if err == nil && len(evs) > 0 && ts.Unix() != newest {
		bad("timestamp %s is not the newest event_time (%d)", p.Timestamp, newest)
	}
	return errors.Join(errs...)
}
