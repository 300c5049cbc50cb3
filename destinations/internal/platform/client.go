// Package platform is what every destination adapter shares to reach its
// platform: a Client that posts JSON within a timeout, follows no redirect
// and reads a bounded answer; a Redactor that keeps secrets out of every
// message; the dry run; the split of a batch into requests; and the checks
// of the settings every adapter has. What differs between platforms (the
// wire form, the answers, the rules) stays in the adapter's own package.
package platform

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Defaults of a Config.
const (
	// DefaultMaxBody bounds how much of an answer is read.
	DefaultMaxBody = 1 << 20
	// DefaultMaxDrain bounds how much more of it is drained, so that the
	// connection can be reused.
	DefaultMaxDrain = 4 << 20
	// DefaultSnippetBytes bounds how much of an answer a message quotes.
	DefaultSnippetBytes = 200
)

// Config describes an adapter's Client.
type Config struct {
	// Type is the destination type ("meta"): it starts every message and
	// tags every log line.
	Type string
	// Name is the platform's name in messages ("Meta", "Google Ads").
	Name string
	// Timeout bounds each request.
	Timeout time.Duration
	// Secrets are kept out of every message and log line the Client
	// makes; nil keeps nothing out.
	Secrets *Redactor
	// LogAttrs tag every log line besides the type ("pixel_id", "123").
	LogAttrs []any
	// MaxBody, MaxDrain and SnippetBytes replace the defaults when
	// positive.
	MaxBody, MaxDrain int64
	SnippetBytes      int
	// Unit is what one request is called in log lines: "request" unless
	// set ("message").
	Unit string
}

// Client is an adapter's link to its platform. Its methods are safe for
// concurrent use.
type Client struct {
	// Log is the adapter's logger: deps.Logger (none: discard), every line
	// tagged with the destination.
	Log *slog.Logger
	// Now is the adapter's clock: deps.Now (none: time.Now).
	Now func() time.Time

	cfg    Config
	http   *http.Client
	record func(body []byte)
}

// NewClient builds the Client of an adapter from its deps: a copy of
// deps.HTTP (none: a default client) that never follows a redirect, since
// a redirected request would carry the credentials elsewhere.
func NewClient(deps destinations.Deps, cfg Config) *Client {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxDrain <= 0 {
		cfg.MaxDrain = DefaultMaxDrain
	}
	if cfg.SnippetBytes <= 0 {
		cfg.SnippetBytes = DefaultSnippetBytes
	}
	if cfg.Unit == "" {
		cfg.Unit = "request"
	}
	c := &Client{Log: deps.Logger, Now: deps.Now, cfg: cfg, http: HTTPClient(deps.HTTP), record: deps.Record}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Log = c.Log.With(append([]any{"destination", cfg.Type}, cfg.LogAttrs...)...)
	return c
}

// HTTPClient returns a copy of base (nil: a default client) that never
// follows a redirect.
func HTTPClient(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// HTTP is the client the Client posts with, for a library that makes its
// own requests (an OAuth token source).
func (c *Client) HTTP() *http.Client { return c.http }

// Response is a platform's answer.
type Response struct {
	Status int
	Header http.Header
	// Body is the start of the answer's body, at most the Config's MaxBody
	// bytes.
	Body []byte
	// ReadErr is what cut Body short, if anything.
	ReadErr error
}

// Post sends body as JSON to url with header, within ctx and the Config's
// timeout, and reads the answer: a bounded start of its body, then a
// bounded rest drained so that the connection can be reused, then closed.
//
// The error is a Permanent *destinations.Error when no request can be
// built, else net/http's own: the request got no answer. net/http's errors
// quote the URL; Failed clears them of the secrets.
func (c *Client) Post(ctx context.Context, url string, header http.Header, body []byte) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Response{}, destinations.PermanentError("%s: build request: %s", c.cfg.Type, c.Redact(err.Error()))
	}
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.cfg.MaxDrain))
		_ = resp.Body.Close()
	}()
	b, readErr := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody))
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b, ReadErr: readErr}, nil
}

