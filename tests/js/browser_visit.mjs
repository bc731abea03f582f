// One scripted visit in headless Debian Chromium; prints what the page sent to {apiUrl}/track as JSON.
//
//   node browser_visit.mjs spec.json
//
// spec: {url, referer?, userAgent, steps: [...]}; each step is one of
//   {"eval": "js expression"}   run in the page (a returned promise is awaited); result kept in `evals`,
//                               and in `named[as]` when the step has "as"
//   {"click": "css selector"}
//   {"waitTrack": n}            until n POST /track requests have finished or failed (10 s at most)
//   {"sleep": ms}
// output: {track: [{body, headers, status, error, sentAt, doneAt}], evals: [...], named: {}, pageErrors: [...]}
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profileDir = mkdtempSync(join(tmpdir(), 'op-chromium-'));
const out = { track: [], evals: [], named: {}, pageErrors: [] };

const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-sync',
  ],
  userAgent: spec.userAgent,
  locale: 'en-US',
});

try {
  const page = context.pages()[0] || (await context.newPage());
  const entries = new Map();
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('request', (req) => {
    if (req.method() !== 'POST' || !req.url().endsWith('/track')) return;
    const entry = { body: req.postData(), headers: req.headers(), status: null, error: null, sentAt: Date.now() };
    entries.set(req, entry);
    out.track.push(entry);
  });
  page.on('requestfinished', async (req) => {
    const entry = entries.get(req);
    if (!entry) return;
    const res = await req.response();
    entry.status = res ? res.status() : null;
    entry.doneAt = Date.now();
  });
  page.on('requestfailed', (req) => {
    const entry = entries.get(req);
    if (!entry) return;
    entry.error = req.failure() ? req.failure().errorText : 'failed';
    entry.doneAt = Date.now();
  });

  await page.goto(spec.url, { referer: spec.referer, waitUntil: 'load' });
  for (const step of spec.steps) {
    if ('eval' in step) {
      const value = await page.evaluate(step.eval);
      out.evals.push(value);
      if (step.as) out.named[step.as] = value;
    } else if ('click' in step) {
      await page.click(step.click);
    } else if ('sleep' in step) {
      await page.waitForTimeout(step.sleep);
    } else if ('waitTrack' in step) {
      const deadline = Date.now() + 10000;
      const done = () => out.track.filter((t) => t.doneAt !== undefined).length;
      while (done() < step.waitTrack) {
        if (Date.now() > deadline) {
          throw new Error(`waited 10 s for ${step.waitTrack} /track requests, saw ${done()}`);
        }
        await page.waitForTimeout(20);
      }
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}

process.stdout.write(JSON.stringify(out));
