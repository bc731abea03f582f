// The overview page in headless Debian Chromium: one browser, one tab, cookies kept between steps.
//
//   node overview_flow.mjs spec.json
//
// spec: {origin, width?, height?, steps: [...]}; each step is one of
//   {"goto": "/path"}                        navigate (relative to origin) and wait for load
//   {"fill": "css", "value": "text"}         type into an input
//   {"submit": "css"}                        click, then wait for the navigation it starts
//   {"click": "css"}                         click (htmx requests do not navigate: wait with waitUntil)
//   {"select": "css", "value": "option"}     choose an option (fires change)
//   {"waitFor": "css", "timeout": ms}        until the selector matches (default 10 s)
//   {"waitUntil": "js expression", "timeout": ms}   until the expression is truthy (default 10 s)
//   {"eval": "js expression", "as": name}    run in the page (promises awaited); result in named[as]
//   {"viewport": [width, height]}            resize the page
//   {"screenshot": "/abs/path.png"}          full-page PNG
//   {"url": name}                            the current URL into named[name]
// output: {named: {}, requests: [every URL requested], pageErrors: [], consoleErrors: [], dialogs: []}
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profileDir = mkdtempSync(join(tmpdir(), 'op-overview-'));
const out = { named: {}, requests: [], pageErrors: [], consoleErrors: [], dialogs: [] };

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
  locale: 'en-US',
  viewport: { width: spec.width || 1280, height: spec.height || 900 },
});

try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && out.consoleErrors.push(m.text()));
  page.on('request', (r) => out.requests.push(r.url()));
  // An injected alert() would block the page: record and dismiss it.
  page.on('dialog', async (d) => {
    out.dialogs.push(d.message());
    await d.dismiss();
  });
  for (const step of spec.steps) {
    if ('goto' in step) {
      await page.goto(spec.origin + step.goto, { waitUntil: 'load' });
    } else if ('fill' in step) {
      await page.fill(step.fill, step.value);
    } else if ('submit' in step) {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(step.submit)]);
    } else if ('click' in step) {
      await page.click(step.click);
    } else if ('select' in step) {
      await page.selectOption(step.select, step.value);
    } else if ('waitFor' in step) {
      await page.waitForSelector(step.waitFor, { timeout: step.timeout ?? 10000 });
    } else if ('waitUntil' in step) {
      // Polled with page.evaluate: waitForFunction evals its string inside the page, which the
      // dashboard's Content-Security-Policy (no 'unsafe-eval') refuses.
      const deadline = Date.now() + (step.timeout ?? 10000);
      while (!(await page.evaluate(step.waitUntil))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${step.waitUntil}`);
        await page.waitForTimeout(50);
      }
    } else if ('eval' in step) {
      const value = await page.evaluate(step.eval);
      if (step.as) out.named[step.as] = value;
    } else if ('viewport' in step) {
      await page.setViewportSize({ width: step.viewport[0], height: step.viewport[1] });
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
