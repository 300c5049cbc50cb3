package orders

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
)

// scalar returns the text of a JSON number or string (decoded, trimmed);
// "" for null. ok is false for any other JSON value.
func scalar(data []byte) (string, bool) {
	switch {
	case len(data) == 0:
		return "", false
	case string(data) == "null":
		return "", true
	case data[0] == '"':
		var s string
		if json.Unmarshal(data, &s) != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	case data[0] == '-' || (data[0] >= '0' && data[0] <= '9'):
		return string(data), true
	}
	return "", false
}

// jsonID is a platform id: a JSON integer or a string of digits (1 to 20),
// kept as its decimal string; null and 0 mean none (WooCommerce writes
// variation_id 0). Another value is recorded as bad, for validation to
// name its field.
type jsonID struct {
	v   string
	bad bool
}

// UnmarshalJSON reads an integer, a digit string or null; it never fails.
func (id *jsonID) UnmarshalJSON(data []byte) error {
	*id = jsonID{}
	s, ok := scalar(data)
	switch {
	case !ok || (s != "" && s != "0" && !validID(s)):
		id.bad = true
	case s != "0":
		id.v = s
	}
	return nil
}

// validID reports whether s is a decimal id: 1 to 20 digits, no leading
// zero (a zero id means none).
func validID(s string) bool {
	return s != "" && len(s) <= 20 && allDigits(s) && s[0] != '0'
}

// jsonInt is a count: a JSON integer or a string of one; null means none.
type jsonInt struct {
	v        int
	set, bad bool
}

// UnmarshalJSON reads an integer from 0 to 10^9, a string of one, or null;
// it never fails.
func (n *jsonInt) UnmarshalJSON(data []byte) error {
	*n = jsonInt{}
	s, ok := scalar(data)
	if !ok {
		n.bad = true
		return nil
	}
	if s == "" {
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 1_000_000_000 {
		n.bad = true
		return nil
	}
	n.v, n.set = v, true
	return nil
}

// jsonText is a string field that may also come as a number or null (a
// meta value, an attribute value); other JSON values are recorded as bad.
type jsonText struct {
	v   string
	bad bool
}

// UnmarshalJSON reads a string, a number or null; it never fails.
func (t *jsonText) UnmarshalJSON(data []byte) error {
	*t = jsonText{}
	s, ok := scalar(data)
	t.v, t.bad = s, !ok
	return nil
}

// jsonError turns a decoding error into a PayloadError naming the field.
func jsonError(err error) *PayloadError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "value of another type"
		switch te.Type.Kind() {
		case reflect.Struct, reflect.Map:
			want = "object"
		case reflect.Slice:
			want = "array"
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		}
		return payloadErr(te.Field, "must be a JSON %s", want)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return payloadErr("", "invalid JSON at byte %d", se.Offset)
	}
	return payloadErr("", "invalid JSON")
}
