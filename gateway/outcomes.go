package gateway

// Per-event outcomes of /collect: what the gateway fixed in an event it
// kept, why it refused one, and the 200 answer that reports them (see the
// wire contract). A clean request costs none of this: the answer is a 204.

import (
	"net/http"
	"strings"

	"github.com/tagway/tagway/destinations"
)

// fix is one change the gateway made to an event so that it could keep it:
// Field is the path of the field in the event ("custom_data.value",
// "custom_data.contents[1].id"; the request's own keys, such as "url" or
// "sent_at", for a change that applies to all of its events), Reason one
// of the reason constants.
type fix struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Reasons for refusing one browser event: nothing usable is left.
const (
	refusedMissing   = "missing"    // no event_name
	refusedInvalid   = "invalid"    // an event_name no platform takes
	refusedNotObject = "not_object" // the event is not a JSON object
	refusedTooOld    = "too_old"    // older than the platforms accept
)

// eventError says why one event was refused.
type eventError struct {
	Field   string `json:"field"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Statuses of an event in /collect's answer.
const (
	statusAccepted = "accepted"
	statusFixed    = "fixed"
	statusRejected = "rejected"
)

// eventOutcome is one event's entry in /collect's 200 answer.
type eventOutcome struct {
	EventID string      `json:"event_id,omitempty"`
	Status  string      `json:"status"`
	Fixes   []fix       `json:"fixes,omitempty"`
	Error   *eventError `json:"error,omitempty"`
}

// collectAnswer is /collect's 200 answer: one outcome per event sent, in
// request order.
type collectAnswer struct {
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Events   []eventOutcome `json:"events"`
}

// maxFixesShown bounds the fixes one event's outcome lists (all are
// counted in the metric).
const maxFixesShown = 32

// batchOutcomes collects the outcomes of one request's events. It holds
// nothing until the first fix or refusal (or debug), so that a clean
// request allocates nothing for it.
type batchOutcomes struct {
	n      int
	debug  bool
	events []eventOutcome
	// request holds the fixes of the request's own fields, which apply to
	// each of its events.
	request []fix
	// fixes holds each event's own fixes, for the metric.
	fixes [][]fix
}

func (b *batchOutcomes) ensure() {
	if b.events == nil {
		b.events = make([]eventOutcome, b.n)
	}
}

// requestFix records a fix of the request's own fields.
func (b *batchOutcomes) requestFix(field, reason string) {
	b.request = append(b.request, fix{field, reason})
}

// accept records event i as stored, with its id and its own fixes.
func (b *batchOutcomes) accept(i int, id string, fixes []fix) {
	if len(fixes) > 0 {
		if b.fixes == nil {
			b.fixes = make([][]fix, b.n)
		}
		b.fixes[i] = fixes
	}
	if len(fixes) == 0 && len(b.request) == 0 && !b.debug {
		return
	}
	b.ensure()
	o := &b.events[i]
	o.EventID, o.Status = id, statusAccepted
	if all := len(b.request) + len(fixes); all > 0 {
		o.Status = statusFixed
		o.Fixes = make([]fix, 0, min(all, maxFixesShown))
		o.Fixes = append(o.Fixes, b.request[:min(len(b.request), maxFixesShown)]...)
		o.Fixes = append(o.Fixes, fixes[:min(len(fixes), maxFixesShown-len(o.Fixes))]...)
	}
}

// refuse records event i as refused for good.
func (b *batchOutcomes) refuse(i int, id string, e *eventError) {
	b.ensure()
	b.events[i] = eventOutcome{EventID: id, Status: statusRejected, Error: e}
}

// answer is the 200 answer, or nil when every event was accepted as sent
// and debug is off (the 204). stored are the events kept, in request
// order: the ids of the events accepted before the first outcome worth
// recording come from them.
func (b *batchOutcomes) answer(stored []destinations.Event) *collectAnswer {
	if b.events == nil {
		return nil
	}
	j := 0
	for i := range b.events {
		o := &b.events[i]
		if o.Status == statusRejected {
			continue
		}
		if o.Status == "" {
			o.Status, o.EventID = statusAccepted, stored[j].EventID
		}
		j++
	}
	return &collectAnswer{Accepted: len(stored), Rejected: b.n - len(stored), Events: b.events}
}

// count adds the request's fixes and refusals to the metrics: each fix of
// a stored event (the request's own fixes once per stored event) and each
// refused event.
func (m *metrics) count(b *batchOutcomes) {
	if b.events == nil && b.fixes == nil {
		return
	}
	for i := range b.n {
		if b.events != nil && b.events[i].Status == statusRejected {
			m.rejected.WithLabelValues(b.events[i].Error.Reason).Inc()
			continue
		}
		for _, f := range b.request {
			m.fixed.WithLabelValues(metricField(f.Field), f.Reason).Inc()
		}
		if b.fixes != nil {
			for _, f := range b.fixes[i] {
				m.fixed.WithLabelValues(metricField(f.Field), f.Reason).Inc()
			}
		}
	}
}

// writeAnswer answers 200 with the outcomes.
func writeAnswer(w http.ResponseWriter, a *collectAnswer) {
	writeJSON(w, http.StatusOK, a)
}

// metricField is a fix's field as the metric's label: the path without
// array indexes, and a path the gateway does not know (a key a page made
// up) as "other" under its parent, so that the label set stays bounded.
func metricField(path string) string {
	if strings.IndexByte(path, '[') >= 0 {
		var b strings.Builder
		for i := 0; i < len(path); i++ {
			if path[i] == '[' {
				for i < len(path) && path[i] != ']' {
					i++
				}
				continue
			}
			b.WriteByte(path[i])
		}
		path = b.String()
	}
	if knownFieldPaths[path] {
		return path
	}
	for _, parent := range []string{"user_data.", "custom_data.contents.", "custom_data.", "consent."} {
		if strings.HasPrefix(path, parent) {
			return parent + "other"
		}
	}
	return "other"
}

// knownFieldPaths are the field paths a fix may name: the event's fields,
// the request's, and the click ids.
var knownFieldPaths = func() map[string]bool {
	m := map[string]bool{"event": true, "custom_data.contents": true}
	for _, f := range eventFields {
		m[f] = true
	}
	for _, f := range customDataKeys {
		m["custom_data."+f] = true
	}
	for _, f := range contentKeys {
		m["custom_data.contents."+f] = true
	}
	for _, f := range []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id",
		"client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id", "lead_id"} {
		m["user_data."+f] = true
	}
	for _, f := range []string{"url", "referrer", "vid", "sent_at", "debug", "events", "consent",
		"consent.ad_storage", "consent.ad_user_data", "consent.ad_personalization", "consent.analytics_storage"} {
		m[f] = true
	}
	for _, f := range clickParams() {
		m["click_ids."+f] = true
	}
	return m
}()
