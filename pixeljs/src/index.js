// tagway's first-party browser script.
//
// The page pastes a queue stub, then loads this script:
//
//   window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)}
//   <script async src="/tw.js"></script>
//
// On load the script replaces the stub, records a PageView and replays the
// queued calls in order; all of them go out in one request, under the consent
// and identity the queued calls set. Events go to the collect endpoint the
// gateway baked in, relative to the script's own URL (/tw.js posts to
// /collect, /tw/tw.js to /tw/collect, a site's own script path to its own
// collect path), unless the script tag names another one in data-endpoint.
//
// Consent also comes from the IAB TCF API (__tcfapi) and from Google Consent
// Mode commands in window.dataLayer; with the site options, history
// navigation records a PageView (single-page apps) and GA4 e-commerce events
// in window.dataLayer are recorded as tagway's standard events. Every entry
// point is wrapped: the script never throws into the page. It relies on
// nothing a page commonly replaces after it loaded: JSON.stringify taken as
// the script loads and given copies without prototypes (pages redefine
// toJSON), fetch and sendBeacon each falling back on the other, storage
// that may throw.

import { consentUpdate, ecommerce, watch } from './datalayer.js';
import { createTracker, safe } from './tracker.js';

// Site options are baked in by the gateway (the build replaces the names
// with their values): __TW_COLLECT__, the collect endpoint relative to the
// script's URL; __TW_SPA__, page views on history navigation;
// __TW_DATALAYER__, GA4 e-commerce events from window.dataLayer.

const start = (w, d) => {
  const own = w.tagway;
  if (own && own.tw) return; // loaded twice: the first copy stays in charge
  const tag = d.currentScript;
  const attr = tag && tag.dataset.endpoint;
  // data-endpoint is resolved like any URL of the page; the default against
  // the script's own URL.
  const run = createTracker(w, new URL(attr || __TW_COLLECT__, (!attr && tag && tag.src) || d.baseURI).href);
  const tagway = safe((c, ...a) => run[c](...a));
  tagway.tw = 1;
  w.tagway = tagway;

  // Consent the page stated before: Consent Mode updates already in the
  // dataLayer, then the TCF (whose callback may come at once or later). The
  // TCF maps purpose 1 (store and access information on a device) to
  // ad_storage and analytics_storage, purposes 1, 4 and 7 (personalised ads
  // and their measurement) to ad_user_data, 3 and 4 to ad_personalization.
  // The TCF saying GDPR does not apply changes nothing.
  tagway('page');
  watch(
    w,
    safe((e) => {
      run.consent(consentUpdate(e));
      if (__TW_DATALAYER__) ecommerce(e, run.track);
    }),
  );
  try {
    w.__tcfapi(
      'addEventListener',
      2,
      safe((t, ok) => {
        // tcloaded or useractioncomplete: a choice; cmpuishown: none yet.
        if (!ok || !t.gdprApplies || t.eventStatus == 'cmpuishown') return;
        const p = (t.purpose && t.purpose.consents) || {};
        const all = (...n) => (n.every((i) => p[i]) ? 'granted' : 'denied');
        run.consent({
          ad_storage: all(1),
          ad_user_data: all(1, 4, 7),
          ad_personalization: all(3, 4),
          analytics_storage: all(1),
        });
      }),
    );
  } catch (e) {} // no TCF on the page

  ((own && own.q) || []).forEach((a) => tagway(...a));

  // Single-page apps: a PageView when pushState changes the URL (the hash
  // aside), or the back and forward buttons (popstate) lead to another one
  // than the last page viewed. replaceState is left alone: routers use it
  // to tidy the current URL, not to navigate.
  if (__TW_SPA__) {
    const h = w.history;
    const page = () => w.location.href.split('#')[0];
    let last = page();
    const nav = (from) => from != page() && ((last = page()), tagway('page'));
    const push = h.pushState;
    h.pushState = function () {
      const from = page();
      const r = push.apply(this, arguments);
      safe(nav)(from);
      return r;
    };
    w.addEventListener('popstate', safe(() => nav(last)));
  }
};

try {
  start(window, document);
} catch (e) {}
