// S01: visit dashboard pages in headless Chromium and count anything an injected payload could do.
//
//   node xss_walk.mjs spec.json
//
// spec: {origin, userAgent, email, password, visits: [{path, headers?, posts?: [{path, headers, body}],
//        waitText?}]}  (headers: sent with this visit's requests, e.g. API client credentials)
// Logs in through the login form, then loads each path. A visit with `posts` sends those requests
// (e.g. POST /track) after the page loaded and waits until `waitText` shows up (the realtime feed).
// output: {visits: [{path, status, hits, csp, dialogs, jsUrls, handlers, foreign, textLength}], loginUrl}
//
// The payloads of tests/security/data/xss_payloads.txt call alert()/confirm()/prompt()/print() or
// top.__xssHit(); the init script below turns each call into a recorded hit in every frame.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '../js/node_modules/playwright-core/index.mjs';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profileDir = mkdtempSync(join(tmpdir(), 'op-xss-'));

const HOOKS = `
(() => {
  const hits = [];
  const csp = [];
  Object.defineProperty(window, '__xssHits', { value: hits });
  Object.defineProperty(window, '__cspViolations', { value: csp });
  const record = (kind) => function () { hits.push(kind + ':' + Array.from(arguments).join(',')); };
  for (const name of ['alert', 'confirm', 'prompt', 'print']) window[name] = record(name);
  window.__xssHit = record('flag');
  document.addEventListener('securitypolicyviolation', (e) => {
    csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
  });
})();
`;

// What the page holds after rendering: every frame's hits and CSP violations, URL attributes whose
// scheme can run code, on*/hx-on* handler attributes (the templates have none) and active elements
// (script/iframe/object/embed/base) that the templates do not use.
const INSPECT = `
(() => {
  const ATTRS = ['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'background', 'poster',
                 'srcdoc', 'hx-get', 'hx-post', 'ping', 'content'];
  const bad = (v) => {
    const s = String(v).replace(/[\\u0000-\\u0020]/g, '').toLowerCase();
    return s.startsWith('javascript:') || s.startsWith('vbscript:') || s.startsWith('data:text/html');
  };
  const out = { hits: [], csp: [], jsUrls: [], handlers: [], foreign: [] };
  const docs = [document];
  for (const f of document.querySelectorAll('iframe,frame')) {
    try { if (f.contentDocument) docs.push(f.contentDocument); } catch (e) { /* cross-origin */ }
  }
  for (const doc of docs) {
    const win = doc.defaultView;
    if (win && win.__xssHits) out.hits.push(...win.__xssHits);
    if (win && win.__cspViolations) out.csp.push(...win.__cspViolations);
    for (const el of doc.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        if (name.startsWith('on') || name.startsWith('hx-on') || name.startsWith('data-hx-on')) {
          out.handlers.push(el.tagName + ' ' + name);
        }
        if (ATTRS.includes(name) && bad(attr.value)) out.jsUrls.push(el.tagName + ' ' + name);
      }
      const tag = el.tagName.toLowerCase();
      if (['iframe', 'frame', 'object', 'embed', 'base', 'applet', 'portal'].includes(tag)) {
        out.foreign.push(tag);
      }
      if (tag === 'script' && !(el.getAttribute('src') || '').startsWith('/static/')) {
        out.foreign.push('script:' + (el.getAttribute('src') || 'inline'));
      }
      if (tag === 'meta' && (el.getAttribute('http-equiv') || '').toLowerCase() === 'refresh') {
        out.foreign.push('meta-refresh');
      }
    }
  }
  out.textLength = document.body ? document.body.innerText.length : 0;
  return out;
})()
`;

const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  userAgent: spec.userAgent,
  viewport: { width: 1100, height: 800 },
});
const result = { visits: [], loginUrl: null, consoleCsp: 0 };

try {
  await context.addInitScript(HOOKS);
  const page = context.pages()[0] || (await context.newPage());
  let dialogs = 0;
  page.on('dialog', async (d) => { dialogs += 1; await d.dismiss(); });
  page.on('console', (m) => { if (m.text().includes('Content Security Policy')) result.consoleCsp += 1; });
  let inflight = 0;
  page.on('request', (r) => { if (r.resourceType() !== 'eventsource') inflight += 1; });
  const done = (r) => { if (r.resourceType() !== 'eventsource') inflight -= 1; };
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  // Until no request (htmx partials included) has been open for 100 ms; at most 8 s.
  const settle = async () => {
    let quiet = 0;
    for (let i = 0; i < 160 && quiet < 2; i += 1) {
      await page.waitForTimeout(50);
      quiet = inflight <= 0 ? quiet + 1 : 0;
    }
  };

  await page.goto(spec.origin + '/login', { waitUntil: 'load' });
  await page.fill('input[name=email]', spec.email);
  await page.fill('input[name=password]', spec.password);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
  result.loginUrl = page.url();

  for (const visit of spec.visits) {
    dialogs = 0;
    await page.setExtraHTTPHeaders(visit.headers || {});
    const response = await page.goto(spec.origin + visit.path, { waitUntil: 'load' });
    await settle();
    for (const post of visit.posts || []) {
      await context.request.post(spec.origin + post.path, { headers: post.headers, data: post.body });
    }
    if (visit.waitText) {
      await page.waitForFunction((t) => document.body.innerText.includes(t), visit.waitText, {
        timeout: 20000,
      });
      await settle();
    }
    const seen = await page.evaluate(INSPECT);
    result.visits.push({ path: visit.path, status: response ? response.status() : 0, dialogs, ...seen });
  }
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}

process.stdout.write(JSON.stringify(result));
