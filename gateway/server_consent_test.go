package gateway

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// TestServerEventsConsent: /v1/events takes tagway's consent extension, on
// the request and on each event (an event's stated purposes win; a purpose
// stated nowhere is granted), and an event without marketing consent loses
// its identifiers exactly as on /collect.
func TestServerEventsConsent(t *testing.T) {
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
		{ID: "shop", Domains: []string{"shop.example"}, IngestKeys: []string{testIngestKey}},
		{ID: "anon", Domains: []string{"anon.example"}, IngestKeys: []string{otherIngestKey}, ConsentDeniedMode: model.ConsentDeniedAnonymous},
	}})
	if err != nil {
		t.Fatal(err)
	}
	event := func(id, consent string) string {
		if consent != "" {
			consent = `"consent":` + consent + `,`
		}
		return fmt.Sprintf(`{%s"event_name":"Purchase","event_time":%d,"event_id":%q,"action_source":"website",
			"event_source_url":"https://shop.example/thanks",
			"user_data":{"em":"jane@example.com","external_id":"c-1","client_ip_address":"203.0.113.9",
				"client_user_agent":"UA/1","fbp":"fb.1.1700000000000.42","fbc":"fb.1.1700000000000.IwAR"},
			"custom_data":{"value":1,"currency":"EUR"}}`, consent, testNow.Unix(), id)
	}
	const (
		denied  = `{"ad_storage":"denied","ad_user_data":"denied"}`
		granted = `{"ad_storage":"granted","ad_user_data":"granted"}`
	)
	full := destinations.Consent{AdStorage: "granted", AdUserData: "granted", AdPersonalization: "granted", AnalyticsStorage: "granted"}
	noAds := destinations.Consent{AdStorage: "denied", AdUserData: "denied", AdPersonalization: "granted", AnalyticsStorage: "granted"}
	for _, tc := range []struct {
		name      string
		key       string
		body      string
		want      map[string]destinations.Consent // event id → consent; identifiers kept iff marketing granted
		anonymous bool
	}{
		{name: "no consent anywhere: granted", key: testIngestKey,
			body: `{"data":[` + event("e1", "") + `]}`, want: map[string]destinations.Consent{"e1": full}},
		{name: "per event", key: testIngestKey,
			body: `{"data":[` + event("e1", denied) + `,` + event("e2", "") + `,` + event("e3", `{"ad_user_data":"denied"}`) + `]}`,
			want: map[string]destinations.Consent{"e1": noAds, "e2": full,
				"e3": {AdStorage: "granted", AdUserData: "denied", AdPersonalization: "granted", AnalyticsStorage: "granted"}}},
		{name: "per request, an event's own purposes win", key: testIngestKey,
			body: `{"consent":` + denied + `,"data":[` + event("e1", "") + `,` + event("e2", granted) + `,` + event("e3", `{"ad_storage":"granted"}`) + `]}`,
			want: map[string]destinations.Consent{"e1": noAds, "e2": full,
				"e3": {AdStorage: "granted", AdUserData: "denied", AdPersonalization: "granted", AnalyticsStorage: "granted"}}},
		{name: "anonymous mode marks the stripped event", key: otherIngestKey, anonymous: true,
			body: `{"data":[` + event("e1", denied) + `]}`, want: map[string]destinations.Consent{"e1": noAds}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{snap} })
			w := tg.do(http.MethodPost, "/v1/events", tc.body, "Authorization", "Bearer "+tc.key)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			evs := tg.q.all()
			if len(evs) != len(tc.want) {
				t.Fatalf("%d events queued; want %d", len(evs), len(tc.want))
			}
			for _, ev := range evs {
				want, ok := tc.want[ev.EventID]
				if !ok {
					t.Fatalf("unexpected event %s", ev.EventID)
				}
				if ev.Context.Consent != want {
					t.Errorf("%s: consent %+v; want %+v", ev.EventID, ev.Context.Consent, want)
				}
				u := ev.UserData
				if want.Marketing() {
					if len(u.Em) == 0 || len(u.ExternalID) == 0 || u.ClientIPAddress == "" || u.Fbp == "" || u.Fbc == "" || ev.Context.Anonymous {
						t.Errorf("%s: consented event lost identifiers: %+v", ev.EventID, u)
					}
					continue
				}
				if !reflect.DeepEqual(u, destinations.UserData{ClientUserAgent: "UA/1"}) {
					t.Errorf("%s: without marketing consent it keeps %+v; want the user agent only", ev.EventID, u)
				}
				if ev.Context.Anonymous != tc.anonymous {
					t.Errorf("%s: anonymous %v; want %v", ev.EventID, ev.Context.Anonymous, tc.anonymous)
				}
			}
		})
	}

	// Consent words are checked, and the error names the field.
	tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{snap} })
	for body, field := range map[string]string{
		`{"data":[` + event("e1", "") + `,` + event("e2", `{"ad_storage":"yes"}`) + `]}`: "data[1].consent.ad_storage",
		`{"consent":{"ad_user_data":"maybe"},"data":[` + event("e1", "") + `]}`:          "consent.ad_user_data",
		`{"data":[` + event("e1", `{"ad_storage":"denied","marketing":"denied"}`) + `]}`: "data[0].consent.marketing",
	} {
		w := tg.do(http.MethodPost, "/v1/events", body, "Authorization", "Bearer "+testIngestKey)
		if w.Code != http.StatusBadRequest || decodeError(t, w).Error.Field != field {
			t.Errorf("%d %s %q; want 400 naming %s", w.Code, w.Body, decodeError(t, w).Error.Field, field)
		}
	}
	if n := len(tg.q.all()); n != 0 {
		t.Errorf("refused requests queued %d events", n)
	}
}
