package snap_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/snap"
	"github.com/tagway/tagway/destinations/snap/snaptest"
)

func TestConformance(t *testing.T) {
	const pixel, token = "4f1c0a2e-6a0b-4c59-9d1e-2b7f4c8a9e10", "snapconformancetoken0123456789"
	fake := snaptest.NewServer(t)
	fake.AddPixel(pixel, token)
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "snap",
		MaxBatch: snaptest.MaxEvents,
		MaxAge:   snaptest.MaxAge,
		Secret:   token,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{snap.APIURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"pixel_id": pixel, "access_token": token, "timeout": "10s"})
			return snap.New(settings, deps)
		},
		Fake: fake.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) {
				e.Context.Cookies = map[string]string{"_scid": "8b1e7a60-0f52-4a54-9f9b-3c1f0a3b2d11"}
			})
		},
		DedupIDs: destinationstest.DedupIDsAt("data[].event_id"),
		Answers: []destinationstest.Answer{
			{Name: "server error", Status: 500, Body: `{"status":"INVALID","reason":"Internal error"}`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Body: `{"status":"INVALID","reason":"Too many requests"}`, Want: destinations.Retryable, MinRetryAfter: 10 * time.Second},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "invalid event", Status: 400, Body: snaptest.Invalid(0, "Invalid event", "event_time: timestamp out of range").Body(), Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 400, Body: snaptest.Invalid(0, "access_token="+destinationstest.SecretMark+" is not allowed here").Body(), Want: destinations.Permanent},
			{Name: "revoked token", Status: 401, Body: `{"status":"INVALID","reason":"Unauthorized ` + destinationstest.SecretMark + `"}`, Want: destinations.Paused},
			{Name: "other organisation's pixel", Status: 403, Body: `{"status":"INVALID","reason":"Forbidden"}`, Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: `{"status":"VALID","reason":"ok"}`, Want: 0},
		},
	})
}
