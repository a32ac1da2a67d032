// What the browser tests share (tests/dashboard/run.mjs, tests/demo/run.mjs):
// Debian's chromium through playwright-core, named steps that each time
// out on their own, pages whose CSP violations and errors fail the run,
// and screenshots on request.

import assert from "node:assert/strict";
import { createRequire } from "node:module";

// playwright-core is clients/js's development dependency (scripts/test.sh
// installs it there); the scripts have no package of their own.
const require = createRequire(new URL("../../../../clients/js/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export const STEP_MS = 20_000;

/** Chromium at $CHROMIUM, headless, no sandbox (tests run as root). */
export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
}

/** Runs one named step, failing it after `ms`. */
export async function step(name, fn, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" timed out after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([fn(), timeout]);
    console.log(`ok: ${name}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A page whose CSP violations, script errors and console errors are
 * collected; `clean()` fails when there are any. Console errors matching
 * one of `expected` are the network's answers a test provokes on purpose
 * (a refused API call, a refused handshake), not a script's.
 */
export async function watched(context, expected = []) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS / 2);
  const problems = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expected.some((pattern) => pattern.test(m.text()))) return;
    // The browser's own guess at an icon (neither page links one), not a
    // request of the page's.
    if (m.location()?.url?.endsWith("/favicon.ico")) return;
    problems.push(`console: ${m.text()} (${m.location()?.url ?? "no url"})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const clean = async () => {
    const csp = await page.evaluate(() => window.cspViolations);
    assert.deepEqual([...csp, ...problems], [], "no CSP violation, script error or console error");
  };
  return { page, problems, clean };
}

/**
 * Proves the CSP detector works on `url` before it is trusted: an inline
 * script is refused, and the violation is seen.
 */
export async function inlineScriptRefused(context, url) {
  const { page, problems } = await watched(context);
  await page.goto(url);
  await page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.inlineRan = true";
    document.body.append(s);
  });
  await page.waitForFunction(() => window.cspViolations.length > 0);
  assert.equal(await page.evaluate(() => window.inlineRan), undefined);
  assert.ok(problems.some((p) => p.includes("Content Security Policy")), problems.join("\n"));
  await page.close();
}

/**
 * Logs `user` in to the dashboard at `url` on `page`, and waits until the
 * page shows the `role` (operator, viewer) the server gave them.
 */
export async function dashboardLogIn(page, url, user, password, role) {
  await page.goto(url);
  await page.fill("#login input[name=username]", user);
  await page.fill("#login input[name=password]", password);
  await page.click("#login button[type=submit]");
  await page.locator("#role").filter({ hasText: role }).waitFor();
}

/** A console line chromium writes for an API call the server refused with 401 or 403, as the viewer's are. */
export const REFUSED_CALL = /^Failed to load resource: the server responded with a status of 40[13]/;
