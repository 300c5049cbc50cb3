package routing

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing/model"
)

// TestResultsKept is how many test-mode outcomes are kept per route.
const TestResultsKept = 50

// TestResultsKey is the capped list of the last test-mode delivery outcomes
// of a route (newest first), fed by the dispatcher.
func TestResultsKey(siteID, routeID string) string { return "tw:{" + siteID + "}:test:" + routeID }

// TestResult is one outcome of a test-mode delivery.
type TestResult struct {
	At            time.Time `json:"at"`
	EventName     string    `json:"event_name"`
	EventID       string    `json:"event_id"`
	TestEventCode string    `json:"test_event_code,omitempty"`
	// Outcome is delivered, retry or dead.
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}

// admit is the dispatcher's call into ApplyPolicy for one job: it picks the
// first route of the destination accepting the event, applies the policy and
// resolves the job as filtered or withheld when it is not to be sent. An
// event that already went through a route's policy (a retry) is only checked
// to still have that route.
func (w *worker) admit(snap *model.Snapshot, routes []model.Route, j *job) bool {
	if id := j.event.Context.Route; id != "" {
		for _, r := range routes {
			if r.ID == id && !r.Disabled {
				return true
			}
		}
		j.out = outcome{kind: outFiltered}
		return false
	}
	var route *model.Route
	for i := range routes {
		if routes[i].Accepts(j.event.EventName) {
			route = &routes[i]
			break
		}
	}
	if route == nil {
		j.out = outcome{kind: outFiltered}
		return false
	}
	var site model.Site
	if s, ok := snap.Site(w.site); ok {
		site = *s
	}
	to := Recipient{AdPlatform: true}
	if p, ok := w.dest.(AdPlatform); ok {
		to.AdPlatform = p.AdPlatform()
	}
	if a, ok := w.dest.(destinations.AnonymousAcceptor); ok {
		to.RefusesAnonymous = !a.AcceptsAnonymous()
	}
	if a, ok := w.dest.(destinations.IncompleteAcceptor); ok {
		to.RefusesIncomplete = !a.AcceptsIncomplete()
	}
	ev := j.event
	if send, reason := ApplyPolicy(*route, site, to, &ev); !send {
		j.out = outcome{kind: outWithheld}
		w.d.metrics.withheld.WithLabelValues(w.id, reason).Inc()
		w.log.Debug("event withheld by policy", "route", route.ID, "event_id", j.event.EventID,
			"event_name", j.event.EventName, "reason", reason)
		return false
	}
	j.event = ev
	return true
}

// recordTestResults keeps the outcomes of the round's test-mode deliveries
// in each route's capped list. It is best effort: a failure is logged.
func (w *worker) recordTestResults(r round) {
	snap := w.d.store.Snapshot()
	lists := map[string][]any{}
	for _, j := range r.jobs {
		route, ok := snap.Route(j.event.Context.Route)
		if !ok || !route.TestMode {
			continue
		}
		res := TestResult{At: w.d.opts.Now().UTC(), EventName: j.event.EventName, EventID: j.event.EventID,
			TestEventCode: j.event.Context.TestEventCode}
		switch j.out.kind {
		case outDelivered:
			res.Outcome = outcomeDelivered
		case outRetry:
			res.Outcome, res.Message = outcomeRetry, j.lastError
		case outDead:
			res.Outcome, res.Message = outcomeDead, j.out.message
		default:
			continue
		}
		b, err := json.Marshal(res)
		if err != nil {
			continue
		}
		key := TestResultsKey(w.site, route.ID)
		lists[key] = append(lists[key], string(b))
	}
	if len(lists) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	_, err := w.d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, items := range lists {
			p.LPush(ctx, key, items...)
			p.LTrim(ctx, key, 0, TestResultsKept-1)
		}
		return nil
	})
	if err != nil {
		w.log.Warn("recording test-mode results failed", "err", err)
	}
}

// ReadTestResults returns the last test-mode outcomes of a route, newest
// first.
func ReadTestResults(ctx context.Context, rdb redis.UniversalClient, siteID, routeID string) ([]TestResult, error) {
	raw, err := rdb.LRange(ctx, TestResultsKey(siteID, routeID), 0, TestResultsKept-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]TestResult, 0, len(raw))
	for _, s := range raw {
		var r TestResult
		if json.Unmarshal([]byte(s), &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
