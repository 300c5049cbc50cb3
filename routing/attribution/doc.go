// Package attribution traces a store's orders back to the ad clicks that
// led to them and credits each order once: the most recent valid click is
// the primary, the other platforms with a valid click are assists
// (influenced revenue), so the direct revenue summed over platforms never
// exceeds the real revenue.
//
// It has three parts:
//
//   - Attribute, Attribution.Split and BuildReport are pure: given an
//     order's creation time, its touchpoints and the site's windows, they
//     decide the credit under a model (last click, first click, linear,
//     position-based 40/20/40).
//   - Ledger keeps each visitor's touchpoints (click id, platform, capture
//     time, landing page, consent) and an index from customer digests to
//     visitors, in Redis.
//   - Orders keeps each order's revenue (total, refunds, cancellation) and
//     its one attribution, with a time index for reports, in Redis.
//
// # Windows
//
// A click counts for an order when it was captured at or before the
// order's created_at and no longer before it than its type's window:
// fbclid 28 days, gclid/gbraid/wbraid 90, msclkid 90, ttclid 28, ScCid 28,
// epik 30, rdt_cid 28, li_fat_id 30 (the platforms' defaults; a site may
// override them, Windows). Windows run from the order's own time, not
// from when its webhook arrived.
//
// # Links
//
// Orders.Apply tries an order's links strongest first and uses the first
// that yields a valid click: the visitor id and click ids the order
// carries with the visitor's ledger (visitor_id), the click ids of its
// landing URL (landing_url), the ledgers of the visitors who identified
// with its hashed e-mail or phone (customer). An order with none is
// direct / unknown (link none) and still counted in reports. The first
// application attributes the order; later ones (updates, payment, refunds,
// the same webhook again) change its revenue only. The first application
// that sees the order paid says so once (Applied.NewPaid), so the caller
// sends one Purchase per order, ever.
//
// # Keys
//
// Every key of a site starts with tw:{<site>}: (one Cluster slot; deleting
// the keys under that prefix purges the site). Visitor ids are stored
// SHA-256 hashed; customer digests are the SHA-256 digests the gateway
// made; no raw e-mail, phone or visitor id is written.
//
//	tw:{site}:tp:<sha256(vid)>      sorted set: a visitor's touchpoints, member
//	                                "<type> <click id>", score the capture time (ms);
//	                                each click id keeps its earliest capture; at most
//	                                LedgerOptions.MaxTouchpoints (64), the oldest dropped;
//	                                expires Retention (97 days) after the last record
//	tw:{site}:tpd:<sha256(vid)>     hash: member -> {landing page, consent} JSON; same bounds
//	tw:{site}:cust:<digest>         sorted set: hashed visitor ids that identified with an
//	                                e-mail/phone digest, score last seen (ms); at most
//	                                MaxCustomerVisitors (16); expires with Retention
//	tw:{site}:order:<order id>      hash: s (state JSON), u (its updated_at), a (attribution
//	                                JSON, set once), p (set once paid), d (deleted at),
//	                                r:<refund id> ("<millionths> <currency>", at most 1000);
//	                                expires OrdersOptions.Retention (400 days) after the
//	                                order's creation
//	tw:{site}:orders                sorted set: order ids by creation time (ms); trimmed to
//	                                the retention on every write
//	tw:{site}:whd:<source>:<id>     a webhook delivery id seen; expires DeliveryTTL (7 days)
//
// Money is kept exact, in millionths of the currency unit.
package attribution
