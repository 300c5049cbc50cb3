package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
)

// DeadLetters reads and changes the dead letters of a site: the events a
// destination gave up on. *dispatch.DeadLetterStore implements it.
type DeadLetters interface {
	ListDeadLetters(ctx context.Context, f dispatch.DeadLetterFilter) ([]dispatch.DeadLetter, error)
	ReplayDeadLetters(ctx context.Context, f dispatch.DeadLetterFilter) (int, error)
	DropDeadLetters(ctx context.Context, f dispatch.DeadLetterFilter) (int, error)
}

var _ DeadLetters = (*dispatch.DeadLetterStore)(nil)

// Limits of the dead-letter endpoints.
const (
	// maxDeadLetterIDs caps the ids of one replay or drop.
	maxDeadLetterIDs = 1000
	// kindDeadLetters is the audit kind of replays and drops.
	kindDeadLetters = "deadletters"
)

// deadLetterReasons are the reasons a filter may name.
var deadLetterReasons = []string{dispatch.ReasonPermanent, dispatch.ReasonTooOld, dispatch.ReasonMaxAttempts,
	dispatch.ReasonUnknownDestination, dispatch.ReasonPoison}

var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// deadLetterQuery is the filter of the dead-letter endpoints: the query
// of GET .../deadletters and the body of POST .../deadletters/{replay,drop}.
type deadLetterQuery struct {
	Destination string   `json:"destination"`
	Reason      string   `json:"reason"`
	Since       string   `json:"since"`
	Until       string   `json:"until"`
	IDs         []string `json:"ids"`
}

// deadLetterView is a dead letter as clients see it. The event is the one
// stored: its customer identifiers are SHA-256 digests; IP address, user
// agent and the fbp/fbc cookies are in clear, as the platform receives them.
type deadLetterView struct {
	ID          string          `json:"id"`
	Destination string          `json:"destination"`
	Reason      string          `json:"reason"`
	Message     string          `json:"message"`
	Attempts    int             `json:"attempts"`
	FailedAt    time.Time       `json:"failed_at"`
	Event       json.RawMessage `json:"event"`
}

func viewDeadLetter(dl dispatch.DeadLetter) deadLetterView {
	v := deadLetterView{ID: dl.ID, Destination: dl.Destination, Reason: dl.Reason, Message: dl.Message,
		Attempts: dl.Attempts, FailedAt: dl.FailedAt.UTC()}
	if json.Valid(dl.Raw) {
		v.Event = dl.Raw
	} else {
		v.Event = json.RawMessage("null")
	}
	return v
}

// deadLetters serves /sites/{site}/deadletters[/replay|/drop]: a viewer may
// list, an editor or admin may replay and drop. Another tenant's site is
// 404 like a missing one.
func (a *API) deadLetters(w http.ResponseWriter, r *http.Request, p principal, siteID, action string) {
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
	if action != "" && !p.canWrite() {
		writeError(w, errForbidden)
		return
	}
	if a.dead == nil {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "dead letters are not available: no queue is configured"})
		return
	}
	if action == "" {
		a.listDeadLetters(w, r, siteID)
		return
	}
	a.changeDeadLetters(w, r, p, site, action)
}

