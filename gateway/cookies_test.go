package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestScopeFor(t *testing.T) {
	tests := []struct {
		host   string
		domain string
		index  int
	}{
		{"t.shop.co.uk", "shop.co.uk", 2},
		{"shop.co.uk", "shop.co.uk", 2},
		{"shop.example", "shop.example", 1},
		{"t.shop.example", "shop.example", 1},
		{"a.b.shop.com", "shop.com", 1},
		{"T.Shop.Example.", "shop.example", 1},
		{"myshop.github.io", "myshop.github.io", 2}, // private-section suffix
		{"localhost", "", 0},
		{"t.localhost", "", 0},
		{"127.0.0.1", "", 0},
		{"::1", "", 0},
		{"2001:db8::1", "", 0},
		{"intranet", "", 0},
		{"co.uk", "", 1}, // a public suffix itself: host-only
	}
	for _, tt := range tests {
		got := scopeFor(tt.host)
		if got.Domain != tt.domain || got.Index != tt.index {
			t.Errorf("scopeFor(%q) = %+v; want domain %q index %d", tt.host, got, tt.domain, tt.index)
		}
	}
}

func TestParseMetaCookie(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		payload string
	}{
		{"fb.1.1700000000000.1234567890", true, "1234567890"},
		{"fb.2.1700000000000.IwAR0aBcD", true, "IwAR0aBcD"},
		{"fb.1.1700000000000.IwAR0aBcD.AQQAAQMC", true, "IwAR0aBcD"},
		{"fb.0.1.x", true, "x"},
		{"fb.1.1700000000000", false, ""},
		{"fb.1.1700000000000.", false, ""},
		{"fc.1.1700000000000.123", false, ""},
		{"fb.x.1700000000000.123", false, ""},
		{"fb.1.17e11.123", false, ""},
		{"fb.1.1700000000000.1.2.3", false, ""},
		{"fb.1.1700000000000.123.", false, ""},
		{"", false, ""},
		{"garbage", false, ""},
	}
	for _, tt := range tests {
		c, ok := parseMetaCookie(tt.in)
		if ok != tt.ok || c.Payload != tt.payload {
			t.Errorf("parseMetaCookie(%q) = %+v, %v; want ok %v payload %q", tt.in, c, ok, tt.ok, tt.payload)
		}
	}
}

// collectCookies posts one PageView and returns the cookies set and the
// enqueued event's fbp/fbc.
func collectCookies(t *testing.T, tg *testGW, body string, hdr ...string) (map[string]*http.Cookie, string, string) {
	t.Helper()
	w := tg.do("POST", "/collect", body, hdr...)
	if w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	out := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		out[c.Name] = c
	}
	evs := tg.q.all()
	ev := evs[len(evs)-1]
	for _, raw := range w.Header().Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(raw), "httponly") {
			t.Errorf("cookie is HttpOnly: %s", raw)
		}
	}
	return out, ev.UserData.Fbp, ev.UserData.Fbc
}

