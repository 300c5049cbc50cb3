package orders

import "testing"

func BenchmarkParseShopify(b *testing.B) {
	body := fixture(b, "shopify_order.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseShopify(ShopifyOrdersCreate, body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseWooCommerce(b *testing.B) {
	body := fixture(b, "woo_order.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseWooCommerce(WooOrderCreated, body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	body := fixture(b, "shopify_order.json")
	sig := SignatureHeader(body, shopSecret)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !Verify(body, sig, shopSecret) {
			b.Fatal("no")
		}
	}
}
