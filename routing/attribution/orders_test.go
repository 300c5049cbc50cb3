package attribution

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

func newStore(t *testing.T, opts OrdersOptions) (*Orders, *Ledger, *redis.Client, *clock) {
	t.Helper()
	l, rdb, c := newLedger(t, LedgerOptions{})
	opts.Now = c.now
	return NewOrders(rdb, l, opts), l, rdb, c
}

// shopifyOrder is the classic case's order: placed Thursday by the
// visitor who clicked Meta on Monday and Google on Wednesday.
func shopifyOrder() Order {
	return Order{
		ID: "5801234567890", Source: "shopify", CreatedAt: thursday, UpdatedAt: thursday.Add(3 * time.Second),
		Currency: "USD", Total: 124_500_000, Paid: true, VisitorID: vid1,
		Customer: []string{digest("jane.doe@example.com")},
	}
}

// recordClassicWeek puts the visitor's two clicks in the ledger, as the
// browser events of their visits would.
func recordClassicWeek(t *testing.T, l *Ledger) {
	t.Helper()
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	events := []*destinations.Event{
		{UserData: destinations.UserData{Fbc: "fb.1.1772445600000.IwAR_monday"}, Context: destinations.Context{VisitorID: vid1, Consent: granted}},
		{Context: destinations.Context{VisitorID: vid1, Consent: granted, ClickIDs: map[string]destinations.ClickID{"gclid": {Value: "Cj0_wednesday", At: wednesday.UnixMilli()}}}},
	}
	if err := l.RecordEvents(context.Background(), "s1", events); err != nil {
		t.Fatal(err)
	}
}

func TestOrdersClassicCase(t *testing.T) {
	s, l, _, _ := newStore(t, OrdersOptions{})
	ctx := context.Background()
	recordClassicWeek(t, l)
	got, err := s.Apply(ctx, "s1", shopifyOrder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := got.Result
	if !got.NewPaid || r.Primary == nil || r.Primary.Platform != Google || len(r.Assists) != 1 || r.Assists[0].Platform != Meta || r.Link != LinkVisitor {
		t.Fatalf("applied = %+v", got)
	}
	if ids := ClickIDs(got.Touchpoints); ids["gclid"].Value != "Cj0_wednesday" || ids["fbclid"].Value != "IwAR_monday" {
		t.Errorf("touchpoints for the Purchase: %v", ids)
	}

	// The admin API's answer, as the issue shapes it.
	stored, ok, err := s.Get(ctx, "s1", "5801234567890")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	b, _ := json.Marshal(stored)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"order_id": "5801234567890", "revenue": 124.5, "currency": "USD", "link": "visitor_id",
		"primary": map[string]any{"platform": "google", "click_id_type": "gclid", "captured_at": "2026-03-04T15:00:00Z"},
		"assists": []any{map[string]any{"platform": "meta", "click_id_type": "fbclid", "captured_at": "2026-03-02T10:00:00Z"}},
	}
	for k, v := range want {
		if !reflect.DeepEqual(doc[k], v) {
			t.Errorf("%s = %v, want %v (%s)", k, doc[k], v, b)
		}
	}
	if strings.Contains(string(b), "Cj0_wednesday") || strings.Contains(string(b), vid1) {
		t.Errorf("the result holds a click id or visitor id: %s", b)
	}
}

