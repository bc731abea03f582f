// Optional chart tooltips and keyboard access. Every chart bucket already has an SVG <title>, which
// browsers show as a native tooltip without any script; this file makes it appear at once, next to the
// pointer, and lets a keyboard user walk the buckets: each chart is one tab stop, and ArrowLeft /
// ArrowRight / Home / End move between its buckets, showing the same tooltip and announcing its text
// through a polite live region; Escape or leaving the chart hides it.
// Labels come from tracked events, so text is only ever set with textContent (never innerHTML).
// Event delegation on document: charts swapped in by htmx need no re-binding.
(function () {
  'use strict';
  var tip = null;
  var live = null;
  var current = null;

  function bucketOf(node) {
    return node && node.closest ? node.closest('.op-chart__bucket') : null;
  }

  function hide() {
    if (current) {
      current.classList.remove('is-active');
      if (current.dataset.opTip !== undefined) {
        // Put the <title> back so the no-JS tooltip and screen readers keep working.
        var title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
        title.textContent = current.dataset.opTip;
        current.insertBefore(title, current.firstChild);
        delete current.dataset.opTip;
      }
    }
    current = null;
    if (tip) tip.hidden = true;
  }

  function place(x, y, avoidX, avoidY) {
    var box = tip.getBoundingClientRect();
    if (x + box.width > window.innerWidth - 8) x = avoidX - box.width - 14;
    if (y + box.height > window.innerHeight - 8) y = avoidY - box.height - 14;
    tip.style.left = Math.max(8, x) + 'px';
    tip.style.top = Math.max(8, y) + 'px';
  }

  function activate(bucket) {
    if (bucket === current) return true;
    hide();
    var title = bucket.querySelector('title');
    if (!title) return false;
    // Take the <title> out while our tooltip is shown, or the native one would appear on top.
    bucket.dataset.opTip = title.textContent;
    title.remove();
    current = bucket;
    if (!tip) {
      tip = document.createElement('div');
      tip.className = 'op-tip';
      tip.setAttribute('role', 'tooltip');
      document.body.appendChild(tip);
    }
    tip.textContent = bucket.dataset.opTip;
    tip.hidden = false;
    return true;
  }

  function showAtPointer(bucket, event) {
    if (!activate(bucket)) return;
    place(event.clientX + 14, event.clientY + 14, event.clientX, event.clientY);
  }

  function announce(text) {
    if (!live) {
      live = document.createElement('div');
      live.className = 'op-live-region';
      live.setAttribute('aria-live', 'polite');
      document.body.appendChild(live);
    }
    live.textContent = text;
  }

  function step(chart, key) {
    var buckets = chart.querySelectorAll('.op-chart__bucket');
    if (!buckets.length) return false;
    var index = Array.prototype.indexOf.call(buckets, current);
    if (key === 'Home') index = 0;
    else if (key === 'End') index = buckets.length - 1;
    else if (key === 'ArrowRight') index = index < 0 ? 0 : Math.min(buckets.length - 1, index + 1);
    else if (key === 'ArrowLeft') index = index < 0 ? buckets.length - 1 : Math.max(0, index - 1);
    else return false;
    var bucket = buckets[index];
    if (!activate(bucket)) return true;
    bucket.classList.add('is-active');
    var hit = bucket.querySelector('.op-chart__hit') || bucket;
    var rect = hit.getBoundingClientRect();
    var x = rect.left + rect.width / 2;
    place(x + 14, rect.top + 14, x, rect.top + 14);
    announce(bucket.dataset.opTip);
    return true;
  }

  document.addEventListener('pointermove', function (event) {
    var bucket = bucketOf(event.target);
    if (bucket) showAtPointer(bucket, event);
    else if (current && !current.classList.contains('is-active')) hide();
  });
  document.addEventListener('pointerleave', hide);
  window.addEventListener('scroll', function () {
    if (current && !current.classList.contains('is-active')) hide();
  }, { passive: true });

  document.addEventListener('keydown', function (event) {
    var chart = event.target;
    if (!chart || !chart.classList || !chart.classList.contains('op-chart')) return;
    if (event.key === 'Escape') {
      hide();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (step(chart, event.key)) event.preventDefault();
  });
  document.addEventListener('focusout', function (event) {
    if (current && event.target.contains && event.target.contains(current)) hide();
  });
})();
