package ga4

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/tagway/tagway/destinations"
)

// maxClientIDLen bounds a client id read from a cookie.
const maxClientIDLen = 64

// ClientIDFromCookie reads GA4's client id from the value of a _ga cookie,
// "GA1.1.1234567890.1700000000" → "1234567890.1700000000": the last two of
// four dot-separated fields, both digits, after a version field starting
// with "GA". False for anything else.
func ClientIDFromCookie(v string) (string, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "GA") || !digits(parts[1]) ||
		!digits(parts[2]) || !digits(parts[3]) {
		return "", false
	}
	id := parts[2] + "." + parts[3]
	if len(id) > maxClientIDLen {
		return "", false
	}
	return id, true
}

// DerivedClientID is the client id tagway gives a visitor without a _ga
// cookie: "<a>.<b>" like gtag's, a from a SHA-256 of the key (tagway's
// visitor id, else another stable id of the visitor), b the visitor id's
// creation time in seconds when it holds one (it is "<Unix ms>.<digits>"),
// else more of the digest. The same key always gives the same id; the key
// itself is not sent.
func DerivedClientID(key string) string {
	sum := sha256.Sum256([]byte("tagway-ga4-client:" + key))
	a := binary.BigEndian.Uint32(sum[0:4])
	b := uint64(binary.BigEndian.Uint32(sum[4:8]))
	if ms, _, ok := strings.Cut(key, "."); ok && digits(ms) && len(ms) == 13 {
		if n, err := strconv.ParseUint(ms, 10, 64); err == nil {
			b = n / 1000
		}
	}
	return strconv.FormatUint(uint64(a), 10) + "." + strconv.FormatUint(b, 10)
}

// clientID picks the client id of e: the _ga cookie's, else one derived
// from the visitor id, else from the first external id digest, else from
// the event id (a client seen once).
func clientID(e *destinations.Event) string {
	if id, ok := ClientIDFromCookie(e.Context.Cookies["_ga"]); ok {
		return id
	}
	switch {
	case e.Context.VisitorID != "":
		return DerivedClientID(e.Context.VisitorID)
	case len(e.UserData.ExternalID) > 0 && e.UserData.ExternalID[0] != "":
		return DerivedClientID("external:" + e.UserData.ExternalID[0])
	}
	return DerivedClientID("event:" + e.EventID)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
