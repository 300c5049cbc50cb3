package orders

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
)

// testNow is the receive time of the fixtures' webhooks: Thursday
// 2026-03-05, just after the orders were placed at 12:00 UTC.
var testNow = time.Date(2026, 3, 5, 12, 0, 5, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit returns the fixture with f applied to its decoded JSON.
func edit(t testing.TB, name string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hash(t testing.TB, field, v string) string {
	t.Helper()
	h, err := pii.HashAt(field, v, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

// noRawPII fails when the marshalled change holds any of the raw values.
func noRawPII(t *testing.T, c Change, raw ...string) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	low := strings.ToLower(string(b))
	for _, r := range raw {
		if strings.Contains(low, strings.ToLower(r)) {
			t.Errorf("parsed change holds raw %q: %s", r, b)
		}
	}
}

func TestParseShopifyOrder(t *testing.T) {
	c, err := ParseShopify(ShopifyOrdersCreate, fixture(t, "shopify_order.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Order
	if c.Kind != KindOrder || c.OrderID != "5801234567890" || o.ID != c.OrderID || c.Source != Shopify {
		t.Fatalf("change = %+v", c)
	}
	if want := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC); !o.CreatedAt.Equal(want) {
		t.Errorf("created_at = %v, want %v", o.CreatedAt, want)
	}
	if o.Currency != "USD" || o.Total != 124_500_000 || !o.Paid || o.Cancelled || o.Test || o.Status != "paid" || o.Channel != "web" {
		t.Errorf("order = %+v", o)
	}
	wantItems := []LineItem{{ID: "45012345678901", Quantity: 2, Price: 45_000_000}, {ID: "14012345678902", Quantity: 1, Price: 20_000_000}}
	if !slices.Equal(o.LineItems, wantItems) {
		t.Errorf("line items = %+v, want %+v", o.LineItems, wantItems)
	}
	l := o.Link
	if l.VisitorID != "1768035600000.4821937465" || l.Fbp != "fb.1.1768035600000.4821937465" || l.Fbc != "fb.1.1772445600000.IwAR_monday_fbclid" {
		t.Errorf("link = %+v", l)
	}
	wantClicks := map[string]destinations.ClickID{
		"gclid":  {Value: "Cj0KCQiA_wednesday_gclid", At: ms("2026-03-04T15:00:00Z")},
		"fbclid": {Value: "IwAR_monday_fbclid", At: ms("2026-03-02T10:00:00Z")},
	}
	if !mapsEqual(l.ClickIDs, wantClicks) {
		t.Errorf("click ids = %v, want %v", l.ClickIDs, wantClicks)
	}
	if l.LandingClickIDs["gclid"] != "Cj0KCQiA_landing_gclid" || len(l.LandingClickIDs) != 1 {
		t.Errorf("landing click ids = %v", l.LandingClickIDs)
	}
	if want := "/products/linen-shirt?gclid=Cj0KCQiA_landing_gclid&utm_campaign=Spring+Sale+2026&utm_medium=cpc&utm_source=google"; l.LandingURL != want {
		t.Errorf("landing url = %q, want %q", l.LandingURL, want)
	}

	u := o.UserData
	checks := []struct {
		field string
		got   []string
		want  []string
	}{
		{pii.Email, u.Em, []string{"jane.doe@example.com"}},
		{pii.Phone, u.Ph, []string{"(650) 555-0123", "+16505550123"}},
		{pii.FirstName, u.Fn, []string{"Jane"}},
		{pii.LastName, u.Ln, []string{"Doe"}},
		{pii.City, u.Ct, []string{"Menlo Park"}},
		{pii.State, u.St, []string{"CA"}},
		{pii.Zip, u.Zp, []string{"94025-1234"}},
		{pii.Country, u.Country, []string{"US"}},
	}
	for _, ch := range checks {
		var want []string
		for _, v := range ch.want {
			want = append(want, hash(t, ch.field, v))
		}
		if !slices.Equal(ch.got, want) {
			t.Errorf("%s = %v, want the digests of %v", ch.field, ch.got, ch.want)
		}
	}
	if u.ClientIPAddress != "203.0.113.24" || !strings.HasPrefix(u.ClientUserAgent, "Mozilla/5.0 (iPhone") {
		t.Errorf("ip/ua = %q %q", u.ClientIPAddress, u.ClientUserAgent)
	}
	if len(o.Skipped) != 0 {
		t.Errorf("skipped = %v", o.Skipped)
	}
	noRawPII(t, c, "jane", "doe@", "example.com", "555", "menlo", "94025", "1 Example Street")
}

func mapsEqual(a, b map[string]destinations.ClickID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseShopifyTopics(t *testing.T) {
	pending := edit(t, "shopify_order.json", func(m map[string]any) { m["financial_status"] = "pending" })
	tests := []struct {
		name, topic, file string
		body              []byte
		check             func(t *testing.T, c Change)
	}{
		{name: "create pending is not paid", topic: ShopifyOrdersCreate, body: pending, check: func(t *testing.T, c Change) {
			if c.Order.Paid {
				t.Error("paid")
			}
		}},
		{name: "orders/paid is paid", topic: ShopifyOrdersPaid, body: pending, check: func(t *testing.T, c Change) {
			if !c.Order.Paid {
				t.Error("not paid")
			}
		}},
		{name: "updated with a refund", topic: ShopifyOrdersUpdated, file: "shopify_order_refunded.json", check: func(t *testing.T, c Change) {
			want := []Refund{{ID: "990123456789", OrderID: "5801234567890", Amount: 47_860_000, Currency: "USD",
				CreatedAt: time.Date(2026, 3, 9, 14, 15, 0, 0, time.UTC)}}
			if !slices.Equal(c.Order.Refunds, want) || !c.Order.Paid || c.Order.Cancelled {
				t.Errorf("order = %+v, want refunds %+v", c.Order, want)
			}
		}},
		{name: "cancelled", topic: ShopifyOrdersCancelled, file: "shopify_order_cancelled.json", check: func(t *testing.T, c Change) {
			if !c.Order.Cancelled || len(c.Order.Refunds) != 1 || c.Order.Refunds[0].Amount != 124_500_000 {
				t.Errorf("order = %+v", c.Order)
			}
		}},
		{name: "refunds/create", topic: ShopifyRefundsCreate, file: "shopify_refund.json", check: func(t *testing.T, c Change) {
			want := Refund{ID: "990123456789", OrderID: "5801234567890", Amount: 47_860_000, Currency: "USD",
				CreatedAt: time.Date(2026, 3, 9, 14, 15, 0, 0, time.UTC)}
			if c.Kind != KindRefund || c.OrderID != "5801234567890" || c.Order != nil || c.Refund == nil || *c.Refund != want {
				t.Errorf("change = %+v, refund %+v", c, c.Refund)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if tt.file != "" {
				body = fixture(t, tt.file)
			}
			c, err := ParseShopify(tt.topic, body, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if c.Topic != tt.topic {
				t.Errorf("topic = %q", c.Topic)
			}
			tt.check(t, c)
		})
	}
	if _, err := ParseShopify("products/create", fixture(t, "shopify_order.json"), testNow); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("products/create: err = %v, want ErrUnknownTopic", err)
	}
}

func TestParseShopifyMalformed(t *testing.T) {
	set := func(k string, v any) func(m map[string]any) { return func(m map[string]any) { m[k] = v } }
	item := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["line_items"].([]any)[1].(map[string]any)[k] = v }
	}
	tests := []struct {
		name  string
		body  []byte
		field string
	}{
		{"no id", edit(t, "shopify_order.json", func(m map[string]any) { delete(m, "id") }), "id"},
		{"id not a number", edit(t, "shopify_order.json", set("id", "12ab")), "id"},
		{"negative id", edit(t, "shopify_order.json", set("id", -5)), "id"},
		{"fractional id", edit(t, "shopify_order.json", set("id", 1.5)), "id"},
		{"no created_at", edit(t, "shopify_order.json", set("created_at", nil)), "created_at"},
		{"created_at not a time", edit(t, "shopify_order.json", set("created_at", "yesterday")), "created_at"},
		{"created_at in the future", edit(t, "shopify_order.json", set("created_at", "2026-03-09T00:00:00Z")), "created_at"},
		{"created_at before 2000", edit(t, "shopify_order.json", set("created_at", "1999-12-31T23:59:59Z")), "created_at"},
		{"currency", edit(t, "shopify_order.json", set("currency", "US")), "currency"},
		{"total with a comma", edit(t, "shopify_order.json", set("total_price", "12,50")), "total_price"},
		{"negative total", edit(t, "shopify_order.json", set("total_price", "-1.00")), "total_price"},
		{"no total", edit(t, "shopify_order.json", set("total_price", nil)), "total_price"},
		{"price an object", edit(t, "shopify_order.json", item("price", map[string]any{})), "line_items[1].price"},
		{"negative quantity", edit(t, "shopify_order.json", item("quantity", -1)), "line_items[1].quantity"},
		{"test not a boolean", edit(t, "shopify_order.json", set("test", "yes")), "test"},
		{"line_items not an array", edit(t, "shopify_order.json", set("line_items", "none")), "line_items"},
		{"refund amount", edit(t, "shopify_order_refunded.json", func(m map[string]any) {
			m["refunds"].([]any)[0].(map[string]any)["transactions"].([]any)[0].(map[string]any)["amount"] = "lots"
		}), "refunds[0].transactions[0].amount"},
		{"not an object", []byte(`[1,2]`), ""},
		{"trailing data", append(fixture(t, "shopify_order.json"), []byte(" {}")...), ""},
		{"truncated", fixture(t, "shopify_order.json")[:300], ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseShopify(ShopifyOrdersCreate, tt.body, testNow)
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PayloadError", err)
			}
			if pe.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", pe.Field, err, tt.field)
			}
		})
	}
	if _, err := ParseShopify(ShopifyRefundsCreate, []byte(`{"id":5}`), testNow); err == nil {
		t.Error("a refund without order_id was accepted")
	}
}

func TestParseShopifyLenientFields(t *testing.T) {
	attrs := func(kv ...any) func(m map[string]any) {
		return func(m map[string]any) {
			var list []any
			for i := 0; i < len(kv); i += 2 {
				list = append(list, map[string]any{"name": kv[i], "value": kv[i+1]})
			}
			m["note_attributes"] = list
		}
	}
	tests := []struct {
		name    string
		body    []byte
		skipped []string
		check   func(t *testing.T, o *Order)
	}{
		{"bad visitor id", edit(t, "shopify_order.json", attrs("_tw_vid", "not-a-vid")), []string{"_tw_vid"}, func(t *testing.T, o *Order) {
			if o.Link.VisitorID != "" {
				t.Error("kept the visitor id")
			}
		}},
		{"one bad click id among good ones", edit(t, "shopify_order.json", attrs("_tw_cid", "gclid=1772636400000.good&ttclid=notatime.x&foo=1.y")),
			[]string{"_tw_cid"}, func(t *testing.T, o *Order) {
				if len(o.Link.ClickIDs) != 1 || o.Link.ClickIDs["gclid"].Value != "good" {
					t.Errorf("click ids = %v", o.Link.ClickIDs)
				}
			}},
		{"click id captured far in the future", edit(t, "shopify_order.json", attrs("_tw_cid", "gclid=1872636400000.x")), []string{"_tw_cid"}, nil},
		{"attribute value an object", edit(t, "shopify_order.json", attrs("_tw_fbc", map[string]any{"a": 1})), []string{"note_attributes._tw_fbc"}, nil},
		{"bad fbc", edit(t, "shopify_order.json", attrs("_tw_fbc", "fb.1.x.y")), []string{"_tw_fbc"}, nil},
		{"bad e-mail", edit(t, "shopify_order.json", func(m map[string]any) {
			m["email"], m["contact_email"] = "not an address", nil
			delete(m["customer"].(map[string]any), "email")
		}), []string{"customer.em"}, func(t *testing.T, o *Order) {
			if len(o.UserData.Em) != 0 || len(o.UserData.Ph) == 0 {
				t.Errorf("user data = %+v", o.UserData)
			}
		}},
		{"landing url with a bad escape keeps its click ids", edit(t, "shopify_order.json", func(m map[string]any) {
			m["landing_site"] = "/?x=%zz&fbclid=abc"
		}), []string{"landing_url"}, func(t *testing.T, o *Order) {
			if o.Link.LandingClickIDs["fbclid"] != "abc" {
				t.Errorf("landing click ids = %v", o.Link.LandingClickIDs)
			}
		}},
		{"bad browser ip", edit(t, "shopify_order.json", set("browser_ip", "not-an-ip")), nil, func(t *testing.T, o *Order) {
			if o.UserData.ClientIPAddress != "" {
				t.Error("kept the ip")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseShopify(ShopifyOrdersCreate, tt.body, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Order.Skipped, tt.skipped) {
				t.Errorf("skipped = %v, want %v", c.Order.Skipped, tt.skipped)
			}
			if tt.check != nil {
				tt.check(t, c.Order)
			}
		})
	}
}

func set(k string, v any) func(m map[string]any) { return func(m map[string]any) { m[k] = v } }

func TestParseShopifyBounds(t *testing.T) {
	body := edit(t, "shopify_order.json", func(m map[string]any) {
		items := m["line_items"].([]any)
		for len(items) <= MaxLineItems {
			items = append(items, items[0])
		}
		m["line_items"] = items
	})
	c, err := ParseShopify(ShopifyOrdersCreate, body, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Order.LineItems) != MaxLineItems || !c.Order.LineItemsTruncated || c.Order.Total != 124_500_000 {
		t.Errorf("%d line items, truncated %v", len(c.Order.LineItems), c.Order.LineItemsTruncated)
	}

	body = edit(t, "shopify_order.json", func(m map[string]any) {
		refunds := make([]any, MaxRefunds+1)
		for i := range refunds {
			refunds[i] = map[string]any{"id": i + 1, "transactions": []any{}}
		}
		m["refunds"] = refunds
	})
	var pe *PayloadError
	if _, err := ParseShopify(ShopifyOrdersUpdated, body, testNow); !errors.As(err, &pe) || pe.Field != "refunds" {
		t.Errorf("%d refunds: err = %v", MaxRefunds+1, err)
	}

	body = edit(t, "shopify_order.json", set("landing_site", "/?gclid=x&pad="+strings.Repeat("a", MaxURLLen)))
	c, err = ParseShopify(ShopifyOrdersCreate, body, testNow)
	if err != nil || c.Order.Link.LandingURL != "" || !slices.Contains(c.Order.Skipped, "landing_url") {
		t.Errorf("long landing url: %v, link %+v", err, c.Order.Link)
	}
}

func TestParseWooCommerceOrder(t *testing.T) {
	c, err := ParseWooCommerce(WooOrderCreated, fixture(t, "woo_order.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Order
	if c.Kind != KindOrder || c.OrderID != "727" || c.Source != WooCommerce {
		t.Fatalf("change = %+v", c)
	}
	if want := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC); !o.CreatedAt.Equal(want) {
		t.Errorf("created_at = %v, want %v", o.CreatedAt, want)
	}
	if o.Currency != "EUR" || o.Total != 39_850_000 || !o.Paid || o.Cancelled || o.Status != "processing" || o.Channel != "checkout" {
		t.Errorf("order = %+v", o)
	}
	wantItems := []LineItem{{ID: "101", Quantity: 1, Price: 29_411_765}, {ID: "87", Quantity: 2, Price: 2_105_000}}
	if !slices.Equal(o.LineItems, wantItems) {
		t.Errorf("line items = %+v, want %+v", o.LineItems, wantItems)
	}
	l := o.Link
	wantClicks := map[string]destinations.ClickID{
		"ttclid":  {Value: "E.C.P.landing_ttclid", At: ms("2026-03-05T11:50:00Z")},
		"msclkid": {Value: "b1e2msclk", At: ms("2026-03-02T10:00:00Z")},
	}
	if l.VisitorID != "1768035600000.7766554433" || !mapsEqual(l.ClickIDs, wantClicks) {
		t.Errorf("link = %+v", l)
	}
	if want := "https://shop.example/produkt/leinenhemd/?ttclid=E.C.P.landing_ttclid&utm_source=tiktok"; l.LandingURL != want {
		t.Errorf("landing url = %q, want %q", l.LandingURL, want)
	}
	if !l.LandingAt.Equal(time.Date(2026, 3, 5, 11, 50, 0, 0, time.UTC)) || l.LandingClickIDs["ttclid"] != "E.C.P.landing_ttclid" {
		t.Errorf("landing = %v %v", l.LandingAt, l.LandingClickIDs)
	}
	u := o.UserData
	if !slices.Equal(u.Em, []string{hash(t, pii.Email, "juergen.mueller@example.org")}) ||
		!slices.Equal(u.Fn, []string{hash(t, pii.FirstName, "Jürgen")}) ||
		!slices.Equal(u.Ph, []string{hash(t, pii.Phone, "+49 89 1234567")}) ||
		!slices.Equal(u.Zp, []string{hash(t, pii.Zip, "80331")}) ||
		!slices.Equal(u.Country, []string{hash(t, pii.Country, "DE")}) {
		t.Errorf("user data = %+v", u)
	}
	if u.ClientIPAddress != "2001:db8::24" || u.ClientUserAgent == "" {
		t.Errorf("ip/ua = %q %q", u.ClientIPAddress, u.ClientUserAgent)
	}
	if len(o.Skipped) != 0 {
		t.Errorf("skipped = %v", o.Skipped)
	}
	noRawPII(t, c, "jürgen", "müller", "mueller", "example.org", "1234567", "München", "80331", "Beispiel")
}

func TestParseWooCommerceTopics(t *testing.T) {
	status := func(s string, paid any) []byte {
		return edit(t, "woo_order.json", func(m map[string]any) { m["status"], m["date_paid_gmt"] = s, paid })
	}
	tests := []struct {
		name, topic             string
		body                    []byte
		paid, cancelled, delete bool
		refunds                 []Refund
	}{
		{"processing", WooOrderCreated, status("processing", nil), true, false, false, nil},
		{"completed", WooOrderUpdated, status("completed", "2026-03-05T12:00:03"), true, false, false, nil},
		{"pending", WooOrderCreated, status("pending", nil), false, false, false, nil},
		{"on-hold", WooOrderCreated, status("on-hold", nil), false, false, false, nil},
		{"failed", WooOrderUpdated, status("failed", nil), false, false, false, nil},
		{"cancelled", WooOrderUpdated, status("cancelled", nil), false, true, false, nil},
		{"refunded after payment", WooOrderUpdated, status("refunded", "2026-03-05T12:00:03"), true, false, false, nil},
		{"trash", WooOrderUpdated, status("trash", nil), false, false, true, nil},
		{"restored", WooOrderRestored, status("processing", nil), true, false, false, nil},
		{"refund", WooOrderUpdated, fixture(t, "woo_order_refunded.json"), true, false, false,
			[]Refund{{ID: "731", OrderID: "727", Amount: 9_900_000, Currency: "EUR"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseWooCommerce(tt.topic, tt.body, testNow)
			if err != nil {
				t.Fatal(err)
			}
			o := c.Order
			if o.Paid != tt.paid || o.Cancelled != tt.cancelled || o.Deleted != tt.delete || !slices.Equal(o.Refunds, tt.refunds) {
				t.Errorf("paid %v cancelled %v deleted %v refunds %+v", o.Paid, o.Cancelled, o.Deleted, o.Refunds)
			}
		})
	}

	c, err := ParseWooCommerce(WooOrderDeleted, fixture(t, "woo_order_deleted.json"), testNow)
	if err != nil || c.Kind != KindDeleted || c.OrderID != "727" || c.Order != nil {
		t.Errorf("deleted: %+v, %v", c, err)
	}
	if _, err := ParseWooCommerce(WooOrderDeleted, []byte(`{"id":"x"}`), testNow); err == nil {
		t.Error("deleted with a bad id was accepted")
	}
	if _, err := ParseWooCommerce("product.created", fixture(t, "woo_order.json"), testNow); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("product.created: err = %v", err)
	}
}

func TestParseWooCommerceMalformed(t *testing.T) {
	tests := []struct {
		name  string
		body  []byte
		field string
	}{
		{"id zero", edit(t, "woo_order.json", set("id", 0)), "id"},
		{"no gmt date", edit(t, "woo_order.json", set("date_created_gmt", nil)), "date_created_gmt"},
		{"total not a number", edit(t, "woo_order.json", set("total", true)), "total"},
		{"refund total", edit(t, "woo_order.json", set("refunds", []any{map[string]any{"id": 3, "total": "x"}})), "refunds[0].total"},
		{"refund without id", edit(t, "woo_order.json", set("refunds", []any{map[string]any{"total": "-1"}})), "refunds[0].id"},
		{"variation id text", edit(t, "woo_order.json", func(m map[string]any) {
			m["line_items"].([]any)[0].(map[string]any)["variation_id"] = "abc"
		}), "line_items[0]"},
		{"billing not an object", edit(t, "woo_order.json", set("billing", "x")), "billing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWooCommerce(WooOrderUpdated, tt.body, testNow)
			var pe *PayloadError
			if !errors.As(err, &pe) || pe.Field != tt.field {
				t.Fatalf("err = %v, want a *PayloadError on %q", err, tt.field)
			}
		})
	}
}

func TestIsWooPing(t *testing.T) {
	for body, want := range map[string]bool{
		"webhook_id=12":     true,
		"webhook_id=12\n":   true,
		"webhook_id=":       false,
		"webhook_id=1a":     false,
		"webhook_id=12&x=1": false,
		`{"id":12}`:         false,
		"webhook_id=" + "1234567890" + "12345678901": false,
	} {
		if got := IsWooPing([]byte(body)); got != want {
			t.Errorf("IsWooPing(%q) = %v, want %v", body, got, want)
		}
	}
}

func TestAmount(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		str  string
	}{
		{"12.50", 12_500_000, "12.5"},
		{"0.00", 0, "0"},
		{"-10.00", -10_000_000, "-10"},
		{"35", 35_000_000, "35"},
		{"2.9166666666666665", 2_916_667, "2.916667"},
		{"0.0000004", 0, "0"},
		{"0.0000005", 1, "0.000001"},
		{"1.0e-5", 10, "0.00001"},
		{"1E3", 1_000_000_000, "1000"},
		{".5", 500_000, "0.5"},
		{" 7.25 ", 7_250_000, "7.25"},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseAmount(%q) = %d (%s), %v; want %d (%s)", tt.in, got, got, err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"", ".", "-", "12,50", "1.2.3", "0x10", "1e400", "NaN", "Inf", "12 50", "10000000000000", "e5", "--1"} {
		if got, err := ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) = %v, want an error", bad, got)
		}
	}
}
