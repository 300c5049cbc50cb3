// Package webhook delivers canonical events to the store's own HTTP
// endpoint: each batch is one JSON message posted to the destination's url
// and signed per the Standard Webhooks specification (webhook-id,
// webhook-timestamp and webhook-signature headers; HMAC-SHA256 keyed with a
// whsec_ secret), so receivers can verify it with any Standard Webhooks
// library.
//
// The url is the tenant's, so every connection goes through the
// operator's Egress policy: private, loopback, link-local and metadata
// addresses are refused at connect time unless the operator allows their
// network, and redirects are never followed.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
	"github.com/tagway/tagway/destinations/internal/serverevent"
)

// Type is the destination type name.
const Type = "webhook"

// PayloadType is the message body's type field.
const PayloadType = "tagway.events"

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// UserAgent is the User-Agent of every request.
const UserAgent = "tagway-webhook/1"

const (
	// maxResponseBytes caps how much of a response body is read for an
	// error message; maxDrainBytes how much more is drained to reuse the
	// connection.
	maxResponseBytes = 64 << 10
	maxDrainBytes    = 1 << 20
	// maxResponseHeaderBytes caps a response's headers.
	maxResponseHeaderBytes = 64 << 10
)

// Adapter is the webhook destination for one endpoint.
type Adapter struct {
	settings Settings
	endpoint string
	// shown is the endpoint without path, query or credentials, for logs
	// and errors: a receiver's url may hold a token in its path.
	shown   string
	keys    [][]byte
	headers http.Header
	api     *platform.Client
}

// Spec is the webhook destination type under the strictest egress policy
// (public https:// endpoints only). main uses Egress.Spec to give the
// operator's policy.
func Spec() destinations.Spec { return Egress{}.Spec() }

// Spec is the webhook destination type under e: its registry entry.
//
// A webhook is the store's own system, not an advertising platform: it
// gets events whatever the visitor's marketing consent (the consent is in
// each event's context), takes anonymous events and events of any age and
// any name, and needs no digest variant.
func (e Egress) Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        e.New,
		Secrets:    []string{"secret", "previous_secret", "auth_header"},
		AdPlatform: false,
		Anonymous:  true,
	}
}

// New builds an Adapter under the strictest egress policy; see Egress.New.
func New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	return Egress{}.New(settings, deps)
}

// New builds an Adapter from its JSON settings under e; it has the shape
// of destinations.Factory. A nil deps.HTTP gets a default client, a nil
// deps.Logger discards, a nil deps.Now is time.Now. The client never
// follows redirects, keeps no cookies, uses no proxy, and connects only to
// addresses e allows. deps.HTTP's transport must be an *http.Transport (or
// nil).
func (e Egress) New(settings json.RawMessage, deps destinations.Deps) (destinations.Destination, error) {
	s, err := e.ParseSettings(settings)
	if err != nil {
		return nil, err
	}
	u, err := e.CheckURL(s.URL)
	if err != nil {
		return nil, err
	}
	client := platform.HTTPClient(deps.HTTP)
	transport, err := guardedTransport(client.Transport, newDialer(e, u.Scheme == "https"))
	if err != nil {
		return nil, err
	}
	client.Transport = transport
	client.Jar = nil
	deps.HTTP = client

	a := &Adapter{
		settings: s,
		endpoint: s.URL,
		shown:    u.Scheme + "://" + u.Host,
		headers:  http.Header{},
	}
	a.api = platform.NewClient(deps, platform.Config{Type: Type, Timeout: time.Duration(s.Timeout),
		Secrets: platform.NewRedactor(s.credentials(u)...), LogAttrs: []any{"endpoint", a.shown},
		MaxBody: maxResponseBytes, MaxDrain: maxDrainBytes, Unit: "message"})
	for _, sec := range []destinations.Secret{s.Secret, s.PreviousSecret} {
		if sec != "" {
			key, _ := parseSecret(string(sec)) // checked by Validate
			a.keys = append(a.keys, key)
		}
	}
	for name, value := range s.Headers {
		a.headers.Set(name, value)
	}
	if s.AuthHeader != "" {
		name, value, _ := splitAuthHeader(string(s.AuthHeader))
		a.headers.Set(name, value)
	}
	return a, nil
}

