// The tracker: the tagway(command, ...) commands, the page's state (consent,
// identified user), and the batching of events into requests.
//
// Events created in the same tick are sent in one request on the next
// setTimeout(0), or at once with sendBeacon when the page is hidden or
// unloaded. A later retry buffer plugs in at flush; click ids and more pixels
// at record.

import { uuid, visitorSeed } from './ids.js';
import { forward } from './pixels.js';
import { post } from './transport.js';

const CONSENT_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage'];

// CONSENT_DEFAULT is the site's consent default (granted, denied or wait),
// baked in by the gateway, which builds one script per default and serves
// each site its own: it stands for ad_storage until the page chooses.
const CONSENT_DEFAULT = __TW_CONSENT_DEFAULT__;

const isObject = (v) => v != null && typeof v == 'object';

// nonEmpty returns o when it holds at least one key, else undefined, so that
// empty objects are left out of the body.
const nonEmpty = (o) => (Object.keys(o).length ? o : undefined);

// createTracker returns the tracker of one page. w is the window, endpoint the
// absolute collect URL.
export function createTracker(w, endpoint) {
  const consent = {};
  // The identified user lives in memory only: raw PII never goes to
  // localStorage or cookies.
  const user = {};
  let pending = [];
  let timer = 0;

  // flush sends the pending events in one request. Consent and identity are
  // read at send time and apply to every event not yet sent: the events of
  // one tick go out under the latest choice (a revoke applies at once), and
  // the load PageView carries what the queued calls set.
  function flush(unloading) {
    clearTimeout(timer);
    timer = 0;
    if (!pending.length) return;
    const events = pending;
    pending = [];
    try {
      send(events, unloading);
    } catch (e) {}
  }

  function send(events, unloading) {
    const body = {
      url: w.location.href,
      referrer: w.document.referrer || undefined,
      consent: nonEmpty(Object.assign({}, consent)),
      events: events.map((e) =>
        Object.assign({}, e, { user_data: nonEmpty(Object.assign({}, user, e.user_data)) }),
      ),
    };
    // The visitor seed is stored on the device: only with ad_storage granted,
    // by the page's explicit choice or else by the site's default. With the
    // seed, the racing requests of a new visitor get one _fbp.
    if ((consent.ad_storage || CONSENT_DEFAULT) == 'granted') {
      let storage;
      try {
        storage = w.localStorage;
      } catch (e) {}
      body.vid = visitorSeed(storage, Date.now());
    }
    post(w, endpoint, JSON.stringify(body), unloading);
  }

  // record creates one event, hands it to the pixels on the page and to
  // listeners of the tagway:event DOM event, and queues it for the next flush.
  function record(name, data, opts) {
    if (typeof name != 'string' || !name) return;
    opts = isObject(opts) ? opts : {};
    const e = {
      event_name: name,
      event_id: typeof opts.event_id == 'string' && opts.event_id ? opts.event_id : uuid(),
      event_time: Math.floor(Date.now() / 1000),
      event_source_url: w.location.href,
      custom_data: isObject(data) ? nonEmpty(Object.assign({}, data)) : undefined,
      user_data: isObject(opts.user_data) ? Object.assign({}, opts.user_data) : undefined,
    };
    pending.push(e);
    if (!timer) timer = setTimeout(() => flush(), 0);
    forward(w, e);
    try {
      w.dispatchEvent(new CustomEvent('tagway:event', { detail: { name, event_id: e.event_id } }));
    } catch (err) {}
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
        if (isObject(a)) Object.assign(user, a);
        break;
      case 'consent':
        if (isObject(a)) {
          for (const k of CONSENT_KEYS) {
            if (a[k] == 'granted' || a[k] == 'denied') consent[k] = a[k];
          }
        }
    }
  }

  return { command, flush };
}
