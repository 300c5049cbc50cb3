// Demo shop: the live "events sent" panel and the consent banner.
//
// tw.js dispatches a `tagway:event` DOM event on window for every event it
// records, with detail {name, event_id}: the same id it posts to /collect
// and hands to each pixel stand-in (vendors.js). The panel lists every
// event with the pixels that received that very id. This file is loaded
// before tw.js, so it hears the very first PageView.
//
// The consent banner stands in for a store's consent platform: its choice
// goes to tagway('consent', ...) in Consent Mode v2 words, and is kept in
// localStorage (as a consent platform keeps its own record) so the next page
// states it again before tw.js loads. Without a choice the site's default
// applies (TAGWAY_CONSENT_DEFAULT: granted in the quick start).
(function () {
  'use strict';
  var KEY = 'demo_consent';
  var seen = [];
  var list = null;

  function saved() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function consent(state) {
    return { ad_storage: state, ad_user_data: state, ad_personalization: state, analytics_storage: state };
  }
  // The choice made on an earlier page, stated before tw.js loads.
  if (saved()) window.tagway('consent', consent(saved()));

  // pixels returns the stand-ins that received this event id.
  function pixels(id) {
    var got = [];
    var has = function (calls) {
      return calls.some(function (c) {
        var o = c[c.length - 1] || {};
        return o.eventID === id || o.event_id === id || o.client_dedup_id === id;
      });
    };
    if (window.fbq && has(window.fbq.queue)) got.push('Meta');
    if (window.ttq && has(window.ttq.queue)) got.push('TikTok');
    if (window.snaptr && has(window.snaptr.queue)) got.push('Snap');
    if (window.pintrk && has(window.pintrk.queue)) got.push('Pinterest');
    return got;
  }

  function row(e) {
    var li = document.createElement('li');
    var name = document.createElement('span');
    name.className = 'name';
    name.textContent = e.name;
    var id = document.createElement('code');
    id.textContent = e.event_id;
    var px = document.createElement('small');
    px.className = 'pixels';
    px.textContent = e.pixels.length ? 'same id → ' + e.pixels.join(', ') : 'no pixel takes this event';
    li.append(name, id, px);
    return li;
  }

  function render() {
    if (!list) return;
    list.replaceChildren.apply(list, seen.map(row));
    if (!seen.length) {
      var li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'Waiting for tw.js…';
      list.append(li);
    }
  }

  function showConsent() {
    var state = document.getElementById('consent-state');
    if (state) state.textContent = saved() ? 'consent: ' + saved() : 'consent: site default';
  }

  window.addEventListener('tagway:event', function (ev) {
    seen.push({ name: ev.detail.name, event_id: ev.detail.event_id, pixels: pixels(ev.detail.event_id) });
    render();
  });
  document.addEventListener('DOMContentLoaded', function () {
    list = document.getElementById('events');
    render();
    showConsent();
    var banner = document.getElementById('consent-banner');
    if (!banner) return;
    banner.hidden = !!saved();
    var choose = function (state) {
      return function () {
        try { localStorage.setItem(KEY, state); } catch (e) {}
        window.tagway('consent', consent(state));
        banner.hidden = true;
        showConsent();
      };
    };
    document.getElementById('consent-accept').addEventListener('click', choose('granted'));
    document.getElementById('consent-reject').addEventListener('click', choose('denied'));
    document.getElementById('consent-open').addEventListener('click', function () { banner.hidden = false; });
  });
})();