// TestOrdersAttributeOncePurchaseOnce replays an order's webhooks many
// times, concurrently: one attribution, one new paid order.
func TestOrdersAttributeOncePurchaseOnce(t *testing.T) {
	s, l, _, c := newStore(t, OrdersOptions{})
	ctx := context.Background()
	recordClassicWeek(t, l)
	pending := shopifyOrder()
	pending.Paid = false
	first, err := s.Apply(ctx, "s1", pending, nil)
	if err != nil || first.NewPaid || first.Result.Paid || first.Result.Primary.Platform != Google {
		t.Fatalf("orders/create pending: %+v, %v", first, err)
	}
	// A click recorded after the attribution changes nothing for the order.
	if err := l.Record(ctx, "s1", vid1, tp("ttclid", "late", thursday.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	c.set(thursday.Add(time.Hour))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		newPaid int
		tps     []Touchpoint
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				got, err := s.Apply(ctx, "s1", shopifyOrder(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if got.NewPaid {
					newPaid++
					tps = got.Touchpoints
				}
				mu.Unlock()
				if got.Result.Primary.Platform != Google || !got.Result.AttributedAt.Equal(first.Result.AttributedAt) {
					t.Errorf("re-attributed: %+v", got.Result)
				}
			}
		}()
	}
	wg.Wait()
	if newPaid != 1 {
		t.Errorf("%d new paid signals, want 1", newPaid)
	}
	if len(tps) == 0 {
		t.Error("the new paid signal came without touchpoints")
	}
	again, _ := s.Apply(ctx, "s1", shopifyOrder(), nil)
	if again.NewPaid || again.Touchpoints != nil {
		t.Errorf("a later paid delivery: %+v", again)
	}
}

func TestOrdersWindowsFromCreatedAt(t *testing.T) {
	s, l, _, c := newStore(t, OrdersOptions{})
	ctx := context.Background()
	o := shopifyOrder()
	o.CreatedAt = thursday.Add(-5 * day)
	err := l.Record(ctx, "s1", vid1,
		tp("gclid", "g", o.CreatedAt.Add(-80*day)),    // within Google's 90 days of the order
		tp("fbclid", "f", o.CreatedAt.Add(-30*day)),   // past Meta's 28
		tp("ttclid", "t", o.CreatedAt.Add(time.Hour)), // after the order
	)
	if err != nil {
		t.Fatal(err)
	}
	// The webhook arrives 5 days after the order (a backfill); the windows
	// count from the order.
	c.set(thursday)
	got, err := s.Apply(ctx, "s1", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Result.Primary; p == nil || p.Type != "gclid" || len(got.Result.Assists) != 0 || len(got.Result.Clicks) != 1 {
		t.Errorf("result = %+v", got.Result)
	}
	// A site's own window.
	o.ID = "2"
	got, _ = s.Apply(ctx, "s1", o, Windows{"gclid": 30 * day})
	if got.Result.Primary != nil || got.Result.Link != LinkNone {
		t.Errorf("with a 30-day gclid window: %+v", got.Result)
	}
}

func TestOrdersLinks(t *testing.T) {
	s, l, _, _ := newStore(t, OrdersOptions{})
	ctx := context.Background()
	email := digest("jane.doe@example.com")
	if err := l.Record(ctx, "s1", vid2, tp("msclkid", "m", wednesday)); err != nil {
		t.Fatal(err)
	}
	if err := l.IndexCustomer(ctx, "s1", vid2, email); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		o       Order
		link    Link
		primary Platform
	}{
		{"the order's own click ids", Order{VisitorID: "1768035600000.5555555555", ClickIDs: map[string]destinations.ClickID{"ScCid": {Value: "sc", At: monday.UnixMilli()}},
			LandingClickIDs: map[string]string{"gclid": "g"}, Customer: []string{email}}, LinkVisitor, Snap},
		{"the landing url", Order{VisitorID: "1768035600000.5555555555", LandingClickIDs: map[string]string{"rdt_cid": "r"}, Customer: []string{email}}, LinkLanding, Reddit},
		{"the customer", Order{Customer: []string{email}}, LinkCustomer, Microsoft},
		{"an expired click of the visitor falls through to the landing url", Order{
			ClickIDs: map[string]destinations.ClickID{"fbclid": {Value: "old", At: thursday.Add(-40 * day).UnixMilli()}}, LandingClickIDs: map[string]string{"epik": "p"}}, LinkLanding, Pinterest},
		{"nothing", Order{Customer: []string{digest("someone@example.com")}}, LinkNone, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.ID, o.CreatedAt, o.Currency, o.Total, o.Paid = "10"+string(rune('0'+i)), thursday, "USD", 10_000_000, true
			got, err := s.Apply(ctx, "s1", o, nil)
			if err != nil {
				t.Fatal(err)
			}
			var p Platform
			if got.Result.Primary != nil {
				p = got.Result.Primary.Platform
			}
			if got.Result.Link != tt.link || p != tt.primary {
				t.Errorf("link %q primary %q, want %q %q", got.Result.Link, p, tt.link, tt.primary)
			}
		})
	}
}

