// Package httproute holds what the gateway's and the admin API's
// gorilla/mux routers share: the methods a path takes, for the Allow
// header of a 405.
package httproute

import (
	"net/http"
	"slices"

	"github.com/gorilla/mux"
)

// Allowed returns the methods of the routes of router that take r in
// every other respect (path, host, custom matchers), in the order the
// routes were added and without HEAD, which goes with GET; and the first
// such route. Both are empty when no route takes r's path. It matches r
// once per route, so it belongs on the 405 path, not on every request.
func Allowed(router *mux.Router, r *http.Request) (methods []string, first *mux.Route) {
	_ = router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		ms, err := route.GetMethods()
		if err != nil || len(ms) == 0 {
			return nil
		}
		probe := r.WithContext(r.Context())
		probe.Method = ms[0]
		if !route.Match(probe, &mux.RouteMatch{}) {
			return nil
		}
		if first == nil {
			first = route
		}
		for _, m := range ms {
			if m != http.MethodHead && !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		return nil
	})
	return methods, first
}
