package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
)

// Field bounds. Each is explicit; a value over a bound is refused with 400
// invalid_field naming the field.
const (
	maxEventNameLen     = 100
	maxEventIDLen       = 128
	maxURLLen           = 2048
	maxUserDataValueLen = 256
	// maxPlainUserDataLen bounds the never-hashed user_data values (fbc,
	// fbp, IP, user agent, ids) a server may send.
	maxPlainUserDataLen = 1024
	maxUserDataValues   = 10
	maxCustomDataBytes  = 16 << 10
	maxVIDLen           = 64
	maxTestEventCodeLen = 64
	// maxEventAge is Meta's limit for event_time; physical_store events may
	// be up to 62 days old.
	maxEventAge         = 7 * 24 * time.Hour
	maxPhysicalEventAge = 62 * 24 * time.Hour
	// maxFutureSkew tolerates senders' clocks running ahead.
	maxFutureSkew = 10 * time.Minute
	// millisecondsThreshold: an event_time above it is Unix milliseconds
	// sent by mistake (1e11 seconds is the year 5138).
	millisecondsThreshold = 100_000_000_000
)

// validEventName reports whether v matches ^[A-Za-z0-9_][A-Za-z0-9_ -]*$.
func validEventName(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		case (c == ' ' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return v != ""
}

// readBody reads at most limit bytes of the request body; a longer body (by
// Content-Length or by counting) is a 413. The buffer is new, and nothing
// writes to it afterwards: fastCollect's strings share its memory.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	tooLarge := func() *apiError {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
			Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	body := r.Body
	if r.ContentLength < 0 {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	var buf []byte
	var err error
	if r.ContentLength >= 0 {
		// The common case: a declared length within the limit, read into
		// a buffer of exactly that size (net/http stops the body there).
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, buf)
	} else {
		buf, err = io.ReadAll(body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: "could not read the request body"}
	}
	return buf, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data. Errors name the field (prefix + the decoder's path) when
// the decoder tells it.
func decodeStrict(data []byte, v any, prefix string) *apiError {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Field: strings.TrimSuffix(prefix, "."),
				Message: "unexpected data after the JSON value"}
		}
		return nil
	}
	return jsonError(err, prefix)
}

// jsonError turns a decoding error into the contract's invalid_json error.
func jsonError(err error, prefix string) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		key *pii.KeyError
	)
	switch {
	case errors.Is(err, io.EOF):
		e.Message = "empty body: a JSON object is required"
		if prefix != "" {
			e.Field = strings.TrimSuffix(prefix, ".")
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.Message = "truncated JSON"
	case errors.As(err, &syn):
		e.Message = fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		e.Field = joinPath(prefix, typ.Field)
		e.Message = fmt.Sprintf("a JSON %s cannot go here: expected %s", typ.Value, jsonKind(typ.Type.String()))
	case errors.As(err, &key):
		e.Field = joinPath(prefix, "user_data."+key.Key)
		e.Message = key.Err.Error()
	default:
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			e.Field = joinPath(prefix, strings.Trim(name, `"`))
			e.Message = "unknown field"
		} else {
			e.Message = strings.TrimPrefix(msg, "json: ")
		}
	}
	if e.Field == "" && prefix != "" {
		e.Field = strings.TrimSuffix(prefix, ".")
	}
	return e
}

func joinPath(prefix, field string) string {
	if field == "" {
		return strings.TrimSuffix(prefix, ".")
	}
	return prefix + field
}

// jsonKind names a Go type for a sender.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]") || strings.HasSuffix(goType, "StringList"):
		return "an array"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "string" || strings.HasSuffix(goType, "ConsentState"):
		return "a string"
	case goType == "bool":
		return "a boolean"
	}
	return "an object"
}

