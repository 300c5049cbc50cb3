package admin

import (
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/gorilla/mux"
	"github.com/tagway/tagway/routing/config"
)

// resource is one kind of the admin API's resources (tenants, sites,
// destinations, routes, API keys): where they are stored and the rules of
// each. The endpoints of every kind are the same handlers: list and create
// on /<plural>, read, replace and delete on /<plural>/{id}.
type resource[T any] struct {
	kind   config.Kind
	plural string // the collection's path segment and list name
	items  func(st *config.State) *[]T
	id     func(T) string
	// setID gives a PUT body the id of its path; nil: the kind has no PUT.
	setID func(*T, string)
	// role, when set, is the role check of every endpoint of the kind
	// (403): first on the collection, after the 404 on an item.
	role func(p principal) bool
	// visible reports whether p may see v; what p may not see is 404
	// exactly as a missing resource.
	visible func(st *config.State, p principal, v T) bool
	// prepare authorizes a write of v by p (old is the stored value on a
	// replace or delete) and fills defaults: 404 for what p cannot see, 403
	// for what p's role may not do.
	prepare func(a *API, st *config.State, p principal, v *T, old *T) *apiError
	// present is the client's view of v (secrets redacted).
	present func(a *API, v T) any
	// filter, when set, applies the list's query parameters.
	filter func(r *http.Request, v T) bool
	// decode, when set, reads a POST body into the resource it creates and
	// returns the answer, when the stored resource is not it (a new key's
	// token); by default the body is the resource.
	decode func(a *API, r *http.Request, p principal) (v T, answer any, e *apiError)
	// cascade, when set, removes what goes with a deleted resource.
	cascade func(st *config.State, id string)
}

// addResource adds the endpoints of kind s.
func addResource[T any](a *API, add func(method, path string, serve handlerFunc), s resource[T]) {
	item := func(serve func(a *API, w http.ResponseWriter, r *http.Request, p principal, id string)) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, p principal) { serve(a, w, r, p, mux.Vars(r)["id"]) }
	}
	add(http.MethodGet, "/"+s.plural, func(w http.ResponseWriter, r *http.Request, p principal) { s.list(a, w, r, p) })
	add(http.MethodPost, "/"+s.plural, func(w http.ResponseWriter, r *http.Request, p principal) { s.create(a, w, r, p) })
	add(http.MethodGet, "/"+s.plural+"/{id}", item(s.get))
	if s.setID != nil {
		add(http.MethodPut, "/"+s.plural+"/{id}", item(s.replace))
	}
	add(http.MethodDelete, "/"+s.plural+"/{id}", item(s.remove))
}

// find returns the resource id of st, and its index (-1: none).
func (s resource[T]) find(st *config.State, id string) (T, int) {
	for i, v := range *s.items(st) {
		if s.id(v) == id {
			return v, i
		}
	}
	var zero T
	return zero, -1
}

// findVisible returns the resource id of st that p may see, and its index;
// one p may not see is missing (404).
func (s resource[T]) findVisible(st *config.State, p principal, id string) (T, int, *apiError) {
	v, i := s.find(st, id)
	if i < 0 || !s.visible(st, p, v) {
		return v, -1, notFound(string(s.kind), id)
	}
	return v, i, nil
}

// allowed is the kind's role check.
func (s resource[T]) allowed(p principal) *apiError {
	if s.role != nil && !s.role(p) {
		return errForbidden
	}
	return nil
}

// list serves GET /<plural>: the resources p may see, by id, a page at a
// time.
func (s resource[T]) list(a *API, w http.ResponseWriter, r *http.Request, p principal) {
	if e := s.allowed(p); e != nil {
		writeError(w, e)
		return
	}
	limit, cursor, e := page(r)
	if e != nil {
		writeError(w, e)
		return
	}
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	var all []T
	for _, v := range *s.items(st) {
		if s.visible(st, p, v) && (s.filter == nil || s.filter(r, v)) {
			all = append(all, v)
		}
	}
	sort.Slice(all, func(i, j int) bool { return s.id(all[i]) < s.id(all[j]) })
	items, next := pageOf(all, s.id, limit, cursor)
	out := make([]any, len(items))
	for i, v := range items {
		out[i] = s.present(a, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "next_cursor": next})
}

