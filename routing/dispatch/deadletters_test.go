package dispatch

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
)

// addDeadLetter writes a dead letter as the dispatcher does.
func (h *harness) addDeadLetter(dest, eventID, reason string, failedAt time.Time) string {
	h.t.Helper()
	b, _ := json.Marshal(routingtest.Event(eventID, "Purchase"))
	id, err := h.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: routing.DeadKey(routingtest.Site, dest), Values: []any{
		"event", string(b), "reason", reason, "message", "m", "attempts", 3, "failed_at", failedAt.UnixMilli(),
	}}).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func eventIDs(dls []DeadLetter) []string {
	var out []string
	for _, dl := range dls {
		out = append(out, dl.Destination+":"+dl.Event.EventID)
	}
	sort.Strings(out)
	return out
}

func TestDeadLetterFilters(t *testing.T) {
	h := newHarness(t, routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "tiktok"}))
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h.addDeadLetter("meta", "m1", ReasonPermanent, t0)
	idM2 := h.addDeadLetter("meta", "m2", ReasonMaxAttempts, t0.Add(time.Hour))
	h.addDeadLetter("meta", "m3", ReasonPermanent, t0.Add(2*time.Hour))
	h.addDeadLetter("tiktok", "t1", ReasonPermanent, t0.Add(time.Hour))
	h.addDeadLetter("tiktok", "t2", ReasonTooOld, t0.Add(3*time.Hour))

	for _, tc := range []struct {
		name string
		f    DeadLetterFilter
		want []string
	}{
		{"whole site", DeadLetterFilter{Site: routingtest.Site}, []string{"meta:m1", "meta:m2", "meta:m3", "tiktok:t1", "tiktok:t2"}},
		{"one destination", DeadLetterFilter{Site: routingtest.Site, Destination: "tiktok"}, []string{"tiktok:t1", "tiktok:t2"}},
		{"reason", DeadLetterFilter{Site: routingtest.Site, Reason: ReasonPermanent}, []string{"meta:m1", "meta:m3", "tiktok:t1"}},
		{"time range", DeadLetterFilter{Site: routingtest.Site, Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, []string{"meta:m2", "meta:m3", "tiktok:t1"}},
		{"ids", DeadLetterFilter{Site: routingtest.Site, Destination: "meta", IDs: []string{idM2, "1-1"}}, []string{"meta:m2"}},
		{"limit", DeadLetterFilter{Site: routingtest.Site, Destination: "meta", Limit: 2}, []string{"meta:m1", "meta:m2"}},
		{"nothing", DeadLetterFilter{Site: routingtest.Site, Destination: "ga4"}, nil},
		{"after", DeadLetterFilter{Site: routingtest.Site, AfterDestination: "meta", AfterID: idM2}, []string{"meta:m3", "tiktok:t1", "tiktok:t2"}},
		{"after a destination", DeadLetterFilter{Site: routingtest.Site, AfterDestination: "nzz"}, []string{"tiktok:t1", "tiktok:t2"}},
		{"after, with ids", DeadLetterFilter{Site: routingtest.Site, Destination: "meta", IDs: []string{idM2}, AfterDestination: "meta", AfterID: idM2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.dead.ListDeadLetters(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := eventIDs(got); len(g) != len(tc.want) || (len(g) > 0 && !equal(g, tc.want)) {
				t.Errorf("got %v; want %v", g, tc.want)
			}
		})
	}
	if _, err := h.dead.ListDeadLetters(ctx, DeadLetterFilter{}); err == nil {
		t.Error("a filter without a site was accepted")
	}

	// Replay the permanent ones: they leave the dead letters for the retry
	// schedules, due now.
	n, err := h.dead.ReplayDeadLetters(ctx, DeadLetterFilter{Site: routingtest.Site, Reason: ReasonPermanent})
	if err != nil || n != 3 {
		t.Fatalf("replay = %d, %v; want 3", n, err)
	}
	if h.retryCount("meta") != 2 || h.retryCount("tiktok") != 1 {
		t.Errorf("retry schedules hold %d and %d; want 2 and 1", h.retryCount("meta"), h.retryCount("tiktok"))
	}
	// Drop what is left of meta before t0+90m.
	n, err = h.dead.DropDeadLetters(ctx, DeadLetterFilter{Site: routingtest.Site, Destination: "meta", Until: t0.Add(90 * time.Minute)})
	if err != nil || n != 1 {
		t.Fatalf("drop = %d, %v; want 1 (m2)", n, err)
	}
	left, err := h.dead.ListDeadLetters(ctx, DeadLetterFilter{Site: routingtest.Site})
	if err != nil {
		t.Fatal(err)
	}
	if g := eventIDs(left); !equal(g, []string{"tiktok:t2"}) {
		t.Errorf("left %v; want [tiktok:t2]", g)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
