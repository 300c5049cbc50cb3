// Browser pixels that receive each event with the same event_id as the
// gateway, so that each platform counts the conversion once: Meta's fbq
// (eventID), TikTok's ttq (event_id), Snap's snaptr (client_dedup_id),
// Pinterest's pintrk (event_id) and Reddit's rdt (conversionId). Each call
// is tried on its own: a pixel missing from the page (calling it throws) or
// one that throws never stops the others nor the tracker.

import { assign } from './tracker.js';

// NAMES holds Meta's standard events. After a name: its Snap event when it
// is not the name in upper snake case ("-": Snap has none; "*" or missing:
// the derived name), then its Pinterest event ("-" or missing: none), then
// its Reddit event ("=": the same name; missing: none, Reddit's Custom event
// named in customEventName). TikTok takes tagway's names as they are, custom
// ones included, except PageView: its base code's ttq.page() counts the
// page.
const NAMES = {};
for (const row of (
  'AddPaymentInfo ADD_BILLING,AddToCart ADD_CART addtocart =,AddToWishlist * - =,CompleteRegistration SIGN_UP signup SignUp,' +
  'Contact -,CustomizeProduct -,Donate -,FindLocation -,InitiateCheckout START_CHECKOUT,Lead - lead =,' +
  'PageView * pagevisit PageVisit,Purchase * checkout =,Schedule -,Search * search =,StartTrial,SubmitApplication -,Subscribe,ViewContent * - ='
).split(',')) {
  const r = row.split(' ');
  NAMES[r[0]] = r;
}

// forward hands the event to every pixel on the page.
export function forward(w, e) {
  const name = e.event_name;
  const id = e.event_id;
  const cd = e.custom_data || {};
  const n = NAMES[name];
  const items = cd.contents || (cd.content_ids || []).map((id) => ({ id }));
  // lines renames the items' id, quantity and price for a platform.
  const lines = (i, q, p) => items.map((c) => ({ [i]: c.id, [q]: c.quantity, [p]: c.item_price }));
  const money = { value: cd.value, currency: cd.currency };
  // (A name sorts after "*"; "*" and undefined do not.)
  const snap = n && n[1] != '-' && (n[1] > '*' ? n[1] : name.replace(/\B[A-Z]/g, '_$&').toUpperCase());
  // (A name sorts after "=" and "-"; "=", "-" and undefined do not.)
  const reddit = n && n[3] && (n[3] > '=' ? n[3] : name);
  const calls = [
    () => w.fbq(n ? 'track' : 'trackCustom', name, cd, { eventID: id }),
    () =>
      name != 'PageView' &&
      w.ttq.track(name, assign({ contents: lines('content_id', 'quantity', 'price') }, money), { event_id: id }),
    () =>
      snap &&
      w.snaptr('track', snap, {
        price: cd.value,
        currency: cd.currency,
        item_ids: items.map((c) => c.id),
        transaction_id: cd.order_id,
        client_dedup_id: id,
      }),
    () =>
      n &&
      n[2] > '-' &&
      w.pintrk(
        'track',
        n[2],
        assign(
          { order_id: cd.order_id, line_items: lines('product_id', 'product_quantity', 'product_price'), event_id: id },
          money,
        ),
      ),
    () =>
      w.rdt(
        'track',
        reddit || 'Custom',
        assign({ customEventName: reddit ? undefined : name, products: items.map((c) => ({ id: c.id })), conversionId: id }, money),
      ),
  ];
  for (const c of calls) {
    try {
      c();
    } catch (err) {}
  }
}
