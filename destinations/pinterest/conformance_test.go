package pinterest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/pinterest"
	"github.com/tagway/tagway/destinations/pinterest/pinteresttest"
)

func TestConformance(t *testing.T) {
	const account, token = "549755885175", "pina_conformanceTOKEN0123456789"
	fake := pinteresttest.NewServer(t)
	fake.AddAccount(account, token)
	pinErr := func(code int, msg string) string { return pinteresttest.Error{Code: code, Message: msg}.Body() }
	statuses := func(s ...string) string {
		items := make([]string, len(s))
		processed := 0
		for i, st := range s {
			items[i] = fmt.Sprintf(`{"status":%q,"error_message":"x"}`, st)
			if st == "processed" {
				processed++
			}
		}
		return fmt.Sprintf(`{"num_events_received":%d,"num_events_processed":%d,"events":[%s]}`, len(s), processed, strings.Join(items, ","))
	}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "pinterest",
		MaxBatch: 1000,
		MaxAge:   7 * 24 * time.Hour,
		Secret:   token,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			deps.APIURLs = map[string]string{pinterest.APIURLSetting: baseURL}
			settings, _ := json.Marshal(map[string]string{"ad_account_id": account, "access_token": token, "timeout": "10s"})
			return pinterest.New(settings, deps)
		},
		Fake:     fake.Handler(),
		Events:   func(n int) []destinations.Event { return destinationstest.Events(n, nil) },
		DedupIDs: destinationstest.DedupIDsAt("data[].event_id"),
		Answers: []destinationstest.Answer{
			{Name: "server error", Status: 500, Body: `{}`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Body: pinErr(8, "This request exceeded a rate limit."), Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "ramped down", Status: 503, Body: pinErr(4197, "The endpoint has been ramped down and is currently not accepting any traffic."),
				Want: destinations.Retryable, MinRetryAfter: 5 * time.Minute},
			{Name: "Retry-After honoured", Status: 502, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "invalid request", Status: 400, Body: pinErr(4196, "The request was invalid."), Want: destinations.Permanent},
			{Name: "token echoed in error", Status: 400, Body: pinErr(4196, "bad token "+destinationstest.SecretMark), Want: destinations.Permanent},
			{Name: "every event failed", Status: 422, Body: `{"code":4196,"message":"Not all events were successfully processed.","details":` +
				statuses("failed", "failed", "failed") + `}`, Want: destinations.Permanent},
			{Name: "per-event failure echoing the token", Status: 200, Body: strings.ReplaceAll(statuses("failed", "failed", "failed"),
				`"x"`, `"token `+destinationstest.SecretMark+`"`), Want: destinations.Permanent},
			{Name: "authentication failed", Status: 401, Body: pinErr(2, "Authentication failed."), Want: destinations.Paused},
			{Name: "no access to the ad account", Status: 403, Body: pinErr(29, "You are not permitted to access that resource."), Want: destinations.Paused},
			{Name: "accepted", Status: 200, Body: statuses("processed", "processed", "processed"), Want: 0},
		},
	})
}
