// The tracker: the tagway(command, ...) commands, the page's state (consent,
// identified user), and the delivery of events: batching, holding, retrying.
//
// Events created in the same tick are sent in one request on the next
// setTimeout(0), or at once with sendBeacon when the page is hidden or
// unloaded. Every event waits in the outbox until the gateway acknowledged
// it: when the gateway is unreachable or answers 5xx, the events stay and are
// sent again with back-off (1 s doubling to 64 s), when the browser is back
// online, and — kept in localStorage when ad_storage allows storage — on the
// next page. An event is in one request at a time (the events of a later
// tick go in a request of their own, even while an earlier one is in
// flight); the outbox is bounded (50 events, 64 KB stored) and an event is
// dropped after 9 failed attempts. Raw PII (user_data) never goes to storage:
// a stored event is retried without it.
//
// Consent: the page's choice (tagway('consent'), the IAB TCF or a Google
// Consent Mode update) wins; else the site's default applies (Consent Mode
// defaults are not read: they may be scoped to regions the script cannot
// see, and the site's consent_default says the same). With the wait default
// the events are held in memory until a choice is made (or the page is
// left), then sent under it.

import { VID_KEY, uuid, visitorSeed } from './ids.js';
import { forward } from './pixels.js';
import { post } from './transport.js';

const CONSENT_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage'];

// __TW_CONSENT_DEFAULT__ is the site's consent default (granted, denied or
// wait), baked in by the gateway, which builds one script per site's options
// and serves each site its own: it stands for ad_storage until the page
// chooses. (The build replaces the name with its value, and the minifier then
// folds the comparisons and drops what the default makes unreachable.)

const QUEUE_KEY = '_tw_q';
const MAX_EVENTS = 50;
const MAX_STORED = 65536;

export const isObject = (v) => v != null && typeof v == 'object';
export const assign = Object.assign;

// nonEmpty returns o when it holds at least one key, else undefined, so that
// empty objects are left out of the body.
const nonEmpty = (o) => (Object.keys(o).length ? o : undefined);

// createTracker returns the tracker of one page. w is the window, endpoint the
// absolute collect URL.
export function createTracker(w, endpoint) {
  // chosen holds the page's consent choices.
  const chosen = {};
  // The identified user lives in memory only.
  const user = {};
  // box is the outbox: {e: event, s: in flight, f: failed attempts}.
  let box = [];
  let restored = false;
  let timer = 0;
  let retry = 0;
  let delay = 1000;
  let storage;
  try {
    storage = w.localStorage;
  } catch (e) {}

  // ad is the ad_storage state in force: "" while the wait default holds.
  const ad = () => chosen.ad_storage || (__TW_CONSENT_DEFAULT__ != 'wait' ? __TW_CONSENT_DEFAULT__ : '');
  const stores = () => ad() == 'granted';

  const store = (f) => {
    try {
      f(storage);
    } catch (e) {}
  };

  // save mirrors the events that failed at least once to localStorage.
  function save() {
    if (!stores()) return;
    const list = box.filter((x) => x.f).map((x) => assign({}, x.e, { user_data: undefined }));
    let s;
    while ((s = JSON.stringify(list)).length > MAX_STORED) list.shift();
    store((st) => (list.length ? st.setItem(QUEUE_KEY, s) : st.removeItem(QUEUE_KEY)));
  }

  // add puts an event in the outbox unless one with its id is there.
  function add(e, f, first) {
    if (box.some((x) => x.e.event_id == e.event_id)) return false;
    box[first ? 'unshift' : 'push']({ e, f });
    if (box.length > MAX_EVENTS) box.shift();
    return true;
  }

  function later() {
    if (!timer) timer = setTimeout(flush, 0);
  }

  function flush(unloading) {
    clearTimeout(timer);
    timer = 0;
    try {
      send(unloading);
    } catch (e) {}
  }

  // send posts the events not in flight, in one request. Consent and
  // identity are read at send time: a revoke applies at once. Unloading,
  // events already stored are left for the next page rather than sent twice.
  function send(unloading) {
    const a = ad();
    if (!a && !unloading) return;
    if (a == 'granted' && !restored) {
      restored = true;
      store((st) => {
        const saved = JSON.parse(st.getItem(QUEUE_KEY)) || [];
        // Newest last, so added in reverse to the front; an event too old
        // for the platforms (Meta takes 7 days) is dropped.
        for (let i = saved.length; i--; ) {
          const e = saved[i];
          if (e.event_time > Date.now() / 1000 - 6 * 86400) add(e, 1, 1);
        }
      });
    }
    const out = box.filter((x) => !x.s && !(unloading && x.f && stores())).slice(0, MAX_EVENTS);
    if (!out.length) return;
    const body = {
      url: w.location.href,
      referrer: w.document.referrer,
      consent: nonEmpty(assign({}, chosen)),
      events: out.map((x) => assign({}, x.e, { user_data: nonEmpty(assign({}, user, x.e.user_data)) })),
    };
    // The visitor seed is stored on the device: only with ad_storage granted.
    // With the seed, the racing requests of a new visitor get one _fbp.
    if (a == 'granted') body.vid = visitorSeed(storage, Date.now());
    for (const x of out) x.s = 1;
    post(w, endpoint, JSON.stringify(body), unloading, (ok) => {
      for (const x of out) {
        x.s = 0;
        if (!ok) x.f = (x.f | 0) + 1;
      }
      box = box.filter((x) => (ok ? out.indexOf(x) < 0 : x.f < 9));
      save();
      clearTimeout(retry);
      if (ok) {
        delay = 1000;
        if (box.length) later();
      } else {
        retry = setTimeout(flush, delay);
        delay = Math.min(delay * 2, 64000);
      }
    });
  }

  // record creates one event, hands it to the pixels on the page and to
  // listeners of the tagway:event DOM event, and queues it for the next
  // flush. A Purchase with an order_id and no event_id takes the order id as
  // its event_id, the key the store's back end sends for the same order.
  function record(name, data, opts) {
    if (typeof name != 'string' || !name) return;
    opts = opts || {};
    const cd = isObject(data) ? nonEmpty(assign({}, data)) : undefined;
    const e = {
      event_name: name,
      event_id: '' + (opts.event_id || (name == 'Purchase' && cd && cd.order_id) || uuid()),
      event_time: Math.floor(Date.now() / 1000),
      event_source_url: w.location.href,
      custom_data: cd,
      user_data: isObject(opts.user_data) ? assign({}, opts.user_data) : undefined,
    };
    if (!add(e)) return;
    later();
    forward(w, e);
    try {
      w.dispatchEvent(new CustomEvent('tagway:event', { detail: { name, event_id: e.event_id } }));
    } catch (err) {}
  }

  // consent applies a choice. A denied ad_storage removes what the script
  // stored; any choice releases the events the wait default held.
  function consent(a) {
    if (!isObject(a)) return;
    for (const k of CONSENT_KEYS) {
      if (a[k] == 'granted' || a[k] == 'denied') chosen[k] = a[k];
    }
    if (ad() == 'denied') store((st) => (st.removeItem(VID_KEY), st.removeItem(QUEUE_KEY)));
    later();
  }

  // command runs one tagway(...) call. Unknown commands and bad arguments are
  // ignored: the page must never break because of its tag.
  function command(args) {
    const a = args[1];
    switch (args[0]) {
      case 'track':
        record(a, args[2], args[3]);
        break;
      case 'page':
        record('PageView', a, args[2]);
        break;
      case 'identify':
        if (isObject(a)) assign(user, a);
        break;
      case 'consent':
        consent(a);
    }
  }

  return { command, consent, flush, record };
}
