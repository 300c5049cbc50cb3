package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tagway/tagway/destinations"
)

// ParseSettings is the way every adapter's settings go: decoded strictly
// from raw (unknown fields are an error), the timeout setting named when a
// duration does not parse (timeout is every adapter's one duration), then
// defaults applied, then validated, every problem joined.
func ParseSettings[S any, P interface {
	*S
	Validate() error
}](typ string, raw json.RawMessage, defaults func(*S)) (S, error) {
	var s S
	if err := DecodeSettings(typ, raw, &s); err != nil {
		return s, err
	}
	defaults(&s)
	if err := P(&s).Validate(); err != nil {
		var zero S
		return zero, err
	}
	return s, nil
}

// DecodeSettings decodes a typ destination's settings raw into v strictly,
// as destinations.DecodeSettings does, naming the timeout setting when a
// duration does not parse.
func DecodeSettings(typ string, raw json.RawMessage, v any) error {
	err := destinations.DecodeSettings(typ, raw, v)
	if de := new(destinations.DurationError); errors.As(err, &de) {
		return fmt.Errorf("%s settings: timeout: %w", typ, de)
	}
	return err
}

// CheckURL reports a platform API base URL, the value u of setting, that is
// not an http(s) URL with a host and without user info, query or fragment.
func CheckURL(typ, setting, u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" ||
		p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("%s settings: %s %q must be an http(s) URL without user info, query or fragment", typ, setting, u)
	}
	return nil
}

// CheckTimeout reports a timeout setting that is not positive.
func CheckTimeout(typ string, d destinations.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s settings: timeout %s must be positive", typ, time.Duration(d))
	}
	return nil
}
