// A scripted walk through the dashboard in headless Debian Chromium (one browser, one tab, cookies kept).
//
//   node dashboard_flow.mjs spec.json
//
// spec: {origin, userAgent, steps: [...]}; each step is one of
//   {"goto": "/path"}                       navigate (relative to origin) and wait for load
//   {"fill": "css", "value": "text"}        type into an input or textarea
//   {"select": "css", "value": "option"}    choose an option
//   {"submit": "css"}                       click, then wait for the navigation it starts
//   {"waitFor": "css", "timeout": ms}       until the selector matches (default 10 s)
//   {"eval": "js expression", "as": name}   run in the page (promises awaited); result in named[as]
//   {"screenshot": "/abs/path.png"}         full-page PNG
//   {"url": name}                           the current URL into named[name]
// output: {named: {}, requests: [every URL the page requested], pageErrors: [], consoleErrors: []}
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profileDir = mkdtempSync(join(tmpdir(), 'op-dashboard-'));
const out = { named: {}, requests: [], pageErrors: [], consoleErrors: [] };

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
  viewport: { width: 1100, height: 800 },
});

try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && out.consoleErrors.push(m.text()));
  page.on('request', (r) => out.requests.push(r.url()));
  for (const step of spec.steps) {
    if ('goto' in step) {
      await page.goto(spec.origin + step.goto, { waitUntil: 'load' });
    } else if ('fill' in step) {
      await page.fill(step.fill, step.value);
    } else if ('select' in step) {
      await page.selectOption(step.select, step.value);
    } else if ('submit' in step) {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(step.submit)]);
    } else if ('waitFor' in step) {
      await page.waitForSelector(step.waitFor, { timeout: step.timeout ?? 10000 });
    } else if ('eval' in step) {
      const value = await page.evaluate(step.eval);
      if (step.as) out.named[step.as] = value;
    } else if ('screenshot' in step) {
      await page.screenshot({ path: step.screenshot, fullPage: true });
    } else if ('url' in step) {
      out.named[step.url] = page.url();
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}

process.stdout.write(JSON.stringify(out));