// Failed is the outcome of a request Post could not complete with err:
// Post's own *destinations.Error as it is; else, logged, a retryable error
// (networks fail, connections reset, timeouts pass) that shows err cleared
// of the secrets and of extra, the secrets of this one request.
func (c *Client) Failed(err error, events int, extra ...string) *destinations.Error {
	if de := new(destinations.Error); errors.As(err, &de) {
		return de
	}
	msg := c.Redact(err.Error(), extra...)
	c.Log.Warn(c.cfg.Type+" "+c.cfg.Unit+" failed", "events", events, "error", msg)
	return &destinations.Error{Kind: destinations.Retryable, Message: c.cfg.Type + ": " + msg}
}

// DryRun logs a request that is not sent and hands its body to deps.Record:
// the count and the event ids at INFO; the body, which holds visitors' IP
// addresses, user agents, cookies and hashed identifiers, only at DEBUG.
// attrs tag both lines.
func (c *Client) DryRun(body []byte, ids []string, attrs ...any) {
	c.Log.Info(c.cfg.Type+" dry run: "+c.cfg.Unit+" not sent",
		append([]any{"events", len(ids), "event_ids", ids}, attrs...)...)
	c.Log.Debug(c.cfg.Type+" dry run: the "+c.cfg.Unit+" body", append(attrs, "body", string(body))...)
	if c.record != nil {
		c.record(body)
	}
}

// ByStatus classifies an answer by its status alone, as
// destinations.ClassifyHTTP does, and never returns nil: a 2xx answer the
// adapter could not read as a success is retryable.
func (c *Client) ByStatus(status int, header http.Header, msg string) *destinations.Error {
	if de := new(destinations.Error); errors.As(destinations.ClassifyHTTP(status, header, c.Now(), msg), &de) {
		return de
	}
	return &destinations.Error{Kind: destinations.Retryable, Status: status, Message: msg}
}

// StatusMessage describes an answer that holds no error of the platform's
// own: "meta: HTTP 502" and the start of its body ("meta: HTTP 502:
// <html>...").
func (c *Client) StatusMessage(status int, body []byte, extra ...string) string {
	msg := c.cfg.Type + ": HTTP " + strconv.Itoa(status)
	if s := c.Snippet(string(body), extra...); s != "" {
		msg += ": " + s
	}
	return msg
}

// Redact clears s of the secrets and of extra; see Redactor.Redact.
func (c *Client) Redact(s string, extra ...string) string {
	return c.secrets(extra).Redact(s)
}

// Snippet is s redacted (with extra) and cut to the Config's SnippetBytes;
// see Redactor.Snippet.
func (c *Client) Snippet(s string, extra ...string) string {
	return c.secrets(extra).Snippet(s, c.cfg.SnippetBytes)
}

func (c *Client) secrets(extra []string) *Redactor {
	if len(extra) == 0 {
		return c.cfg.Secrets
	}
	return c.cfg.Secrets.With(extra...)
}

// ReadFailure is the outcome of a 2xx answer whose body broke off: retryable,
// since what the platform took cannot be known. It is nil for any other
// answer.
func (c *Client) ReadFailure(resp Response) *destinations.Error {
	if resp.ReadErr == nil || resp.Status/100 != 2 {
		return nil
	}
	return &destinations.Error{Kind: destinations.Retryable, Status: resp.Status,
		Message: c.cfg.Type + ": read response: " + c.Redact(resp.ReadErr.Error())}
}

// CheckTime fails, permanently, an event whose time the platform would
// refuse for sure: none, or older than maxAge at now.
func (c *Client) CheckTime(e *destinations.Event, now time.Time, maxAge time.Duration) error {
	if e.EventTime <= 0 {
		return destinations.PermanentError("%s: event %q has no event_time", c.cfg.Type, e.EventID)
	}
	if age := now.Sub(time.Unix(e.EventTime, 0)); age > maxAge {
		owner := c.cfg.Name + "'s"
		if strings.HasSuffix(c.cfg.Name, "s") {
			owner = c.cfg.Name + "'"
		}
		return destinations.PermanentError("%s: event %q is %s old, past %s %s limit",
			c.cfg.Type, e.EventID, age.Truncate(time.Second), owner, maxAge)
	}
	return nil
}