// create serves POST /<plural>: 201 with the new resource, 409 when its id
// is taken.
func (s resource[T]) create(a *API, w http.ResponseWriter, r *http.Request, p principal) {
	if e := s.allowed(p); e != nil {
		writeError(w, e)
		return
	}
	var v T
	var answer any
	if s.decode != nil {
		var e *apiError
		if v, answer, e = s.decode(a, r, p); e != nil {
			writeError(w, e)
			return
		}
	} else if e := decodeStrict(r, &v, maxBodyBytes); e != nil {
		writeError(w, e)
		return
	}
	id := s.id(v)
	_, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{}, func(st *config.State) error {
		// Authorization first: a key that may not create this at all
		// learns nothing of which ids exist.
		if e := s.prepare(a, st, p, &v, nil); e != nil {
			return e
		}
		if _, i := s.find(st, id); i >= 0 {
			return s.taken(id)
		}
		list := s.items(st)
		*list = append([]T{v}, *list...) // first: validation errors then name it [0]
		return nil
	})
	if err != nil {
		writeError(w, storeError(err, s.plural+"[0]"))
		return
	}
	if answer != nil {
		writeJSON(w, http.StatusCreated, answer)
		return
	}
	s.answer(a, w, r, p, id, http.StatusCreated)
}

// taken is the answer to a create whose id is in use.
func (s resource[T]) taken(id string) *apiError {
	msg := fmt.Sprintf("the %s id %s is taken", s.kind, quote(id))
	if s.setID != nil {
		msg = "the id " + quote(id) + " is taken; choose another, or PUT to change the existing resource"
	}
	return &apiError{Status: http.StatusConflict, Code: "already_exists", Field: "id", Message: msg}
}

// get serves GET /<plural>/{id}.
func (s resource[T]) get(a *API, w http.ResponseWriter, r *http.Request, p principal, id string) {
	s.answer(a, w, r, p, id, http.StatusOK)
}

// replace serves PUT /<plural>/{id}, which needs the If-Match of what was
// read.
func (s resource[T]) replace(a *API, w http.ResponseWriter, r *http.Request, p principal, id string) {
	var v T
	if e := decodeStrict(r, &v, maxBodyBytes); e != nil {
		writeError(w, e)
		return
	}
	if s.id(v) == "" {
		s.setID(&v, id)
	} else if s.id(v) != id {
		writeError(w, badField("id", "%q does not match the id in the path", s.id(v)))
		return
	}
	_, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{}, func(st *config.State) error {
		i, e := s.mayChange(a, st, r, p, id, &v)
		if e != nil {
			return e
		}
		list := s.items(st)
		*list = append([]T{v}, slices.Delete(*list, i, i+1)...)
		return nil
	})
	if err != nil {
		writeError(w, storeError(err, s.plural+"[0]"))
		return
	}
	s.answer(a, w, r, p, id, http.StatusOK)
}

// remove serves DELETE /<plural>/{id}; If-Match is optional.
func (s resource[T]) remove(a *API, w http.ResponseWriter, r *http.Request, p principal, id string) {
	_, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{}, func(st *config.State) error {
		i, e := s.mayChange(a, st, r, p, id, nil)
		if e != nil {
			return e
		}
		list := s.items(st)
		*list = slices.Delete(*list, i, i+1)
		if s.cascade != nil {
			s.cascade(st, id)
		}
		return nil
	})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mayChange checks that p may replace resource id of st with v, or delete
// it (v nil), and returns its index: 404 for what p cannot see, 403 for
// what p's role may not do, 428 or 412 for a missing or stale If-Match
// (required on a replace).
func (s resource[T]) mayChange(a *API, st *config.State, r *http.Request, p principal, id string, v *T) (int, *apiError) {
	old, i, e := s.findVisible(st, p, id)
	if e == nil {
		e = s.allowed(p)
	}
	replace := v != nil
	if !replace {
		v = &old
	}
	if e == nil {
		e = s.prepare(a, st, p, v, &old)
	}
	if e == nil {
		e = checkIfMatch(r, st.ETag(s.kind, id), replace)
	}
	return i, e
}

// answer writes the stored resource id with its ETag.
func (s resource[T]) answer(a *API, w http.ResponseWriter, r *http.Request, p principal, id string, status int) {
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	v, _, e := s.findVisible(st, p, id)
	if e == nil {
		e = s.allowed(p)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	w.Header().Set("ETag", st.ETag(s.kind, id))
	writeJSON(w, status, s.present(a, v))
}

// actor is p as the audit log names it.
func (a *API) actor(p principal) config.Actor { return config.Actor{ID: p.id, Tenant: p.tenant} }