// MaxBatch is the max_batch setting: the most events in one message.
func (a *Adapter) MaxBatch() int { return a.settings.MaxBatch }

// AcceptsAnonymous is true: the store's own system takes events without
// identifiers.
func (a *Adapter) AcceptsAnonymous() bool { return true }

// AdPlatform is false: a webhook goes to the store's own system.
func (a *Adapter) AdPlatform() bool { return false }

// Message is the JSON body of every webhook request, in Standard Webhooks'
// recommended shape.
type Message struct {
	// Type is PayloadType.
	Type string `json:"type"`
	// Timestamp is the event_time of the newest event, RFC 3339 in UTC.
	Timestamp string `json:"timestamp"`
	// Data holds the events.
	Data MessageData `json:"data"`
}

// MessageData is a message's data: the site and its events, in the order
// the gateway received them.
type MessageData struct {
	Site   string  `json:"site"`
	Events []Event `json:"events"`
}

// Event is one event in a message: the canonical event in the form of a
// Meta server event (identifiers in user_data already normalized and
// SHA-256 hashed) and a subset of tagway's context about it.
type Event struct {
	serverevent.Event
	Context EventContext `json:"context"`
}

// EventContext is what tagway knew about an event beyond the canonical
// fields. The route and site ids of tagway's own context are left out (the
// site is the message's).
type EventContext struct {
	// Source is the ingest path: "browser" or "server".
	Source string `json:"source,omitempty"`
	// ReceivedAt is when the gateway accepted the event, Unix milliseconds.
	ReceivedAt int64 `json:"received_at,omitempty"`
	// Consent is the visitor's consent, in Google Consent Mode v2 words.
	Consent destinations.Consent `json:"consent"`
	// Country and Region locate the visitor (ISO 3166), when known.
	Country string `json:"country,omitempty"`
	Region  string `json:"region,omitempty"`
	// VisitorID is tagway's visitor id (the _tw_vid cookie).
	VisitorID string `json:"visitor_id,omitempty"`
	// ClickIDs are the ad click ids of the visitor's landings, by URL
	// parameter name (gclid, ttclid...).
	ClickIDs map[string]ClickID `json:"click_ids,omitempty"`
	// Cookies are the ad platforms' first-party cookies, by name (_ga,
	// _ttp...).
	Cookies map[string]string `json:"cookies,omitempty"`
	// Anonymous marks an event stripped of every identifier for want of
	// marketing consent.
	Anonymous bool `json:"anonymous,omitempty"`
	// TestEventCode marks a test event.
	TestEventCode string `json:"test_event_code,omitempty"`
}

// ClickID is one ad click id and when the gateway first saw it (Unix
// milliseconds).
type ClickID struct {
	Value string `json:"value"`
	At    int64  `json:"at"`
}

// toEvent maps a canonical event to its form in a message.
func toEvent(e *destinations.Event) Event {
	c := e.Context
	var clicks map[string]ClickID
	if len(c.ClickIDs) > 0 {
		clicks = make(map[string]ClickID, len(c.ClickIDs))
		for k, v := range c.ClickIDs {
			clicks[k] = ClickID{Value: v.Value, At: v.At}
		}
	}
	return Event{
		Event: serverevent.From(e),
		Context: EventContext{
			Source:        c.Source,
			ReceivedAt:    c.ReceivedAt,
			Consent:       c.Consent,
			Country:       c.Country,
			Region:        c.Region,
			VisitorID:     c.VisitorID,
			ClickIDs:      clicks,
			Cookies:       c.Cookies,
			Anonymous:     c.Anonymous,
			TestEventCode: c.TestEventCode,
		},
	}
}

