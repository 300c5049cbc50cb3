package platform

import (
	"slices"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Digests returns the SHA-256 digests of variant (a digest variant ingest
// made for the platform), else of fallback (the sender gave digests, so no
// variant was made), in the form platforms other than Meta take: 64
// lowercase hex characters, without the ".xyz" appendix Meta's parameter
// builder adds. Each digest comes once; a value that holds none is left
// out; max > 0 bounds how many.
func Digests(variant, fallback []string, max int) []string {
	src := variant
	if len(src) == 0 {
		src = fallback
	}
	var out []string
	for _, v := range src {
		if i := strings.IndexByte(v, '.'); i >= 0 {
			v = v[:i]
		}
		v = strings.ToLower(v)
		if IsDigest(v) && !slices.Contains(out, v) {
			out = append(out, v)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// IsDigest reports whether v is a SHA-256 digest in 64 lowercase hex
// characters.
func IsDigest(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ClickID is the event's ad click id of URL parameter param ("ttclid")
// while it can still be credited with the event: captured at most window
// before it, or at an unknown time. It is "" otherwise.
func ClickID(e *destinations.Event, param string, window time.Duration) string {
	c := e.Context.ClickIDs[param]
	if c.Value == "" || (c.At > 0 && time.Unix(e.EventTime, 0).Sub(time.UnixMilli(c.At)) > window) {
		return ""
	}
	return c.Value
}
