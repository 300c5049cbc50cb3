package ga4_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/ga4"
	"github.com/tagway/tagway/destinations/ga4/ga4test"
)

func TestConformance(t *testing.T) {
	const stream, secret = "G-CONFORM42", "conformanceMPsecret0123"
	fake := ga4test.NewServer(t)
	fake.AddStream(stream, secret)
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "ga4",
		MaxBatch: 25,
		MaxAge:   72 * time.Hour,
		Secret:   secret,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{ga4.APIURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"measurement_id": stream, "api_secret": secret, "timeout": "10s"})
			return ga4.New(settings, deps)
		},
		Fake: fake.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) {
				e.EventName, e.EventSourceURL = "Purchase", "https://shop.example/thanks"
				e.CustomData = &destinations.CustomData{Value: new(float64), Currency: "EUR"}
				e.Context = destinations.Context{Source: "browser", VisitorID: "1764330000000.42",
					Cookies: map[string]string{"_ga": "GA1.1.1234567890.1700000000"}}
			})
		},
		// GA4 deduplicates purchases by transaction_id: the order id, else
		// the event id.
		DedupIDs: func(r *http.Request, body []byte) ([]string, error) {
			if msgs := ga4test.Validate(body, time.Now()); len(msgs) != 0 {
				return nil, fmt.Errorf("GA4 would drop the request: %+v", msgs)
			}
			return destinationstest.DedupIDsAt("events[].params.transaction_id")(r, body)
		},
		Answers: []destinationstest.Answer{
			{Name: "server error", Status: 500, Body: `oops`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Header: http.Header{"Retry-After": {"60"}}, Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `busy`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "bad request", Status: 400, Body: `bad request`, Want: destinations.Permanent},
			{Name: "secret echoed in error", Status: 400, Body: `bad api_secret=` + destinationstest.SecretMark, Want: destinations.Permanent},
			{Name: "forbidden", Status: 403, Body: `forbidden`, Want: destinations.Paused},
			{Name: "accepted", Status: 204, Want: 0},
		},
	})
}
