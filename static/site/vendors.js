// Demo shop: stand-ins for the ad platforms' browser pixels.
//
// A real store pastes each platform's base code, which defines a queue
// function and then loads the platform's script from its CDN. The demo runs
// offline, so these stand-ins define the same globals and only record the
// calls (in fbq.queue, ttq.queue, snaptr.queue, pintrk.queue); nothing is
// loaded or sent. tw.js hands every event to each of them with the event id
// it posts to the gateway — fbq(..., {eventID}), ttq.track(..., {event_id}),
// snaptr('track', ..., {client_dedup_id}), pintrk('track', ..., {event_id}) —
// so each platform counts the browser event and the server event once.
//
// Note what is missing from a real base code here: the page-view lines
// (fbq('track', 'PageView'), snaptr('track', 'PAGE_VIEW'), pintrk('page')).
// tw.js sends the PageView and hands it to each pixel with its event id.
// TikTok's ttq.page() stays: TikTok's page view takes no event id.
(function (w) {
  'use strict';
  // Meta Pixel: the queue of its base code.
  if (!w.fbq) {
    var fbq = function () {
      if (fbq.callMethod) fbq.callMethod.apply(fbq, arguments);
      else fbq.queue.push(arguments);
    };
    w.fbq = w._fbq = fbq;
    fbq.push = fbq;
    fbq.loaded = true;
    fbq.version = '2.0';
    fbq.queue = [];
    fbq('init', '000000000000000'); // your pixel id
  }
  // TikTok, Snap and Pinterest: a function (or methods) that records.
  function recorder() {
    var f = function () { f.queue.push(Array.prototype.slice.call(arguments)); };
    f.queue = [];
    return f;
  }
  w.ttq = w.ttq || { queue: [] };
  ['track', 'page', 'identify'].forEach(function (m) {
    w.ttq[m] = function () { w.ttq.queue.push([m].concat(Array.prototype.slice.call(arguments))); };
  });
  w.ttq.page();
  w.snaptr = w.snaptr || recorder();
  w.snaptr('init', '00000000-0000-0000-0000-000000000000');
  w.pintrk = w.pintrk || recorder();
  w.pintrk('load', '0000000000000');
})(window);
