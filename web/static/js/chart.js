// Optional chart tooltips. Every chart bucket already has an SVG <title>, which browsers show as a
// native tooltip without any script; this file only makes it appear at once, next to the pointer.
// Labels come from tracked events, so text is only ever set with textContent (never innerHTML).
// Event delegation on document: charts swapped in by htmx need no re-binding.
(function () {
  'use strict';
  var tip = null;
  var current = null;

  function bucketOf(node) {
    return node && node.closest ? node.closest('.op-chart__bucket') : null;
  }

  function hide() {
    if (current && current.dataset.opTip !== undefined) {
      // Put the <title> back so the no-JS tooltip and screen readers keep working.
      var title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
      title.textContent = current.dataset.opTip;
      current.insertBefore(title, current.firstChild);
      delete current.dataset.opTip;
    }
    current = null;
    if (tip) tip.hidden = true;
  }

  function show(bucket, event) {
    if (bucket !== current) {
      hide();
      var title = bucket.querySelector('title');
      if (!title) return;
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
    }
    var x = event.clientX + 14;
    var y = event.clientY + 14;
    var box = tip.getBoundingClientRect();
    if (x + box.width > window.innerWidth - 8) x = event.clientX - box.width - 14;
    if (y + box.height > window.innerHeight - 8) y = event.clientY - box.height - 14;
    tip.style.left = Math.max(8, x) + 'px';
    tip.style.top = Math.max(8, y) + 'px';
  }

  document.addEventListener('pointermove', function (event) {
    var bucket = bucketOf(event.target);
    if (bucket) show(bucket, event);
    else if (current) hide();
  });
  document.addEventListener('pointerleave', hide);
  window.addEventListener('scroll', hide, { passive: true });
})();
