package gateway

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// memoryIdentity is an in-memory IdentityStore with the contract of
// routing.IdentityStore (whose Redis behaviour routing tests on a real
// Redis): it records which visitor keys it saw.
type memoryIdentity struct {
	mu   sync.Mutex
	em   map[string][]string
	seen []string
}

func (m *memoryIdentity) Enrich(ctx context.Context, siteID string, visitors map[string][]*destinations.UserData) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, uds := range visitors {
		m.seen = append(m.seen, k)
		for _, ud := range uds {
			if len(ud.Em) > 0 {
				m.em[siteID+"/"+k] = ud.Em
			}
		}
		for _, ud := range uds {
			if len(ud.Em) == 0 {
				ud.Em = m.em[siteID+"/"+k]
			}
		}
	}
	return nil
}

func TestIdentityEnrichmentRespectsConsent(t *testing.T) {
	id := &memoryIdentity{em: map[string][]string{}}
	tg := newTestGateway(t, func(o *Options) { o.Identity = id })
	const cookie = "_fbp=fb.1.1700000000000.123456789"
	login := `{"url":"https://shop.example/login","events":[{"event_name":"Lead","user_data":{"em":"jane@example.com"}}]}`
	cart := `{"url":"https://shop.example/p","events":[{"event_name":"AddToCart"}]}`
	denied := `{"url":"https://shop.example/p","consent":{"ad_user_data":"denied"},"events":[{"event_name":"AddToCart","user_data":{"em":"x@example.com"}}]}`

	for _, body := range []string{login, cart, denied} {
		if w := tg.do("POST", "/collect", body, "Origin", "https://shop.example", "Cookie", cookie); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	evs := tg.q.all()
	if want := []string{sum("jane@example.com")}; !slices.Equal(evs[1].UserData.Em, want) {
		t.Errorf("AddToCart em %v; want the login's %v", evs[1].UserData.Em, want)
	}
	if !slices.Equal(id.seen, []string{"fb.1.1700000000000.123456789", "fb.1.1700000000000.123456789"}) {
		t.Errorf("identity store saw %v; the request without ad_user_data consent must not take part", id.seen)
	}
	if got := id.em["shop/fb.1.1700000000000.123456789"]; !slices.Equal(got, []string{sum("jane@example.com")}) {
		t.Errorf("stored %v: the denied request's em must not be remembered", got)
	}
}
