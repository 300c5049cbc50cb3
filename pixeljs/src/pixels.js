// Browser pixels that receive each event with the same event_id as the
// gateway, so that each platform counts the conversion once: Meta's fbq
// (eventID), TikTok's ttq (event_id), Snap's snaptr (client_dedup_id),
// Pinterest's pintrk (event_id) and Reddit's rdt (conversionId). Each call
// is tried on its own: a pixel missing from the page (calling it throws) or
// one that throws never stops the others nor the tracker.

import { safe } from './tracker.js';

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

// forward hands the event to every pixel on the page. A call that throws
// (a custom event has no Snap or Pinterest name: n is undefined) is skipped.
export const forward = (w, name, id, cd) => {
  cd = cd || {};
  const n = NAMES[name];
  const items = cd.contents || (cd.content_ids || []).map((id) => ({ id }));
  const ids = items.map((c) => c.id);
  // lines renames the items' id, quantity and price for a platform: i
  // prefixes the id, q (i unless given) the quantity and the price.
  const lines = (i, q = i) => items.map((c) => ({ [i + 'id']: c.id, [q + 'quantity']: c.quantity, [q + 'price']: c.item_price }));
  const value = cd.value;
  const currency = cd.currency;
  // (A name sorts after "=" and "-"; "=", "-" and undefined do not.)
  const reddit = n && n[3] && (n[3] > '=' ? n[3] : name);
  [
    () => w.fbq(n ? 'track' : 'trackCustom', name, cd, { eventID: id }),
    () =>
      name != 'PageView' &&
      w.ttq.track(name, { value, currency, contents: lines('content_', '') }, { event_id: id }),
    // (A name sorts after "*"; "*" and undefined do not.)
    () =>
      n[1] != '-' &&
      w.snaptr('track', n[1] > '*' ? n[1] : name.replace(/\B[A-Z]/g, '_$&').toUpperCase(), {
        price: value,
        currency,
        item_ids: ids,
        transaction_id: cd.order_id,
        client_dedup_id: id,
      }),
    () =>
      n[2] > '-' &&
      w.pintrk('track', n[2], {
        value,
        currency,
        order_id: cd.order_id,
        line_items: lines('product_'),
        event_id: id,
      }),
    () =>
      w.rdt('track', reddit || 'Custom', {
        value,
        currency,
        customEventName: reddit ? undefined : name,
        products: ids.map((id) => ({ id })),
        conversionId: id,
      }),
  ].forEach((c) => safe(c)());
};
