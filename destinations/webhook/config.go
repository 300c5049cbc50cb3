package webhook

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Defaults and bounds of the settings.
const (
	// DefaultTimeout bounds each request unless the timeout setting says
	// otherwise; Standard Webhooks recommends 15 to 30 seconds.
	DefaultTimeout = 15 * time.Second
	// MaxTimeout is the largest timeout setting.
	MaxTimeout = 30 * time.Second
	// DefaultMaxBatch is the most events in one message unless max_batch
	// says otherwise.
	DefaultMaxBatch = 100
	// MaxEvents is the largest max_batch.
	MaxEvents = 1000

	// SecretPrefix starts a signing secret in Standard Webhooks' form.
	SecretPrefix = "whsec_"
	// MinSecretBytes and MaxSecretBytes bound the decoded signing key
	// (Standard Webhooks: 192 to 512 bits).
	MinSecretBytes = 24
	MaxSecretBytes = 64

	maxURLBytes         = 2048
	maxHeaders          = 20
	maxHeaderNameBytes  = 128
	maxHeaderValueBytes = 1024
)

// Settings configure one webhook destination. They are decoded strictly
// by ParseSettings or Egress.ParseSettings.
type Settings struct {
	// URL is the receiver's endpoint: https:// (http:// only to a network
	// the operator allows). The tenant's own; required.
	URL string `json:"url"`
	// Secret is the signing secret, "whsec_" and the base64 of 24 to 64
	// random bytes. Required unless DryRun.
	Secret destinations.Secret `json:"secret,omitempty"`
	// PreviousSecret, while set, signs every message a second time, for a
	// secret rotation without a gap: the receiver accepts either.
	PreviousSecret destinations.Secret `json:"previous_secret,omitempty"`
	// Headers are extra static headers on every request. Their values are
	// shown by the admin API like any setting: a credential belongs in
	// AuthHeader.
	Headers map[string]string `json:"headers,omitempty"`
	// AuthHeader is one more header, "Name: value", kept as a secret
	// (write-only, sealed at rest): the receiver's own credential, such as
	// "Authorization: Bearer ..." or "X-Api-Key: ...".
	AuthHeader destinations.Secret `json:"auth_header,omitempty"`
	// Timeout bounds each request (default 15s, at most 30s).
	Timeout destinations.Duration `json:"timeout,omitempty"`
	// MaxBatch is the most events in one message (default 100, at most
	// 1000); 1 sends one message per event.
	MaxBatch int `json:"max_batch,omitempty"`
	// DryRun logs and records the messages instead of sending them.
	DryRun bool `json:"dry_run,omitempty"`
}

// reservedHeaders are headers a setting may not set: hop-by-hop headers,
// those that describe the body or the connection, and those tagway writes.
var reservedHeaders = map[string]string{
	"Connection":          "a hop-by-hop header",
	"Keep-Alive":          "a hop-by-hop header",
	"Proxy-Connection":    "a hop-by-hop header",
	"Proxy-Authenticate":  "a hop-by-hop header",
	"Proxy-Authorization": "a hop-by-hop header",
	"Te":                  "a hop-by-hop header",
	"Trailer":             "a hop-by-hop header",
	"Transfer-Encoding":   "a hop-by-hop header",
	"Upgrade":             "a hop-by-hop header",
	"Host":                "set from url",
	"Content-Length":      "set by tagway",
	"Content-Type":        "set by tagway",
	"Content-Encoding":    "set by tagway",
	"Expect":              "set by tagway",
	"User-Agent":          "set by tagway",
}

// ParseSettings decodes raw strictly under the strictest egress policy
// (Egress{}); see Egress.ParseSettings.
func ParseSettings(raw json.RawMessage) (Settings, error) { return Egress{}.ParseSettings(raw) }