func TestCookies(t *testing.T) {
	nowMs := testNow.UnixMilli()
	page := func(url string) string {
		return `{"vid":"1772366400000.482913756104","url":"` + url + `","events":[{"event_name":"PageView"}]}`
	}
	tests := []struct {
		name     string
		body     string
		hdr      []string
		fbp, fbc string // wanted values on the event and in the cookies
		domain   string
		secure   bool
	}{
		{name: "new visitor from vid", body: page("https://shop.example/"), hdr: []string{"Host", "t.shop.example"},
			fbp: "fb.1.1772366400000.482913756104", domain: "shop.example"},
		{name: "co.uk index", body: page("https://shop.co.uk/"), hdr: []string{"Host", "t.shop.co.uk"},
			fbp: "fb.2.1772366400000.482913756104", domain: "shop.co.uk"},
		{name: "localhost host-only", body: page("http://localhost/"), hdr: []string{"Host", "localhost:8080"},
			fbp: "fb.0.1772366400000.482913756104"},
		{name: "IP host-only", body: page("http://127.0.0.1/"), hdr: []string{"Host", "127.0.0.1:8080"},
			fbp: "fb.0.1772366400000.482913756104"},
		{name: "existing fbp kept", body: page("https://shop.example/"),
			hdr: []string{"Cookie", "_fbp=fb.1.1600000000000.999999999"},
			fbp: "fb.1.1600000000000.999999999", domain: "shop.example"},
		{name: "invalid fbp replaced", body: page("https://shop.example/"),
			hdr: []string{"Cookie", "_fbp=fb.1.notatime.999"},
			fbp: "fb.1.1772366400000.482913756104", domain: "shop.example"},
		{name: "fbclid sets fbc, case kept", body: page("https://shop.example/p?fbclid=IwAR0aBcD_xY-z"),
			fbp: "fb.1.1772366400000.482913756104", fbc: fmt.Sprintf("fb.1.%d.IwAR0aBcD_xY-z", nowMs), domain: "shop.example"},
		{name: "same fbclid keeps fbc", body: page("https://shop.example/p?fbclid=IwAR0aBcD"),
			hdr: []string{"Cookie", "_fbc=fb.1.1600000000000.IwAR0aBcD"},
			fbp: "fb.1.1772366400000.482913756104", fbc: "fb.1.1600000000000.IwAR0aBcD", domain: "shop.example"},
		{name: "same fbclid with appendix keeps fbc", body: page("https://shop.example/p?fbclid=IwAR0aBcD"),
			hdr: []string{"Cookie", "_fbc=fb.1.1600000000000.IwAR0aBcD.AQQAAQMC"},
			fbp: "fb.1.1772366400000.482913756104", fbc: "fb.1.1600000000000.IwAR0aBcD.AQQAAQMC", domain: "shop.example"},
		{name: "fbclid differing only in case replaces fbc", body: page("https://shop.example/p?fbclid=iwar0abcd"),
			hdr: []string{"Cookie", "_fbc=fb.1.1600000000000.IwAR0aBcD"},
			fbp: "fb.1.1772366400000.482913756104", fbc: fmt.Sprintf("fb.1.%d.iwar0abcd", nowMs), domain: "shop.example"},
		{name: "no fbclid keeps fbc", body: page("https://shop.example/p"),
			hdr: []string{"Cookie", "_fbc=fb.1.1600000000000.IwAR0aBcD"},
			fbp: "fb.1.1772366400000.482913756104", fbc: "fb.1.1600000000000.IwAR0aBcD", domain: "shop.example"},
		{name: "invalid fbc replaced by fbclid", body: page("https://shop.example/p?fbclid=New1"),
			hdr: []string{"Cookie", "_fbc=fb.1.x.Old"},
			fbp: "fb.1.1772366400000.482913756104", fbc: fmt.Sprintf("fb.1.%d.New1", nowMs), domain: "shop.example"},
		{name: "fbclid from Referer", body: page("https://shop.example/p"),
			hdr: []string{"Referer", "https://shop.example/landing?fbclid=FromRef"},
			fbp: "fb.1.1772366400000.482913756104", fbc: fmt.Sprintf("fb.1.%d.FromRef", nowMs), domain: "shop.example"},
		{name: "unsafe fbclid ignored", body: page("https://shop.example/p?fbclid=a%3Bb"),
			fbp: "fb.1.1772366400000.482913756104", domain: "shop.example"},
		{name: "https via TLS-terminating trusted proxy", body: page("https://shop.example/"),
			hdr: []string{"RemoteAddr", "10.0.0.2:1234", "X-Forwarded-Proto", "https"},
			fbp: "fb.1.1772366400000.482913756104", domain: "shop.example", secure: true},
		{name: "X-Forwarded-Proto from an untrusted peer ignored", body: page("https://shop.example/"),
			hdr: []string{"X-Forwarded-Proto", "https"},
			fbp: "fb.1.1772366400000.482913756104", domain: "shop.example"},
		{name: "trusted X-Forwarded-Host decides the domain", body: page("https://shop.co.uk/"),
			hdr: []string{"RemoteAddr", "10.0.0.2:1234", "X-Forwarded-Host", "t.shop.co.uk", "Host", "gateway:8080"},
			fbp: "fb.2.1772366400000.482913756104", domain: "shop.co.uk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			cookies, fbp, fbc := collectCookies(t, tg, tt.body, tt.hdr...)
			if fbp != tt.fbp || fbc != tt.fbc {
				t.Errorf("event fbp %q fbc %q; want %q %q", fbp, fbc, tt.fbp, tt.fbc)
			}
			for name, want := range map[string]string{"_fbp": tt.fbp, "_fbc": tt.fbc} {
				c := cookies[name]
				if want == "" {
					if c != nil {
						t.Errorf("%s set to %q; want none", name, c.Value)
					}
					continue
				}
				if c == nil {
					t.Fatalf("%s not set", name)
				}
				if c.Value != want || c.Domain != tt.domain || c.Path != "/" || c.MaxAge != 34560000 ||
					c.SameSite != http.SameSiteLaxMode || c.Secure != tt.secure || c.HttpOnly {
					t.Errorf("%s = %+v; want value %q domain %q secure %v", name, c, want, tt.domain, tt.secure)
				}
			}
		})
	}
}

