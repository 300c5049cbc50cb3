package attribution

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/internal/redistest"
)

// BenchmarkApply applies new orders whose visitor has two clicks: one
// ledger read, one script call each.
func BenchmarkApply(b *testing.B) {
	rdb := redistest.Start(b).Client()
	now := func() time.Time { return thursday.Add(time.Minute) }
	l := NewLedger(rdb, LedgerOptions{Now: now})
	s := NewOrders(rdb, l, OrdersOptions{Now: now})
	ctx := context.Background()
	if err := l.Record(ctx, "s1", vid1, tp("fbclid", "f", monday), tp("gclid", "g", wednesday)); err != nil {
		b.Fatal(err)
	}
	o := shopifyOrder()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		o.ID = strconv.Itoa(i)
		if a, err := s.Apply(ctx, "s1", o, nil); err != nil || !a.NewPaid {
			b.Fatal(a, err)
		}
	}
}

// BenchmarkRecordEvents records rounds of 64 events of new visitors, each
// with a click id; BenchmarkRecordEventsRepeated the same round again (what
// every event after a landing costs).
func BenchmarkRecordEvents(b *testing.B) {
	rdb := redistest.Start(b).Client()
	l := NewLedger(rdb, LedgerOptions{Now: func() time.Time { return thursday }})
	ctx := context.Background()
	events := make([]*destinations.Event, 64)
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	for i := range events {
		events[i] = &destinations.Event{Context: destinations.Context{VisitorID: "1768035600000." + strconv.Itoa(1_000_000_000+i), Consent: granted,
			ClickIDs: map[string]destinations.ClickID{"gclid": {Value: "g" + strconv.Itoa(i), At: wednesday.UnixMilli()}}}}
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for _, ev := range events {
				n++
				ev.Context.VisitorID = "1768035600000." + strconv.Itoa(1_000_000_000+n)
			}
			if err := l.RecordEvents(ctx, "s1", events); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := l.RecordEvents(ctx, "s1", events); err != nil {
				b.Fatal(err)
			}
		}
	})
}
