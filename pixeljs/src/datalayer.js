// window.dataLayer: Google Consent Mode updates, always, and with the site
// option ga4_datalayer the GA4 e-commerce events, both as gtag() pushes them
// (the arguments object: 'event', name, params) and as Google Tag Manager
// pages push them ({event: name, ecommerce: params}).

// GA4 maps a GA4 e-commerce event to tagway's standard event.
const GA4 = {
  view_item: 'ViewContent',
  add_to_cart: 'AddToCart',
  add_to_wishlist: 'AddToWishlist',
  begin_checkout: 'InitiateCheckout',
  add_payment_info: 'AddPaymentInfo',
  purchase: 'Purchase',
};

// watch calls fn (which must not throw) for every entry of window.dataLayer, those already pushed
// and those pushed later, creating the array when the page has none (as
// gtag.js and GTM themselves do). It wraps push: GTM, loaded later, wraps
// ours in turn and both see every entry.
export const watch = (w, fn) => {
  const dl = (w.dataLayer = w.dataLayer || []);
  if (!Array.isArray(dl)) return;
  const each = (list) => [].forEach.call(list, fn);
  each(dl);
  const push = dl.push;
  dl.push = function () {
    const r = push.apply(this, arguments);
    each(arguments);
    return r;
  };
};

// consentUpdate returns the consent of gtag('consent', 'update', {...}).
export const consentUpdate = (e) => e && e[0] == 'consent' && e[1] == 'update' && e[2];

// ecommerce tracks a GA4 e-commerce entry, with track(name, custom_data): value,
// currency, transaction_id as order_id, and items as contents (item_id as
// id, quantity, price as item_price). Values go as the page has them: the
// gateway turns numbers in ids into strings and reads numbers written as
// strings, decimal commas included (GA4 plugins of European shops print
// "19,90"), where a conversion here would lose them. A malformed entry (no
// params) throws and is skipped.
export const ecommerce = (e, track) => {
  const gtag = e[0] == 'event';
  const name = GA4[gtag ? e[1] : e.event];
  const p = gtag ? e[2] : e.ecommerce;
  if (name)
    track(name, {
      value: p.value,
      currency: p.currency,
      order_id: p.transaction_id,
      contents: (p.items || [])
        .filter((i) => i.item_id != null)
        .map((i) => ({ id: i.item_id, quantity: i.quantity, item_price: i.price })),
    });
};