func TestCookiesRandomWithoutVID(t *testing.T) {
	tg := newTestGateway(t, nil)
	seen := map[string]bool{}
	for _, vid := range []string{"", "garbage", "1772366400000.123", "1772366400000.12345678901234567890", "99999999999999.1234567890", "1.1234567890"} {
		_, fbp, _ := collectCookies(t, tg, `{"vid":"`+vid+`","events":[{"event_name":"PageView"}]}`)
		parts := strings.Split(fbp, ".")
		if len(parts) != 4 || parts[0] != "fb" || parts[1] != "1" || parts[2] != fmt.Sprint(testNow.UnixMilli()) || len(parts[3]) != 18 || !digits(parts[3]) {
			t.Errorf("vid %q: fbp %q; want fb.1.<now ms>.<18 random digits>", vid, fbp)
		}
		if seen[fbp] {
			t.Errorf("fbp %q minted twice", fbp)
		}
		seen[fbp] = true
	}
}

func TestNoCookiesWithoutAdStorage(t *testing.T) {
	tg := newTestGateway(t, nil)
	w := tg.do("POST", "/collect",
		`{"vid":"1772366400000.482913756104","url":"https://shop.example/?fbclid=X1","consent":{"ad_storage":"denied"},`+
			`"events":[{"event_name":"PageView","user_data":{"fbp":"fb.1.1.2","fbc":"fb.1.1.3"}}]}`,
		"Cookie", "_fbp=fb.1.1600000000000.999999999; _fbc=fb.1.1600000000000.Old")
	if w.Code != http.StatusNoContent {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if sc := w.Header().Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("Set-Cookie without ad_storage: %q", sc)
	}
	if ud := tg.q.all()[0].UserData; ud.Fbp != "" || ud.Fbc != "" {
		t.Errorf("fbp/fbc on the event without ad_storage: %+v", ud)
	}
}

