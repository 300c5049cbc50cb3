package gateway

import (
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// landing is a landing URL with every click id tagway keeps, and fbclid.
const landing = "https://shop.example/p?gclid=Cj0KCQ_g-1&gbraid=0AAAAA_gb&wbraid=CkQK_wb&ttclid=E.C.P.Ct0_tt%2B%3D" +
	"&ScCid=sc-9f2&epik=dj0yJnU9_ep&rdt_cid=1234_rdt&li_fat_id=4c5d-li&msclkid=ab12cd34ms&fbclid=IwAR_fb"

func cookiesOf(w interface{ Result() *http.Response }) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestClickIDsCapturedIntoCookies(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := `{"vid":"1772366400000.482913756104","url":"` + landing + `","events":[{"event_name":"PageView"}]}`
	w := tg.do("POST", "/collect", body, "Origin", "https://shop.example", "Cookie",
		"_ttp=ttp-1; _scid=7b1e-scid; _epik=ep-cookie; _rdt_uuid=1700000000000.9e1f; _ga=GA1.1.123.456; _other=x; _gcl_aw=bad value")
	if w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	now := testNow.UnixMilli()
	want := map[string]destinations.ClickID{
		"gclid": {Value: "Cj0KCQ_g-1", At: now}, "gbraid": {Value: "0AAAAA_gb", At: now}, "wbraid": {Value: "CkQK_wb", At: now},
		"ttclid": {Value: "E.C.P.Ct0_tt+=", At: now}, "ScCid": {Value: "sc-9f2", At: now}, "epik": {Value: "dj0yJnU9_ep", At: now},
		"rdt_cid": {Value: "1234_rdt", At: now}, "li_fat_id": {Value: "4c5d-li", At: now}, "msclkid": {Value: "ab12cd34ms", At: now},
	}
	ev := tg.q.all()[0]
	if !reflect.DeepEqual(ev.Context.ClickIDs, want) {
		t.Errorf("click ids\n got %v\nwant %v", ev.Context.ClickIDs, want)
	}
	wantCookies := map[string]string{"_ttp": "ttp-1", "_scid": "7b1e-scid", "_epik": "ep-cookie",
		"_rdt_uuid": "1700000000000.9e1f", "_ga": "GA1.1.123.456", "_gcl_aw": "GCL." + strconv.FormatInt(testNow.Unix(), 10) + ".Cj0KCQ_g-1"}
	if !reflect.DeepEqual(ev.Context.Cookies, wantCookies) {
		t.Errorf("vendor cookies\n got %v\nwant %v", ev.Context.Cookies, wantCookies)
	}
	if ev.Context.VisitorID != "1772366400000.482913756104" {
		t.Errorf("visitor id %q, want the seed", ev.Context.VisitorID)
	}

	jar := cookiesOf(w)
	cid := jar["_tw_cid"]
	if cid == nil {
		t.Fatalf("no _tw_cid cookie; got %v", jar)
	}
	q, err := url.ParseQuery(cid.Value)
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range want {
		if got := q.Get(name); got != strconv.FormatInt(id.At, 10)+"."+id.Value {
			t.Errorf("_tw_cid[%s] = %q", name, got)
		}
	}
	for _, c := range []struct {
		name, value string
		maxAge      int
	}{
		{"_tw_cid", cid.Value, 90 * 24 * 3600},
		{"_gcl_aw", wantCookies["_gcl_aw"], 90 * 24 * 3600},
		{"_tw_vid", "1772366400000.482913756104", 400 * 24 * 3600},
	} {
		got := jar[c.name]
		if got == nil || got.Value != c.value || got.MaxAge != c.maxAge || got.Domain != "shop.example" ||
			got.Path != "/" || got.HttpOnly || got.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s cookie = %+v; want %q for %ds on shop.example", c.name, got, c.value, c.maxAge)
		}
	}
	if jar["_fbc"] == nil || !strings.HasSuffix(jar["_fbc"].Value, ".IwAR_fb") {
		t.Errorf("_fbc = %v", jar["_fbc"])
	}
}

