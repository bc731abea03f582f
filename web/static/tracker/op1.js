/*!
 * op1.js v1 - the openpanel-lite web tracker. Cookieless, no dependencies, ES2017.
 *
 * API-compatible with OpenPanel's `window.op` queue: the page's stub queues calls until this file
 * loads; the first queued `init` gives the options, the rest are replayed, then `window.op` becomes
 * callable both ways (`op('track', name, props)` and `op.track(name, props)`).
 *
 * Published versions are never edited. Any change, even a fix, ships as a new file (op2.js), so a
 * page that pins op1.js keeps the behaviour it was tested with.
 */
(function (w, d) {
  'use strict';

  const VERSION = 'lite-1'; // sent as openpanel-sdk-version
  const PENDING_KEY = 'openpanel-pending-revenues';
  const KEEPALIVE_LIMIT = 60000; // browsers cap in-flight keepalive bodies at 64 KiB

  if (w.openpanel) return; // loaded twice: the first copy already owns window.op

  const queue = (w.op && w.op.q) || [];
  const initAt = queue.findIndex((item) => item && item[0] === 'init');
  if (initAt < 0) {
    console.warn('[op1] no op("init", {...}) queued before op1.js; nothing is tracked');
    return;
  }
  const o = Object.assign({}, queue.splice(initAt, 1)[0][1]);
  const script = d.currentScript;
  // Default API: the folder this script was served from (our server serves /op1.js next to /track).
  const apiUrl = String(o.apiUrl || (script && script.src ? new URL('.', script.src).href : '')).replace(
    /\/+$/,
    ''
  );
  const sdkName = o.sdk || 'web';
  const sdkVersion = o.sdkVersion || VERSION;

  let disabled = !!o.disabled;
  let waitForProfile = !!o.waitForProfile;
  let globals = {};
  let profileId;
  let groups = [];
  let deviceId = '';
  let sessionId = '';
  let lastPath = '';
  const held = []; // payloads kept while disabled or waiting for a profile
  const sleeping = []; // retries waiting out their backoff

  const noop = () => {};
  const assign = (...parts) => Object.assign({}, ...parts);
  const log = (...args) => o.debug && console.log('[op1]', ...args);

  function uuid() {
    const c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID(); // secure contexts only
    const b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Transport: one POST {apiUrl}/track per call, retried with the same body (and so the same
  // __eventId, which the server uses to drop the copies that had already arrived).

  function sleep(ms) {
    return new Promise((resolve) => {
      const entry = {
        wake() {
          clearTimeout(entry.timer);
          const i = sleeping.indexOf(entry);
          if (i >= 0) sleeping.splice(i, 1);
          resolve();
        },
      };
      entry.timer = setTimeout(entry.wake, ms);
      sleeping.push(entry);
    });
  }

  // A page being hidden may never come back: send pending retries now, as keepalive requests.
  const wakeAll = () => sleeping.slice().forEach((entry) => entry.wake());
  w.addEventListener('pagehide', wakeAll);
  d.addEventListener('visibilitychange', () => d.visibilityState === 'hidden' && wakeAll());

  function remember(text) {
    let reply = null;
    try {
      reply = JSON.parse(text);
    } catch (e) {
      return null; // a 2xx without JSON is still a success: nothing to retry
    }
    if (reply && reply.deviceId) deviceId = reply.deviceId;
    if (reply && reply.sessionId) sessionId = reply.sessionId;
    return reply;
  }

  async function post(payload) {
    const body = JSON.stringify(payload);
    const headers = {
      'Content-Type': 'application/json',
      'openpanel-client-id': o.clientId,
      'openpanel-sdk-name': sdkName,
      'openpanel-sdk-version': sdkVersion,
    };
    if (o.clientSecret) headers['openpanel-client-secret'] = o.clientSecret;
    const init = { method: 'POST', headers, body, keepalive: body.length < KEEPALIVE_LIMIT };
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(apiUrl + '/track', init);
        if (res.ok) return remember(await res.text());
        // 401 (not allowed) and 4xx validation errors fail the same way every time.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          log('rejected', res.status, payload);
          return null;
        }
      } catch (e) {
        log('network error', e);
      }
      if (attempt === 3) return null;
      await sleep(500 * 2 ** attempt);
    }
  }

  const blocked = () => disabled || (waitForProfile && profileId === undefined);

  function send(payload) {
    if (o.filter && !o.filter(payload)) return Promise.resolve(null);
    if (blocked()) {
      if (payload.type === 'track') payload.payload.properties.__timestamp = new Date().toISOString();
      held.push(payload);
      return Promise.resolve(null);
    }
    return post(payload);
  }

  function release() {
    if (blocked()) return;
    held.splice(0).forEach((payload) => {
      if (payload.type === 'track' && payload.payload.profileId === undefined && profileId !== undefined) {
        payload.payload.profileId = profileId;
      }
      post(payload);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  // The base event: global properties, then the caller's; profileId and groups are lifted out.
  function event(name, props) {
    const properties = assign(props);
    const pid = properties.profileId !== undefined ? properties.profileId : profileId;
    const gs = groups.concat(properties.groups || []).filter((g, i, all) => all.indexOf(g) === i);
    delete properties.profileId;
    delete properties.groups;
    const payload = { name };
    if (pid !== undefined) payload.profileId = pid;
    if (gs.length) payload.groups = gs;
    // A caller's own __eventId (say an order id) wins: it is the server's idempotency key.
    payload.properties = assign(globals, { __eventId: uuid() }, properties);
    return send({ type: 'track', payload });
  }

  const track = (name, props) => event(name, assign({ __path: lastPath || location.href }, props));

  function screenView(path, props) {
    if (typeof path !== 'string') {
      props = path;
      path = location.href;
    }
    if (path === lastPath) return Promise.resolve(null);
    lastPath = path;
    return event('screen_view', assign(props, { __path: path, __title: d.title }));
  }

  function identify(p) {
    p = p || {};
    if (p.profileId !== undefined) profileId = p.profileId;
    let sent = Promise.resolve(null);
    // Only a profile with more than its id is worth a request.
    if (profileId !== undefined && Object.keys(p).some((k) => k !== 'profileId')) {
      const payload = assign({ profileId }, p, { properties: assign(globals, p.properties) });
      sent = send({ type: 'identify', payload });
    }
    release();
    return sent;
  }

  const profileChange = (type) => (p) => send({ type, payload: assign({ profileId }, p) });

  function setGroups(ids) {
    ids = [].concat(ids);
    groups = groups.concat(ids.filter((id) => groups.indexOf(id) < 0));
    return send({ type: 'assign_group', payload: { groupIds: ids, profileId } });
  }

  function revenue(amount, props) {
    const properties = assign(props);
    const device = properties.deviceId;
    delete properties.deviceId;
    properties.__revenue = amount;
    if (device) properties.__deviceId = device;
    return track('revenue', properties);
  }

  // Revenue to send later in this tab (e.g. after a checkout redirect), kept in sessionStorage.
  let pendingInMemory = [];
  function pending() {
    try {
      return JSON.parse(w.sessionStorage.getItem(PENDING_KEY)) || [];
    } catch (e) {
      return pendingInMemory;
    }
  }
  function savePending(list) {
    pendingInMemory = list;
    try {
      if (list.length) w.sessionStorage.setItem(PENDING_KEY, JSON.stringify(list));
      else w.sessionStorage.removeItem(PENDING_KEY);
    } catch (e) {
      // storage blocked: the in-memory copy lasts for this page
    }
  }

  const api = {
    init: noop,
    alias: noop, // upstream's server rejects aliases; kept so calls don't break
    ready() {
      disabled = false;
      waitForProfile = false;
      release();
    },
    track,
    identify,
    screenView,
    revenue,
    setGlobalProperties(props) {
      globals = assign(globals, props);
    },
    increment: profileChange('increment'),
    decrement: profileChange('decrement'),
    upsertGroup: (p) => send({ type: 'group', payload: assign(p) }),
    setGroup: (id) => setGroups([id]),
    setGroups,
    pendingRevenue(amount, props) {
      savePending(pending().concat([{ amount, properties: props }]));
    },
    flushRevenue() {
      const list = pending();
      savePending([]);
      return Promise.all(list.map((r) => revenue(r.amount, r.properties)));
    },
    clearRevenue: () => savePending([]),
    clear() {
      profileId = undefined;
      groups = [];
      deviceId = '';
      sessionId = '';
    },
    getDeviceId: () => deviceId,
    getSessionId: () => sessionId,
    fetchDeviceId: () => Promise.resolve(deviceId), // deprecated upstream; the cached value
  };

  api.setGlobalProperties({ __referrer: d.referrer });

  // ---------------------------------------------------------------------------------------------
  // Automatic tracking

  if (o.trackScreenViews) {
    setTimeout(() => screenView(), 0);
    let timer;
    const changed = () => {
      clearTimeout(timer);
      timer = setTimeout(() => screenView(), 50);
    };
    if (o.trackHashChanges) {
      w.addEventListener('hashchange', changed);
    } else {
      ['pushState', 'replaceState'].forEach((method) => {
        const original = history[method];
        history[method] = function (...args) {
          const result = original.apply(this, args);
          w.dispatchEvent(new Event(method.toLowerCase()));
          w.dispatchEvent(new Event('locationchange'));
          return result;
        };
      });
      w.addEventListener('popstate', () => w.dispatchEvent(new Event('locationchange')));
      w.addEventListener('locationchange', changed);
    }
  }

  if (o.trackOutgoingLinks || o.trackAttributes) {
    d.addEventListener('click', (e) => {
      const target = e.target;
      if (!target || !target.closest) return;
      const link = o.trackOutgoingLinks && target.closest('a');
      if (link && /^https?:/.test(link.href) && link.hostname !== location.hostname) {
        event('link_out', {
          href: link.href,
          text: link.innerText || link.title || target.alt || target.title,
        });
      }
      const el = o.trackAttributes && (target.closest('button[data-track]') || target.closest('a[data-track]'));
      if (el && el.dataset.track) {
        const props = {};
        Object.keys(el.dataset).forEach((key) => key !== 'track' && (props[key] = el.dataset[key]));
        event(el.dataset.track, props);
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Replace the stub and replay what the page queued before we loaded.

  function op(method, ...args) {
    const fn = api[method];
    if (typeof fn === 'function') return fn(...args);
    log('unknown method', method);
  }
  Object.assign(op, api);
  w.op = op;
  w.openpanel = api;
  queue.forEach((item) => item && item[0] in api && op(...item));
})(window, document);
