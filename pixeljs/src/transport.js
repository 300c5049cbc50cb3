// Posting a batch to the collect endpoint.
//
// The body is JSON sent as text/plain: a CORS "simple" request, so no
// preflight, and navigator.sendBeacon can send the very same request.

const TYPE = 'text/plain;charset=UTF-8';

// beacon queues the body with navigator.sendBeacon, which survives the page
// being unloaded. It reports whether the browser accepted the body.
export function beacon(nav, url, body) {
  try {
    return nav.sendBeacon(url, new Blob([body], { type: TYPE }));
  } catch (e) {
    return false;
  }
}

// post sends the body with fetch (keepalive, so it may outlive the page, and
// with credentials, so the gateway can set its first-party cookies), falling
// back to sendBeacon when fetch is missing or throws, or when unloading says so.
export function post(w, url, body, unloading) {
  if (!unloading && typeof w.fetch == 'function') {
    try {
      w.fetch(url, {
        method: 'POST',
        keepalive: true,
        credentials: 'include',
        headers: { 'Content-Type': TYPE },
        body,
      }).catch(() => {});
      return;
    } catch (e) {}
  }
  beacon(w.navigator, url, body);
}
