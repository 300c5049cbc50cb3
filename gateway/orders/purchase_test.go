package orders

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

func TestPurchase(t *testing.T) {
	c, err := ParseShopify(ShopifyOrdersCreate, fixture(t, "shopify_order.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	ev := c.Order.Purchase("shop1", testNow)
	if ev.EventName != "Purchase" || ev.EventID != "5801234567890" || ev.EventTime != time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC).Unix() ||
		ev.ActionSource != "website" {
		t.Errorf("event = %+v", ev)
	}
	cd := ev.CustomData
	if *cd.Value != 124.5 || cd.Currency != "USD" || cd.OrderID != "5801234567890" || *cd.NumItems != 3 ||
		!slices.Equal(cd.ContentIDs, []string{"45012345678901", "14012345678902"}) || *cd.Contents[0].ItemPrice != 45 || *cd.Contents[0].Quantity != 2 {
		t.Errorf("custom data = %+v", cd)
	}
	u := ev.UserData
	if u.Fbc != "fb.1.1772445600000.IwAR_monday_fbclid" || u.Fbp != "fb.1.1768035600000.4821937465" || len(u.Em) != 1 || u.ClientIPAddress == "" {
		t.Errorf("user data = %+v", u)
	}
	ctx := ev.Context
	want := map[string]destinations.ClickID{"gclid": {Value: "Cj0KCQiA_wednesday_gclid", At: ms("2026-03-04T15:00:00Z")}}
	if ctx.SiteID != "shop1" || ctx.VisitorID != "1768035600000.4821937465" || ctx.Source != "server" || !mapsEqual(ctx.ClickIDs, want) ||
		ctx.ReceivedAt != testNow.UnixMilli() {
		t.Errorf("context = %+v", ctx)
	}
	// The event owns its lists.
	ev.UserData.Em[0] = "x"
	if c.Order.UserData.Em[0] == "x" {
		t.Error("the event shares the order's user data")
	}
	if _, ok := c.Order.Link.ClickIDs["fbclid"]; !ok {
		t.Error("Purchase changed the order's click ids")
	}
}

func TestPurchaseFromLandingAndChannel(t *testing.T) {
	body := edit(t, "shopify_order.json", func(m map[string]any) {
		m["note_attributes"] = []any{}
		m["landing_site"] = "/?fbclid=IwAR_landing&ttclid=tt1"
		m["source_name"] = "pos"
	})
	c, err := ParseShopify(ShopifyOrdersCreate, body, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ev := c.Order.Purchase("shop1", testNow)
	created := c.Order.CreatedAt.UnixMilli()
	if ev.ActionSource != "physical_store" || ev.UserData.Fbc != "fb.1."+strconv.FormatInt(created, 10)+".IwAR_landing" || ev.UserData.Fbp != "" ||
		ev.Context.ClickIDs["ttclid"] != (destinations.ClickID{Value: "tt1", At: created}) || ev.Context.VisitorID != "" {
		t.Errorf("event = %+v", ev)
	}

	w, err := ParseWooCommerce(WooOrderCreated, fixture(t, "woo_order.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	ev = w.Order.Purchase("shop1", testNow)
	// The attribute's capture time wins over the landing's.
	if ev.Context.ClickIDs["ttclid"].At != ms("2026-03-05T11:50:00Z") || ev.Context.ClickIDs["msclkid"].Value != "b1e2msclk" || ev.UserData.Fbc != "" {
		t.Errorf("woo event = %+v", ev.Context)
	}
}
