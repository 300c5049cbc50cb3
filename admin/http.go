package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/routing/config"
)

// apiError is an error answer:
// {"error":{"code","message","field"?,"details"?:[{"field","message"}]}}.
type apiError struct {
	Status int `json:"-"`
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int      `json:"-"`
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	Field      string   `json:"field,omitempty"`
	Details    []detail `json:"details,omitempty"`
}

type detail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func notFound(what, id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no %s %q", what, id)}
}

var (
	errForbidden = &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "this key's role does not allow that"}
	errMethod    = &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed here"}
)

func badField(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_field", Field: field, Message: fmt.Sprintf(format, args...)}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "bool":
		return "boolean"
	}
	return "number"
}

// storeError turns an error of config.Store.Update into an answer. An
// invalid result lists every problem; those of the resource being written
// (placed first in its list, so at index 0) name its own field path.
func storeError(err error, prefix string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var inv *config.InvalidError
	if errors.As(err, &inv) {
		e := &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_config"}
		for _, line := range strings.Split(inv.Err.Error(), "\n") {
			d := detail{Message: line}
			if prefix != "" {
				if rest, ok := strings.CutPrefix(line, prefix+"."); ok {
					path, msg, _ := strings.Cut(rest, ": ")
					d = detail{Field: path, Message: msg}
				}
			} else if path, msg, ok := strings.Cut(line, ": "); ok && !strings.Contains(path, " ") {
				d = detail{Field: path, Message: msg}
			}
			e.Details = append(e.Details, d)
		}
		e.Field, e.Message = e.Details[0].Field, e.Details[0].Message
		if len(e.Details) == 1 {
			e.Details = nil
		}
		return e
	}
	if errors.Is(err, config.ErrNoSecretKey) {
		field := ""
		if _, rest, ok := strings.Cut(err.Error(), ": settings."); ok {
			name, _, _ := strings.Cut(rest, ":")
			field = "settings." + name
		}
		return &apiError{Status: http.StatusBadRequest, Code: "secrets_unavailable", Field: field,
			Message: "this gateway cannot store secrets: set TAGWAY_SECRET_KEY (32 bytes, base64 or hex) to encrypt them at rest"}
	}
	var unavailable *config.IDUnavailableError
	if errors.As(err, &unavailable) {
		return &apiError{Status: http.StatusConflict, Code: "id_unavailable", Field: "id", Message: unavailable.Error(),
			RetryAfter: max(1, int((unavailable.RetryAfter+time.Second-1)/time.Second))}
	}
	if errors.Is(err, config.ErrContention) {
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the configuration store failed; retry later"}
}

// page reads ?limit= and ?cursor=.
func page(r *http.Request) (limit int, cursor string, e *apiError) {
	limit = defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, "", badField("limit", "must be between 1 and %d", maxLimit)
		}
		limit = n
	}
	return limit, r.URL.Query().Get("cursor"), nil
}

// pageOf cuts a sorted list of ids after cursor, and says where the next
// page starts.
func pageOf[T any](items []T, id func(T) string, limit int, cursor string) ([]T, string) {
	start := 0
	if cursor != "" {
		for start < len(items) && id(items[start]) <= cursor {
			start++
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = id(items[end-1])
	}
	out := items[start:end]
	if out == nil {
		out = []T{}
	}
	return out, next
}

// checkIfMatch enforces optimistic concurrency: required says whether a
// missing If-Match is 428.
func checkIfMatch(r *http.Request, current string, required bool) *apiError {
	im := strings.TrimSpace(r.Header.Get("If-Match"))
	if im == "" {
		if required {
			return &apiError{Status: http.StatusPreconditionRequired, Code: "precondition_required",
				Message: "send If-Match with the ETag of the resource you read (GET it first)"}
		}
		return nil
	}
	if im == "*" {
		return nil
	}
	for _, tag := range strings.Split(im, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == current {
			return nil
		}
	}
	return &apiError{Status: http.StatusPreconditionFailed, Code: "precondition_failed",
		Message: "the resource changed since you read it; GET it again and retry"}
}
