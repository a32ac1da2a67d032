// The dashboard in chromium (run by tests/dashboard.rs against a live
// server at DASHBOARD_URL): a CSP violation is caught (the detector is
// shown to work first), then an operator uses every panel and acts, then a
// viewer finds nothing to act with and the API refuses what they try.
// Every step has its own timeout, so a hang fails fast and says where.
// With DASHBOARD_SCREENSHOTS set to a folder, each panel is saved there.

import assert from "node:assert/strict";
import { join } from "node:path";
import { REFUSED_CALL, dashboardLogIn, inlineScriptRefused, launch, step, watched as watchedBy } from "../common/browser.mjs";

const URL_ = process.env.DASHBOARD_URL;
const PASSWORD = process.env.DASHBOARD_PASSWORD;
const SHOTS = process.env.DASHBOARD_SCREENSHOTS;

/** A refused API call's status line is the network's, not a script's: the viewer's refused calls log one. */
const watched = (context) => watchedBy(context, [REFUSED_CALL]);

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const logIn = (page, user) => dashboardLogIn(page, URL_, user, PASSWORD, user === "ops" ? "operator" : "viewer");

const panel = (page, name) => page.click(`#nav button[data-panel=${name}]`);

const browser = await launch();
try {
  const operator = await browser.newContext({ viewport: { width: 1280, height: 800 } });

  await step("an inline script is refused and the violation is seen", () => inlineScriptRefused(operator, URL_));

  const { page, clean } = await watched(operator);
  await step("the operator logs in; no token is kept in storage", async () => {
    await logIn(page, "ops");
    const stored = await page.evaluate(() => [localStorage.length, JSON.stringify({ ...sessionStorage }), document.cookie]);
    assert.deepEqual(stored, [0, '{"palisade.signedIn":"1"}', ""], "no token in storage, the cookie HttpOnly");
  });

  await step("the overview shows live counts, rates and refusals", async () => {
    await page.locator("[data-testid=connections_open] .value").filter({ hasText: /^[3-9]$/ }).waitFor();
    await page.locator("[data-testid=messages_in] .value").filter({ hasText: /^[0-9.]+$/ }).waitFor();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=messages_in] .value").textContent) > 0);
    await page.locator("[data-testid=handshakes] td", { hasText: "auth_failure" }).first().waitFor();
  });
  if (SHOTS) {
    // A chart worth looking at: half a minute of samples.
    const filled = () => Number(document.querySelector("[data-testid=chart]").dataset.samples) >= 15;
    await step("the overview's chart fills", () => page.waitForFunction(filled, null, { timeout: 60_000 }), 60_000);
    await shot(page, "overview");
  }

  await step("connections: filtered on the server, and a kick closes one", async () => {
    await panel(page, "connections");
    await page.locator("[data-testid=connections] tbody tr").nth(2).waitFor();
    await shot(page, "connections");
    await page.fill("[data-testid=conn-filter] input[name=room]", "other");
    await page.click("[data-testid=conn-filter] button[type=submit]");
    // Only carol is in room other.
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll("[data-testid=connections] tbody tr");
      return rows.length === 1 && rows[0].dataset.user === "carol";
    });
    const carol = page.locator("[data-testid=connections] tr[data-user=carol]");
    await carol.filter({ hasText: "127.0.0.77" }).waitFor();
    await carol.locator("button[data-act=kick]").click();
    await carol.waitFor({ state: "detached" });
  });

  await step("rooms: member counts and message rates, filtered by prefix on the server", async () => {
    await panel(page, "rooms");
    await page.locator("[data-testid=rooms] tr[data-room=lobby] td.num", { hasText: /^1$/ }).waitFor();
    // erin talks in lobby all along: from the second read on, a rate.
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=rooms] tr[data-room=lobby] td.rate")?.textContent) > 0);
    await shot(page, "rooms");
    await page.fill("[data-testid=room-filter] input[name=prefix]", "zz");
    await page.click("[data-testid=room-filter] button[type=submit]");
    await page.locator("[data-testid=rooms] tr[data-room=lobby]").waitFor({ state: "detached" });
    await page.fill("[data-testid=room-filter] input[name=prefix]", "lob");
    await page.click("[data-testid=room-filter] button[type=submit]");
    await page.locator("[data-testid=rooms] tr[data-room=lobby]").waitFor();
  });

  await step("anomaly leaders: the forging address leads", async () => {
    await panel(page, "leaders");
    await page.locator('[data-testid=leaders-ips] tr[data-name="127.0.0.66"]').waitFor();
    await page.locator("[data-testid=leaders-limits]", { hasText: "banned at" }).waitFor();
    await shot(page, "leaders");
  });

  await step("security events: the live tail, filtered by kind and severity", async () => {
    await panel(page, "events");
    await page.locator("[data-testid=events] tr[data-kind=auth_failure]").first().waitFor();
    const only = (attribute, value, text) =>
      page.waitForFunction(
        ([attribute, value, text]) => {
          const rows = [...document.querySelectorAll("[data-testid=events] tbody tr")];
          return rows.length > 0 && rows.every((r) => r.dataset[attribute] === value) && rows.some((r) => r.textContent.includes(text));
        },
        [attribute, value, text],
      );
    await page.selectOption("[data-testid=event-kind]", "admin_action");
    await only("kind", "admin_action", "closed connection");
    await page.selectOption("[data-testid=event-kind]", "");
    await page.selectOption("[data-testid=event-severity]", "warning");
    await only("severity", "warning", "auth_failure");
    await page.selectOption("[data-testid=event-severity]", "");
    await shot(page, "events");
  });

  await step("bans: add two, one counts down, lift the other", async () => {
    await panel(page, "bans");
    const form = "[data-testid=ban-add]";
    for (const ip of ["127.0.0.88", "127.0.0.99"]) {
      await page.fill(`${form} input[name=subject]`, `ip:${ip}`);
      await page.fill(`${form} input[name=minutes]`, "10");
      await page.fill(`${form} input[name=reason]`, "dashboard test");
      await page.click(`${form} button[data-act=ban]`);
      await page.locator(`[data-testid=bans] tr[data-subject="ip:${ip}"]`).waitFor();
    }
    const left = page.locator('[data-testid=bans] tr[data-subject="ip:127.0.0.88"] td.left');
    const first = await left.textContent();
    assert.match(first, /^(9m \d+s|10m 0s)$/);
    await page.waitForFunction((was) => document.querySelector('[data-testid=bans] tr[data-subject="ip:127.0.0.88"] td.left').textContent !== was, first);
    await page.click('[data-testid=bans] tr[data-subject="ip:127.0.0.99"] button[data-act=lift]');
    await page.locator('[data-testid=bans] tr[data-subject="ip:127.0.0.99"]').waitFor({ state: "detached" });
    await shot(page, "bans");
  });

  await step("alerts: the operator's bans are listed, newest first", async () => {
    await panel(page, "alerts");
    await page.locator("[data-testid=alerts] tr[data-kind=ban]", { hasText: "ip:127.0.0.88" }).waitFor();
    await page.locator("[data-testid=alerts-webhook]", { hasText: "alerts.url is not set" }).waitFor();
    await shot(page, "alerts");
  });

  await step("policy, after a page reload (the session and its CSRF token come back): a reload and its result", async () => {
    await page.reload();
    await page.locator("#role", { hasText: "operator" }).waitFor();
    await panel(page, "policy");
    await page.locator("[data-testid=session] dd", { hasText: "user:ops" }).waitFor();
    await page.click("button[data-act=reload]");
    await page.locator("[data-testid=reload-result]", { hasText: "reloaded: reloaded" }).waitFor();
    await shot(page, "policy");
  });

  await step("logout ends the session", async () => {
    await page.click("#logout");
    await page.locator("#login").waitFor();
    assert.equal(await page.evaluate(() => fetch("/api/stats").then((r) => r.status)), 401);
  });

  await step("the operator's page had no CSP violation or error", clean);
  await operator.close();

  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await watched(viewerContext);
  const v = viewer.page;
  await step("the viewer logs in and sees every panel without a button to act", async () => {
    await logIn(v, "watcher");
    await v.locator("[data-testid=connections_open] .value").waitFor();
    await panel(v, "connections");
    await v.locator("[data-testid=connections] tr[data-user=erin]", { hasText: "127.0.0.0/24" }).waitFor();
    await panel(v, "events");
    await v.locator("[data-testid=events] tbody tr").first().waitFor();
    await panel(v, "bans");
    await v.locator('[data-testid=bans] tr[data-subject="ip:127.0.0.0/24"], [data-testid=bans] tr[data-subject="ip:127.0.0.88"]').first().waitFor();
    assert.equal(await v.locator("[data-testid=ban-add]").count(), 0);
    await shot(v, "bans-viewer");
    await panel(v, "policy");
    await v.locator("[data-testid=session] dd", { hasText: "viewer" }).waitFor();
    assert.equal(await v.locator("[data-act]").count(), 0, "no action control for a viewer");
    await panel(v, "alerts");
    const alert = v.locator("[data-testid=alerts] tr[data-kind=ban]").first();
    await alert.waitFor();
    assert.doesNotMatch(await alert.textContent(), /127\.0\.0\.(88|99)\b/, "a viewer reads addresses in alerts as networks");
    await panel(v, "leaders");
    // Several addresses of one network are as many rows, each a network.
    await v.locator('[data-testid=leaders-ips] tr[data-name="127.0.0.0/24"]').first().waitFor();
    assert.equal(await v.locator('[data-testid=leaders-ips] tr[data-name="127.0.0.66"]').count(), 0);
    for (const name of ["overview", "connections", "rooms", "events", "leaders", "bans", "alerts"]) {
      await panel(v, name);
      assert.equal(await v.locator("[data-act]").count(), 0, `no action control on ${name}`);
    }
  });

  await step("the API refuses the viewer's ban, kick and reload", async () => {
    const statuses = await v.evaluate(async () => {
      const { csrf } = await (await fetch("/api/session")).json();
      const erin = (await (await fetch("/api/connections?user=erin")).json()).items[0].id;
      const send = (method, path, body) =>
        fetch(path, {
          method,
          headers: { "content-type": "application/json", "x-csrf-token": csrf },
          body: body && JSON.stringify(body),
        }).then((r) => r.status);
      return [
        await send("POST", "/api/bans", { subject: "ip:127.0.0.123", duration_secs: 60 }),
        await send("DELETE", `/api/connections/${erin}`),
        await send("POST", "/api/reload", {}),
      ];
    });
    assert.deepEqual(statuses, [403, 403, 403]);
  });
  await step("the viewer's page had no CSP violation or error", viewer.clean);
  console.log("dashboard: every step passed");
} finally {
  await browser.close();
}
