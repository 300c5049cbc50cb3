package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

// The kinds of resource the admin API serves (see resource).

// siteVisible reports whether p may see the site siteID (false: none).
func siteVisible(st *config.State, p principal, siteID string) bool {
	for _, s := range st.Config.Sites {
		if s.ID == siteID {
			return p.seesTenant(s.Tenant)
		}
	}
	return false
}

// tenantKind is the tenants: every key sees its own, only the operator
// changes them, and a deleted tenant takes its keys with it.
func (a *API) tenantKind() resource[model.Tenant] {
	return resource[model.Tenant]{
		kind: config.KindTenant, plural: "tenants",
		items:   func(st *config.State) *[]model.Tenant { return &st.Config.Tenants },
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
		cascade: func(st *config.State, id string) {
			st.Keys = slices.DeleteFunc(st.Keys, func(k model.APIKey) bool { return k.Tenant == id })
		},
	}
}

// siteKind is the sites of a tenant; a write names the tenant or gets the
// caller's, and keeps the ingest keys it does not name.
func (a *API) siteKind() resource[model.Site] {
	return resource[model.Site]{
		kind: config.KindSite, plural: "sites",
		items:   func(st *config.State) *[]model.Site { return &st.Config.Sites },
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

// destinationKind is the destinations of a site, shown with their secrets
// redacted; a redacted secret written back keeps the stored one.
func (a *API) destinationKind() resource[model.Destination] {
	return resource[model.Destination]{
		kind: config.KindDestination, plural: "destinations",
		items: func(st *config.State) *[]model.Destination { return &st.Config.Destinations },
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

// routeKind is the routes of a site.
func (a *API) routeKind() resource[model.Route] {
	return resource[model.Route]{
		kind: config.KindRoute, plural: "routes",
		items:   func(st *config.State) *[]model.Route { return &st.Config.Routes },
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

// keyView is an API key as clients see it: never its secret or digest.
type keyView struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Role      string    `json:"role"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// viewKey is k as clients see it.
func viewKey(k model.APIKey) keyView {
	return keyView{ID: k.ID, Tenant: k.Tenant, Role: k.Role, Name: k.Name, CreatedAt: k.CreatedAt}
}

// keyRequest is the body of POST /keys.
type keyRequest struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
	Name   string `json:"name"`
}

// keyKind is the API keys: only the operator and a tenant's admins see
// and manage them; a key is created with a generated secret, shown once,
// and never replaced.
func (a *API) keyKind() resource[model.APIKey] {
	return resource[model.APIKey]{
		kind: config.KindKey, plural: "keys",
		items:   func(st *config.State) *[]model.APIKey { return &st.Keys },
		id:      func(k model.APIKey) string { return k.ID },
		role:    principal.canManageKeys,
		visible: func(_ *config.State, p principal, k model.APIKey) bool { return p.seesTenant(k.Tenant) },
		prepare: func(_ *API, st *config.State, p principal, k *model.APIKey, _ *model.APIKey) *apiError {
			if !slices.ContainsFunc(st.Config.Tenants, func(t model.Tenant) bool { return t.ID == k.Tenant }) || !p.seesTenant(k.Tenant) {
				return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "tenant", Message: "no tenant " + quote(k.Tenant)}
			}
			return nil
		},
		present: func(_ *API, k model.APIKey) any { return viewKey(k) },
		decode:  (*API).newKey,
	}
}

// newKey reads a keyRequest into a new key with a generated secret; the
// answer holds the key's token, shown this once.
func (a *API) newKey(r *http.Request, p principal) (model.APIKey, any, *apiError) {
	var req keyRequest
	if e := decodeStrict(r, &req, maxBodyBytes); e != nil {
		return model.APIKey{}, nil, e
	}
	if req.Tenant == "" {
		req.Tenant = p.tenant
	}
	if req.Role == "" {
		req.Role = model.RoleViewer
	}
	secret, err := a.newSecret()
	if err != nil {
		return model.APIKey{}, nil, storeError(err, "")
	}
	sum := sha256.Sum256([]byte(secret))
	k := model.APIKey{ID: req.ID, Tenant: req.Tenant, Role: req.Role, Name: req.Name,
		Hash: hex.EncodeToString(sum[:]), CreatedAt: a.now().UTC().Truncate(time.Second)}
	if err := k.Validate(); err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		return k, nil, badField(field, "%s", msg)
	}
	if model.ReservedKeyID(k.ID) {
		return k, nil, badField("id", "%q is reserved for the operator; choose another id", k.ID)
	}
	return k, map[string]any{
		"key":   viewKey(k),
		"token": keyTokenPrefix + k.ID + "_" + secret,
		"note":  "the token is shown once; store it now",
	}, nil
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

// quote is s as a JSON string, for messages.
func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
