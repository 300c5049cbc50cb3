package gateway

import (
	"net/http"
	"testing"
)

func TestMounts(t *testing.T) {
	mounted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Mounted-Path", r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	tg := newTestGateway(t, func(o *Options) {
		o.BasePath = "/tw"
		o.Mounts = []Mount{{Path: "/admin/v1", Handler: mounted}}
	})
	for _, c := range []struct {
		path     string
		hdr      []string
		mountSaw string // "" when the request must not reach the mount
	}{
		{path: "/admin/v1", mountSaw: "/admin/v1"},
		{path: "/admin/v1/sites", mountSaw: "/admin/v1/sites"},
		{path: "/tw/admin/v1/sites/shop", mountSaw: "/admin/v1/sites/shop"},
		{path: "/proxy/admin/v1/sites", hdr: []string{"X-Forwarded-Prefix", "/proxy"}}, // not a trusted proxy
		{path: "/proxy/admin/v1/sites", hdr: []string{"X-Forwarded-Prefix", "/proxy", "RemoteAddr", "10.1.2.3:4000"}, mountSaw: "/admin/v1/sites"},
		{path: "/admin/v10"},
		{path: "/admin"},
		{path: "/tw/healthz"},
	} {
		rec := tg.do(http.MethodGet, c.path, "", c.hdr...)
		got := rec.Header().Get("X-Mounted-Path")
		if got != c.mountSaw || (got != "") != (rec.Code == http.StatusTeapot) {
			t.Errorf("GET %s %v: status %d, the mount saw %q; want %q", c.path, c.hdr, rec.Code, got, c.mountSaw)
		}
	}
	if rec := tg.do(http.MethodGet, "/tw/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("/tw/healthz next to a mount: %d", rec.Code)
	}

	for _, bad := range []Mount{{Path: "admin", Handler: mounted}, {Path: "/admin/", Handler: mounted}, {Path: "/admin"}} {
		_, err := New(Options{Enqueuer: &fakeQueue{}, Sites: staticSites{testSnapshot(t)}, Mounts: []Mount{bad}})
		if err == nil {
			t.Errorf("mount %+v accepted", bad)
		}
	}
}
