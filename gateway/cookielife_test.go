package gateway

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tagway/tagway/routing/model"
)

// TestCookieLifetime: a site's cookies.max_age_days is the Max-Age of
// _fbp, _fbc and _tw_vid (400 days by default, never more), and caps the
// click-id cookies (90 days by default) and how long a click id is kept.
func TestCookieLifetime(t *testing.T) {
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
		{ID: "plain", Domains: []string{"plain.example"}},
		{ID: "short", Domains: []string{"short.example"}, Cookies: &model.CookieSettings{MaxAgeDays: 30}},
		{ID: "mid", Domains: []string{"mid.example"}, Cookies: &model.CookieSettings{MaxAgeDays: 120}},
		{ID: "unset", Domains: []string{"unset.example"}, Cookies: &model.CookieSettings{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{snap} })
	const day = 24 * 60 * 60
	// An msclkid captured 60 days ago, kept in _tw_cid.
	old := "_tw_cid=msclkid=" + strconv.FormatInt(testNow.Add(-60*24*time.Hour).UnixMilli(), 10) + ".OldClick"
	for _, c := range []struct {
		name, host, page string
		visitor, click   int  // wanted Max-Age in days of _fbp/_fbc/_tw_vid and of _tw_cid/_gcl_aw
		oldKept          bool // the 60-day-old click id is still there
	}{
		{name: "default", host: "t.plain.example", page: "https://plain.example/", visitor: 400, click: 90, oldKept: true},
		{name: "settings without max age", host: "t.unset.example", page: "https://unset.example/", visitor: 400, click: 90, oldKept: true},
		{name: "30 days", host: "t.short.example", page: "https://short.example/", visitor: 30, click: 30},
		{name: "120 days", host: "t.mid.example", page: "https://mid.example/", visitor: 120, click: 90, oldKept: true},
		// Reached on a host of no site: no cookie is set (none would
		// belong there); the page's site decides how long click ids are
		// kept on the events.
		{name: "host of no site", host: "gateway.internal.example", page: "https://short.example/", visitor: 0, click: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := `{"vid":"1772366400000.482913756104","url":"` + c.page + `?fbclid=IwAR0aBcD&ttclid=NewTT&gclid=NewG",` +
				`"events":[{"event_name":"PageView"}]}`
			w := tg.do(http.MethodPost, "/collect", body, "Host", c.host, "Cookie", old)
			if w.Code != http.StatusNoContent {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			got := map[string]int{}
			for _, ck := range w.Result().Cookies() {
				got[ck.Name] = ck.MaxAge
			}
			for name, days := range map[string]int{cookieFbp: c.visitor, cookieFbc: c.visitor, cookieVisitor: c.visitor,
				cookieClickIDs: c.click, cookieGclAW: c.click} {
				if got[name] != days*day {
					t.Errorf("%s Max-Age %d (%.1f days); want %d days", name, got[name], float64(got[name])/day, days)
				}
			}
			evs := tg.q.all()
			ids := evs[len(evs)-1].Context.ClickIDs
			if ids["ttclid"].Value != "NewTT" || ids["gclid"].Value != "NewG" {
				t.Errorf("click ids %+v", ids)
			}
			if _, kept := ids["msclkid"]; kept != c.oldKept {
				t.Errorf("the 60-day-old msclkid kept: %v; want %v (%+v)", kept, c.oldKept, ids)
			}
		})
	}
	if got := cookieLifetime(&model.Site{Cookies: &model.CookieSettings{MaxAgeDays: 1000}}); got != 400*24*time.Hour {
		t.Errorf("1000 days: %s; want the browsers' 400-day cap", got)
	}
	if got := cookieLifetime(nil); got != 400*24*time.Hour {
		t.Errorf("no site: %s; want 400 days", got)
	}
}
