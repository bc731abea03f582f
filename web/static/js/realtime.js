// The realtime page's live updates: one EventSource per tab on the page's data-stream URL. The server
// sends whole widgets ("stats", "feed") as HTML it rendered with autoescaping, and htmx.swap puts them
// in place; this script never builds markup from event data. The browser's EventSource reconnects by
// itself (the server sets the retry delay); the stream is closed when the page goes away.
(function () {
  'use strict';

  function start() {
    var root = document.getElementById('rt');
    var status = document.getElementById('rt-status');
    if (!root || !root.dataset.stream || !window.EventSource || !window.htmx) return;
    var source = new EventSource(root.dataset.stream);

    function setStatus(state, text) {
      if (!status) return;
      status.dataset.state = state;
      status.textContent = text;
    }

    ['stats', 'feed'].forEach(function (name) {
      source.addEventListener(name, function (event) {
        var target = document.getElementById('rt-' + name);
        if (target) window.htmx.swap(target, event.data, { swapStyle: 'outerHTML' });
        setStatus('live', 'Live');
      });
    });
    source.addEventListener('open', function () { setStatus('live', 'Live'); });
    source.addEventListener('error', function () {
      setStatus('offline', source.readyState === EventSource.CLOSED ? 'Disconnected' : 'Reconnecting…');
    });
    window.addEventListener('pagehide', function () { source.close(); });
  }

  // Deferred scripts run in document order and this one comes before htmx: wait for the DOM (and htmx).
  if (document.readyState === 'complete') start();
  else document.addEventListener('DOMContentLoaded', start);
})();