// MessageID is the webhook-id of a message carrying events of site: "msg_"
// and 24 base64url characters of a SHA-256 over the site and each event's
// name, id and time, in order. The same events give the same id, so a
// retried message keeps it; the receiver drops a repeat by it.
func MessageID(site string, events []destinations.Event) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("tagway webhook message v1")
	field(site)
	for i := range events {
		field(events[i].EventName)
		field(events[i].EventID)
		binary.BigEndian.PutUint64(n[:], uint64(events[i].EventTime))
		h.Write(n[:])
	}
	return "msg_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// Sign returns the webhook-signature value for a message: for each key,
// "v1," and the standard base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>"),
// space-separated.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	var sig strings.Builder
	ts := strconv.FormatInt(timestamp, 10)
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			sig.WriteByte(' ')
		}
		sig.WriteString("v1,")
		sig.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return sig.String()
}

// Deliver posts batch as messages of at most MaxBatch events, one site
// per message, and returns one outcome per event: each event shares its
// message's.
func (a *Adapter) Deliver(ctx context.Context, batch []destinations.Event) []error {
	out := make([]error, len(batch))
	groups := platform.NewGroups[string, destinations.Event](a.settings.MaxBatch, len(batch))
	for i := range batch {
		groups.Add(batch[i].Context.SiteID, i, batch[i])
	}
	for _, g := range groups.All() {
		g.Set(out, a.send(ctx, g.Key, g.Events))
	}
	return out
}

// encode builds a message's body.
func encode(site string, events []destinations.Event) ([]byte, error) {
	m := Message{Type: PayloadType, Data: MessageData{Site: site, Events: make([]Event, len(events))}}
	var newest int64
	for i := range events {
		m.Data.Events[i] = toEvent(&events[i])
		newest = max(newest, events[i].EventTime)
	}
	m.Timestamp = time.Unix(newest, 0).UTC().Format(time.RFC3339)
	return json.Marshal(m)
}

// send posts one message (or, in dry-run, logs and records it) and returns
// the outcome of all its events.
func (a *Adapter) send(ctx context.Context, site string, events []destinations.Event) error {
	body, err := encode(site, events)
	if err != nil {
		return destinations.PermanentError("webhook: encode message: %v", err)
	}
	id := MessageID(site, events)
	if a.settings.DryRun {
		a.api.DryRun(body, platform.IDs(events, func(e *destinations.Event) string { return e.EventID }), "webhook_id", id)
		return nil
	}

	ts := a.api.Now().Unix()
	header := a.headers.Clone()
	header.Set("User-Agent", UserAgent)
	header.Set(HeaderID, id)
	header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	header.Set(HeaderSignature, Sign(a.keys, id, ts, body))
	resp, err := a.api.Post(ctx, a.endpoint, header, body)
	if built := new(destinations.Error); errors.As(err, &built) {
		return built // no request could be built
	}
	if err != nil {
		out := a.transportError(err)
		a.api.Log.Warn("webhook request failed", "webhook_id", id, "events", len(events), "error", out.Error())
		return out
	}
	if resp.Status/100 == 2 {
		a.api.Log.Debug("webhook message accepted", "webhook_id", id, "events", len(events), "status", resp.Status)
		return nil
	}
	out := a.classify(resp.Status, resp.Header, resp.Body, len(events))
	a.api.Log.Warn("webhook message refused", "webhook_id", id, "events", len(events), "error", out.Error())
	return out
}

