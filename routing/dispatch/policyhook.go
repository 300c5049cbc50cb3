package dispatch

import (
	"context"
	"encoding/json"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

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
		res := config.TestResult{At: w.d.opts.Now().UTC(), EventName: j.event.EventName, EventID: j.event.EventID,
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
		key := routing.TestResultsKey(w.site, route.ID)
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
			p.LTrim(ctx, key, 0, config.TestResultsKept-1)
		}
		return nil
	})
	if err != nil {
		w.log.Warn("recording test-mode results failed", "err", err)
	}
}
