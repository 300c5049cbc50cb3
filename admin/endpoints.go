package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
)

func (a *API) audit(w http.ResponseWriter, r *http.Request, p principal) {
	limit, cursor, e := page(r)
	if e != nil {
		writeError(w, e)
		return
	}
	entries, next, err := a.store.ReadAudit(r.Context(), cursor, limit, func(e config.AuditEntry) bool {
		return p.seesTenant(e.Tenant)
	})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if entries == nil {
		entries = []config.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": entries, "next_cursor": next})
}

// rotateRequest is the body of POST /sites/{id}/ingest-keys.
type rotateRequest struct {
	// Overlap is how long the current keys stay valid ("24h"; "0s" revokes
	// them at once). Default 24h, at most 30 days.
	Overlap string `json:"overlap"`
}

// rotateIngestKey mints a new ingest key for a site; the current keys stay
// valid for the overlap, so the store's back end can switch without losing
// events. The new key is in the answer, once.
func (a *API) rotateIngestKey(w http.ResponseWriter, r *http.Request, p principal, siteID string) {
	var req rotateRequest
	if r.ContentLength != 0 {
		if e := decodeStrict(r, &req, maxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
	}
	overlap := defaultOverlap
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil || d < 0 || d > maxOverlap {
			writeError(w, badField("overlap", "must be a duration between 0s and %s (\"24h\")", maxOverlap))
			return
		}
		overlap = d
	}
	secret, err := a.newSecret()
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	key := "twi_" + secret
	digest := model.HashKey(key)
	now := a.now().UTC()
	until := now.Add(overlap)
	_, err = a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{}, func(st *config.State) error {
		_, i, e := a.siteKind().findVisible(st, p, siteID)
		if e != nil {
			return e
		}
		if !p.canWrite() {
			return errForbidden
		}
		s := &st.Config.Sites[i]
		var retiring []model.RetiringKey
		for _, k := range s.RetiringIngestKeys {
			if k.Until.After(now) {
				retiring = append(retiring, k)
			}
		}
		if overlap > 0 {
			for _, h := range s.IngestKeyHashes {
				retiring = append(retiring, model.RetiringKey{Hash: h, Until: until})
			}
		}
		s.RetiringIngestKeys = retiring
		s.IngestKeyHashes = []string{digest}
		if s.IngestKeyHints == nil {
			s.IngestKeyHints = map[string]string{}
		}
		s.IngestKeyHints[digest] = key[len(key)-4:]
		return nil
	})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	out := map[string]any{"ingest_key": key, "id": model.IngestKeyID(digest), "last4": key[len(key)-4:], "note": "the key is shown once; store it now"}
	if overlap > 0 {
		out["previous_keys_valid_until"] = until
	}
	writeJSON(w, http.StatusCreated, out)
}

// testEventRequest is the body of POST /sites/{id}/test-event.
type testEventRequest struct {
	EventName     string `json:"event_name"`
	TestEventCode string `json:"test_event_code"`
}

// testEvent enqueues a synthetic event for a site, through the same queue
// the gateway writes to. Routing delivers it only on routes in test mode, or
// everywhere to the platforms' test channels when test_event_code is given.
func (a *API) testEvent(w http.ResponseWriter, r *http.Request, p principal, siteID string) {
	var req testEventRequest
	if e := decodeStrict(r, &req, maxBodyBytes); e != nil {
		writeError(w, e)
		return
	}
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	site, _, e := a.siteKind().findVisible(st, p, siteID)
	if e != nil {
		writeError(w, e)
		return
	}
	if !p.canWrite() {
		writeError(w, errForbidden)
		return
	}
	if req.EventName == "" {
		req.EventName = "Purchase"
	}
	if len(req.EventName) > 100 || len(req.TestEventCode) > 100 {
		writeError(w, badField("event_name", "at most 100 characters"))
		return
	}
	if a.queue == nil {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no queue is configured"})
		return
	}
	secret, err := a.newSecret()
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	now := a.now()
	value := 1.0
	ev := destinations.Event{
		EventName: req.EventName, EventTime: now.Unix(), EventID: "tw-test-" + secret[:16], ActionSource: "website",
		EventSourceURL: "https://" + site.Domains[0] + "/tagway-test",
		UserData:       destinations.UserData{ClientUserAgent: "tagway send-test", ExternalID: []string{hashHex("tagway-test-visitor")}},
		CustomData:     &destinations.CustomData{Value: &value, Currency: "USD"},
		Context: destinations.Context{SiteID: siteID, ReceivedAt: now.UnixMilli(), Source: dispatch.SourceTest,
			TestEventCode: req.TestEventCode,
			Consent: destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted,
				AdPersonalization: destinations.Granted, AnalyticsStorage: destinations.Granted}},
	}
	if err := a.queue.Enqueue(r.Context(), siteID, []destinations.Event{ev}); err != nil {
		a.log.Error("test event enqueue failed", "site", siteID, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the event could not be queued; retry later"})
		return
	}
	var routes []string
	for _, rt := range st.Config.Routes {
		if rt.SiteID == siteID && rt.Accepts(req.EventName) && (rt.TestMode || req.TestEventCode != "") {
			routes = append(routes, rt.ID)
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"event_id": ev.EventID, "event_name": ev.EventName, "routes": routes})
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (a *API) testResults(w http.ResponseWriter, r *http.Request, p principal, routeID string) {
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	route, _, e := a.routeKind().findVisible(st, p, routeID)
	if e != nil {
		writeError(w, e)
		return
	}
	res, err := a.store.TestResults(r.Context(), route.SiteID, routeID)
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"route": routeID, "test_mode": route.TestMode, "items": res})
}

