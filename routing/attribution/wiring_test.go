package attribution_test

// How the gateway's order webhooks and this package fit together: a test
// that plays a Shopify store against orders.Handler, applies what it
// enqueues to the order store, and builds the Purchase of the new paid
// order. The conversion below (toOrder) is the wiring's whole mapping.

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/gateway/orders"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing/attribution"
)

// toOrder maps a parsed webhook order to what the order store needs.
func toOrder(src orders.Source, o *orders.Order) attribution.Order {
	out := attribution.Order{
		ID: o.ID, Source: string(src), CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		Currency: o.Currency, Total: int64(o.Total),
		Paid: o.Paid, Cancelled: o.Cancelled, Deleted: o.Deleted, Test: o.Test,
		VisitorID: o.Link.VisitorID, ClickIDs: o.Link.ClickIDs,
		LandingClickIDs: o.Link.LandingClickIDs, LandingAt: o.Link.LandingAt,
		Customer: attribution.CustomerDigests(o.UserData),
	}
	for _, r := range o.Refunds {
		out.Refunds = append(out.Refunds, attribution.Refund{ID: r.ID, Amount: int64(r.Amount), Currency: r.Currency})
	}
	return out
}

const shopifyCreate = `{"id":820982911946154508,"created_at":"2026-03-05T07:00:00-05:00","updated_at":"2026-03-05T07:00:02-05:00",` +
	`"currency":"USD","total_price":"59.90","financial_status":"paid","source_name":"web","email":"buyer@example.com",` +
	`"landing_site":"/?utm_source=google","note_attributes":[{"name":"_tw_vid","value":"1768035600000.4821937465"}],` +
	`"line_items":[{"id":1,"product_id":632910392,"variant_id":808950810,"quantity":1,"price":"59.90"}],"refunds":[]}`

func TestWiringShopifyClassicCase(t *testing.T) {
	thursday := time.Date(2026, 3, 5, 12, 0, 5, 0, time.UTC)
	now := func() time.Time { return thursday }
	rdb := redistest.Start(t).Client()
	ledger := attribution.NewLedger(rdb, attribution.LedgerOptions{Now: now})
	store := attribution.NewOrders(rdb, ledger, attribution.OrdersOptions{Now: now})
	ctx := context.Background()

	// The visitor's two visits, as the browser events record them.
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	visits := []*destinations.Event{
		{UserData: destinations.UserData{Fbc: "fb.1.1772445600000.IwAR_monday"}, Context: destinations.Context{VisitorID: "1768035600000.4821937465", Consent: granted}},
		{Context: destinations.Context{VisitorID: "1768035600000.4821937465", Consent: granted,
			ClickIDs: map[string]destinations.ClickID{"gclid": {Value: "Cj0_wednesday", At: time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC).UnixMilli()}}}},
	}
	if err := ledger.RecordEvents(ctx, "default", visits); err != nil {
		t.Fatal(err)
	}

	var purchases []destinations.Event
	apply := func(ctx context.Context, site string, c orders.Change) error {
		if seen, err := store.SeenDelivery(ctx, site, string(c.Source), c.DeliveryID); err != nil || seen {
			return err
		}
		switch c.Kind {
		case orders.KindOrder:
			applied, err := store.Apply(ctx, site, toOrder(c.Source, c.Order), nil)
			if err != nil {
				return err
			}
			if applied.NewPaid && !c.Order.Test {
				ev := c.Order.Purchase(site, c.ReceivedAt)
				attribution.AddClickIDs(&ev, applied.Touchpoints)
				purchases = append(purchases, ev)
			}
		case orders.KindRefund:
			r := c.Refund
			if _, err := store.ApplyRefund(ctx, site, c.OrderID, attribution.Refund{ID: r.ID, Amount: int64(r.Amount), Currency: r.Currency}); err != nil {
				return err
			}
		case orders.KindDeleted:
			if err := store.MarkDeleted(ctx, site, c.OrderID); err != nil {
				return err
			}
		}
		return store.MarkDelivery(ctx, site, string(c.Source), c.DeliveryID)
	}
	h, err := orders.NewHandler(orders.Shopify, orders.HandlerOptions{
		Secrets: func(context.Context, string) ([]string, error) { return []string{"shpss_secret"}, nil },
		Enqueue: apply,
		Now:     now,
	})
	if err != nil {
		t.Fatal(err)
	}
	send := func(topic, id, body string) int {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/shopify/default", bytes.NewReader([]byte(body)))
		r.Header.Set(orders.HeaderShopifyTopic, topic)
		r.Header.Set(orders.HeaderShopifyWebhookID, id)
		r.Header.Set(orders.HeaderShopifyHmac, orders.SignatureHeader([]byte(body), "shpss_secret"))
		w := httptest.NewRecorder()
		h.ServeSite(w, r, "default")
		return w.Code
	}
	// orders/create, its retry, then orders/paid and orders/updated.
	for _, d := range []struct{ topic, id string }{
		{orders.ShopifyOrdersCreate, "w1"}, {orders.ShopifyOrdersCreate, "w1"}, {orders.ShopifyOrdersPaid, "w2"}, {orders.ShopifyOrdersUpdated, "w3"},
	} {
		if code := send(d.topic, d.id, shopifyCreate); code != http.StatusOK {
			t.Fatalf("%s: status %d", d.topic, code)
		}
	}

	res, ok, err := store.Get(ctx, "default", "820982911946154508")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if res.Primary == nil || res.Primary.Platform != attribution.Google || len(res.Assists) != 1 || res.Assists[0].Platform != attribution.Meta ||
		res.Link != attribution.LinkVisitor || res.Revenue != 59_900_000 {
		t.Errorf("attribution = %+v", res)
	}
	if len(purchases) != 1 {
		t.Fatalf("%d purchases, want 1", len(purchases))
	}
	p := purchases[0]
	if p.EventID != "820982911946154508" || p.UserData.Fbc != "fb.1.1772445600000.IwAR_monday" || p.Context.ClickIDs["gclid"].Value != "Cj0_wednesday" ||
		len(p.UserData.Em) != 1 || strings.Contains(p.UserData.Em[0], "@") {
		t.Errorf("purchase = %+v", p)
	}
}