func TestClickIDsKeepFirstCaptureTime(t *testing.T) {
	tg := newTestGateway(t, nil)
	now := testNow.UnixMilli()
	day := int64(24 * time.Hour / time.Millisecond)
	stored := url.Values{
		"gclid":   {strconv.FormatInt(now-10*day, 10) + ".same-gclid"},
		"ttclid":  {strconv.FormatInt(now-2*day, 10) + ".old-ttclid"},
		"msclkid": {strconv.FormatInt(now-91*day, 10) + ".expired"},
		"epik":    {"garbage"},
		"bogus":   {strconv.FormatInt(now, 10) + ".x"},
	}.Encode()
	body := `{"url":"https://shop.example/p?gclid=same-gclid&ttclid=new-ttclid","events":[{"event_name":"PageView"}]}`
	w := tg.do("POST", "/collect", body, "Origin", "https://shop.example", "Cookie", "_tw_cid="+stored+"; _tw_vid=1772000000000.1234567890")
	if w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ev := tg.q.all()[0]
	want := map[string]destinations.ClickID{
		"gclid":  {Value: "same-gclid", At: now - 10*day}, // seen again: first capture time kept
		"ttclid": {Value: "new-ttclid", At: now},          // a new click replaces the old one
	}
	if !reflect.DeepEqual(ev.Context.ClickIDs, want) {
		t.Errorf("click ids\n got %v\nwant %v", ev.Context.ClickIDs, want)
	}
	if ev.Context.VisitorID != "1772000000000.1234567890" {
		t.Errorf("visitor id %q, want the cookie's", ev.Context.VisitorID)
	}
	jar := cookiesOf(w)
	if jar["_gcl_aw"] != nil {
		t.Errorf("_gcl_aw re-set for a gclid already kept: %v", jar["_gcl_aw"])
	}
	if q, _ := url.ParseQuery(jar["_tw_cid"].Value); len(q) != 2 {
		t.Errorf("_tw_cid = %q; want the two live ids only", jar["_tw_cid"].Value)
	}

	// From the referrer when the page URL has none.
	tg.do("POST", "/collect", `{"url":"https://shop.example/next","referrer":"https://shop.example/landing?li_fat_id=ref-li","events":[{"event_name":"PageView"}]}`,
		"Origin", "https://shop.example")
	if got := tg.q.all()[1].Context.ClickIDs["li_fat_id"]; got.Value != "ref-li" {
		t.Errorf("click id from the referrer = %+v", got)
	}
}

