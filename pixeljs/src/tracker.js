// The tracker: the tagway(command, ...) commands, the page's state (consent,
// identified user), and the delivery of events: batching, holding, retrying.
//
// Events created in the same tick are sent in one request on the next
// setTimeout(0) (several when their body would pass MAX_BODY), or at once
// with sendBeacon when the page is hidden or unloaded. Each request carries
// sent_at, the device's clock when it leaves, with which the gateway corrects
// the events' times when that clock is wrong. Every event waits in the
// outbox until the gateway settled it: any 2xx settles the whole batch (the
// gateway stored each event or refused it for good), a 4xx other than 429
// drops it (it would fail again); when the gateway is unreachable or answers
// 5xx or 429, the events stay and are sent again with back-off (1 s doubling
// to 64 s), when the browser is back online, and — kept in localStorage when
// ad_storage allows storage — on the next page. An event is in one request
// at a time (the events of a later tick go in a request of their own, even
// while an earlier one is in flight); the outbox is bounded (50 events, 64 KB
// stored) and an event is dropped after 9 failed attempts. Raw PII
// (user_data) never goes to storage: a stored event is retried without it.
//
// Debug (the page's URL has tw_debug=1, or tagway('debug', true)): requests
// ask the gateway for each event's outcome (debug: true), which is printed
// on the console, console.warn for a refusal. Otherwise the script prints
// nothing.
//
// Consent: the page's choice (tagway('consent'), the IAB TCF or a Google
// Consent Mode update) wins; else the site's default applies (Consent Mode
// defaults are not read: they may be scoped to regions the script cannot
// see, and the site's consent_default says the same). With the wait default
// the events are held in memory until a choice is made (or the page is
// left), then sent under it.

import { VID_KEY, uuid, visitorSeed } from './ids.js';
import { forward } from './pixels.js';
import { json, post } from './transport.js';

const CONSENT_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage'];

// __TW_CONSENT_DEFAULT__ is the site's consent default (granted, denied or
// wait), baked in by the gateway, which builds one script per site's options
// and serves each site its own: it stands for ad_storage until the page
// chooses. (The build replaces the name with its value, and the minifier then
// folds the comparisons and drops what the default makes unreachable.)

const QUEUE_KEY = '_tw_q';
const MAX_EVENTS = 50;
const MAX_STORED = 65536;
// MAX_BODY bounds a request's body, in UTF-16 code units: at most 60 KB in
// UTF-8, under the gateway's 64 KB and the 64 KB browsers allow keepalive
// requests in flight.
const MAX_BODY = 2e4;

export const isObject = (v) => v != null && typeof v == 'object';
export const assign = Object.assign;

// safe returns f wrapped so that it never throws.
export const safe =
  (f) =>
  (...a) => {
    try {
      return f(...a);
    } catch (e) {}
  };

// nonEmpty returns o when it holds at least one key, else undefined, so that
// empty objects are left out of the body.
const nonEmpty = (o) => (Object.keys(o).length ? o : undefined);

