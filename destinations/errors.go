package destinations

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies a failed delivery.
type Kind int

// The kinds of failed delivery.
const (
	// Retryable failures may succeed later; the queue retries with back-off,
	// at the earliest after Error.RetryAfter.
	Retryable Kind = iota + 1
	// Permanent failures will never succeed as sent; the event goes to the
	// dead letters with the platform's message.
	Permanent
	// Paused failures concern the destination, not the event (a revoked token,
	// a missing permission): the queue pauses the destination, raises an alert
	// and keeps the event until an operator fixes the configuration.
	Paused
)

func (k Kind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Paused:
		return "paused"
	}
	return "unknown"
}

// Error is the typed delivery error adapters return. Its message must never
// contain a secret (access token, API key).
type Error struct {
	Kind Kind
	// RetryAfter is the platform's requested delay for Retryable errors
	// (Retry-After, rate-limit hints); zero leaves it to the queue's back-off.
	RetryAfter time.Duration
	// Status is the HTTP status, when there was a response.
	Status int
	// Code is the platform's own error code, when it sent one.
	Code string
	// Message is the platform's explanation, free of secrets.
	Message string
	// WholeBatch marks a Permanent error that the platform gave for a whole
	// multi-event request without saying which event was at fault (Meta
	// rejects a batch of 1,000 for one bad event). The queue splits such a
	// batch to isolate the bad events and delivers the rest.
	WholeBatch bool
}

func (e *Error) Error() string {
	s := e.Kind.String()
	if e.Status != 0 {
		s += " (HTTP " + strconv.Itoa(e.Status) + ")"
	}
	if e.Code != "" {
		s += " code " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// RetryableError returns a Retryable *Error.
func RetryableError(after time.Duration, format string, args ...any) *Error {
	return &Error{Kind: Retryable, RetryAfter: after, Message: fmt.Sprintf(format, args...)}
}

// PermanentError returns a Permanent *Error.
func PermanentError(format string, args ...any) *Error {
	return &Error{Kind: Permanent, Message: fmt.Sprintf(format, args...)}
}

// Classify reads an outcome: nil is delivered; a *Error anywhere in the chain
// gives its kind; anything else (network errors, timeouts) is retryable.
func Classify(err error) (Kind, *Error) {
	if err == nil {
		return 0, nil
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Kind, de
	}
	return Retryable, &Error{Kind: Retryable, Message: err.Error()}
}

// ClassifyHTTP is the shared HTTP status policy. Adapters call it for
// responses their platform-specific rules do not cover:
// 2xx nil; 408, 425, 429 and 5xx retryable (honouring Retry-After);
// 401 and 403 paused; any other 4xx permanent.
func ClassifyHTTP(status int, header http.Header, now time.Time, message string) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return &Error{Kind: Retryable, Status: status, RetryAfter: RetryAfter(header, now), Message: message}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return &Error{Kind: Paused, Status: status, Message: message}
	default:
		return &Error{Kind: Permanent, Status: status, Message: message}
	}
}

// maxRetryAfter bounds a platform-requested delay.
const maxRetryAfter = 24 * time.Hour

// RetryAfter parses a Retry-After header (seconds or an HTTP date) relative
// to now; zero when absent or unreadable, capped at 24 hours.
func RetryAfter(header http.Header, now time.Time) time.Duration {
	v := header.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// All returns n copies of err, for a batch that failed as a whole.
func All(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
