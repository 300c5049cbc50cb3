package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

// spec describes one kind of configuration resource for the generic CRUD
// handlers.
type spec[T any] struct {
	kind   config.Kind
	plural string // the path segment and the config list name
	items  func(c *model.Config) *[]T
	id     func(T) string
	setID  func(*T, string)
	// visible reports whether p may see v.
	visible func(st *config.State, p principal, v T) bool
	// prepare authorizes a write of v by p (old is the current value on an
	// update) and fills defaults; it answers 404 for what p cannot see and
	// 403 for what p's role may not do.
	prepare func(a *API, st *config.State, p principal, v *T, old *T) *apiError
	// present is the client's view of v (secrets redacted).
	present func(a *API, v T) any
	// filter applies the list's query parameters.
	filter func(r *http.Request, v T) bool
}

func siteVisible(st *config.State, p principal, siteID string) bool {
	for _, s := range st.Config.Sites {
		if s.ID == siteID {
			return p.seesTenant(s.Tenant)
		}
	}
	return false
}

func (a *API) tenantSpec() spec[model.Tenant] {
	return spec[model.Tenant]{
		kind: config.KindTenant, plural: "tenants",
		items:   func(c *model.Config) *[]model.Tenant { return &c.Tenants },
		id:      func(t model.Tenant) string { return t.ID },
		setID:   func(t *model.Tenant, id string) { t.ID = id },
		visible: func(_ *config.State, p principal, t model.Tenant) bool { return p.seesTenant(t.ID) },
		prepare: func(_ *API, _ *config.State, p principal, _ *model.Tenant, _ *model.Tenant) *apiError {
			if p.root() {
				return nil
			}
			return errForbidden // only the operator manages tenants
		},
		present: func(_ *API, t model.Tenant) any { return t },
		filter:  func(*http.Request, model.Tenant) bool { return true },
	}
}

func (a *API) siteSpec() spec[model.Site] {
	return spec[model.Site]{
		kind: config.KindSite, plural: "sites",
		items:   func(c *model.Config) *[]model.Site { return &c.Sites },
		id:      func(s model.Site) string { return s.ID },
		setID:   func(s *model.Site, id string) { s.ID = id },
		visible: func(_ *config.State, p principal, s model.Site) bool { return p.seesTenant(s.Tenant) },
		prepare: func(_ *API, _ *config.State, p principal, s *model.Site, old *model.Site) *apiError {
			switch {
			case s.Tenant == "" && !p.root():
				s.Tenant = p.tenant
			case s.Tenant == "" && old != nil:
				s.Tenant = old.Tenant // a site changes owner only when told
			}
			if !p.seesTenant(s.Tenant) {
				return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "tenant", Message: "no tenant " + quote(s.Tenant)}
			}
			if !p.canWrite() {
				return errForbidden
			}
			keepIngestKeys(s, old)
			return nil
		},
		present: func(_ *API, s model.Site) any { return presentSite(s) },
		filter: func(r *http.Request, s model.Site) bool {
			t := r.URL.Query().Get("tenant")
			return t == "" || s.Tenant == t
		},
	}
}

func (a *API) destinationSpec() spec[model.Destination] {
	return spec[model.Destination]{
		kind: config.KindDestination, plural: "destinations",
		items: func(c *model.Config) *[]model.Destination { return &c.Destinations },
		id:    func(d model.Destination) string { return d.ID },
		setID: func(d *model.Destination, id string) { d.ID = id },
		visible: func(st *config.State, p principal, d model.Destination) bool {
			return siteVisible(st, p, d.SiteID)
		},
		prepare: func(a *API, st *config.State, p principal, d *model.Destination, old *model.Destination) *apiError {
			if !siteVisible(st, p, d.SiteID) {
				return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "site", Message: "no site " + quote(d.SiteID)}
			}
			if !p.canWrite() {
				return errForbidden
			}
			settings, e := a.restoreSecrets(p, *d, old)
			if e != nil {
				return e
			}
			d.Settings = settings
			return nil
		},
		present: func(a *API, d model.Destination) any {
			d.Settings = a.redact(d)
			return d
		},
		filter: func(r *http.Request, d model.Destination) bool {
			s, t := r.URL.Query().Get("site"), r.URL.Query().Get("type")
			return (s == "" || d.SiteID == s) && (t == "" || d.Type == t)
		},
	}
}