func (a *API) reencrypt(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.root() {
		writeError(w, errForbidden)
		return
	}
	if !a.store.HasKeyring() {
		writeError(w, storeError(config.ErrNoSecretKey, ""))
		return
	}
	res, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{Reencrypt: true}, func(*config.State) error { return nil })
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": res.Version, "rewritten": len(res.Changes)})
}

// applyResult is the answer of POST /apply.
type applyResult struct {
	DryRun  bool            `json:"dry_run"`
	Version int64           `json:"version"`
	Changes []config.Change `json:"changes"`
}

// apply makes the posted configuration true for what the caller can see:
// every resource in it is created or replaced; with ?prune=true every
// visible tenant (root only), site, destination and route not in it is
// deleted. ?dry_run=true validates and returns the changes without writing.
// Secrets given in their redacted form keep their current values, so an
// export applies back unchanged.
func (a *API) apply(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.canWrite() {
		writeError(w, errForbidden)
		return
	}
	var cfg model.Config
	if e := decodeStrict(r, &cfg, model.MaxConfigBytes); e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	dry, prune := q.Get("dry_run") == "true", q.Get("prune") == "true"
	res, err := a.store.Update(r.Context(), a.actor(p), config.UpdateOptions{DryRun: dry}, func(st *config.State) error {
		return a.merge(st, p, cfg, prune)
	})
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if res.Changes == nil {
		res.Changes = []config.Change{}
	}
	writeJSON(w, http.StatusOK, applyResult{DryRun: dry, Version: res.Version, Changes: res.Changes})
}

