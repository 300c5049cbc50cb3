package webhook_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
	"github.com/tagway/tagway/destinations/webhook"
	"github.com/tagway/tagway/destinations/webhook/webhooktest"
)

func TestConformance(t *testing.T) {
	const secret = "whsec_Y29uZm9ybWFuY2Utc2lnbmluZy1rZXktb2YtMzItYnl0ZXM="
	receiver := webhooktest.NewServer(t, secret)
	egress := webhook.Egress{AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	destinationstest.Run(t, destinationstest.Platform{
		Name:     "webhook",
		MaxBatch: webhook.MaxEvents,
		Secret:   secret,
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			settings, _ := json.Marshal(map[string]any{"url": baseURL + "/hooks/tagway", "secret": secret,
				"timeout": "10s", "max_batch": webhook.MaxEvents})
			return egress.New(settings, deps)
		},
		Fake: receiver.Handler(),
		Events: func(n int) []destinations.Event {
			return destinationstest.Events(n, func(e *destinations.Event) { e.Context.SiteID = "shop" })
		},
		DedupIDs: destinationstest.DedupIDsAt("data.events[].event_id"),
		Answers: []destinationstest.Answer{
			{Name: "accepted", Status: 200, Body: `ok`, Want: 0},
			{Name: "no content", Status: 204, Want: 0},
			{Name: "server error", Status: 500, Body: `{}`, Want: destinations.Retryable},
			{Name: "bad gateway", Status: 502, Body: `<html>`, Want: destinations.Retryable},
			{Name: "rate limited", Status: 429, Header: http.Header{"Retry-After": {"60"}}, Want: destinations.Retryable, MinRetryAfter: time.Minute},
			{Name: "Retry-After honoured", Status: 503, Header: http.Header{"Retry-After": {"120"}}, Body: `oops`, Want: destinations.Retryable, MinRetryAfter: 2 * time.Minute},
			{Name: "bad request", Status: 400, Body: `{"error":"bad event"}`, Want: destinations.Permanent},
			{Name: "not found", Status: 404, Want: destinations.Permanent},
			{Name: "secret echoed in error", Status: 422, Body: `{"error":"expected secret ` + destinationstest.SecretMark + `"}`, Want: destinations.Permanent},
			{Name: "gone", Status: 410, Want: destinations.Paused},
			{Name: "unauthorized", Status: 401, Body: `{"error":"signature"}`, Want: destinations.Paused},
			{Name: "moved", Status: 308, Header: http.Header{"Location": {"https://elsewhere.example/"}}, Want: destinations.Paused},
		},
	})
	if r := receiver.Rejections(); len(r) != 0 {
		t.Errorf("the strict receiver refused requests: %v", r)
	}
}