func (a *API) routeSpec() spec[model.Route] {
	return spec[model.Route]{
		kind: config.KindRoute, plural: "routes",
		items:   func(c *model.Config) *[]model.Route { return &c.Routes },
		id:      func(r model.Route) string { return r.ID },
		setID:   func(r *model.Route, id string) { r.ID = id },
		visible: func(st *config.State, p principal, r model.Route) bool { return siteVisible(st, p, r.SiteID) },
		prepare: func(_ *API, st *config.State, p principal, r *model.Route, _ *model.Route) *apiError {
			if !siteVisible(st, p, r.SiteID) {
				return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "site", Message: "no site " + quote(r.SiteID)}
			}
			if !p.canWrite() {
				return errForbidden
			}
			return nil
		},
		present: func(_ *API, r model.Route) any { return r },
		filter: func(req *http.Request, r model.Route) bool {
			s, d := req.URL.Query().Get("site"), req.URL.Query().Get("destination")
			return (s == "" || r.SiteID == s) && (d == "" || r.DestinationID == d)
		},
	}
}

// keepIngestKeys gives s the ingest keys of old (its stored version) when s
// names none: keys are rotated through their own endpoint, and what a GET
// shows of them (ingest_key_info) is read-only, so a PUT or an apply of
// what was read keeps them.
func keepIngestKeys(s, old *model.Site) {
	if old != nil && len(s.IngestKeys) == 0 && s.IngestKeyHashes == nil && s.RetiringIngestKeys == nil {
		s.IngestKeyHashes, s.RetiringIngestKeys, s.IngestKeyHints = old.IngestKeyHashes, old.RetiringIngestKeys, old.IngestKeyHints
	}
}

// presentSite is a site as clients see it: its ingest keys as ids and
// hints, never their digests (a digest authenticates ingest as well as the
// key does, for whoever could store it on a site of theirs).
func presentSite(s model.Site) model.Site {
	s.IngestKeyInfo = s.Info()
	s.IngestKeyHashes, s.RetiringIngestKeys, s.IngestKeyHints = nil, nil, nil
	return s
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func find[T any](s spec[T], st *config.State, id string) (T, int, bool) {
	for i, v := range *s.items(&st.Config) {
		if s.id(v) == id {
			return v, i, true
		}
	}
	var zero T
	return zero, -1, false
}

// serveCollection handles GET (list) and POST (create) on /<plural>.
func serveCollection[T any](a *API, s spec[T], w http.ResponseWriter, r *http.Request, p principal) {
	switch r.Method {
	case http.MethodGet:
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
		for _, v := range *s.items(&st.Config) {
			if s.visible(st, p, v) && s.filter(r, v) {
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
	case http.MethodPost:
		var v T
		if e := decodeStrict(r, &v, maxBodyBytes); e != nil {
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
			if _, _, exists := find(s, st, id); exists {
				return &apiError{Status: http.StatusConflict, Code: "already_exists", Field: "id",
					Message: "the id " + quote(id) + " is taken; choose another, or PUT to change the existing resource"}
			}
			list := s.items(&st.Config)
			*list = append([]T{v}, *list...)
			return nil
		})
		if err != nil {
			writeError(w, storeError(err, s.plural+"[0]"))
			return
		}
		answerResourceFor(a, w, r, s, p, id, http.StatusCreated)
	default:
		writeError(w, errMethod)
	}
}

// serveItem handles GET, PUT and DELETE on /<plural>/{id}.
func serveItem[T any](a *API, s spec[T], w http.ResponseWriter, r *http.Request, p principal, id string) {
	switch r.Method {
	case http.MethodGet:
		answerResourceFor(a, w, r, s, p, id, http.StatusOK)
	case http.MethodPut:
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
			old, i, ok := find(s, st, id)
			if !ok || !s.visible(st, p, old) {
				return notFound(string(s.kind), id)
			}
			if e := s.prepare(a, st, p, &v, &old); e != nil {
				return e
			}
			if e := checkIfMatch(r, st.ETag(s.kind, id), true); e != nil {
				return e
			}
			list := s.items(&st.Config)
			*list = append([]T{v}, slices.Delete(*list, i, i+1)...)
			return nil
		})
		if err != nil {
			writeError(w, storeError(err, s.plural+"[0]"))
			return
		}
		answerResourceFor(a, w, r, s, p, id, http.StatusOK)
	case http.MethodDelete:
		_, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{}, func(st *config.State) error {
			old, i, ok := find(s, st, id)
			if !ok || !s.visible(st, p, old) {
				return notFound(string(s.kind), id)
			}
			if e := s.prepare(a, st, p, &old, &old); e != nil {
				return e
			}
			if e := checkIfMatch(r, st.ETag(s.kind, id), false); e != nil {
				return e
			}
			list := s.items(&st.Config)
			*list = slices.Delete(*list, i, i+1)
			if s.kind == config.KindTenant {
				st.Keys = slices.DeleteFunc(st.Keys, func(k model.APIKey) bool { return k.Tenant == id })
			}
			return nil
		})
		if err != nil {
			writeError(w, storeError(err, ""))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, errMethod)
	}
}

