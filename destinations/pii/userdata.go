package pii

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// StringList is a user_data value: JSON accepts a string or an array of
// strings (null and [] mean no value).
type StringList []string

// UnmarshalJSON reads a string, an array of strings or null.
func (l *StringList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*l = nil
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	case len(data) > 0 && data[0] == '[':
		var ss []string
		if err := json.Unmarshal(data, &ss); err != nil {
			return errors.New("must be a string or an array of strings")
		}
		*l = ss
		return nil
	}
	return errors.New("must be a string or an array of strings")
}

// RawUserData is user_data as senders write it: each key holds a string or
// a list of strings, raw or already hashed.
type RawUserData map[string]StringList

// UnmarshalJSON reads a JSON object whose values are strings, arrays of
// strings or null; a value of another type is a *KeyError naming its key.
func (u *RawUserData) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return errors.New("user_data must be an object")
	}
	if m == nil {
		*u = nil
		return nil
	}
	out := make(RawUserData, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var l StringList
		if err := l.UnmarshalJSON(m[k]); err != nil {
			return &KeyError{Key: k, Err: err}
		}
		out[k] = l
	}
	*u = out
	return nil
}

// KeyError is the error HashUserData returns for one key; its message names
// the key ("user_data.em: ...").
type KeyError struct {
	// Key is the user_data key at fault.
	Key string
	// Err is the reason (wraps ErrInvalid, ErrMD5, ErrEmpty...).
	Err error
}

func (e *KeyError) Error() string { return "user_data." + e.Key + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *KeyError) Unwrap() error { return e.Err }

// HashUserData normalizes and hashes every hashed key of raw (em, ph, fn,
// ln, ge, db, ct, st, zp, country, external_id), drops duplicate values, and
// copies the keys Meta never hashes (client_ip_address, client_user_agent,
// fbc, fbp, subscription_id, fb_login_id, lead_id) unchanged; those take a
// single value. A value that is empty or only spaces means "not known" and
// is skipped; any other value that cannot be normalized is an error. Unknown
// keys are errors. All problems are joined, each a *KeyError naming its key,
// in key order. now bounds the date of birth.
func HashUserData(raw RawUserData, now time.Time) (destinations.UserData, error) {
	var (
		out  destinations.UserData
		errs []error
	)
	var keyBuf [16]string
	keys := keyBuf[:0]
	n := 0
	for k, values := range raw {
		keys = append(keys, k)
		n += len(values)
	}
	slices.Sort(keys)
	// The digests of all keys share one array; each key's list is capped
	// at its own end, so a later append to one copies it.
	digests := make([]string, 0, n)
	room := newHexDigests(n)
	for _, k := range keys {
		values := raw[k]
		if dst := hashedSlot(&out, k); dst != nil {
			start := len(digests)
			for _, v := range values {
				if strings.TrimSpace(v) == "" {
					continue
				}
				h, err := hashAt(k, v, now, &room)
				if err != nil {
					errs = append(errs, &KeyError{Key: k, Err: err})
					break
				}
				if !slices.Contains(digests[start:], h) {
					digests = append(digests, h)
				}
			}
			if len(digests) > start {
				*dst = digests[start:len(digests):len(digests)]
			}
			continue
		}
		dst := plainSlot(&out, k)
		if dst == nil {
			errs = append(errs, &KeyError{Key: k, Err: errors.New("unknown user_data parameter")})
			continue
		}
		switch len(values) {
		case 0:
		case 1:
			*dst = values[0]
		default:
			errs = append(errs, &KeyError{Key: k, Err: fmt.Errorf("takes a single value, got %d", len(values))})
		}
	}
	if len(errs) > 0 {
		return destinations.UserData{}, errors.Join(errs...)
	}
	return out, nil
}

// hashedSlot returns the field of u that holds the hashed key k, or nil.
func hashedSlot(u *destinations.UserData, k string) *[]string {
	switch k {
	case Email:
		return &u.Em
	case Phone:
		return &u.Ph
	case FirstName:
		return &u.Fn
	case LastName:
		return &u.Ln
	case Gender:
		return &u.Ge
	case DateOfBirth:
		return &u.Db
	case City:
		return &u.Ct
	case State:
		return &u.St
	case Zip:
		return &u.Zp
	case Country:
		return &u.Country
	case ExternalID:
		return &u.ExternalID
	}
	return nil
}

// plainSlot returns the field of u that holds the never-hashed key k, or nil.
func plainSlot(u *destinations.UserData, k string) *string {
	switch k {
	case "client_ip_address":
		return &u.ClientIPAddress
	case "client_user_agent":
		return &u.ClientUserAgent
	case "fbc":
		return &u.Fbc
	case "fbp":
		return &u.Fbp
	case "subscription_id":
		return &u.SubscriptionID
	case "fb_login_id":
		return &u.FbLoginID
	case "lead_id":
		return &u.LeadID
	}
	return nil
}