// classify turns a response that is not 2xx into the outcome of the
// events of its message:
//   - 3xx: paused (a redirect is not followed; the url must be updated);
//   - 410 Gone: paused (the receiver asks to stop: Standard Webhooks says
//     to disable the endpoint; the events wait for the tenant to fix or
//     remove the destination);
//   - 401, 403: paused (the receiver refuses the signature or credential);
//   - 400, 413, 422 for several events: permanent, for the whole message,
//     so the queue splits it to find the event at fault;
//   - the rest as destinations.ClassifyHTTP: 408, 425, 429 and 5xx
//     retryable honouring Retry-After, other 4xx permanent.
func (a *Adapter) classify(status int, header http.Header, body []byte, sent int) *destinations.Error {
	msg := "webhook: " + a.shown + " answered HTTP " + strconv.Itoa(status)
	if snippet := a.snippet(body); snippet != "" {
		msg += ": " + snippet
	}
	switch {
	case status >= 300 && status < 400:
		return &destinations.Error{Kind: destinations.Paused, Status: status,
			Message: msg + " (a redirect, not followed: set url to the endpoint's final address)"}
	case status == http.StatusGone:
		return &destinations.Error{Kind: destinations.Paused, Status: status,
			Message: msg + " (410 Gone: the receiver no longer wants these webhooks; fix or remove the destination)"}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return &destinations.Error{Kind: destinations.Paused, Status: status,
			Message: msg + " (check that the receiver has this destination's secret and auth_header)"}
	case sent > 1 && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge ||
		status == http.StatusUnprocessableEntity):
		return &destinations.Error{Kind: destinations.Permanent, Status: status, Message: msg, WholeBatch: true}
	}
	return a.api.ByStatus(status, header, msg)
}

// transportError classifies a request that got no response: a refused
// address, an untrusted certificate or a name that does not exist are the
// destination's configuration (paused); anything else (refused
// connections, resets, timeouts) may pass (retryable).
func (a *Adapter) transportError(err error) *destinations.Error {
	// url.Error's text holds the whole url, which may hold a token: only
	// its cause is shown.
	cause := err
	if ue := new(url.Error); errors.As(err, &ue) {
		cause = ue.Err
	}
	msg := "webhook: " + a.shown + ": " + a.api.Redact(cause.Error())
	var blocked *BlockedError
	var certErr *tls.CertificateVerificationError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &blocked):
		return &destinations.Error{Kind: destinations.Paused, Code: "egress_refused", Message: msg}
	case errors.As(err, &certErr):
		return &destinations.Error{Kind: destinations.Paused, Code: "tls_certificate", Message: msg}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &destinations.Error{Kind: destinations.Paused, Code: "no_such_host", Message: msg}
	}
	return &destinations.Error{Kind: destinations.Retryable, Message: msg}
}

// snippet is the start of an error response, redacted, on one line.
func (a *Adapter) snippet(body []byte) string {
	return strings.Join(strings.Fields(a.api.Snippet(string(body))), " ")
}

// credentials lists what of s, whose url is u, must never be shown: the
// signing secrets (whole, and their keys without the whsec_ prefix), the
// auth header's value and its credential alone ("Bearer <token>"), and
// what of the url may be one (urlSecrets).
func (s Settings) credentials(u *url.URL) []string {
	var out []string
	for _, sec := range []destinations.Secret{s.Secret, s.PreviousSecret} {
		if sec != "" {
			out = append(out, string(sec), strings.TrimPrefix(string(sec), SecretPrefix))
		}
	}
	if s.AuthHeader != "" {
		_, value, _ := splitAuthHeader(string(s.AuthHeader))
		out = append(out, value, value[strings.LastIndexByte(value, ' ')+1:])
	}
	return append(out, urlSecrets(u)...)
}

// minURLSecret is the length from which a path segment or query value of
// the url counts as a credential (hooks.example/catch/<token>).
const minURLSecret = 16

// urlSecrets lists what of u may be a credential, longest first: the whole
// url, its path and query, and every path segment or query value of
// minURLSecret bytes or more.
func urlSecrets(u *url.URL) []string {
	var parts []string
	add := func(s string) {
		if len(s) >= minURLSecret && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	add(u.String())
	add(u.RequestURI())
	add(u.EscapedPath())
	add(u.RawQuery)
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		add(seg)
		if v, err := url.PathUnescape(seg); err == nil {
			add(v)
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
			add(url.QueryEscape(v))
		}
	}
	slices.SortStableFunc(parts, func(a, b string) int { return len(b) - len(a) })
	return parts
}

// Interface guards.
var (
	_ destinations.Destination       = (*Adapter)(nil)
	_ destinations.AnonymousAcceptor = (*Adapter)(nil)
	_ destinations.Factory           = New
	_ destinations.Factory           = Egress{}.New
)
