package googleads

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// rpcError is the error envelope of Google's REST APIs: a google.rpc.Status.
type rpcError struct {
	Error *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Status  string          `json:"status"`
		Details []rpcErrDetails `json:"details"`
	} `json:"error"`
}

// rpcErrDetails is any of the standard detail payloads; @type says which.
type rpcErrDetails struct {
	Type            string            `json:"@type"`
	Reason          string            `json:"reason"`   // ErrorInfo
	Domain          string            `json:"domain"`   // ErrorInfo
	Metadata        map[string]string `json:"metadata"` // ErrorInfo
	FieldViolations []struct {
		Field       string `json:"field"`
		Description string `json:"description"`
		Reason      string `json:"reason"`
	} `json:"fieldViolations"` // BadRequest
	RetryDelay string `json:"retryDelay"` // RetryInfo, "30s"
	RequestID  string `json:"requestId"`  // RequestInfo
}

// violation is one FieldViolation of a BadRequest.
type violation struct{ field, description, reason string }

// configReasons are ErrorReasons of the Data Manager API that concern the
// destination's configuration (its account, conversion actions, terms),
// not the events: they pause the destination.
var configReasons = []string{
	"PERMISSION_DENIED", "NOT_FOUND", "INVALID_DESTINATION", "INVALID_CONVERSION_ACTION_ID",
	"INVALID_CONVERSION_ACTION_TYPE", "TERMS_AND_CONDITIONS_NOT_SIGNED",
	"DESTINATION_ACCOUNT_NOT_ENABLED_ENHANCED_CONVERSIONS_FOR_LEADS",
	"DESTINATION_ACCOUNT_DATA_POLICY_PROHIBITS_ENHANCED_CONVERSIONS",
	"DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED",
}

// eventField finds the index of the event a violation's field names
// ("events[3].user_data..." or "events[3].userData...").
var eventField = regexp.MustCompile(`^(?:[A-Za-z_]+\.)?events\[([0-9]+)\]`)

// classify turns one answer into the outcome of each of the n events of
// the request: all nil when ingested; per event when the API names the
// events at fault; else one outcome for all. No outcome shows token.
func (a *Adapter) classify(status int, header http.Header, body []byte, n int, token string) []error {
	if status >= 200 && status < 300 {
		return make([]error, n)
	}
	var env rpcError
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil || env.Error.Status == "" {
		return destinations.All(n, a.api.ByStatus(status, header, a.api.StatusMessage(status, body, secret(token))))
	}
	st := env.Error
	var reason string
	var delay time.Duration
	var daily bool
	var violations []violation
	for _, d := range st.Details {
		switch {
		case strings.HasSuffix(d.Type, "google.rpc.ErrorInfo"):
			if reason == "" {
				reason = d.Reason
			}
			daily = daily || strings.Contains(d.Metadata["quota_limit"], "PerDay") ||
				strings.Contains(d.Metadata["quota_limit_value"], "PerDay")
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			if dd, err := time.ParseDuration(d.RetryDelay); err == nil && dd > 0 {
				delay = max(delay, dd)
			}
		case strings.HasSuffix(d.Type, "google.rpc.BadRequest"):
			for _, v := range d.FieldViolations {
				violations = append(violations, violation{a.redact(v.Field, token), a.redact(v.Description, token), v.Reason})
			}
		}
	}
	delay = min(max(delay, destinations.RetryAfter(header, a.api.Now())), maxHintDelay)
	base := destinations.Error{Status: status, Code: st.Status, Message: a.redact("google_ads: "+st.Status+": "+st.Message, token)}
	if reason != "" && reason != st.Status {
		base.Code += "/" + reason
	}
	isConfig := slices.Contains(configReasons, reason)
	for _, v := range violations {
		isConfig = isConfig || slices.Contains(configReasons, v.reason) || strings.HasPrefix(v.field, "destinations")
	}

	one := base
	switch st.Status {
	case "RESOURCE_EXHAUSTED":
		one.Kind, one.RetryAfter = destinations.Retryable, max(delay, rateLimitDelay)
		if daily {
			one.RetryAfter = max(one.RetryAfter, dailyQuotaDelay)
		}
	case "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED", "UNKNOWN", "CANCELLED":
		one.Kind, one.RetryAfter = destinations.Retryable, delay
	case "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", "FAILED_PRECONDITION", "UNIMPLEMENTED":
		// The credentials, the account's access or the API URL: the
		// destination's configuration.
		one.Kind = destinations.Paused
	case "INVALID_ARGUMENT", "OUT_OF_RANGE", "ALREADY_EXISTS":
		if isConfig {
			one.Kind = destinations.Paused
			break
		}
		// Fast fail: the API took none of the events. When it names the
		// events at fault, those fail and the others are sent again.
		if errs := perEvent(&base, violations, n); errs != nil {
			return errs
		}
		one.Kind = destinations.Permanent
		one.WholeBatch = n > 1
	default:
		de := a.api.ByStatus(status, header, one.Message)
		one.Kind, one.RetryAfter = de.Kind, de.RetryAfter
	}
	return destinations.All(n, &one)
}

// perEvent gives each event its outcome when every violation names an
// event of the request: permanent for those, retryable at once for the
// others (the API ingested nothing). Nil when some violation names no
// event.
func perEvent(base *destinations.Error, violations []violation, n int) []error {
	if len(violations) == 0 {
		return nil
	}
	bad := map[int]*destinations.Error{}
	for _, v := range violations {
		m := eventField.FindStringSubmatch(v.field)
		if m == nil {
			return nil
		}
		i, err := strconv.Atoi(m[1])
		if err != nil || i >= n {
			return nil
		}
		if _, seen := bad[i]; seen {
			continue
		}
		e := *base
		e.Kind = destinations.Permanent
		if v.reason != "" {
			e.Code = base.Code + "/" + v.reason
		}
		e.Message = base.Message + ": " + v.field + ": " + strings.ToValidUTF8(v.description[:min(len(v.description), 300)], "")
		bad[i] = &e
	}
	out := make([]error, n)
	for i := range out {
		if e, ok := bad[i]; ok {
			out[i] = e
			continue
		}
		out[i] = &destinations.Error{Kind: destinations.Retryable, Status: base.Status, Code: base.Code,
			Message: "google_ads: not ingested: the API refused the request for another of its events"}
	}
	return out
}
