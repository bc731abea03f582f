// Open one local page in headless Debian Chromium, optionally hover, evaluate, and take a screenshot.
//
//   node screenshot_page.mjs spec.json
//
// spec: {url, screenshot?, width?, height?, colorScheme?: "light"|"dark", fullPage?: bool,
//        steps?: [{"hover": "css selector"} | {"focus": "css selector"} | {"press": "Key"} |
//                 {"eval": "js expression", "as"?: name} | {"sleep": ms}]}
// output (stdout, JSON): {named: {}, pageErrors: [], dialogs: [], requests: [url, …]}
// `requests` lists every URL the page asked for, so a test can check that nothing left the machine.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profileDir = mkdtempSync(join(tmpdir(), 'op-chromium-'));
const out = { named: {}, pageErrors: [], dialogs: [], requests: [] };

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
  viewport: { width: spec.width || 1200, height: spec.height || 900 },
  colorScheme: spec.colorScheme || 'light',
  locale: 'en-US',
});

try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('request', (req) => out.requests.push(req.url()));
  // alert()/confirm() from an injected payload would block the page: record and dismiss it.
  page.on('dialog', async (d) => {
    out.dialogs.push(d.message());
    await d.dismiss();
  });
  await page.goto(spec.url, { waitUntil: 'load' });
  for (const step of spec.steps || []) {
    if ('hover' in step) {
      await page.hover(step.hover, { force: true });
    } else if ('eval' in step) {
      const value = await page.evaluate(step.eval);
      if (step.as) out.named[step.as] = value;
    } else if ('focus' in step) {
      await page.focus(step.focus);
    } else if ('press' in step) {
      await page.keyboard.press(step.press);
    } else if ('sleep' in step) {
      await page.waitForTimeout(step.sleep);
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
  if (spec.screenshot) {
    await page.screenshot({ path: spec.screenshot, fullPage: spec.fullPage !== false });
  }
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}

process.stdout.write(JSON.stringify(out));
