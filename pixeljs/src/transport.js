// Posting a batch to the collect endpoint.
//
// The body is JSON sent as text/plain: a CORS "simple" request, so no
// preflight, and navigator.sendBeacon can send the very same request.

const TYPE = 'text/plain;charset=UTF-8';

// post sends the body with fetch (keepalive, so it may outlive the page, and
// with credentials, so the gateway can set its first-party cookies), falling
// back to sendBeacon when fetch is missing or throws, or when unloading says
// so. done(ok) reports the outcome: ok is false when the gateway could not be
// reached or answered 5xx or 429, which are worth a retry; any other answer
// (a 4xx would fail again) counts as done. A beacon counts as done when the
// browser accepted it.
export function post(w, url, body, unloading, done) {
  if (!unloading) {
    try {
      return w
        .fetch(url, {
          method: 'POST',
          keepalive: true,
          credentials: 'include',
          headers: { 'Content-Type': TYPE },
          body,
        })
        .then(
          (r) => done(r.status < 500 && r.status != 429),
          () => done(false),
        );
    } catch (e) {}
  }
  let ok = false;
  try {
    ok = w.navigator.sendBeacon(url, new Blob([body], { type: TYPE }));
  } catch (e) {}
  done(ok);
}
