package gateway

import (
	"testing"
)

// TestCookiesOnlyForTheSitesOwnHost: /collect sets cookies only when the
// request's host is one of the events' site's domains (or below one): a
// host of no site, or of another site, gets none, while the events are
// still accepted with their identifiers.
func TestCookiesOnlyForTheSitesOwnHost(t *testing.T) {
	tg := newTestGateway(t, nil)
	page := `{"url":"https://shop.example/p?gclid=G1","vid":"1772366400000.482913756104","events":[{"event_name":"PageView"}]}`
	for _, c := range []struct {
		name    string
		hdr     []string
		cookies bool
	}{
		{"the site's own host", []string{"Host", "t.shop.example"}, true},
		{"a host of no site", []string{"Host", "evil.com"}, false},
		{"a host of no site, with a port", []string{"Host", "evil.com:443"}, false},
		{"a host ending like the site", []string{"Host", "evilshop.example"}, false},
		{"another site's host, through an allowed origin", []string{"Host", "t.shop.co.uk", "Origin", "https://checkout.partner.example"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(tg.q.all())
			w := tg.do("POST", "/collect", page, c.hdr...)
			if w.Code != 204 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if got := len(w.Result().Cookies()) > 0; got != c.cookies {
				t.Errorf("Set-Cookie %v; want cookies %v", w.Header()["Set-Cookie"], c.cookies)
			}
			evs := tg.q.all()
			if len(evs) != before+1 || evs[len(evs)-1].Context.SiteID != "shop" || evs[len(evs)-1].UserData.Fbp == "" {
				t.Errorf("the event was not kept with its identifiers: %+v", evs[len(evs)-1])
			}
		})
	}
}