// merge applies cfg onto st as the principal p may.
func (a *API) merge(st *config.State, p principal, cfg model.Config, prune bool) error {
	for i, t := range cfg.Tenants {
		if p.root() {
			continue
		}
		if t.ID != p.tenant {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: fmt.Sprintf("tenants[%d]", i), Message: "no tenant " + quote(t.ID)}
		}
		old := slices.IndexFunc(st.Config.Tenants, func(o model.Tenant) bool { return o.ID == t.ID })
		if old < 0 || st.Config.Tenants[old] != t {
			return &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: fmt.Sprintf("tenants[%d]", i), Message: "only the operator changes tenants"}
		}
	}
	inFile := map[config.Kind]map[string]bool{}
	mark := func(k config.Kind, id string) {
		if inFile[k] == nil {
			inFile[k] = map[string]bool{}
		}
		inFile[k][id] = true
	}
	var nt, ns, nd, nr int
	if p.root() {
		for _, t := range cfg.Tenants {
			mark(config.KindTenant, t.ID)
			upsert(&st.Config.Tenants, t, func(x model.Tenant) string { return x.ID }, &nt)
		}
	}
	for i, s := range cfg.Sites {
		mark(config.KindSite, s.ID)
		if s.Tenant == "" && !p.root() {
			s.Tenant = p.tenant
		}
		if !p.seesTenant(s.Tenant) {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: fmt.Sprintf("sites[%d].tenant", i), Message: "no tenant " + quote(s.Tenant)}
		}
		if old := slices.IndexFunc(st.Config.Sites, func(o model.Site) bool { return o.ID == s.ID }); old >= 0 {
			if !p.seesTenant(st.Config.Sites[old].Tenant) {
				return &apiError{Status: http.StatusConflict, Code: "already_exists", Field: fmt.Sprintf("sites[%d].id", i), Message: "the id " + quote(s.ID) + " is taken"}
			}
			keepIngestKeys(&s, &st.Config.Sites[old])
		}
		upsert(&st.Config.Sites, s, func(x model.Site) string { return x.ID }, &ns)
	}
	for i, d := range cfg.Destinations {
		mark(config.KindDestination, d.ID)
		if !siteVisible(st, p, d.SiteID) {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: fmt.Sprintf("destinations[%d].site", i), Message: "no site " + quote(d.SiteID)}
		}
		var old *model.Destination
		if j := slices.IndexFunc(st.Config.Destinations, func(o model.Destination) bool { return o.ID == d.ID }); j >= 0 {
			if !siteVisible(st, p, st.Config.Destinations[j].SiteID) {
				return &apiError{Status: http.StatusConflict, Code: "already_exists", Field: fmt.Sprintf("destinations[%d].id", i), Message: "the id " + quote(d.ID) + " is taken"}
			}
			o := st.Config.Destinations[j]
			old = &o
		}
		settings, e := a.restoreSecrets(p, d, old)
		if e != nil {
			e.Field = fmt.Sprintf("destinations[%d].%s", i, e.Field)
			return e
		}
		d.Settings = settings
		upsert(&st.Config.Destinations, d, func(x model.Destination) string { return x.ID }, &nd)
	}
	for i, rt := range cfg.Routes {
		mark(config.KindRoute, rt.ID)
		if !siteVisible(st, p, rt.SiteID) {
			return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: fmt.Sprintf("routes[%d].site", i), Message: "no site " + quote(rt.SiteID)}
		}
		if j := slices.IndexFunc(st.Config.Routes, func(o model.Route) bool { return o.ID == rt.ID }); j >= 0 && !siteVisible(st, p, st.Config.Routes[j].SiteID) {
			return &apiError{Status: http.StatusConflict, Code: "already_exists", Field: fmt.Sprintf("routes[%d].id", i), Message: "the id " + quote(rt.ID) + " is taken"}
		}
		upsert(&st.Config.Routes, rt, func(x model.Route) string { return x.ID }, &nr)
	}
	if !prune {
		return nil
	}
	// Visibility is decided on the state before pruning.
	visibleSite := map[string]bool{}
	for _, s := range st.Config.Sites {
		visibleSite[s.ID] = p.seesTenant(s.Tenant)
	}
	st.Config.Routes = slices.DeleteFunc(st.Config.Routes, func(x model.Route) bool {
		return visibleSite[x.SiteID] && !inFile[config.KindRoute][x.ID]
	})
	st.Config.Destinations = slices.DeleteFunc(st.Config.Destinations, func(x model.Destination) bool {
		return visibleSite[x.SiteID] && !inFile[config.KindDestination][x.ID]
	})
	st.Config.Sites = slices.DeleteFunc(st.Config.Sites, func(x model.Site) bool {
		return visibleSite[x.ID] && !inFile[config.KindSite][x.ID]
	})
	if p.root() {
		st.Config.Tenants = slices.DeleteFunc(st.Config.Tenants, func(x model.Tenant) bool { return !inFile[config.KindTenant][x.ID] })
		st.Keys = slices.DeleteFunc(st.Keys, func(k model.APIKey) bool { return !inFile[config.KindTenant][k.Tenant] })
	}
	return nil
}

// upsert puts v at position *next of list (replacing the resource with its
// id wherever it was), so the file's resources come first and in the file's
// order: validation errors then carry the file's own indices.
func upsert[T any](list *[]T, v T, id func(T) string, next *int) {
	if i := slices.IndexFunc(*list, func(x T) bool { return id(x) == id(v) }); i >= 0 {
		*list = slices.Delete(*list, i, i+1)
	}
	*list = slices.Insert(*list, min(*next, len(*list)), v)
	*next++
}

// export answers the configuration the caller can see, in the format of
// TAGWAY_CONFIG and POST /apply, with secrets redacted.
func (a *API) export(w http.ResponseWriter, r *http.Request, p principal) {
	st, err := a.store.Read(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	var out model.Config
	for _, t := range st.Config.Tenants {
		if p.seesTenant(t.ID) {
			out.Tenants = append(out.Tenants, t)
		}
	}
	for _, s := range st.Config.Sites {
		if p.seesTenant(s.Tenant) {
			out.Sites = append(out.Sites, presentSite(s))
		}
	}
	for _, d := range st.Config.Destinations {
		if siteVisible(st, p, d.SiteID) {
			d.Settings = a.redact(d)
			out.Destinations = append(out.Destinations, d)
		}
	}
	for _, rt := range st.Config.Routes {
		if siteVisible(st, p, rt.SiteID) {
			out.Routes = append(out.Routes, rt)
		}
	}
	if out.Sites == nil {
		out.Sites = []model.Site{}
	}
	sortConfig(&out)
	writeJSON(w, http.StatusOK, out)
}

func sortConfig(c *model.Config) {
	sort.Slice(c.Tenants, func(i, j int) bool { return c.Tenants[i].ID < c.Tenants[j].ID })
	sort.Slice(c.Sites, func(i, j int) bool { return c.Sites[i].ID < c.Sites[j].ID })
	sort.Slice(c.Destinations, func(i, j int) bool { return c.Destinations[i].ID < c.Destinations[j].ID })
	sort.Slice(c.Routes, func(i, j int) bool { return c.Routes[i].ID < c.Routes[j].ID })
}
