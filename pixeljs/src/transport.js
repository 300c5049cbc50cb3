// Posting a batch to the collect endpoint.
//
// The body is JSON sent as text/plain: a CORS "simple" request, so no
// preflight, and navigator.sendBeacon can send the very same request.

// json returns v as JSON text, as JSON.stringify does for plain data, but
// whatever the page did to JSON, to toJSON (Prototype.js gives arrays one
// that returns a string) or to Object.prototype: only own enumerable keys,
// no toJSON; undefined, functions and symbols left out, non-finite numbers
// as null. What the page built badly is left out rather than sinking the
// batch: a reference to an enclosing object (a cycle), what is nested
// deeper than 9 levels, a property whose getter throws. Strings escape '"',
// '\' and control characters as \u00XX. p holds the enclosing objects.
export const json = (v, p, j) =>
  typeof v == 'string'
    ? '"' + v.replace(/[\0-\x1f"\\]/g, (c) => '\\u' + (c.charCodeAt() + 65536).toString(16).slice(1)) + '"'
    : v === null || typeof v == 'number' || typeof v == 'boolean'
      ? isFinite(v)
        ? '' + v
        : 'null'
      : typeof v == 'object' && (p = p || []).indexOf(v) < 0 && p.length < 9
        ? ((p = p.concat([v])),
          Array.isArray(v)
            ? '[' + Array.from(v, (x) => json(x, p) || 'null') + ']'
            : '{' +
              Object.keys(v)
                .map((k) => {
                  try {
                    return (j = json(v[k], p)) && json(k) + ':' + j;
                  } catch (e) {}
                })
                .filter((x) => x) +
              '}')
        : undefined;

// post sends the body: with fetch (keepalive, so that it may outlive the
// page; with credentials, so that the gateway can set its first-party
// cookies), or with sendBeacon when unloading, each falling back on the
// other when it is missing, throws or refuses. Both send a string body as
// text/plain;charset=UTF-8. done(status, response) reports the outcome: the
// HTTP status and the Response of a fetch, 1 for a beacon the browser took,
// 0 when nothing could be sent or the gateway could not be reached.
export function post(w, url, body, unloading, done) {
  // done returns nothing: a beacon taken ends the loop.
  const beacon = () => w.navigator.sendBeacon(url, body) && !done(1);
  const fetch = () =>
    w.fetch(url, { method: 'POST', keepalive: true, credentials: 'include', body }).then(
      (r) => done(r.status, r),
      () => done(0),
    );
  for (const f of unloading ? [beacon, fetch] : [fetch, beacon]) {
    try {
      if (f()) return;
    } catch (e) {}
  }
  done(0);
}
