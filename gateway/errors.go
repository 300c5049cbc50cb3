package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error codes of the wire contract.
const (
	codeInvalidJSON      = "invalid_json"
	codeBodyTooLarge     = "body_too_large"
	codeTooManyEvents    = "too_many_events"
	codeInvalidField     = "invalid_field"
	codeUnknownSite      = "unknown_site"
	codeOriginNotAllowed = "origin_not_allowed"
	codeUnauthorized     = "unauthorized"
	codeTooManyFailures  = "too_many_failures"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnavailable      = "unavailable"
)

// apiError is an error answered to the client in the contract's envelope:
// {"error":{"code":..., "message":..., "field":...}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// metaSubcode is the error_subcode Meta's Graph API gives for the same
	// problem (2804003 too old, 2804050 too little customer information),
	// for the drop-in Conversions API endpoint; zero when Meta has none.
	metaSubcode int
	// refusal, on the browser path, is the reason an event is refused
	// for good (refusedTooOld...) when no repair can change the outcome.
	refusal string
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

func badField(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Field: field, Message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// writeJSONBytes answers status with b, a JSON document and its newline.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Header values the hot paths set by assigning them to the header map (the
// keys written in canonical form), saving Header.Set's canonicalisation
// and a slice per response. They are never modified in place: Header.Add
// appends to a full slice, so it copies, and Set replaces.
var (
	hdrJSON       = []string{"application/json"}
	hdrNoStore    = []string{"no-store"}
	hdrNosniff    = []string{"nosniff"}
	hdrTrue       = []string{"true"}
	hdrVaryOrigin = []string{"Origin"}
)
