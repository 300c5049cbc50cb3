// Demo shop: the live "events sent" panel.
//
// tw.js dispatches a `tagway:event` DOM event on window for every event it
// records, with detail {name, event_id}: the same id it posts to /collect and
// hands to the Meta Pixel as eventID. This file is loaded before tw.js, so it
// hears the very first PageView, and it fills <ol id="events"> once the page
// is parsed.
(function () {
  'use strict';
  var seen = [];
  var list = null;

  function row(e) {
    var li = document.createElement('li');
    var name = document.createElement('span');
    name.className = 'name';
    name.textContent = e.name;
    var id = document.createElement('code');
    id.textContent = e.event_id;
    li.append(name, id);
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

  window.addEventListener('tagway:event', function (ev) {
    seen.push(ev.detail);
    render();
  });
  document.addEventListener('DOMContentLoaded', function () {
    list = document.getElementById('events');
    render();
  });
})();