// checkText validates a free-text identifier: length in characters, valid
// UTF-8, no control characters.
func checkText(field, v string, maxLen int) *apiError {
	if !utf8.ValidString(v) {
		return badField(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > maxLen {
		return badField(field, "longer than %d characters", maxLen)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return badField(field, "must not contain control characters")
	}
	return nil
}

func checkEventName(field, v string) *apiError {
	if v == "" {
		return badField(field, "required")
	}
	if len(v) > maxEventNameLen {
		return badField(field, "longer than %d characters", maxEventNameLen)
	}
	if !validEventName(v) {
		return badField(field, "may hold only letters, digits, '_', '-' and spaces")
	}
	return nil
}

// plainHTTPURL reports whether v is an absolute http(s) URL in the plain
// form pages mostly have, which url.Parse accepts with its scheme and a
// host and which holds no control character: "http://" or "https://", a
// host of letters, digits, dots and hyphens with an optional port, then
// nothing or a path, query or fragment of printable ASCII without '%'
// (whose escapes url.Parse checks). Anything else is left to url.Parse;
// FuzzPlainHTTPURL holds the two to agree.
func plainHTTPURL(v string) bool {
	rest, ok := strings.CutPrefix(v, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(v, "http://"); !ok {
			return false
		}
	}
	i := 0
	for i < len(rest) && (rest[i] == '.' || rest[i] == '-' || '0' <= rest[i] && rest[i] <= '9' || 'a' <= rest[i]|0x20 && rest[i]|0x20 <= 'z') {
		i++
	}
	if i == 0 {
		return false
	}
	if i < len(rest) && rest[i] == ':' {
		j := i + 1
		for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
			j++
		}
		if j == i+1 || j > i+6 {
			return false
		}
		i = j
	}
	if i < len(rest) && rest[i] != '/' && rest[i] != '?' && rest[i] != '#' {
		return false
	}
	for ; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c >= 0x7f || c == '%' {
			return false
		}
	}
	return true
}

// checkURL validates an absolute http(s) URL; empty is allowed.
func checkURL(field, v string) *apiError {
	if v == "" {
		return nil
	}
	if len(v) > maxURLLen {
		return badField(field, "longer than %d characters", maxURLLen)
	}
	if plainHTTPURL(v) {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badField(field, "must be an absolute http or https URL")
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return badField(field, "must not contain control characters")
	}
	return nil
}

// checkEventTime validates Unix seconds against now.
func checkEventTime(field string, t int64, now time.Time, maxAge time.Duration) *apiError {
	switch {
	case t <= 0:
		return badField(field, "must be a Unix time in seconds")
	case t > millisecondsThreshold:
		return badField(field, "looks like milliseconds: send Unix seconds")
	case t < now.Add(-maxAge).Unix():
		e := badField(field, "older than %s: Meta refuses such events", humanDays(maxAge))
		e.metaSubcode = subcodeTooOld
		return e
	case t > now.Add(maxFutureSkew).Unix():
		return badField(field, "more than %s in the future", maxFutureSkew)
	}
	return nil
}

func humanDays(d time.Duration) string { return fmt.Sprintf("%d days", int(d/(24*time.Hour))) }

// checkUserDataBounds bounds the raw user_data values before hashing.
func checkUserDataBounds(prefix string, raw pii.RawUserData) *apiError {
	// One pass, naming the first offending key in sorted order; the
	// message is only formatted for a key out of bounds.
	var badKey, problem string
	for k, values := range raw {
		if p := userDataProblem(k, values); p != "" && (badKey == "" || k < badKey) {
			badKey, problem = k, p
		}
	}
	if badKey == "" {
		return nil
	}
	return badField(prefix+"user_data."+badKey, "%s", problem)
}

// userDataProblem says what is out of bounds in the values of user_data
// key k; "" when nothing is.
func userDataProblem(k string, values []string) string {
	if len(values) > maxUserDataValues {
		return fmt.Sprintf("at most %d values", maxUserDataValues)
	}
	limit := maxPlainUserDataLen
	if pii.IsHashedField(k) {
		limit = maxUserDataValueLen
	}
	for _, v := range values {
		if len(v) > limit {
			return fmt.Sprintf("a value is longer than %d bytes", limit)
		}
		if !utf8.ValidString(v) {
			return "must be valid UTF-8"
		}
	}
	return ""
}

// under names a problem's field under prefix ("data[0]."): the field path
// is only built when there is a problem.
func under(prefix string, e *apiError) *apiError {
	if e != nil {
		e.Field = prefix + e.Field
	}
	return e
}

// droppedValue is customer information cleanUserData dropped: the key, the
// fix reason and what was wrong.
type droppedValue struct {
	key, reason, detail string
}

