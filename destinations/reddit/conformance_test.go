package reddit_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/reddit"
	"github.com/tagway/tagway/destinations/reddit/reddittest"
)

func TestConformance(t *testing.T) {
	const pixel, token = "a2_conformance", "conformanceTOKEN0123456789"
	fake := reddittest.NewServer(t)
	fake.AddPixel(pixel, token)
	refusal := func(msg string, fields ...string) string {
		fs := make([]reddittest.FieldError, len(fields))
		for i, f := range fields {
			fs[i] = reddittest.FieldError{Field: f, Message: msg}
		}
		return reddittest.ErrorBody{Code: 400, Message: "There were 3 invalid conversion events. None were processed.", Fields: fs}.Body()
	}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "reddit",
		MaxBatch: 1000,
		MaxAge:   168 * time.Hour,
		Secret:   token,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{reddit.APIURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"pixel_id": pixel, "access_token": token, "timeout": "10s"})
			return reddit.New(settings, deps)
		},
		Fake:     fake.Handler(),
		Events:   func(n int) []destinations.Event { return destinationstest.Events(n, nil) },
		DedupIDs: destinationstest.DedupIDsAt("data.events[].metadata.conversion_id"),
		Answers: []destinationstest.Answer{
			{Name: "server error", Status: 500, Body: `{}`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Body: `{"error":{"code":429,"message":"Too Many Requests"}}`, Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "every event invalid", Status: 400, Body: refusal("event_at: too old",
				"$.data.events[0].event_at", "$.data.events[1].event_at", "$.data.events[2].event_at"), Want: destinations.Permanent},
			{Name: "refused without naming events", Status: 400, Body: refusal("invalid"), Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 400, Body: refusal("bad token "+destinationstest.SecretMark,
				"$.data.events[0].user", "$.data.events[1].user", "$.data.events[2].user"), Want: destinations.Permanent},
			{Name: "bad token", Status: 401, Body: `{"error":{"code":401,"message":"Unauthorized"}}`, Want: destinations.Paused},
			{Name: "pixel not reachable", Status: 403, Body: `{"error":{"code":403,"message":"Forbidden"}}`, Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: `{"message":"Successfully processed 3 conversion events."}`, Want: 0},
		},
	})
}
