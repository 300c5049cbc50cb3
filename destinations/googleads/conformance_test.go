package googleads_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/googleads"
	"github.com/tagway/tagway/destinations/googleads/googleadstest"
)

func TestConformance(t *testing.T) {
	const (
		account, action = "1234567890", "5550001"
		accessToken     = "ya29.conformance-access-token-0123456789"
	)
	google := googleadstest.NewServer(t)
	google.AddRefreshToken("cid.apps.googleusercontent.com", "GOCSPX-conformance", "1//0conformance-refresh", "owner@shop.example")
	google.Grant("owner@shop.example", account, action)
	// Every token issued is this one: the kit looks for it in errors and
	// logs, where an API answer echoing it would put it.
	google.SetTokenValue(accessToken)
	status := func(http int, status, reason, message string) string {
		return googleadstest.Status{HTTP: http, Status: status, Reason: reason, Message: message}.Body()
	}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "google_ads",
		MaxBatch: 2000,
		MaxAge:   90 * 24 * time.Hour,
		Secret:   accessToken,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			// The kit stands in front of the API; the token endpoint is
			// the fake's own.
			deps.APIURLs = map[string]string{googleads.APIURLSetting: baseURL, googleads.TokenURLSetting: google.TokenURL()}
			settings, _ := json.Marshal(map[string]any{
				"operating_account_id": account,
				"conversion_actions":   map[string]string{"Lead": action},
				"refresh_token":        "1//0conformance-refresh",
				"client_id":            "cid.apps.googleusercontent.com",
				"client_secret":        "GOCSPX-conformance",
				"timeout":              "10s",
			})
			return googleads.New(settings, deps)
		},
		Fake: google.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) {
				e.EventName, e.EventSourceURL = "Lead", ""
				e.UserData = destinations.UserData{EmGoogle: []string{destinationstest.SHA256(e.EventID + "@example.com")},
					ClientUserAgent: "Mozilla/5.0 (conformance)"}
				e.Context.Consent = destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
			})
		},
		// The dedup key is transactionId: the order id of a Purchase, the
		// event id otherwise.
		DedupIDs: destinationstest.DedupIDsAt("events[].transactionId"),
		Answers: []destinationstest.Answer{
			{Name: "internal error", Status: 500, Body: status(500, "INTERNAL", "INTERNAL_ERROR", "Internal error."), Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Body: status(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "Quota exceeded."),
				Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}},
				Body: status(503, "UNAVAILABLE", "", "The service is unavailable."), Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "invalid argument", Status: 400, Body: status(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "There was a problem with the request."),
				Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 400, Body: status(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "bad token "+destinationstest.SecretMark),
				Want: destinations.Permanent},
			{Name: "permission denied", Status: 403, Body: status(403, "PERMISSION_DENIED", "PERMISSION_DENIED", "The caller does not have permission"),
				Want: destinations.Paused},
			{Name: "unauthenticated with a fresh token", Status: 401, Body: status(401, "UNAUTHENTICATED", "ACCESS_TOKEN_EXPIRED", "Request had invalid authentication credentials."),
				Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: `{"requestId":"r1"}`, Want: 0},
		},
	})
}