func (a *API) actor(p principal) config.Actor { return config.Actor{ID: p.id, Tenant: p.tenant} }

// answerResourceFor writes the stored resource with its ETag (404 when p
// may not see it).
func answerResourceFor[T any](a *API, w http.ResponseWriter, r *http.Request, s spec[T], p principal, id string, status int) {
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	v, _, ok := find(s, st, id)
	if !ok || !s.visible(st, p, v) {
		writeError(w, notFound(string(s.kind), id))
		return
	}
	w.Header().Set("ETag", st.ETag(s.kind, id))
	writeJSON(w, status, s.present(a, v))
}

// redact replaces every secret setting of d with {"set":true,"last4":...}.
func (a *API) redact(d model.Destination) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(d.Settings, &obj) != nil || obj == nil {
		return d.Settings
	}
	for k, v := range obj {
		if !a.store.SecretFields().IsSecret(d.Type, k) {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil || s == "" {
			continue
		}
		red := map[string]any{"set": true}
		if len(s) >= 12 {
			red["last4"] = s[len(s)-4:]
		}
		obj[k], _ = json.Marshal(red)
	}
	b, _ := json.Marshal(obj)
	return b
}

// restoreSecrets puts the current value back for every secret setting given
// in its redacted form ({"set": true, ...}), so a resource read, edited and
// written back keeps its secrets. For a tenant's key it first keeps the
// operator settings (model.IsOperatorSetting) the write leaves out, and
// refuses one it sets or changes. A stored secret never follows a
// destination to a new address: when a target setting
// (model.IsTargetSetting) or the type changes, a redacted secret is
// refused and the secret must be given again.
func (a *API) restoreSecrets(p principal, d model.Destination, old *model.Destination) (json.RawMessage, *apiError) {
	obj, ok := settingsObject(d.Settings)
	if !ok {
		return d.Settings, nil
	}
	var prev map[string]json.RawMessage
	if old != nil && old.Type == d.Type {
		prev, _ = settingsObject(old.Settings)
	}
	changed := false
	if !p.root() {
		for k, v := range prev {
			if _, given := obj[k]; !given && model.IsOperatorSetting(k) {
				obj[k], changed = v, true
			}
		}
		for _, k := range sortedKeys(obj) {
			if model.IsOperatorSetting(k) && !sameJSON(obj[k], prev[k]) {
				return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Field: "settings." + k,
					Message: "the platform's API URL is the operator's setting (its environment); a tenant key can neither set nor change it"}
			}
		}
	}
	moved := ""
	if old != nil {
		if old.Type != d.Type {
			moved = "type"
		}
		for _, k := range sortedKeys(obj, prev) {
			if moved == "" && model.IsTargetSetting(k) && !sameJSON(obj[k], prev[k]) {
				moved = "settings." + k
			}
		}
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		var red struct {
			Set bool `json:"set"`
		}
		if !strings.HasPrefix(strings.TrimSpace(string(v)), "{") || json.Unmarshal(v, &red) != nil || !red.Set {
			continue
		}
		if moved != "" && old != nil && prev[k] != nil {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Field: "settings." + k,
				Message: "where the destination sends changed (" + moved + "): give the secret again; a stored secret never follows a destination to a new address"}
		}
		cur, ok := prev[k]
		if !ok || !a.store.SecretFields().IsSecret(d.Type, k) {
			return nil, badField("settings."+k, "a redacted secret keeps the current value, and there is none: give the secret itself")
		}
		obj[k] = cur
		changed = true
	}
	if !changed {
		return d.Settings, nil
	}
	b, _ := json.Marshal(obj)
	return b, nil
}

// settingsObject decodes destination settings as a JSON object.
func settingsObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, false
	}
	return obj, true
}

// sameJSON reports whether two JSON values are equal (nil is absent).
func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// sortedKeys returns the keys of the maps, sorted and without repeats, so
// that errors name fields in a stable order.
func sortedKeys(maps ...map[string]json.RawMessage) []string {
	var out []string
	for _, m := range maps {
		for k := range m {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
