package destinations

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Secret is a credential in a destination's settings. It prints, formats
// and logs as "[redacted]"; an adapter reads the value only with
// string(s), where it goes on the wire.
type Secret string

// String hides the secret from fmt verbs %s and %v.
func (s Secret) String() string { return s.redacted() }

// GoString hides the secret from the %#v verb.
func (s Secret) GoString() string { return s.redacted() }

// LogValue hides the secret from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }

func (s Secret) redacted() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("1.5s", "800ms").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &DurationError{Err: err}
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// DurationError is a setting that is not a Go duration string.
type DurationError struct{ Err error }

func (e *DurationError) Error() string {
	return e.Err.Error() + " (want a Go duration such as 1.5s)"
}

func (e *DurationError) Unwrap() error { return e.Err }

// DecodeSettings decodes a destination's JSON settings into v strictly:
// unknown fields and trailing data are errors, prefixed with the type name
// ("tiktok settings: ...").
func DecodeSettings(typ string, raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s settings: %w", typ, err)
	}
	if dec.More() {
		return errors.New(typ + " settings: trailing data after the JSON object")
	}
	return nil
}
