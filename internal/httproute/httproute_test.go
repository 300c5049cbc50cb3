package httproute

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/mux"
)

func TestAllowed(t *testing.T) {
	nop := http.NotFoundHandler()
	r := mux.NewRouter()
	r.Path("/a").Methods(http.MethodPost).Handler(nop).Name("a post")
	r.Path("/a").Methods(http.MethodOptions, http.MethodPost).Handler(nop)
	r.Path("/b/{id}").Methods(http.MethodGet, http.MethodHead).Handler(nop).Name("b get")
	r.Path("/b/{id}").Methods(http.MethodDelete).Handler(nop)
	r.Path("/c").Handler(nop) // any method: never in Allow
	sub := r.PathPrefix("/v1").Subrouter()
	sub.Path("/d").Methods(http.MethodPut).Handler(nop).Name("d put")
	for _, c := range []struct {
		method, path string
		want         []string
		first        string
	}{
		{"GET", "/a", []string{"POST", "OPTIONS"}, "a post"},
		{"PATCH", "/b/7", []string{"GET", "DELETE"}, "b get"},
		{"GET", "/v1/d", []string{"PUT"}, "d put"},
		{"GET", "/b", nil, ""},
		{"GET", "/c", nil, ""},
		{"GET", "/d", nil, ""},
	} {
		methods, first := Allowed(r, httptest.NewRequest(c.method, c.path, nil))
		name := ""
		if first != nil {
			name = first.GetName()
		}
		if !slices.Equal(methods, c.want) || name != c.first {
			t.Errorf("%s %s: %v %q; want %v %q", c.method, c.path, methods, name, c.want, c.first)
		}
	}
}
