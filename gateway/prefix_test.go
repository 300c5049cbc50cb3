package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/tagway/tagway/routing/model"
)

func TestDefaultPaths(t *testing.T) {
	script, collect := DefaultPaths([]byte("secret-1"), "shop")
	if !regexp.MustCompile(`^/[0-9a-f]{8}/[0-9a-f]{8}\.js$`).MatchString(script) ||
		!regexp.MustCompile(`^/[0-9a-f]{8}/[0-9a-f]{8}$`).MatchString(collect) {
		t.Fatalf("paths %q %q", script, collect)
	}
	if !pathPatternOK(script) || !pathPatternOK(collect) {
		t.Errorf("default paths are not valid site paths: %q %q", script, collect)
	}
	if s2, c2 := DefaultPaths([]byte("secret-1"), "shop"); s2 != script || c2 != collect {
		t.Error("not deterministic: replicas would serve different paths")
	}
	seen := map[string]bool{script: true}
	for _, other := range [][2]string{{"secret-2", "shop"}, {"secret-1", "shop2"}, {"", "shop"}} {
		s, _ := DefaultPaths([]byte(other[0]), other[1])
		if seen[s] {
			t.Errorf("DefaultPaths(%q, %q) repeats %s", other[0], other[1], s)
		}
		seen[s] = true
	}
}

// pathPatternOK checks a path against the config model's rules.
func pathPatternOK(p string) bool {
	_, err := model.NewSnapshot(model.Config{Sites: []model.Site{{ID: "a", Domains: []string{"a.example"}, ScriptPath: p}}})
	return err == nil
}

func TestRelativePath(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"/tw.js", "/collect", "collect"},
		{"/tw/tw.js", "/tw/collect", "collect"},
		{"/a/s.js", "/a/e", "e"},
		{"/a/s.js", "/b/c", "../b/c"},
		{"/a/b/s.js", "/a/c", "../c"},
		{"/a/b/s.js", "/a/b", "../b"},
		{"/s.js", "/a/b/c", "a/b/c"},
		{"/x/y/z/s.js", "/c", "../../../c"},
	} {
		got := relativePath(c.from, c.to)
		if got != c.want {
			t.Errorf("relativePath(%q, %q) = %q, want %q", c.from, c.to, got, c.want)
		}
		// It resolves as a browser resolves it, under any prefix.
		for _, prefix := range []string{"", "/tw", "/deep/mount"} {
			base, _ := url.Parse("https://shop.example" + prefix + c.from)
			ref, _ := url.Parse(got)
			if r := base.ResolveReference(ref).Path; r != prefix+c.to {
				t.Errorf("%q against %s resolves to %s, want %s", got, base, r, prefix+c.to)
			}
		}
	}
}

// fakeSiteScripts answers with the options it was asked for.
type fakeSiteScripts struct{ fakeScripts }

func (fakeSiteScripts) ForSite(o ScriptOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(o)
	})
}

var _ SiteScripts = fakeSiteScripts{}

func TestSitePathsAndScriptOptions(t *testing.T) {
	off := false
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{
		{ID: "shop", Domains: []string{"shop.example"}, ConsentDefault: model.ConsentWait, GA4DataLayer: true},
		{ID: "custom", Domains: []string{"custom.example"}, ScriptPath: "/assets/app.js", CollectPath: "/api/e", SPAPageViews: &off},
	}})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("s3cret")
	tg := newTestGateway(t, func(o *Options) {
		o.Sites = staticSites{snap}
		o.Script = fakeSiteScripts{}
		o.PathSecret = secret
		o.Static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static") })
	})
	shopScript, shopCollect := DefaultPaths(secret, "shop")
	customScript, customCollect := DefaultPaths(secret, "custom")
	for _, c := range []struct {
		host, path string
		want       ScriptOptions
	}{
		{"t.shop.example", "/tw.js", ScriptOptions{"wait", "collect", true, true}},
		{"t.shop.example", shopScript, ScriptOptions{"wait", shopCollect[10:], true, true}},
		{"custom.example", "/tw.js", ScriptOptions{"granted", "collect", false, false}},
		{"custom.example", "/assets/app.js", ScriptOptions{"granted", "../api/e", false, false}},
		{"custom.example", customScript, ScriptOptions{"granted", "../api/e", false, false}},
	} {
		w := tg.do("GET", c.path, "", "Host", c.host)
		var got ScriptOptions
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got != c.want {
			t.Errorf("GET %s%s = %q; want %+v", c.host, c.path, w.Body, c.want)
		}
	}
	// A site's paths are its own: another host gets the static pages.
	if w := tg.do("GET", shopScript, "", "Host", "custom.example"); w.Body.String() != "static" {
		t.Errorf("another site's default script path = %q", w.Body)
	}
	for _, c := range []struct{ host, path, site string }{
		{"t.shop.example", shopCollect, "shop"},
		{"custom.example", "/api/e", "custom"},
		{"custom.example", customCollect, "custom"},
	} {
		n := len(tg.q.all())
		w := tg.do("POST", c.path, `{"events":[{"event_name":"PageView"}]}`, "Host", c.host)
		if w.Code != http.StatusNoContent || len(tg.q.all()) != n+1 || tg.q.all()[n].Context.SiteID != c.site {
			t.Errorf("POST %s%s = %d %s", c.host, c.path, w.Code, w.Body)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) {
		o.Script = fakeScripts{}
		o.BasePath = "/shop-tags/"
		o.Static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "static "+r.URL.Path) })
	})
	for _, c := range []struct {
		name, path string
		hdr        []string
		want       string
	}{
		{"configured base path", "/shop-tags/tw.js", nil, "script granted"},
		{"without the prefix", "/tw.js", nil, "script granted"},
		{"base path alone", "/shop-tags", nil, "static /"},
		{"a longer name is no prefix", "/shop-tagsx/tw.js", nil, "static /shop-tagsx/tw.js"},
		{"X-Forwarded-Prefix from a trusted proxy", "/tw/tw.js", []string{"RemoteAddr", "10.0.0.5:999", "X-Forwarded-Prefix", "/tw"}, "script granted"},
		{"X-Forwarded-Prefix from a stranger", "/tw/tw.js", []string{"X-Forwarded-Prefix", "/tw"}, "static /tw/tw.js"},
	} {
		if w := tg.do("GET", c.path, "", c.hdr...); w.Body.String() != c.want {
			t.Errorf("%s: GET %s = %q, want %q", c.name, c.path, w.Body, c.want)
		}
	}
	w := tg.do("POST", "/shop-tags/collect", `{"events":[{"event_name":"PageView"}]}`, "Origin", "https://shop.example")
	if w.Code != http.StatusNoContent || len(tg.q.all()) != 1 {
		t.Fatalf("POST below the base path = %d %s", w.Code, w.Body)
	}
}
