// op1.js v1, readable source: the openpanel-lite web tracker. Cookieless, no dependencies, ES2020.
//
// The shipped web/static/tracker/op1.js is generated from this file; never edit it by hand:
//   bash scripts/build_tracker.sh
// (terser, pinned in tests/js/package.json). tests/test_tracker_size.py fails when op1.js is stale or
// when it is over 1.5 KB gzipped.
//
// API-compatible with OpenPanel's `window.op` queue: the page's stub queues calls until this file loads;
// the first queued `init` gives the options, every queued call is replayed, then `window.op` is callable
// both ways (`op('track', name, props)` and `op.track(name, props)`), and `window.openpanel` is the API.
//
// Published versions are never edited. Any change, even a fix, ships as a new file (op2.js), so a page
// that pins op1.js keeps the behaviour it was tested with.
//
// Written to minify well: one IIFE, arrow functions, no classes; terser shortens the local names. Object
// keys are wire names (payload, properties, profileId, ...) and are kept as they are.
((w, d) => {
  if (w.openpanel) return; // loaded twice: the first copy already owns window.op

  const queue = w.op?.q || [];
  const o = queue.find((item) => item[0] == 'init')?.[1];
  if (!o) return; // no op('init', {...}) queued before op1.js: nothing to track

  // POST {apiUrl}/track; without apiUrl, the folder this script was served from (our server serves
  // /op1.js next to /track).
  const url = o.apiUrl ? o.apiUrl.replace(/\/*$/, '/track') : new URL('track', d.currentScript.src);
  const headers = {
    'Content-Type': 'application/json',
    'openpanel-client-id': o.clientId,
    'openpanel-sdk-name': 'web',
    'openpanel-sdk-version': 'lite-1',
  };

  let disabled = o.disabled;
  let globals = { __referrer: d.referrer };
  let profileId;
  let deviceId;
  let sessionId;
  let lastPath = '';
  const held = []; // payloads kept while disabled, sent by ready()
  const sleepers = []; // wake-ups of the retries waiting out their backoff

  // A random RFC 4122 version 4 UUID. crypto.getRandomValues works on plain-http pages too, where
  // crypto.randomUUID does not exist.
  const uuid = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    let i = 0;
    return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) =>
      (c == 'x' ? bytes[i++] & 15 : 8 | (bytes[i++] & 3)).toString(16)
    );
  };

  // One request per call. Any failure but a 401 is retried 3 times, after 500, 1000 and 2000 ms, with
  // the same body, so with the same __eventId: the server drops the copies that had already arrived.
  // As upstream, a 2xx reply that is not JSON counts as a failure.
  const post = async (message) => {
    const body = JSON.stringify(message);
    for (let attempt = 0; ; attempt++) {
      try {
        // Browsers refuse keepalive bodies over 64 KiB: send those as ordinary requests (a UTF-16 code
        // unit is at most 3 bytes of UTF-8).
        const res = await fetch(url, { method: 'POST', headers, body, keepalive: body.length < 2e4 });
        if (res.status == 401) return null;
        if (res.ok) {
          const reply = await res.json();
          deviceId = reply.deviceId;
          sessionId = reply.sessionId;
          return reply;
        }
      } catch {
        // a network error, or a reply that is not JSON: retried below
      }
      if (attempt > 2) return null;
      await new Promise((wake) => {
        sleepers.push(wake);
        setTimeout(wake, 500 << attempt);
      });
    }
  };
  // A hidden page may never come back: send the waiting retries now (keepalive outlives the page).
  const wakeAll = () => sleepers.splice(0).map((wake) => wake());
  w.addEventListener('pagehide', wakeAll);
  d.addEventListener('visibilitychange', () => d.hidden && wakeAll());

  const send = (type, payload) => {
    const message = { type, payload };
    if (o.filter && !o.filter(message)) return;
    if (!disabled) return post(message);
    // Held for consent: the event keeps the time it happened.
    if (type == 'track') payload.properties.__timestamp = new Date().toISOString();
    held.push(message);
  };

  // The base event: global properties, then the caller's; profileId and groups are lifted out of them.
  // A caller's own __eventId (say an order id) wins: it is the server's idempotency key.
  const event = (name, { profileId: id = profileId, groups, ...props } = {}) =>
    send('track', { name, profileId: id, groups, properties: { ...globals, __eventId: uuid(), ...props } });

  // The web track adds the page: the last screen view's URL, else the current one.
  const track = (name, props) => event(name, { __path: lastPath || location.href, ...props });

  const screenView = (path, props) => {
    if (typeof path != 'string') {
      props = path;
      path = location.href;
    }
    if (path != lastPath) {
      lastPath = path;
      return event('screen_view', { ...props, __path: path, __title: d.title });
    }
  };

  const api = {
    init() {},
    ready() {
      disabled = 0;
      // An event held before identify() gets the profile it belongs to.
      for (const message of held.splice(0)) {
        message.payload.profileId ??= profileId;
        post(message);
      }
    },
    track,
    screenView,
    // As upstream: a profile id is required, and only a profile with more than its id is worth a request;
    // its properties get the globals too.
    identify({ profileId: id, ...rest }) {
      if (id) {
        profileId = id;
        if (Object.keys(rest).length) {
          return send('identify', { profileId, ...rest, properties: { ...globals, ...rest.properties } });
        }
      }
    },
    increment: (change) => send('increment', { profileId, ...change }),
    decrement: (change) => send('decrement', { profileId, ...change }),
    setGlobalProperties(props) {
      globals = { ...globals, ...props };
    },
    // Server SDKs may name the visitor's device (deviceId); it travels as __deviceId.
    revenue: (amount, { deviceId, ...props } = {}) =>
      track('revenue', { ...props, __revenue: amount, __deviceId: deviceId }),
    clear() {
      profileId = deviceId = sessionId = undefined;
    },
    // What the server's last reply said ('' before any, and after clear()).
    getDeviceId: () => deviceId ?? '',
    getSessionId: () => sessionId ?? '',
  };

  // Automatic screen views: now, then on each SPA navigation (50 ms debounce), told by history.pushState
  // and replaceState (patched) and popstate, or, with trackHashChanges, by hashchange instead.
  if (o.trackScreenViews) {
    let timer;
    const changed = () => {
      clearTimeout(timer);
      timer = setTimeout(screenView, 50);
    };
    setTimeout(screenView);
    if (o.trackHashChanges) {
      w.addEventListener('hashchange', changed);
    } else {
      for (const method of ['pushState', 'replaceState']) {
        const original = history[method];
        history[method] = function () {
          changed();
          return original.apply(this, arguments);
        };
      }
      w.addEventListener('popstate', changed);
    }
  }

  // Clicks: links to another host (link_out), and buttons or links with data-track="event name", whose
  // other data-* attributes become properties (camelCased by dataset). Neither adds __path.
  d.addEventListener('click', ({ target }) => {
    const link = o.trackOutgoingLinks && target.closest('a');
    if (link && /^http/.test(link.href) && link.hostname != location.hostname) {
      event('link_out', { href: link.href, text: link.innerText || link.title || target.alt || target.title });
    }
    const tagged = o.trackAttributes && (target.closest('button[data-track]') || target.closest('a[data-track]'));
    if (tagged) {
      const { track: name, ...props } = tagged.dataset;
      if (name) event(name, props);
    }
  });

  // Replace the stub and replay what the page queued before we loaded (`init` included: a no-op).
  const op = (method, ...args) => api[method]?.(...args);
  w.op = Object.assign(op, api);
  w.openpanel = api;
  queue.map((item) => op(...item));
})(window, document);
