// Package orders receives the order webhooks of Shopify and WooCommerce:
// it verifies a delivery's signature, parses its body into one canonical
// Change (an Order, a Refund, or a deletion) and hands it to a queue. It
// holds no state and talks to no store: the caller's enqueue function
// makes a change durable, and the order store (routing/attribution)
// applies it, deduplicating on Change.DeliveryID and on the order id.
//
// # Requests
//
// Handler serves one platform for any site: POST /webhooks/shopify/{site}
// or /webhooks/woocommerce/{site}. It reads at most MaxBody bytes (4 MiB),
// checks the signature header (Shopify X-Shopify-Hmac-Sha256, WooCommerce
// X-WC-Webhook-Signature: base64 HMAC-SHA256 of the raw body) against the
// site's secrets in constant time, then parses by topic (X-Shopify-Topic,
// X-WC-Webhook-Topic). A bad signature is 401 and nothing is stored; a
// malformed body is 400 naming the field; a topic not read is 200 and
// ignored; WooCommerce's unsigned ping ("webhook_id=N") is 200 when the
// site has a secret, so creating the webhook in WooCommerce fails loudly
// for a site without one. The platform is answered once the change is
// enqueued: delivery to ad platforms happens later, from the queue.
//
// # Parsing
//
// Topics: Shopify orders/create, orders/updated, orders/paid,
// orders/cancelled (the whole order) and refunds/create (one refund);
// WooCommerce order.created, order.updated, order.restored (the whole
// order) and order.deleted (the id only). Ids are kept as decimal strings,
// amounts as exact millionths (Amount) read from numbers or numeric strings
// ("12.50"). Fields tagway relies on (id, created_at, currency, total, line
// items, refunds) are strict: a wrong type or value is a *PayloadError. The
// fields a browser wrote (cart attributes, meta) and the customer's
// details are lenient: an unusable one is left out and named in
// Order.Skipped, never a reason to refuse an order.
//
// Customer e-mail, phone, names and address are normalized and SHA-256
// hashed with destinations/pii while parsing; the raw values never leave
// the parser, and errors and logs name fields, never values. Landing URLs
// keep only their path, click ids and utm_* parameters.
//
// # Link material
//
// On a Shopify store tw.js copies, with ad_storage granted, the visitor's
// cookies into the cart's attributes through /cart/update.js; Shopify
// copies cart attributes into the order's note_attributes:
//
//	_tw_vid   the visitor id (the _tw_vid cookie), "<Unix ms>.<digits>"
//	_tw_cid   the click ids with their capture times, the _tw_cid cookie's
//	          format: "gclid=<Unix ms>.<gclid>&ttclid=<Unix ms>.<ttclid>"
//	          (query-escaped values; fbclid may appear too)
//	_tw_fbp   Meta's _fbp cookie, as it is
//	_tw_fbc   Meta's _fbc cookie, "fb.1.<Unix ms>.<fbclid>"; its fbclid
//	          counts as a click captured at that time
//
// A WooCommerce store stores the same cookies in the order's meta under
// the same keys, with a few lines in the theme's functions.php (classic
// and block checkout):
//
//	add_action('woocommerce_checkout_create_order', 'tagway_order_meta');
//	add_action('woocommerce_store_api_checkout_update_order_meta', 'tagway_order_meta');
//	function tagway_order_meta($order) {
//		foreach (['_tw_vid', '_tw_cid', '_fbp', '_fbc'] as $c) {
//			if (!empty($_COOKIE[$c])) {
//				$key = $c[1] === 'f' ? '_tw' . $c : $c;
//				$v = preg_replace('/[^\x21-\x7E]/', '', wp_unslash($_COOKIE[$c]));
//				$order->update_meta_data($key, substr($v, 0, 4096));
//			}
//		}
//	}
//
// The order's own landing page is the second link: Shopify's landing_site,
// WooCommerce's order attribution meta _wc_order_attribution_session_entry
// (with _wc_order_attribution_session_start_time as the landing time). The
// third, the customer, is the order's hashed e-mail and phone.
package orders