// Two concurrent first requests of a brand-new visitor (same vid, no
// cookie) must set one and the same _fbp.
func TestNewVisitorRaceConvergesOnOneFbp(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := `{"vid":"1772366400000.482913756104","url":"https://shop.example/","events":[{"event_name":"PageView"}]}`
	const n = 2
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		values []string
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w := tg.do("POST", "/collect", body, "Origin", "https://shop.example")
			for _, c := range w.Result().Cookies() {
				if c.Name == "_fbp" {
					mu.Lock()
					values = append(values, c.Value)
					mu.Unlock()
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(values) != n || values[0] != values[1] {
		t.Fatalf("racing requests set _fbp %q; want %d identical values", values, n)
	}
	evs := tg.q.all()
	if len(evs) != n || evs[0].UserData.Fbp != values[0] || evs[1].UserData.Fbp != values[0] {
		t.Fatalf("events carry fbp %q / %q; want %q", evs[0].UserData.Fbp, evs[1].UserData.Fbp, values[0])
	}
}

// TestCookieLine holds cookieTarget.line to (*http.Cookie).String, the
// rendering it replaces on the hot path, for the cookies the gateway sets
// and for shapes that must fall back to String.
func TestCookieLine(t *testing.T) {
	for _, host := range []string{"t.shop.example", "shop.co.uk", "127.0.0.1", "localhost", "co.uk", "[::1]"} {
		for _, secure := range []bool{false, true} {
			tg := cookieTarget{scope: scopeFor(host), secure: secure, maxAge: 400 * 24 * time.Hour}
			cookies := []http.Cookie{
				tg.cookie(cookieFbp, "fb.1.1764300000000.123456789012", tg.maxAge),
				tg.cookie(cookieFbc, "fb.1.1764300000000.IwAR2x_-abc", 90*24*time.Hour),
				tg.cookie(cookieVisitor, "1764300000000.123456789012", time.Second),
				tg.cookie("_tw_cid", "eyJnY2xpZCI6eyJ2IjoiYWJjIn19", tg.maxAge),
				// Fall back to String: quoted, sanitized, other shapes.
				tg.cookie("_x", "a b", tg.maxAge),
				tg.cookie("_x", "a,b", tg.maxAge),
				tg.cookie("_x", `a"b;c\d`, tg.maxAge),
				tg.cookie("_x", "é", tg.maxAge),
				tg.cookie("bad name", "v", tg.maxAge),
				tg.cookie("_x", "v", 0),
				{Name: "_x", Value: "v", Path: "/", MaxAge: 5, HttpOnly: true, SameSite: http.SameSiteLaxMode},
				{Name: "_x", Value: "v", Path: "/p", MaxAge: 5, SameSite: http.SameSiteLaxMode},
				{Name: "_x", Value: "v", Domain: "other.example", Path: "/", MaxAge: 5, SameSite: http.SameSiteLaxMode},
				{Name: "_x", Value: "v", Path: "/", MaxAge: 5, SameSite: http.SameSiteStrictMode, Secure: secure},
				{Name: "_x", Value: "v", Path: "/", MaxAge: 5, Expires: time.Unix(1e9, 0), SameSite: http.SameSiteLaxMode},
			}
			for _, c := range cookies {
				if got, want := tg.line(&c), c.String(); got != want {
					t.Errorf("%s secure=%v: line(%+v)\n got %q\nwant %q", host, secure, c, got, want)
				}
			}
			// setCookies: a header per cookie String renders, in order,
			// after any already there, as http.SetCookie adds them.
			h, want := http.Header{}, httptest.NewRecorder()
			h.Add("Set-Cookie", "a=1")
			want.Header().Add("Set-Cookie", "a=1")
			tg.setCookies(h, cookies[:5], nil, cookies[5:])
			for i := range cookies {
				http.SetCookie(want, &cookies[i])
			}
			if !slices.Equal(h["Set-Cookie"], want.Header()["Set-Cookie"]) {
				t.Errorf("%s secure=%v: setCookies\n got %q\nwant %q", host, secure, h["Set-Cookie"], want.Header()["Set-Cookie"])
			}
		}
	}
}

// FuzzCookieLine checks line against String for any value and domain.
func FuzzCookieLine(f *testing.F) {
	f.Add("_fbp", "fb.1.1764300000000.123456789012", "shop.example", 34560000, true)
	f.Add("_tw_vid", "a b", "", 1, false)
	f.Add("_fbc", "v", "-bad-.example", 7, false)
	f.Fuzz(func(t *testing.T, name, value, domain string, maxAge int, secure bool) {
		tg := cookieTarget{scope: cookieScope{Domain: domain}.withAttr(), secure: secure}
		c := tg.cookie(name, value, time.Duration(maxAge)*time.Second)
		if got, want := tg.line(&c), c.String(); got != want {
			t.Fatalf("line %q, String %q", got, want)
		}
	})
}

// cookieValue finds what Request.Cookie finds, and requestCookie what it
// found when it split the header with strings.Split.
func TestCookieLookups(t *testing.T) {
	headers := [][]string{
		nil,
		{""},
		{"_fbp=fb.1.1.2"},
		{" _fbp = fb.1.1.2 ; _fbc=fb.1.2.abc"},
		{`_tw_vid="1764300000000.123456789012"`},
		{`_tw_vid="unterminated`, "_tw_vid=second"},
		{"_ga=bad;value\x7f", "_ga=GA1.2.3.4"},
		{"_ga=a b", "_ga=ok"},
		{"_fbp=%66b.1.1.2; _fbp=last"},
		{"_fbp=%zz"},
		{"_fbp"},
		{";;; _fbp=x ;;"},
		{"\t_fbp=x\t"},
		{"_fbp=x\u00a0"},
		{"_tw_cid=gclid%3D1.abc"},
		{strings.Repeat("a=b;", 3000) + "_fbp=x"},
	}
	names := []string{cookieFbp, cookieFbc, cookieVisitor, cookieClickIDs, "_ga"}
	for _, lines := range headers {
		h := http.Header{}
		for _, l := range lines {
			h.Add("Cookie", l)
		}
		r := &http.Request{Header: h}
		for _, name := range names {
			checkCookieLookups(t, r, name)
		}
	}
}

func checkCookieLookups(t *testing.T, r *http.Request, name string) {
	t.Helper()
	want, err := r.Cookie(name)
	got, ok := cookieValue(r.Header, name)
	if ok != (err == nil) || (ok && got != want.Value) {
		t.Errorf("%q in %q: cookieValue %q %v; Request.Cookie %+v %v", name, r.Header["Cookie"], got, ok, want, err)
	}
	v, found := requestCookie(r, name)
	wv, wfound := requestCookieSplit(r, name)
	if v != wv || found != wfound {
		t.Errorf("%q in %q: requestCookie %q %v; with strings.Split %q %v", name, r.Header["Cookie"], v, found, wv, wfound)
	}
}

// requestCookieSplit is requestCookie as it was written first, the oracle
// of its allocation-free form.
func requestCookieSplit(r *http.Request, name string) (string, bool) {
	var (
		value string
		found bool
	)
	for _, line := range r.Header.Values("Cookie") {
		for _, pair := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			d, err := url.PathUnescape(strings.TrimSpace(v))
			if err != nil {
				value, found = "", false
				continue
			}
			value, found = d, true
		}
	}
	return value, found && value != ""
}

func FuzzCookieLookups(f *testing.F) {
	f.Add(" _fbp = fb.1.1.2 ; _fbc=fb.1.2.abc", `_tw_vid="1.2"`, "_fbp")
	f.Add("_ga=a b", "_ga=%zz", "_ga")
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		if !cookieToken(name) {
			return // the gateway only looks up token names
		}
		h := http.Header{}
		h.Add("Cookie", line1)
		if line2 != "" {
			h.Add("Cookie", line2)
		}
		checkCookieLookups(t, &http.Request{Header: h}, name)
	})
}