func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request, siteID string) {
	limit, cursor, e := page(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	f, e := a.deadLetterFilter(siteID, deadLetterQuery{Destination: q.Get("destination"), Reason: q.Get("reason"),
		Since: q.Get("since"), Until: q.Get("until")})
	if e != nil {
		writeError(w, e)
		return
	}
	if cursor != "" {
		dest, id, ok := strings.Cut(cursor, "/")
		if !ok || !model.ValidID(dest) || !streamIDPattern.MatchString(id) {
			writeError(w, badField("cursor", "must be a next_cursor of an earlier answer"))
			return
		}
		f.AfterDestination, f.AfterID = dest, id
	}
	f.Limit = limit + 1
	dls, err := a.dead.ListDeadLetters(r.Context(), f)
	if err != nil {
		a.log.Error("dead letters: list failed", "site", siteID, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the dead letters could not be read; retry later"})
		return
	}
	next := ""
	if len(dls) > limit {
		dls = dls[:limit]
		next = dls[limit-1].Destination + "/" + dls[limit-1].ID
	}
	items := make([]deadLetterView, 0, len(dls))
	for _, dl := range dls {
		items = append(items, viewDeadLetter(dl))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

// changeDeadLetters replays or drops the dead letters the body selects
// ({} selects every one of the site) and records it in the audit log.
func (a *API) changeDeadLetters(w http.ResponseWriter, r *http.Request, p principal, site model.Site, action string) {
	var req deadLetterQuery
	if e := decodeStrict(r, &req, maxBodyBytes); e != nil {
		writeError(w, e)
		return
	}
	f, e := a.deadLetterFilter(site.ID, req)
	if e != nil {
		writeError(w, e)
		return
	}
	change, key := a.dead.ReplayDeadLetters, "replayed"
	if action == "drop" {
		change, key = a.dead.DropDeadLetters, "dropped"
	}
	n, err := change(r.Context(), f)
	if n > 0 {
		entry := config.AuditEntry{Op: action, Kind: kindDeadLetters, ResourceID: site.ID, Tenant: site.Tenant,
			Fields: auditTerms(f), Count: n}
		if aerr := a.store.AppendAudit(r.Context(), a.actor(p), entry); aerr != nil {
			a.log.Error("dead letters: the audit entry could not be written", "site", site.ID, "op", action, "count", n, "err", aerr)
		}
	}
	if err != nil {
		a.log.Error("dead letters: "+action+" failed", "site", site.ID, "done", n, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: fmt.Sprintf("%s %d dead letters, then failed; list them and retry", key, n)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{key: n})
}

// deadLetterFilter validates q; every problem is named by its field.
func (a *API) deadLetterFilter(siteID string, q deadLetterQuery) (dispatch.DeadLetterFilter, *apiError) {
	f := dispatch.DeadLetterFilter{Site: siteID, Destination: q.Destination, Reason: q.Reason}
	var ds []detail
	if q.Destination != "" && !model.ValidID(q.Destination) {
		ds = append(ds, detail{Field: "destination", Message: "must be a destination id"})
	}
	if q.Reason != "" && !slices.Contains(deadLetterReasons, q.Reason) {
		ds = append(ds, detail{Field: "reason", Message: "must be one of " + strings.Join(deadLetterReasons, ", ")})
	}
	now := a.now()
	var ok bool
	if f.Since, ok = parseWhen(q.Since, now); !ok {
		ds = append(ds, detail{Field: "since", Message: "must be an RFC 3339 time or a duration before now (\"2h\")"})
	}
	if f.Until, ok = parseWhen(q.Until, now); !ok {
		ds = append(ds, detail{Field: "until", Message: "must be an RFC 3339 time or a duration before now (\"2h\")"})
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		ds = append(ds, detail{Field: "until", Message: "must be after since"})
	}
	if len(q.IDs) > maxDeadLetterIDs {
		ds = append(ds, detail{Field: "ids", Message: fmt.Sprintf("at most %d ids", maxDeadLetterIDs)})
	} else {
		for i, id := range q.IDs {
			if !streamIDPattern.MatchString(id) {
				ds = append(ds, detail{Field: fmt.Sprintf("ids[%d]", i), Message: "must be a dead-letter id (\"1732752000000-0\")"})
			}
		}
	}
	if len(q.IDs) > 0 && q.Destination == "" {
		ds = append(ds, detail{Field: "destination", Message: "is required with ids: ids are per destination"})
	}
	f.IDs = q.IDs
	if len(ds) == 0 {
		return f, nil
	}
	e := &apiError{Status: http.StatusBadRequest, Code: "invalid_field", Field: ds[0].Field, Message: ds[0].Message}
	if len(ds) > 1 {
		e.Details = ds
	}
	return f, e
}

// parseWhen reads an RFC 3339 time or a duration before now ("" is the
// zero time).
func parseWhen(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), d >= 0
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// auditTerms describes a filter for the audit log: the terms it used, with
// their values (ids only counted).
func auditTerms(f dispatch.DeadLetterFilter) []string {
	var out []string
	if f.Destination != "" {
		out = append(out, "destination="+f.Destination)
	}
	if f.Reason != "" {
		out = append(out, "reason="+f.Reason)
	}
	if !f.Since.IsZero() {
		out = append(out, "since="+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		out = append(out, "until="+f.Until.UTC().Format(time.RFC3339))
	}
	if len(f.IDs) > 0 {
		out = append(out, "ids="+strconv.Itoa(len(f.IDs)))
	}
	return out
}
