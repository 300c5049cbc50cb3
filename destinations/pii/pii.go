// Package pii normalizes and SHA-256 hashes the customer-information
// parameters of Meta's Conversions API (user_data).
//
// Meta's documentation and Meta's two Node libraries (the Business SDK and
// the parameter builder) disagree in places. Each field follows one of
// them, chosen for match quality and recorded in README.md; every
// normalization function names its source, and TestMetaVectors checks the
// output on every vector Meta's libraries produced
// (destinations/meta/testdata/vectors/normalize.jsonl).
//
// Values that are already SHA-256 digests (64 hex characters, any case) are
// lowercased and passed through, never hashed twice; digests carrying the
// parameter builder's appendix pass through untouched. MD5-looking values
// (32 hex characters) and the digest of the empty string are refused. No
// function here ever returns the digest of the empty string.
package pii

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// Field names of the hashed user_data parameters.
const (
	Email       = "em"
	Phone       = "ph"
	FirstName   = "fn"
	LastName    = "ln"
	Gender      = "ge"
	DateOfBirth = "db"
	City        = "ct"
	State       = "st"
	Zip         = "zp"
	Country     = "country"
	ExternalID  = "external_id"
)

// Errors returned by Hash and Normalize, wrapped with the detail; read them
// with errors.Is.
var (
	// ErrUnknownField means the field is not a hashed user_data parameter.
	ErrUnknownField = errors.New("not a hashed user_data parameter")
	// ErrEmpty means the value is empty, or nothing is left of it once
	// normalized.
	ErrEmpty = errors.New("empty after normalization")
	// ErrMD5 means the value looks like an MD5 digest; Meta wants SHA-256.
	ErrMD5 = errors.New("looks like an MD5 digest (32 hex characters); send the raw value or its SHA-256")
	// ErrInvalid means the value cannot be normalized into the form Meta
	// documents for the field.
	ErrInvalid = errors.New("invalid value")
)

// Normalize returns the normalized form of a raw value of a hashed field,
// the string whose SHA-256 Meta expects. It uses the current time for the
// date-of-birth upper bound; NormalizeAt takes the time explicitly.
func Normalize(field, value string) (string, error) {
	return NormalizeAt(field, value, time.Now())
}

// NormalizeAt is Normalize with an explicit current time (the latest
// acceptable date of birth).
func NormalizeAt(field, value string, now time.Time) (string, error) {
	var (
		out string
		err error
	)
	switch field {
	case Email:
		out, err = NormalizeEmail(value)
	case Phone:
		out, err = NormalizePhone(value)
	case FirstName, LastName:
		out, err = NormalizeName(value)
	case Gender:
		out, err = NormalizeGender(value)
	case DateOfBirth:
		out, err = NormalizeDateOfBirth(value, now)
	case City:
		out, err = NormalizeCity(value)
	case State:
		out, err = NormalizeState(value)
	case Zip:
		out, err = NormalizeZip(value)
	case Country:
		out, err = NormalizeCountry(value)
	case ExternalID:
		out, err = NormalizeExternalID(value)
	default:
		return "", fmt.Errorf("%q: %w", field, ErrUnknownField)
	}
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", ErrEmpty
	}
	return out, nil
}

// Hash returns the lowercase hex SHA-256 of the normalized value. A value
// that is already a SHA-256 digest is returned lowercased; an MD5-looking
// value is refused with ErrMD5 (except for external_id, see below). It uses
// the current time; HashAt takes it explicitly.
func Hash(field, value string) (string, error) {
	return HashAt(field, value, time.Now())
}

// HashAt is Hash with an explicit current time.
//
// Three kinds of value are never normalized: a SHA-256 digest (64 hex
// characters, any case) is returned lowercased; a digest followed by the
// parameter builder's ".<appendix>" (its 2-character legacy token or an
// 8-character appendix) is returned as given, its digest lowercased, since
// Meta accepts that form and the appendix tells Meta which library hashed
// it; and the SHA-256 of the empty string is refused with ErrEmpty. An
// MD5-looking value (32 hex characters, with or without an appendix) is
// refused with ErrMD5, except for external_id, where a 32-hex advertiser id
// (a UUID without dashes) is an ordinary id and is hashed.
func HashAt(field, value string, now time.Time) (string, error) {
	return hashAt(field, value, now, nil)
}

// hashAt is HashAt; a digest it computes is written into digests when
// that has room for it (see hexDigests), else into a string of its own.
func hashAt(field, value string, now time.Time, digests *hexDigests) (string, error) {
	if !IsHashedField(field) {
		return "", fmt.Errorf("%q: %w", field, ErrUnknownField)
	}
	v := jsTrim(value)
	digest, appendix := v, ""
	if i := strings.LastIndexByte(v, '.'); i >= 0 && isAppendix(v[i+1:]) {
		digest, appendix = v[:i], v[i:]
	}
	switch {
	case isHex(digest, sha256.Size*2):
		digest = strings.ToLower(digest)
		if digest == emptySHA256 {
			// A sender hashed an empty field: there is nothing to match.
			return "", fmt.Errorf("%w: the value is the SHA-256 of an empty string", ErrEmpty)
		}
		return digest + appendix, nil
	case isHex(digest, 32) && (field != ExternalID || appendix != ""):
		return "", ErrMD5
	}
	n, err := NormalizeAt(field, v, now)
	if err != nil {
		return "", err
	}
	return digests.sha256Hex(n), nil
}

// IsHashedField reports whether field is one of the user_data parameters
// that are normalized and hashed.
func IsHashedField(field string) bool {
	switch field {
	case Email, Phone, FirstName, LastName, Gender, DateOfBirth, City, State, Zip, Country, ExternalID:
		return true
	}
	return false
}

// IsSHA256 reports whether v is a 64-character hex string (any case).
func IsSHA256(v string) bool { return isHex(v, sha256.Size*2) }

// emptySHA256 is the digest of the empty string, which is never a value.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// hexDigests is room for the hex SHA-256 digests of one user_data, so
// that they take one allocation instead of one each. Bytes once handed out
// as a digest are never written again (only appended after, within the
// capacity), so the strings made over them stay as they were.
type hexDigests struct{ buf []byte }

// newHexDigests makes room for n digests.
func newHexDigests(n int) hexDigests {
	return hexDigests{buf: make([]byte, 0, n*2*sha256.Size)}
}

// sha256Hex returns the lowercase hex SHA-256 of s, written into d's room
// when d (which may be nil) has some left.
func (d *hexDigests) sha256Hex(s string) string {
	if d == nil || cap(d.buf)-len(d.buf) < 2*sha256.Size {
		return sha256Hex(s)
	}
	sum := sha256.Sum256([]byte(s))
	start := len(d.buf)
	d.buf = hex.AppendEncode(d.buf, sum[:])
	return unsafe.String(&d.buf[start], 2*sha256.Size)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], sum[:])
	return string(buf[:])
}

// legacyAppendixes are the parameter builder's 2-character language
// tokens, its first appendix format.
var legacyAppendixes = []string{"AQ", "Ag", "Aw", "BA", "BQ", "Bg"}

// isAppendix reports whether s is an appendix the parameter builder puts
// after a digest: one of its legacy tokens, or 8 base64url characters (its
// own test for digests it passes through).
func isAppendix(s string) bool {
	if slices.Contains(legacyAppendixes, s) {
		return true
	}
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