// cleanUserData returns raw without the values that cannot be used, and
// what it dropped: a value over its bound (too_long), not valid UTF-8
// (invalid), or that cannot be normalized (unusable: an fn of "🙂", an
// MD5 digest); a list longer than maxUserDataValues is cut (truncated).
// With strict (the server paths), an unknown key and several values for a
// single-valued key are left for pii.HashUserData to refuse; otherwise
// (the browser path) the key is dropped (unknown_field) or cut to its first
// value. raw is not changed.
func cleanUserData(raw pii.RawUserData, now time.Time, strict bool) (pii.RawUserData, []droppedValue) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(pii.RawUserData, len(raw))
	var dropped []droppedValue
	for _, k := range keys {
		values := raw[k]
		hashed := pii.IsHashedField(k)
		known := hashed || plainUserDataKey(k)
		switch {
		case !known && strict:
			out[k] = values
			continue
		case !known:
			dropped = append(dropped, droppedValue{k, reasonUnknownField, "unknown user_data parameter"})
			continue
		case !hashed && len(values) > 1 && !strict:
			dropped = append(dropped, droppedValue{k, reasonTruncated, "takes a single value"})
			values = values[:1]
		case len(values) > maxUserDataValues:
			dropped = append(dropped, droppedValue{k, reasonTruncated, fmt.Sprintf("at most %d values", maxUserDataValues)})
			values = values[:maxUserDataValues]
		}
		limit := maxPlainUserDataLen
		if hashed {
			limit = maxUserDataValueLen
		}
		kept := make(pii.StringList, 0, len(values))
		for _, v := range values {
			switch {
			case len(v) > limit:
				dropped = append(dropped, droppedValue{k, reasonTooLong, fmt.Sprintf("a value is longer than %d bytes", limit)})
				continue
			case !utf8.ValidString(v):
				dropped = append(dropped, droppedValue{k, reasonInvalid, "a value is not valid UTF-8"})
				continue
			case hashed && strings.TrimSpace(v) != "":
				if _, err := pii.HashAt(k, v, now); err != nil {
					dropped = append(dropped, droppedValue{k, reasonUnusable, err.Error()})
					continue
				}
			}
			kept = append(kept, v)
		}
		if len(kept) > 0 {
			out[k] = kept
		}
	}
	return out, dropped
}

// plainUserDataKey reports whether k is a user_data key Meta never hashes.
func plainUserDataKey(k string) bool {
	switch k {
	case "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id", "lead_id":
		return true
	}
	return false
}

// hashUserData runs pii.HashUserData and names the offending field.
func hashUserData(prefix string, raw pii.RawUserData, now time.Time) (destinations.UserData, *apiError) {
	if e := checkUserDataBounds(prefix, raw); e != nil {
		return destinations.UserData{}, e
	}
	u, err := pii.HashUserData(raw, now)
	if err != nil {
		var ke *pii.KeyError
		if errors.As(err, &ke) {
			return destinations.UserData{}, badField(prefix+"user_data."+ke.Key, "%s", ke.Err.Error())
		}
		return destinations.UserData{}, badField(prefix+"user_data", "%s", err.Error())
	}
	return u, nil
}

// decodeCustomData decodes custom_data, bounded in size; null or absent is
// nil. decoded, when not nil, is raw as fastCollect already decoded it.
func decodeCustomData(prefix string, raw json.RawMessage, decoded *destinations.CustomData) (*destinations.CustomData, *apiError) {
	if decoded == nil && (len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))) {
		return nil, nil
	}
	if len(raw) > maxCustomDataBytes {
		return nil, badField(prefix+"custom_data", "larger than %d bytes", maxCustomDataBytes)
	}
	cd := decoded
	if cd == nil {
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Field: prefix + "custom_data", Message: "must be an object"}
		}
		var ok bool
		if cd, ok = fastCustomData(raw); !ok {
			cd = &destinations.CustomData{}
			// raw is one JSON value the body's decoder checked, so calling
			// the decoder of CustomData directly is what json.Unmarshal
			// would do, minus a second syntax check of the bytes.
			if err := cd.UnmarshalJSON(raw); err != nil {
				return nil, jsonError(err, prefix+"custom_data.")
			}
		}
	}
	if cd.Currency != "" && !isCurrency(cd.Currency) {
		return nil, badField(prefix+"custom_data.currency", "must be an ISO 4217 code such as EUR")
	}
	return cd, nil
}

// mintEventID returns a new UUID v4 from the gateway's entropy.
func (g *Gateway) mintEventID() (string, error) {
	g.randMu.Lock()
	defer g.randMu.Unlock()
	id, err := uuid.NewRandomFromReader(g.rand)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
