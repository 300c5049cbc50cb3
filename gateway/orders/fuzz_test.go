package orders

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations/pii"
)

// checkChange asserts what every successfully parsed change promises.
func checkChange(t *testing.T, c Change) {
	t.Helper()
	if !validID(c.OrderID) {
		t.Fatalf("order id %q", c.OrderID)
	}
	if _, err := json.Marshal(c); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	switch c.Kind {
	case KindOrder:
		o := c.Order
		if o == nil || o.ID != c.OrderID || o.Total < 0 || len(o.Currency) != 3 || o.CreatedAt.IsZero() ||
			len(o.LineItems) > MaxLineItems || len(o.Refunds) > MaxRefunds {
			t.Fatalf("order %+v", o)
		}
		u := o.UserData
		for _, l := range [][]string{u.Em, u.Ph, u.Fn, u.Ln, u.Ct, u.St, u.Zp, u.Country} {
			if len(l) > maxPIIValues {
				t.Fatalf("%d values", len(l))
			}
			for _, v := range l {
				if !pii.IsSHA256(v) {
					t.Fatalf("user data value %q is not a digest", v)
				}
			}
		}
		for name, id := range o.Link.ClickIDs {
			if !isClickParam(name) || !validClickID(id.Value) {
				t.Fatalf("click id %s=%q", name, id.Value)
			}
		}
		if len(o.Link.LandingURL) > MaxURLLen*3 {
			t.Fatalf("landing url of %d bytes", len(o.Link.LandingURL))
		}
		for _, r := range o.Refunds {
			if r.Amount < 0 || r.ID == "" {
				t.Fatalf("refund %+v", r)
			}
		}
	case KindRefund:
		if c.Refund == nil || c.Refund.Amount < 0 {
			t.Fatalf("refund %+v", c.Refund)
		}
	case KindDeleted:
	default:
		t.Fatalf("kind %q", c.Kind)
	}
}

// checkErr asserts a parse error is one the handler can answer.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *PayloadError
	if !errors.As(err, &pe) && !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("error %v (%T) is neither a PayloadError nor ErrUnknownTopic", err, err)
	}
}

func FuzzParseShopify(f *testing.F) {
	for _, name := range []string{"shopify_order.json", "shopify_order_refunded.json", "shopify_order_cancelled.json"} {
		f.Add(ShopifyOrdersCreate, fixture(f, name))
	}
	f.Add(ShopifyRefundsCreate, fixture(f, "shopify_refund.json"))
	f.Add(ShopifyOrdersUpdated, []byte(`{"id":"1","created_at":"2026-03-05T07:00:00-05:00","currency":"usd","total_price":1e2,`+
		`"note_attributes":[{"name":"_tw_cid","value":"fbclid=1772445600000.a&gclid=1772445600000.b"},{"name":"_tw_fbc","value":"fb.1.1772445600000.c.AQ"}],`+
		`"landing_site":"https://x.example/?gclid=%41&wbraid=w"}`))
	f.Add(ShopifyOrdersPaid, []byte(`{"id":1,"line_items":[{"price":null,"quantity":"3"}],"refunds":[{"id":2,"transactions":[{"kind":"refund","amount":-1}]}]}`))
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		c, err := ParseShopify(topic, body, testNow)
		if err != nil {
			checkErr(t, err)
			return
		}
		checkChange(t, c)
	})
}

func FuzzParseWooCommerce(f *testing.F) {
	for _, name := range []string{"woo_order.json", "woo_order_refunded.json"} {
		f.Add(WooOrderUpdated, fixture(f, name))
	}
	f.Add(WooOrderDeleted, fixture(f, "woo_order_deleted.json"))
	f.Add(WooOrderCreated, []byte(`{"id":"7","date_created_gmt":"2026-03-05 12:00:00","currency":"EUR","total":12,`+
		`"meta_data":[{"key":"_tw_vid","value":1},{"key":"_wc_order_attribution_session_entry","value":"/?ttclid=x"}],`+
		`"refunds":[{"id":1,"total":"-0.5"}]}`))
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		c, err := ParseWooCommerce(topic, body, testNow)
		if err != nil {
			checkErr(t, err)
			return
		}
		checkChange(t, c)
	})
}

func FuzzVerify(f *testing.F) {
	body := fixture(f, "shopify_order.json")
	f.Add(body, SignatureHeader(body, shopSecret), shopSecret)
	f.Add([]byte("webhook_id=1"), "", wooSecret)
	f.Add([]byte(`{}`), "AAAA", "")
	f.Fuzz(func(t *testing.T, body []byte, signature, secret string) {
		got := Verify(body, signature, secret)
		if secret == "" && got {
			t.Fatal("an empty secret verified")
		}
		if got {
			dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
			if err != nil || !hmac.Equal(dec, Sign(body, secret)) {
				t.Fatal("verified a signature the secret does not make")
			}
		}
		if secret != "" && !Verify(body, SignatureHeader(body, secret), secret) {
			t.Fatal("the body's own signature did not verify")
		}
		_ = IsWooPing(body)
	})
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.50", "-10.00", "2.9166666666666665", "1.0e-5", "0", ".5", "999999999999.999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		if err != nil {
			return
		}
		if a > maxAmountUnits*1_000_000+1_000_000 || a < -(maxAmountUnits*1_000_000+1_000_000) {
			t.Fatalf("%q: %d out of bounds", s, a)
		}
		b, err := ParseAmount(a.String())
		if err != nil || b != a {
			t.Fatalf("%q: %d -> %q -> %d, %v", s, a, a.String(), b, err)
		}
	})
}
