package attribution

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newLedger(t *testing.T, opts LedgerOptions) (*Ledger, *redis.Client, *clock) {
	t.Helper()
	rdb := redistest.Start(t).Client()
	c := &clock{t: thursday.Add(5 * time.Second)}
	opts.Now = c.now
	return NewLedger(rdb, opts), rdb, c
}

const (
	vid1 = "1768035600000.4821937465"
	vid2 = "1768035600000.1111111111"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func types(tps []Touchpoint) []string {
	var out []string
	for _, tp := range tps {
		out = append(out, tp.Type+"="+tp.ClickID+"@"+tp.CapturedAt.UTC().Format(time.RFC3339))
	}
	return out
}

func TestLedgerRecordIsIdempotentAndKeepsFirstCapture(t *testing.T) {
	l, _, _ := newLedger(t, LedgerOptions{})
	ctx := context.Background()
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	g := tp("gclid", "Cj0", wednesday)
	g.LandingURL, g.Consent = "https://shop.example/p?gclid=Cj0&email=x", granted
	for range 3 {
		if err := l.Record(ctx, "s1", vid1, g, tp("fbclid", "IwAR", monday)); err != nil {
			t.Fatal(err)
		}
	}
	// A later capture of the same click id changes nothing; an earlier one
	// (a delivery that arrived late) wins.
	later := tp("gclid", "Cj0", wednesday.Add(time.Hour))
	earlier := tp("fbclid", "IwAR", monday.Add(-time.Hour))
	if err := l.Record(ctx, "s1", vid1, later, earlier); err != nil {
		t.Fatal(err)
	}
	got, err := l.Touchpoints(ctx, "s1", vid1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fbclid=IwAR@2026-03-02T09:00:00Z", "gclid=Cj0@2026-03-04T15:00:00Z"}
	if !slices.Equal(types(got), want) {
		t.Fatalf("touchpoints %v, want %v", types(got), want)
	}
	if got[1].LandingURL != "https://shop.example/p" || got[1].Consent != granted || got[1].Platform != Google {
		t.Errorf("gclid touchpoint = %+v", got[1])
	}
}

func TestLedgerBoundsAndRetention(t *testing.T) {
	l, rdb, c := newLedger(t, LedgerOptions{MaxTouchpoints: 3})
	ctx := context.Background()
	var tps []Touchpoint
	for i := range 5 {
		tps = append(tps, tp("ttclid", "t"+strconv.Itoa(i), monday.Add(time.Duration(i)*time.Hour)))
	}
	if err := l.Record(ctx, "s1", vid1, tps...); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Touchpoints(ctx, "s1", vid1)
	if want := []string{"ttclid=t2@2026-03-02T12:00:00Z", "ttclid=t3@2026-03-02T13:00:00Z", "ttclid=t4@2026-03-02T14:00:00Z"}; !slices.Equal(types(got), want) {
		t.Errorf("bounded: %v, want %v", types(got), want)
	}
	if n, _ := rdb.HLen(ctx, touchpointDetailsKey("s1", vid1)).Result(); n != 3 {
		t.Errorf("%d details kept for 3 touchpoints", n)
	}
	ttl, _ := rdb.PTTL(ctx, TouchpointsKey("s1", vid1)).Result()
	if want := 97 * day; ttl <= want-time.Minute || ttl > want {
		t.Errorf("ttl %v, want about %v (90-day window + 7 days)", ttl, want)
	}

	// A click captured before the retention is not stored; one that ages
	// past it is no longer read, and dropped at the next record.
	c.set(monday.Add(97*day + 2*time.Hour + 30*time.Minute))
	if err := l.Record(ctx, "s1", vid1, tp("gclid", "old", monday), tp("gclid", "new", c.now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	got, _ = l.Touchpoints(ctx, "s1", vid1)
	if want := []string{"ttclid=t3@2026-03-02T13:00:00Z", "ttclid=t4@2026-03-02T14:00:00Z", "gclid=new@" + c.now().Add(-time.Hour).Format(time.RFC3339)}; !slices.Equal(types(got), want) {
		t.Errorf("after retention: %v, want %v", types(got), want)
	}
	if n, _ := rdb.ZCard(ctx, TouchpointsKey("s1", vid1)).Result(); n != 3 {
		t.Errorf("%d touchpoints stored", n)
	}
}

func TestLedgerCustomerIndex(t *testing.T) {
	l, rdb, c := newLedger(t, LedgerOptions{MaxCustomerVisitors: 2})
	ctx := context.Background()
	email := digest("jane.doe@example.com")
	if err := l.Record(ctx, "s1", vid1, tp("fbclid", "f", monday)); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, "s1", vid2, tp("gclid", "g", wednesday)); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1768035600000.9999999999", vid1, vid2} {
		c.set(thursday.Add(time.Duration(i) * time.Second))
		if err := l.IndexCustomer(ctx, "s1", v, email, "not-a-digest", strings.ToUpper(digest("+16505550123"))); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.ZCard(ctx, CustomerKey("s1", email)).Result(); n != 2 {
		t.Errorf("%d visitors kept for the digest, want 2", n)
	}
	got, err := l.CustomerTouchpoints(ctx, "s1", email)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gclid=g@2026-03-04T15:00:00Z", "fbclid=f@2026-03-02T10:00:00Z"}; !slices.Equal(types(got), want) {
		t.Errorf("customer touchpoints %v, want %v", types(got), want)
	}
	if got, _ := l.CustomerTouchpoints(ctx, "s2", email); len(got) != 0 {
		t.Errorf("another site reads %v", got)
	}
	if got, _ := l.CustomerTouchpoints(ctx, "s1", digest("+16505550123")); len(got) != 2 {
		t.Errorf("phone digest (stored lowercased): %v", got)
	}
}

func TestLedgerRecordEvents(t *testing.T) {
	l, rdb, _ := newLedger(t, LedgerOptions{})
	ctx := context.Background()
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	email := digest("jane.doe@example.com")
	events := []*destinations.Event{
		{Context: destinations.Context{VisitorID: vid1, Consent: granted, ClickIDs: map[string]destinations.ClickID{"gclid": {Value: "g", At: wednesday.UnixMilli()}}}},
		{UserData: destinations.UserData{Fbc: "fb.1.1772445600000.f", Em: []string{email}}, Context: destinations.Context{VisitorID: vid1, Consent: granted}},
		{Context: destinations.Context{VisitorID: vid2, Consent: destinations.Consent{AdStorage: destinations.Granted},
			ClickIDs: map[string]destinations.ClickID{"ttclid": {Value: "t", At: wednesday.UnixMilli()}}}},
		{Context: destinations.Context{Consent: granted, ClickIDs: map[string]destinations.ClickID{"ttclid": {Value: "t", At: wednesday.UnixMilli()}}}},
	}
	if err := l.RecordEvents(ctx, "s1", events); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Touchpoints(ctx, "s1", vid1)
	if want := []string{"fbclid=f@2026-03-02T10:00:00Z", "gclid=g@2026-03-04T15:00:00Z"}; !slices.Equal(types(got), want) {
		t.Errorf("vid1: %v, want %v", types(got), want)
	}
	if got, _ := l.Touchpoints(ctx, "s1", vid2); len(got) != 0 {
		t.Errorf("recorded without marketing consent: %v", got)
	}
	if got, _ := l.CustomerTouchpoints(ctx, "s1", email); len(got) != 2 {
		t.Errorf("customer index: %v", got)
	}

	// The same round again is left out: this process recorded it.
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordEvents(ctx, "s1", events); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Errorf("a repeated round wrote %d keys", n)
	}
	// A new click of the visitor is recorded, alone.
	events[0].Context.ClickIDs["gbraid"] = destinations.ClickID{Value: "gb", At: wednesday.UnixMilli()}
	if err := l.RecordEvents(ctx, "s1", events); err != nil {
		t.Fatal(err)
	}
	got, _ = l.Touchpoints(ctx, "s1", vid1)
	if want := []string{"gbraid=gb@2026-03-04T15:00:00Z"}; !slices.Equal(types(got), want) {
		t.Errorf("after a new click: %v, want %v", types(got), want)
	}
}

func TestRecentSet(t *testing.T) {
	r := newRecentSet(2)
	r.add("a", "b")
	r.add("c") // a, b move to the old generation
	if !r.has("a") || !r.has("b") || !r.has("c") {
		t.Error("forgot too early")
	}
	r.add("d", "e") // c, d old; a, b gone
	if r.has("a") || r.has("b") || !r.has("c") || !r.has("e") {
		t.Errorf("generations: %v %v", r.cur, r.old)
	}
}

// TestLedgerKeys checks what the ledger writes: every key under the
// site's prefix with an expiry, no raw visitor id anywhere.
func TestLedgerKeys(t *testing.T) {
	l, rdb, _ := newLedger(t, LedgerOptions{})
	ctx := context.Background()
	if err := l.Record(ctx, "s1", vid1, tp("gclid", "g", wednesday)); err != nil {
		t.Fatal(err)
	}
	if err := l.IndexCustomer(ctx, "s1", vid1, digest("x@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, "s2", vid1, tp("gclid", "other", wednesday)); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(ctx, "*").Result()
	if len(keys) != 5 {
		t.Errorf("keys %v", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "tw:{s1}:") && !strings.HasPrefix(k, "tw:{s2}:") {
			t.Errorf("key %q is outside the site prefixes", k)
		}
		if strings.Contains(k, vid1) {
			t.Errorf("key %q holds the raw visitor id", k)
		}
		if ttl, _ := rdb.PTTL(ctx, k).Result(); ttl <= 0 {
			t.Errorf("key %q has no expiry", k)
		}
		dump, _ := rdb.Dump(ctx, k).Result()
		if strings.Contains(dump, vid1) {
			t.Errorf("key %q holds the raw visitor id", k)
		}
	}
	if got, _ := l.Touchpoints(ctx, "s2", vid1); len(got) != 1 || got[0].ClickID != "other" {
		t.Errorf("site s2 reads %v", got)
	}
}
