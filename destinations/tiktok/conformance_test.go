package tiktok_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/tiktok"
	"github.com/tagway/tagway/destinations/tiktok/tiktoktest"
)

func TestConformance(t *testing.T) {
	const pixel, token = "C4CONFORMANCE0000001", "ttconformancetoken0123456789"
	fake := tiktoktest.NewServer(t)
	fake.AddPixel(pixel, token)
	reply := func(code int, msg string) string {
		return tiktoktest.Reply{Code: code, Message: msg, RequestID: "R1"}.Body()
	}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "tiktok",
		MaxBatch: tiktoktest.MaxEvents,
		MaxAge:   tiktoktest.MaxAge,
		Secret:   token,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{tiktok.APIURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"pixel_code": pixel, "access_token": token, "timeout": "10s"})
			return tiktok.New(settings, deps)
		},
		Fake: fake.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) {
				e.Context.Cookies = map[string]string{"_ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH"}
			})
		},
		DedupIDs: destinationstest.DedupIDsAt("data[].event_id"),
		Answers: []destinationstest.Answer{
			{Name: "system error", Status: 200, Body: reply(50000, "System error"), Want: destinations.Retryable},
			{Name: "HTTP 500", Status: 500, Body: `{}`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 200, Body: reply(40100, "Too many requests"), Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "parameter error", Status: 200, Body: reply(40002, "data[0].event_time: invalid"), Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 200, Body: reply(40002, "bad header "+destinationstest.SecretMark), Want: destinations.Permanent},
			{Name: "revoked token", Status: 200, Body: reply(40105, "Access token is incorrect or has been revoked "+destinationstest.SecretMark), Want: destinations.Paused},
			{Name: "no permission", Status: 200, Body: reply(40001, "No permission to operate pixel code"), Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: reply(0, "OK"), Want: 0},
		},
	})
}