// ParseSettings decodes raw strictly (unknown fields are an error),
// applies the defaults and validates the result under e, joining every
// problem. A url whose address e refuses is an error here already; one
// whose name resolves to such an address is refused when connecting.
func (e Egress) ParseSettings(raw json.RawMessage) (Settings, error) {
	var s Settings
	if err := destinations.DecodeSettings("webhook", raw, &s); err != nil {
		if de := new(destinations.DurationError); errors.As(err, &de) {
			return Settings{}, fmt.Errorf("webhook settings: timeout: %w", de)
		}
		return Settings{}, err
	}
	s.applyDefaults()
	errs := []error{s.Validate()}
	if s.URL != "" {
		if _, err := e.CheckURL(s.URL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func (s *Settings) applyDefaults() {
	if s.Timeout == 0 {
		s.Timeout = destinations.Duration(DefaultTimeout)
	}
	if s.MaxBatch == 0 {
		s.MaxBatch = DefaultMaxBatch
	}
}

// Validate reports every problem with s but the egress policy's, each
// naming its field. It expects the defaults to be applied already.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("webhook settings: "+format, args...))
	}
	if s.URL == "" {
		bad("url is required")
	}
	switch {
	case s.Secret == "" && !s.DryRun:
		bad("secret is required (generate one with: echo %s$(openssl rand -base64 32))", SecretPrefix)
	case s.Secret != "":
		if _, err := parseSecret(string(s.Secret)); err != nil {
			bad("secret: %v", err)
		}
	}
	if s.PreviousSecret != "" {
		if _, err := parseSecret(string(s.PreviousSecret)); err != nil {
			bad("previous_secret: %v", err)
		}
	}
	if len(s.Headers) > maxHeaders {
		bad("headers: %d headers, at most %d", len(s.Headers), maxHeaders)
	}
	seen := make(map[string]bool, len(s.Headers))
	for name, value := range s.Headers {
		if err := checkHeader(name, value, false); err != nil {
			bad("headers: %v", err)
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if seen[canon] {
			bad("headers: %s is given twice (header names ignore case)", canon)
		}
		seen[canon] = true
	}
	if s.AuthHeader != "" {
		if name, value, err := splitAuthHeader(string(s.AuthHeader)); err != nil {
			bad("auth_header: %v", err)
		} else if err := checkHeader(name, value, true); err != nil {
			bad("auth_header: %v", err)
		} else if seen[textproto.CanonicalMIMEHeaderKey(name)] {
			bad("auth_header: %s is in headers too", textproto.CanonicalMIMEHeaderKey(name))
		}
	}
	if d := time.Duration(s.Timeout); d <= 0 || d > MaxTimeout {
		bad("timeout %s must be positive and at most %s", d, MaxTimeout)
	}
	if s.MaxBatch < 1 || s.MaxBatch > MaxEvents {
		bad("max_batch %d must be 1 to %d", s.MaxBatch, MaxEvents)
	}
	return errors.Join(errs...)
}

// parseSecret reads a signing secret in Standard Webhooks' form, "whsec_"
// and the standard, padded base64 of the key. Its errors never hold the
// secret.
func parseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("must start with %s (Standard Webhooks' form)", SecretPrefix)
	}
	if strings.ContainsAny(rest, " \t\r\n") {
		return nil, errors.New("must not contain white space")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("what follows %s must be standard, padded base64", SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("the key is %d bytes; it must be %d to %d random bytes", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// splitAuthHeader reads "Name: value". Its errors never hold the value.
func splitAuthHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", errors.New(`must be "Name: value"`)
	}
	return strings.TrimSpace(name), strings.TrimSpace(value), nil
}

// checkHeader checks one extra header. Authorization is refused in the
// plain headers: it belongs in the write-only auth_header. Its errors
// name the header, never the value.
func checkHeader(name, value string, secret bool) error {
	canon := textproto.CanonicalMIMEHeaderKey(name)
	switch {
	case name == "" || len(name) > maxHeaderNameBytes || !validHeaderName(name):
		return fmt.Errorf("%q is not a valid header name", truncate(name, maxHeaderNameBytes))
	case reservedHeaders[canon] != "":
		return fmt.Errorf("%s is %s and cannot be set", canon, reservedHeaders[canon])
	case strings.HasPrefix(strings.ToLower(name), "webhook-"):
		return fmt.Errorf("%s: the webhook- headers are the signature's and cannot be set", canon)
	case canon == "Authorization" && !secret:
		return errors.New("the Authorization header belongs in auth_header, which is write-only")
	case value == "":
		return fmt.Errorf("%s has no value", canon)
	case len(value) > maxHeaderValueBytes || !validHeaderValue(value):
		return fmt.Errorf("%s: the value is not a valid header value of at most %d bytes", canon, maxHeaderValueBytes)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// validHeaderName reports whether name is an HTTP token (RFC 9110 5.1).
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return name != ""
}

// validHeaderValue reports whether value is a field value of visible
// characters, spaces and tabs, without leading or trailing white space
// (RFC 9110 5.5); bytes above 0x7f are refused too.
func validHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return strings.TrimSpace(value) == value
}

// CheckURL parses a webhook url and checks it under e, as far as it can
// without resolving names: https:// (http:// only when e allows some
// network), a host, no user info (credentials in a url end up in logs) and
// no fragment; a literal address must be one e allows, and a name must not
// be a loopback name or a disguised IPv4 address ("127.1", "0x7f000001").
// Names are resolved and checked when connecting.
func (e Egress) CheckURL(raw string) (*url.URL, error) {
	bad := func(format string, args ...any) (*url.URL, error) {
		return nil, fmt.Errorf("webhook settings: url: "+format, args...)
	}
	if len(raw) > maxURLBytes {
		return bad("longer than %d bytes", maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("must be an https:// URL")
	case u.Scheme == "http" && len(e.AllowNets) == 0:
		return bad("must be https://: plain http:// is allowed only to networks the operator allows (TAGWAY_WEBHOOK_ALLOW_NETS)")
	case u.Opaque != "" || u.Host == "":
		return bad("has no host")
	case u.User != nil:
		return bad("must not hold user info; put a credential in auth_header")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("port %q is not 1 to 65535", p)
		}
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if b := e.check(a, u.Scheme == "https"); b != nil {
			return bad("%v", b)
		}
		return u, nil
	}
	if strings.Contains(host, "%") {
		return bad("host %q is not a host name or an IP address", host)
	}
	if err := checkHostName(host); err != nil {
		return bad("host %q %v", truncate(host, 64), err)
	}
	if isLoopbackName(host) && e.check(netip.MustParseAddr("127.0.0.1"), false) != nil &&
		e.check(netip.IPv6Loopback(), false) != nil {
		return bad("host %q is a loopback name, which is not allowed (the operator allows networks with TAGWAY_WEBHOOK_ALLOW_NETS)", host)
	}
	return u, nil
}

// checkHostName checks a DNS name: letters, digits, hyphens and
// underscores in labels of 1 to 63 bytes, 253 bytes in all, and a last
// label that is not numeric (which URL parsers read as an IPv4 address).
func checkHostName(host string) error {
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 {
		return errors.New("is not a valid host name")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("is not a valid host name")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errors.New("is not a valid host name")
			}
		}
	}
	if numericLabel(labels[len(labels)-1]) {
		return errors.New("looks like an IPv4 address in a non-standard form; write the address in dotted decimal")
	}
	return nil
}

// numericLabel reports whether l is a number as the URL standard's IPv4
// parser reads one: decimal, or hexadecimal after 0x.
func numericLabel(l string) bool {
	l = strings.ToLower(l)
	digits := "0123456789"
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		l, digits = rest, "0123456789abcdef"
		if l == "" {
			return true
		}
	}
	for i := 0; i < len(l); i++ {
		if !strings.ContainsRune(digits, rune(l[i])) {
			return false
		}
	}
	return true
}

// isLoopbackName reports whether host is localhost or a name under it,
// which resolvers answer with loopback addresses.
func isLoopbackName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}