// createTracker returns the tracker of one page. w is the window, endpoint the
// absolute collect URL.
export const createTracker = (w, endpoint) => {
  // chosen holds the page's consent choices.
  const chosen = {};
  // The identified user lives in memory only.
  const user = {};
  // box is the outbox: {e: event, u: its user_data (raw PII, never stored),
  // s: in flight, f: failed attempts}.
  let box = [];
  let restored = false;
  let timer = 0;
  let retry = 0;
  let delay = 1000;
  // debug asks the gateway for each event's outcome and prints it.
  let debug = /[?&]tw_debug=1\b/.test(w.location.search);

  // ad is the ad_storage state in force: "" while the wait default holds.
  const ad = () => chosen.ad_storage || (__TW_CONSENT_DEFAULT__ != 'wait' ? __TW_CONSENT_DEFAULT__ : '');
  const stores = () => ad() == 'granted';

  // store calls f with localStorage, which may be missing or throw.
  const store = safe((f) => f(w.localStorage));

  // save mirrors the events that failed at least once to localStorage.
  const save = () => {
    if (!stores()) return;
    const list = box.filter((x) => x.f).map((x) => x.e);
    let s;
    while ((s = json(list)).length > MAX_STORED) list.shift();
    store((st) => (list.length ? st.setItem(QUEUE_KEY, s) : st.removeItem(QUEUE_KEY)));
  };

  // add puts an event in the outbox unless one with its id is there: at the
  // end, or at the front when it failed before (f, a stored event).
  const add = (e, u, f) => {
    if (box.some((x) => x.e.event_id == e.event_id)) return false;
    box[f ? 'unshift' : 'push']({ e, u, f });
    if (box.length > MAX_EVENTS) box.shift();
    return true;
  };

  const later = () => {
    if (!timer) timer = setTimeout(flush);
  };

  const flush = safe((unloading) => {
    clearTimeout(timer);
    timer = 0;
    send(unloading);
  });

  // send posts the events not in flight, in one request of fewer than
  // MAX_BODY characters (the rest go in the next one). Consent and
  // identity are read at send time: a revoke applies at once. Unloading,
  // events already stored are left for the next page rather than sent twice.
  const send = (unloading) => {
    const a = ad();
    if (!a && !unloading) return;
    if (a == 'granted' && !restored) {
      restored = true;
      // Newest last, so added in reverse to the front; none stored is
      // null, which throws. (The gateway refuses, alone, an event too old
      // for the platforms.)
      store((st) => JSON.parse(st.getItem(QUEUE_KEY)).reverse().map((e) => add(e, 0, 1)));
    }
    const out = box.filter((x) => !x.s && !(unloading && x.f && stores()));
    let body;
    while (out.length) {
      body = {
        url: w.location.href,
        referrer: w.document.referrer,
        consent: nonEmpty(chosen),
        events: out.map((x) => assign({ user_data: nonEmpty(assign({}, user, x.u)) }, x.e)),
        // The visitor seed is stored on the device: only with ad_storage
        // granted. With the seed, the racing requests of a new visitor get
        // one _fbp.
        vid: a == 'granted' ? visitorSeed(store) : undefined,
        debug: debug || undefined,
        // The device's clock now, which the gateway compares with its own
        // to correct the events' times.
        sent_at: Date.now(),
      };
      if ((body = json(body)).length < MAX_BODY || out.length < 2) break;
      out.pop();
    }
    if (!body) return;
    for (const x of out) x.s = 1;
    post(w, endpoint, body, unloading, (status, res) => {
      // Delivered or refused for good: any answer but 5xx and 429; a
      // beacon the browser took.
      const ok = status && status < 500 && status != 429;
      for (const x of out) {
        x.s = 0;
        if (!ok) x.f = -~x.f;
      }
      box = box.filter((x) => (ok ? !out.includes(x) : x.f < 9));
      save();
      clearTimeout(retry);
      if (ok) {
        delay = 1000;
        if (box.length) unloading ? send(1) : later();
      } else {
        retry = setTimeout(flush, delay);
        delay = Math.min(delay * 2, 64000);
      }
      if (debug && res) res.json().then(report).catch(() => {});
    });
  };

  // report prints the gateway's answer to a debug request: each event's
  // outcome (console.warn when refused), or why the whole request was
  // refused.
  const report = (b) => (b.events || [b]).forEach((o) => console[o.error ? 'warn' : 'info']('tagway:', json(o)));

  // record creates one event, hands it to the pixels on the page and to
  // listeners of the tagway:event DOM event, and queues it for the next
  // flush. A Purchase with an order_id and no event_id takes the order id as
  // its event_id, the key the store's back end sends for the same order.
  // Last, it may throw (a page's broken CustomEvent): its callers are safe.
  const record = (name, data, opts) => {
    if (typeof name != 'string' || !name) return;
    opts = opts || {};
    const cd = isObject(data) ? nonEmpty(assign({}, data)) : undefined;
    const id = '' + (opts.event_id || (name == 'Purchase' && cd && cd.order_id) || uuid());
    const e = {
      event_name: name,
      event_id: id,
      event_time: (Date.now() / 1000) >>> 0, // whole seconds, until 2106
      event_source_url: w.location.href,
      custom_data: cd,
    };
    if (!add(e, isObject(opts.user_data) && assign({}, opts.user_data))) return;
    later();
    forward(w, name, id, cd);
    w.dispatchEvent(new CustomEvent('tagway:event', { detail: { name, event_id: id } }));
  };

  // consent applies a choice. A denied ad_storage removes what the script
  // stored; any choice releases the events the wait default held.
  const consent = (a) => {
    if (!isObject(a)) return;
    for (const k of CONSENT_KEYS) {
      if (a[k] == 'granted' || a[k] == 'denied') chosen[k] = a[k];
    }
    if (ad() == 'denied') store((st) => (st.removeItem(VID_KEY), st.removeItem(QUEUE_KEY)));
    later();
  };

  // The tagway(command, ...) commands, by name. An unknown name throws or
  // (Object.prototype's own) does nothing, which the caller swallows, and
  // bad arguments are ignored: the page must never break because of its tag.
  const commands = {
    track: record,
    page: (data, opts) => record('PageView', data, opts),
    identify: (u) => isObject(u) && assign(user, u),
    consent,
    debug: (on) => (debug = !!on),
  };

  // Leaving the page sends at once; coming back online, too.
  const unload = () => flush(1);
  w.addEventListener('pagehide', unload);
  w.document.addEventListener('visibilitychange', () => w.document.visibilityState == 'hidden' && unload());
  w.addEventListener('online', () => flush());

  return commands;
};
