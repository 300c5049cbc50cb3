// tagway's first-party browser script.
//
// The page pastes a queue stub, then loads this script:
//
//   window.tagway=window.tagway||function(){(tagway.q=tagway.q||[]).push(arguments)}
//   <script async src="/tw.js"></script>
//
// On load the script replaces the stub, records a PageView and replays the
// queued calls in order; all of them go out in one request, under the consent
// and identity the queued calls set. Events go to the collect endpoint next to the script
// (/tw.js posts to /collect, /tw/tw.js to /tw/collect) unless the script tag
// names another one in data-endpoint. Every entry point is wrapped: the script
// never throws into the page.

import { createTracker } from './tracker.js';

function start(w, d) {
  const own = w.tagway;
  if (own && own.tw) return; // loaded twice: the first copy stays in charge
  const tag = d.currentScript;
  const attr = tag && tag.getAttribute('data-endpoint');
  // data-endpoint is resolved like any URL of the page; the default against
  // the script's own URL.
  const endpoint = attr
    ? new URL(attr, d.baseURI).href
    : new URL('collect', (tag && tag.src) || d.baseURI).href;
  const tracker = createTracker(w, endpoint);
  const tagway = function () {
    try {
      tracker.command(arguments);
    } catch (e) {}
  };
  tagway.tw = 1;
  w.tagway = tagway;
  tagway('page');
  const queued = (own && own.q) || [];
  for (let i = 0; i < queued.length; i++) tagway.apply(null, queued[i]);
  const unload = () => {
    try {
      tracker.flush(true);
    } catch (e) {}
  };
  w.addEventListener('pagehide', unload);
  d.addEventListener('visibilitychange', () => d.visibilityState == 'hidden' && unload());
}

try {
  start(window, document);
} catch (e) {}
