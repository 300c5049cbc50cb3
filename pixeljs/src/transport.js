// Posting a batch to the collect endpoint.
//
// The body is JSON sent as text/plain: a CORS "simple" request, so no
// preflight, and navigator.sendBeacon can send the very same request.

import { isObject, safe } from './tracker.js';

// stringify is the page's JSON.stringify as the script loaded.
const stringify = JSON.stringify;

// plain returns a copy of v made of objects and arrays without a prototype,
// so that no toJSON and no setter of the page's (Prototype.js gives arrays a
// toJSON that returns a string) applies: only own enumerable keys. What the
// page built badly is left out rather than sinking the batch: a reference
// to an enclosing object (a cycle), what is nested deeper than 9 levels, a
// property whose getter throws. A BigInt, which JSON has no form for,
// becomes a string. p holds the enclosing objects.
const plain = (v, p) => {
  if (!isObject(v)) return typeof v == 'bigint' ? '' + v : v;
  if (p.includes(v) || p.length > 8) return;
  p = p.concat([v]);
  const c = Object.setPrototypeOf(Array.isArray(v) ? [] : {}, null);
  for (const k of Object.keys(v)) safe(() => (c[k] = plain(v[k], p)))();
  return c;
};

// json returns v as JSON text, whatever the page did to toJSON or to
// Object.prototype since.
export const json = (v) => stringify(plain(v, []));

// post sends the body: with fetch (keepalive, so that it may outlive the
// page; with credentials, so that the gateway can set its first-party
// cookies), or with sendBeacon when unloading, each falling back on the
// other when it is missing, throws or refuses. Both send a string body as
// text/plain;charset=UTF-8. done(status, response) reports the outcome: the
// HTTP status and the Response of a fetch, 1 for a beacon the browser took,
// 0 when nothing could be sent or the gateway could not be reached.
export const post = (w, url, body, unloading, done) => {
  // done returns nothing: a beacon taken ends the loop.
  const beacon = () => w.navigator.sendBeacon(url, body) && !done(1);
  const fetch = () =>
    w.fetch(url, { method: 'POST', keepalive: true, credentials: 'include', body }).then(
      (r) => done(r.status, r),
      () => done(0),
    );
  for (const f of unloading ? [beacon, fetch] : [fetch, beacon]) if (safe(f)()) return;
  done(0);
};