// TestConsentStripsIdentifiers: without marketing consent no identifier is
// queued and (without ad_storage) no cookie is set; the site's
// consent_denied_mode marks the event anonymous or not.
func TestConsentStripsIdentifiers(t *testing.T) {
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
		{ID: "drop", Domains: []string{"drop.example"}},
		{ID: "anon", Domains: []string{"anon.example"}, ConsentDeniedMode: model.ConsentDeniedAnonymous},
	}})
	if err != nil {
		t.Fatal(err)
	}
	user := `"user_data":{"em":"jane@example.com","ph":"+16505551212","external_id":"c-9","fn":"jane"}`
	tests := []struct {
		name, host, consent string
		cookies, ids, anon  bool
	}{
		{"granted", "drop.example", `{"ad_storage":"granted","ad_user_data":"granted"}`, true, true, false},
		{"ad_storage denied", "drop.example", `{"ad_storage":"denied","ad_user_data":"granted"}`, false, false, false},
		{"ad_user_data denied", "drop.example", `{"ad_storage":"granted","ad_user_data":"denied"}`, true, false, false},
		{"denied, anonymous site", "anon.example", `{"ad_storage":"denied","ad_user_data":"denied"}`, false, false, true},
		{"granted, anonymous site", "anon.example", `{"ad_storage":"granted","ad_user_data":"granted"}`, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{snap} })
			body := `{"vid":"1772366400000.482913756104","url":"https://` + tt.host + `/?gclid=G1&fbclid=F1","consent":` + tt.consent +
				`,"events":[{"event_name":"Purchase","custom_data":{"value":1,"currency":"EUR"},` + user + `}]}`
			w := tg.do("POST", "/collect", body, "Host", "t."+tt.host, "User-Agent", "UA/1", "Cookie", "_ttp=t1; _fbp=fb.1.1700000000000.123456789")
			if w.Code != http.StatusNoContent {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			ev := tg.q.all()[0]
			if got := len(w.Result().Cookies()) > 0; got != tt.cookies {
				t.Errorf("cookies set: %v, want %v (%v)", got, tt.cookies, w.Result().Cookies())
			}
			hasIDs := len(ev.UserData.Em) > 0 || ev.UserData.ClientIPAddress != "" || ev.UserData.Fbp != "" || ev.UserData.Fbc != "" ||
				len(ev.UserData.ExternalID) > 0 || len(ev.Context.ClickIDs) > 0 || len(ev.Context.Cookies) > 0 || ev.Context.VisitorID != ""
			if hasIDs != tt.ids {
				t.Errorf("identifiers on the event: %v, want %v: %+v %+v", hasIDs, tt.ids, ev.UserData, ev.Context)
			}
			if !tt.ids && !reflect.DeepEqual(ev.UserData, destinations.UserData{ClientUserAgent: "UA/1"}) {
				t.Errorf("user_data %+v; want the user agent only", ev.UserData)
			}
			if ev.Context.Anonymous != tt.anon {
				t.Errorf("anonymous = %v, want %v", ev.Context.Anonymous, tt.anon)
			}
		})
	}
}

// FuzzMayHoldParam: when mayHoldParam says a URL holds none of the click
// ids (or no fbclid), parsing it would have found none either, so skipping
// the parse changes nothing.
func FuzzMayHoldParam(f *testing.F) {
	for _, s := range []string{"https://shop.example/p?utm_source=x", "https://shop.example/?gclid=abc&x=1",
		"https://shop.example/?gcl%69d=abc", "https://shop.example/?fbclid=IwAR.1", "https://shop.example/?xfbclid=1&fbclid",
		"shop.example/?fbclid=a", "https://shop.example/#gclid=a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !mayHoldParam(raw, clickParams()...) {
			if u, err := url.Parse(raw); err == nil {
				q := u.Query()
				for _, name := range clickParams() {
					if validClickID(q.Get(name)) {
						t.Fatalf("%q holds %s, but mayHoldParam said no", raw, name)
					}
				}
			}
		}
		if !mayHoldParam(raw, "fbclid") {
			if u, err := url.Parse("http://" + raw); err == nil && len(u.Query()["fbclid"]) > 0 && u.Query()["fbclid"][len(u.Query()["fbclid"])-1] != "" {
				t.Fatalf("%q holds an fbclid, but mayHoldParam said no", raw)
			}
			if u, err := url.Parse(raw); err == nil && u.Query().Get("fbclid") != "" {
				t.Fatalf("%q holds an fbclid, but mayHoldParam said no", raw)
			}
		}
	})
}

// mayHoldParam finds a name followed by '=' anywhere, or any escape, and
// nothing else.
func TestMayHoldParam(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://shop.example/p?utm_source=x&utm_medium=cpc": false,
		"https://shop.example/?gclid=abc":                    true,
		"https://shop.example/?x=1&fbclid=IwAR":              true,
		"https://shop.example/?fbclid":                       false,
		"https://shop.example/?fbclid&x=1":                   false,
		"https://shop.example/?xfbclid=1":                    true, // the parse decides
		"https://shop.example/?a=fbclid":                     false,
		"https://shop.example/?a=b=gclid=":                   true,
		"https://shop.example/?gcl%69d=abc":                  true,
		"=":                                                  false,
		"":                                                   false,
	} {
		if got := mayHoldParam(raw, "fbclid", "gclid"); got != want {
			t.Errorf("mayHoldParam(%q) = %v; want %v", raw, got, want)
		}
	}
}