func TestOrdersRevenue(t *testing.T) {
	s, _, _, _ := newStore(t, OrdersOptions{})
	ctx := context.Background()
	o := shopifyOrder()
	o.Refunds = []Refund{{ID: "990123456789", Amount: 47_860_000, Currency: "USD"}}
	o.UpdatedAt = thursday.Add(time.Hour)
	steps := []struct {
		name    string
		do      func() (Result, error)
		revenue Money
	}{
		{"order with a refund", func() (Result, error) { a, err := s.Apply(ctx, "s1", o, nil); return a.Result, err }, 76_640_000},
		{"refunds/create of the same refund", func() (Result, error) {
			return s.ApplyRefund(ctx, "s1", o.ID, Refund{ID: "990123456789", Amount: 47_860_000, Currency: "USD"})
		}, 76_640_000},
		{"a second refund, twice", func() (Result, error) {
			_, _ = s.ApplyRefund(ctx, "s1", o.ID, Refund{ID: "2", Amount: 10_000_000})
			return s.ApplyRefund(ctx, "s1", o.ID, Refund{ID: "2", Amount: 10_000_000})
		}, 66_640_000},
		{"a refund in another currency is not subtracted", func() (Result, error) {
			return s.ApplyRefund(ctx, "s1", o.ID, Refund{ID: "3", Amount: 5_000_000, Currency: "EUR"})
		}, 66_640_000},
		{"an older state is left out", func() (Result, error) {
			old := shopifyOrder()
			old.Total = 1
			a, err := s.Apply(ctx, "s1", old, nil)
			return a.Result, err
		}, 66_640_000},
		{"refunds past the total leave zero", func() (Result, error) {
			return s.ApplyRefund(ctx, "s1", o.ID, Refund{ID: "4", Amount: 100_000_000})
		}, 0},
	}
	for _, st := range steps {
		r, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if r.Revenue != st.revenue || r.Total != 124_500_000 {
			t.Errorf("%s: revenue %v total %v, want %v", st.name, r.Revenue, r.Total, st.revenue)
		}
	}

	// Cancelled, deleted, restored.
	c := shopifyOrder()
	c.ID, c.UpdatedAt, c.Cancelled = "7", thursday.Add(2*time.Hour), true
	if a, _ := s.Apply(ctx, "s1", c, nil); a.Result.Revenue != 0 || !a.Result.Cancelled {
		t.Errorf("cancelled: %+v", a.Result)
	}
	w := shopifyOrder()
	w.ID = "727"
	if _, err := s.Apply(ctx, "s1", w, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDeleted(ctx, "s1", "727"); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := s.Get(ctx, "s1", "727"); !r.Deleted || r.Revenue != 0 {
		t.Errorf("deleted: %+v", r)
	}
	w.UpdatedAt = thursday.Add(time.Minute) // restored, after the deletion
	if a, _ := s.Apply(ctx, "s1", w, nil); a.Result.Deleted || a.Result.Revenue != 124_500_000 {
		t.Errorf("restored: %+v", a.Result)
	}
	// A refund that arrives before its order is kept and counted.
	if _, err := s.ApplyRefund(ctx, "s1", "8", Refund{ID: "9", Amount: 4_500_000}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "s1", "8"); ok {
		t.Error("a refund alone made an order")
	}
	e := shopifyOrder()
	e.ID = "8"
	if a, _ := s.Apply(ctx, "s1", e, nil); a.Result.Revenue != 120_000_000 {
		t.Errorf("refund before order: %+v", a.Result)
	}
}

func TestOrdersRetentionAndKeys(t *testing.T) {
	s, l, rdb, c := newStore(t, OrdersOptions{Retention: 30 * day})
	ctx := context.Background()
	recordClassicWeek(t, l)
	old := shopifyOrder()
	old.ID, old.CreatedAt = "1", thursday.Add(-31*day)
	if a, err := s.Apply(ctx, "s1", old, nil); err != nil || !a.Expired || a.NewPaid {
		t.Errorf("an order past the retention: %+v, %v", a, err)
	}
	if _, err := s.Apply(ctx, "s1", shopifyOrder(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(ctx, "s1", "shopify", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRefund(ctx, "s1", "99", Refund{ID: "1", Amount: 1}); err != nil {
		t.Fatal(err)
	}
	ttl, _ := rdb.PTTL(ctx, OrderKey("s1", "5801234567890")).Result()
	if want := 30*day - 5*time.Second; ttl < want-time.Minute || ttl > want {
		t.Errorf("order ttl %v, want %v (30 days from its creation)", ttl, want)
	}
	// Every key of the site is under its prefix and expires; deleting the
	// prefix purges the site.
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if !strings.HasPrefix(k, "tw:{s1}:") {
			t.Errorf("key %q outside the site's prefix", k)
		}
		if k == OrderIndexKey("s1") {
			continue
		}
		if ttl, _ := rdb.PTTL(ctx, k).Result(); ttl <= 0 {
			t.Errorf("key %q has no expiry", k)
		}
	}
	// The index forgets orders past the retention.
	c.set(thursday.Add(31 * day))
	if _, err := s.ApplyRefund(ctx, "s1", "99", Refund{ID: "2", Amount: 1}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.ZCard(ctx, OrderIndexKey("s1")).Result(); n != 0 {
		t.Errorf("%d orders indexed past the retention", n)
	}
}

func TestOrdersDeliveries(t *testing.T) {
	s, _, _, c := newStore(t, OrdersOptions{DeliveryTTL: time.Hour})
	ctx := context.Background()
	id := "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
	if seen, err := s.SeenDelivery(ctx, "s1", "shopify", id); err != nil || seen {
		t.Fatalf("before: %v %v", seen, err)
	}
	if err := s.MarkDelivery(ctx, "s1", "shopify", id); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		site, source string
		want         bool
	}{{"s1", "shopify", true}, {"s2", "shopify", false}, {"s1", "woocommerce", false}} {
		if seen, _ := s.SeenDelivery(ctx, tt.site, tt.source, id); seen != tt.want {
			t.Errorf("%s/%s: seen %v", tt.site, tt.source, seen)
		}
	}
	if seen, _ := s.SeenDelivery(ctx, "s1", "shopify", ""); seen {
		t.Error("an empty id was seen")
	}
	_ = c
}

func TestOrdersReport(t *testing.T) {
	s, l, _, _ := newStore(t, OrdersOptions{MaxReportOrders: 10})
	ctx := context.Background()
	recordClassicWeek(t, l)
	apply := func(o Order) {
		t.Helper()
		if _, err := s.Apply(ctx, "s1", o, nil); err != nil {
			t.Fatal(err)
		}
	}
	apply(shopifyOrder()) // google primary, meta assist, 124.50
	meta := Order{ID: "2", CreatedAt: thursday.Add(-time.Hour), Currency: "USD", Total: 50_000_000, Paid: true,
		ClickIDs: map[string]destinations.ClickID{"fbclid": {Value: "f", At: wednesday.UnixMilli()}}}
	apply(meta)
	apply(Order{ID: "3", CreatedAt: thursday.Add(-2 * time.Hour), Currency: "USD", Total: 30_000_000, Paid: true}) // direct
	apply(Order{ID: "4", CreatedAt: thursday.Add(-3 * time.Hour), Currency: "USD", Total: 9_000_000})              // never paid
	apply(Order{ID: "5", CreatedAt: thursday.Add(-30 * day), Currency: "USD", Total: 1_000_000, Paid: true})       // before the range
	if _, err := s.ApplyRefund(ctx, "s1", "2", Refund{ID: "r", Amount: 20_000_000}); err != nil {
		t.Fatal(err)
	}

	r, err := s.Report(ctx, "s1", thursday.Add(-7*day), thursday.Add(time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != LastClick || len(r.Currencies) != 1 || r.Excluded != (Excluded{Unpaid: 1}) {
		t.Fatalf("report = %+v", r)
	}
	cr := r.Currencies[0]
	want := CurrencyReport{Currency: "USD", Platforms: []PlatformRow{
		{Platform: Google, Orders: 1, DirectRevenue: 124_500_000},
		{Platform: Meta, Orders: 1, DirectRevenue: 30_000_000, InfluencedRevenue: 124_500_000, Assists: 1},
	}, Totals: Totals{Orders: 3, Revenue: 184_500_000, DirectRevenue: 154_500_000}, Unattributed: Unattributed{Orders: 1, Revenue: 30_000_000}}
	if !reflect.DeepEqual(cr, want) {
		t.Errorf("report\n got %+v\nwant %+v", cr, want)
	}

	// until is exclusive; another model reads the same clicks.
	r, _ = s.Report(ctx, "s1", thursday.Add(-7*day), thursday, FirstClick)
	if r.Currencies[0].Totals.Orders != 2 || r.Currencies[0].Platforms[0].Platform != Meta {
		t.Errorf("first click, until the order: %+v", r.Currencies)
	}
	r, _ = s.Report(ctx, "s1", thursday.Add(-7*day), thursday.Add(time.Second), FirstClick)
	if p := r.Currencies[0].Platforms; len(p) != 1 || p[0].Platform != Meta || p[0].DirectRevenue != 154_500_000 || p[0].Assists != 1 {
		t.Errorf("first click: %+v", p)
	}
	if r, _ := s.Report(ctx, "s2", thursday.Add(-7*day), thursday.Add(time.Second), ""); len(r.Currencies) != 0 {
		t.Errorf("another site's report: %+v", r)
	}
	if _, err := s.Report(ctx, "s1", thursday, thursday, ""); err == nil {
		t.Error("an empty range was accepted")
	}
	if _, err := s.Report(ctx, "s1", thursday.Add(-day), thursday, "time_decay"); err == nil {
		t.Error("an unknown model was accepted")
	}
	for i := range 10 {
		apply(Order{ID: "10" + string(rune('0'+i)), CreatedAt: thursday.Add(-time.Minute), Currency: "USD", Total: 1, Paid: true})
	}
	if _, err := s.Report(ctx, "s1", thursday.Add(-7*day), thursday.Add(time.Second), ""); !errors.Is(err, ErrReportTooLarge) {
		t.Errorf("err = %v, want ErrReportTooLarge", err)
	}
}
