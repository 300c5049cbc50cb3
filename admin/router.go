package admin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/tagway/tagway/internal/httproute"
)

// Endpoint is one method and path of the admin API; {id} stands for a
// resource id.
type Endpoint struct {
	Method string
	Path   string // "/admin/v1/sites/{id}/deadletters"
}

// Endpoints lists every endpoint of the admin API, read from its router
// (for documentation and tests).
func Endpoints() []Endpoint {
	var out []Endpoint
	_ = (&API{}).router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		methods, _ := route.GetMethods()
		path, _ := route.GetPathTemplate()
		for _, m := range methods {
			out = append(out, Endpoint{Method: m, Path: path})
		}
		return nil
	})
	return out
}

// handlerFunc serves an authenticated request of principal p.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p principal)

// router routes the admin API under Prefix, one named route per method
// and path ("GET /admin/v1/sites/{id}"). Authentication is not its job:
// authenticated wraps it whole, 404s and 405s included.
func (a *API) router() *mux.Router {
	r := mux.NewRouter()
	v1 := r.PathPrefix(Prefix).Subrouter()
	add := func(method, path string, serve handlerFunc) {
		v1.Path(path).Methods(method).Name(method + " " + Prefix + path).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, principalOf(r))
		})
	}
	withID := func(serve func(w http.ResponseWriter, r *http.Request, p principal, id string)) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, p principal) { serve(w, r, p, mux.Vars(r)["id"]) }
	}
	addResource(a, add, a.tenantKind())
	addResource(a, add, a.siteKind())
	addResource(a, add, a.destinationKind())
	addResource(a, add, a.routeKind())
	addResource(a, add, a.keyKind())
	add(http.MethodPost, "/sites/{id}/ingest-keys", withID(a.rotateIngestKey))
	add(http.MethodPost, "/sites/{id}/test-event", withID(a.testEvent))
	deadLetters := func(action string) handlerFunc {
		return withID(func(w http.ResponseWriter, r *http.Request, p principal, id string) {
			a.deadLetters(w, r, p, id, action)
		})
	}
	add(http.MethodGet, "/sites/{id}/deadletters", deadLetters(""))
	add(http.MethodPost, "/sites/{id}/deadletters/replay", deadLetters("replay"))
	add(http.MethodPost, "/sites/{id}/deadletters/drop", deadLetters("drop"))
	add(http.MethodGet, "/routes/{id}/test-results", withID(a.testResults))
	add(http.MethodGet, "/audit", a.audit)
	add(http.MethodPost, "/apply", a.apply)
	add(http.MethodGet, "/export", a.export)
	add(http.MethodPost, "/secrets/reencrypt", a.reencrypt)

	// A path no route takes is 404; a path that routes take with other
	// methods is 405 whatever the ids, so that the answer says nothing
	// about them. Both handlers decide, as mux v1.8.1 reports a method
	// mismatch as not found when a later route shares a matcher (here the
	// subrouter's prefix).
	noRoute := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		methods, _ := httproute.Allowed(r, req)
		if len(methods) == 0 {
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint (or method) under " + Prefix})
			return
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, errMethod)
	})
	r.NotFoundHandler, r.MethodNotAllowedHandler = noRoute, noRoute
	return r
}

// principalKey is the context key of the authenticated principal.
type principalKey struct{}

// principalOf returns the principal authenticated set on r's context.
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// authenticated serves next only to a request with a valid bearer token,
// whatever its path or method, with the principal in its context; it
// answers 503 while the API is disabled and 429 to a client the
// AuthLimiter holds back. Changes are logged with their actor.
func (a *API) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if a.root == nil {
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "admin_disabled",
				Message: "the admin API is disabled: set TAGWAY_ADMIN_TOKEN on the gateway to enable it"})
			return
		}
		if a.limit != nil {
			if wait, ok := a.limit.Allow(a.addr(r)); !ok {
				writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: "too_many_failures",
					RetryAfter: int((wait + time.Second - 1) / time.Second),
					Message:    "too many requests with a wrong token from this address; wait for Retry-After"})
				return
			}
		}
		p, e := a.authenticate(r)
		if e != nil {
			if e.Status == http.StatusUnauthorized && a.limit != nil {
				a.limit.Fail(a.addr(r))
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tagway-admin"`)
			writeError(w, e)
			return
		}
		rw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.log.Info("admin request", "actor", p.id, "tenant", p.tenant, "method", r.Method, "path", r.URL.Path, "status", rw.status)
		}
	})
}

// statusRecorder records the status of an answer for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
