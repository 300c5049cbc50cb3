package meta_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/meta"
	"github.com/tagway/tagway/destinations/meta/metatest"
)

func TestConformance(t *testing.T) {
	const pixel, token = "1234567890", "EAAGconformancetoken0123456789"
	graph := metatest.NewServer(t)
	graph.AddPixel(pixel, token)
	graphErr := func(code, sub int, msg string) string {
		return fmt.Sprintf(`{"error":{"message":%q,"type":"OAuthException","code":%d,"error_subcode":%d,"fbtrace_id":"A1"}}`, msg, code, sub)
	}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "meta",
		MaxBatch: 1000,
		MaxAge:   7 * 24 * time.Hour,
		Secret:   token,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{meta.GraphURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"pixel_id": pixel, "access_token": token, "timeout": "10s"})
			return meta.New(settings, deps)
		},
		Fake: graph.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) { e.UserData.Fbp = "fb.1.1700000000000.123456789" })
		},
		DedupIDs: destinationstest.DedupIDsAt("data[].event_id"),
		Answers: []destinationstest.Answer{
			{Name: "server error", Status: 500, Body: `{}`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 400, Body: graphErr(17, 2446079, "User request limit reached"), Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "invalid parameter", Status: 400, Body: graphErr(100, 0, "Invalid parameter"), Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 400, Body: graphErr(100, 0, "bad access_token "+destinationstest.SecretMark), Want: destinations.Permanent},
			{Name: "expired token", Status: 400, Body: graphErr(190, 463, "Error validating access token"), Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: `{"events_received":3,"messages":[],"fbtrace_id":"A1"}`, Want: 0},
		},
	})
}
