// The demo in chromium (run by tests/demo.rs against a `palisade serve
// --dev` at DEMO_URL): the CSP detector is shown to work, then alice and
// bob log in on two pages, chat (markup arrives as text, no element),
// answer the quiz and upload a file name, and alice fires every attack of
// the attack panel, each showing the code the server answered, and the
// dev user admin finds each in the dashboard's security events. Every step
// has its own timeout. With DEMO_SCREENSHOTS set to a folder, the attack
// panel's page is saved there as demo.png.

import assert from "node:assert/strict";
import { join } from "node:path";
import { REFUSED_CALL, dashboardLogIn, inlineScriptRefused, launch, step, watched } from "../common/browser.mjs";

const URL_ = process.env.DEMO_URL;
const SHOTS = process.env.DEMO_SCREENSHOTS;
const PASSWORDS = { alice: process.env.ALICE_PASSWORD, bob: process.env.BOB_PASSWORD, admin: process.env.ADMIN_PASSWORD };
const DASHBOARD = process.env.DASHBOARD_URL;

/**
 * What the test makes chromium log on purpose: a refused handshake (the
 * sandboxed frame's), a socket the server closed mid-frame, and the 401 of
 * a session that has logged out.
 */
const EXPECTED = [/^WebSocket connection to 'ws:\/\/[^']+\/ws' failed/, REFUSED_CALL];

/** Each attack and the code the server answers it with. */
const ATTACKS = [
  ["xss", "invalid_payload"],
  ["oversize", "1009"],
  ["forged", "forbidden"],
  ["origin", "1006"],
  ["replay", "replay"],
  ["csrf", "csrf_failed"],
  ["flood", "rate_limited"],
];

async function logIn(context, user) {
  const watch = await watched(context, EXPECTED);
  const { page } = watch;
  await page.goto(URL_);
  await page.fill("#login input[name=username]", user);
  await page.fill("#login input[name=password]", PASSWORDS[user]);
  await page.click("#login button[type=submit]");
  await page.locator("[data-testid=user]", { hasText: user }).waitFor();
  for (const room of ["lobby", "course:demo"]) await page.locator(`#rooms button[data-room="${room}"][aria-pressed=true]`).waitFor();
  return watch;
}

/** Sends `text` from `page`'s chat form to `room`. */
async function say(page, room, text) {
  await page.selectOption("#say select[name=room]", room);
  await page.fill("#say input[name=content]", text);
  await page.click("#say button[type=submit]");
}

/** Waits until `page`'s chat shows a line from `from` containing `text`. */
const heard = (page, from, text) => page.locator(`#messages li[data-from=${from}]`, { hasText: text }).first().waitFor();

const browser = await launch();
try {
  const viewport = { viewport: { width: 1280, height: 1000 } };
  const aliceContext = await browser.newContext(viewport);
  const bobContext = await browser.newContext(viewport);

  await step("an inline script is refused and the violation is seen", () => inlineScriptRefused(aliceContext, URL_));

  let alice, bob;
  await step("alice and bob log in on two pages; no token is kept where a script can read it", async () => {
    alice = await logIn(aliceContext, "alice");
    bob = await logIn(bobContext, "bob");
    for (const { page } of [alice, bob]) {
      const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
      assert.deepEqual(stored, [0, 0, ""], "no storage, the cookie HttpOnly");
    }
  });

  await step("alice and bob chat in two rooms", async () => {
    await say(alice.page, "lobby", "hello bob");
    await heard(bob.page, "alice", "hello bob");
    await say(bob.page, "course:demo", "hi alice");
    await heard(alice.page, "bob", "hi alice");
  });

  await step("markup in a message arrives as text: no element is created", async () => {
    await say(alice.page, "lobby", "<b>bold</b> and <i>it</i><img src=x>");
    await heard(bob.page, "alice", "<b>bold</b> and <i>it</i>");
    for (const { page } of [alice, bob]) {
      assert.equal(await page.locator("#messages b, #messages i, #messages img").count(), 0);
    }
  });

  await step("alice answers the quiz; bob sees the answer", async () => {
    await alice.page.click('#quiz [data-question=q1] button[data-answer="1"]');
    await bob.page.locator("#answers li", { hasText: "answered q1: 1" }).waitFor();
  });

  await step("alice uploads a file name; bob sees it cleaned", async () => {
    await alice.page.fill("#upload input[name=name]", "../../etc/passwd");
    await alice.page.click("#upload button[type=submit]");
    const item = bob.page.locator("#files li").first();
    await item.waitFor();
    const name = await item.getAttribute("data-name");
    assert.ok(name && !name.includes("/") && !name.includes(".."), `cleaned: ${name}`);
    // A type the schema does not list is refused, on alice's page.
    await alice.page.selectOption("#upload select[name=mime]", "application/x-msdownload");
    await alice.page.fill("#upload input[name=name]", "setup.exe");
    await alice.page.waitForTimeout(1100); // file.upload's rate is 1/s
    await alice.page.click("#upload button[type=submit]");
    await alice.page.locator("#files li.refused[data-code=invalid_payload]").waitFor();
  });

  for (const [attack, code] of ATTACKS) {
    await step(`attack panel: ${attack} is answered ${code}`, async () => {
      await alice.page.click(`button[data-fire=${attack}]`);
      const answer = alice.page.locator(`[data-testid=answer-${attack}]`);
      await alice.page.waitForFunction((key) => {
        const code = document.querySelector(`[data-testid=answer-${key}]`).dataset.code;
        return code !== undefined;
      }, attack);
      assert.equal(await answer.getAttribute("data-code"), code, await answer.textContent());
    });
  }

  await step("the XSS payload is shown as text and never ran", async () => {
    const what = await alice.page.locator("tr[data-attack=xss] td.hint").textContent();
    assert.ok(what.includes("<img src=x onerror="), what);
    assert.equal(await alice.page.locator("#attack-rows img, #messages img").count(), 0);
    assert.equal(await alice.page.evaluate(() => document.body.dataset.xss), undefined);
  });

  if (SHOTS) await alice.page.screenshot({ path: join(SHOTS, "demo.png"), fullPage: true });

  const operator = await watched(await browser.newContext(viewport), [REFUSED_CALL]);
  await step(
    "the dashboard's security events show every attack",
    async () => {
      await dashboardLogIn(operator.page, DASHBOARD, "admin", PASSWORDS.admin, "operator");
      await operator.page.click("#nav button[data-panel=events]");
      // Refusals are folded per interval (audit.aggregate_interval): a
      // kind's record may come with the next flush.
      for (const kind of ["schema", "oversize", "forbidden", "origin", "replay", "csrf", "rate_excess"]) {
        await operator.page.locator(`[data-testid=events] tr[data-kind=${kind}]`).first().waitFor({ timeout: 30_000 });
      }
    },
    60_000,
  );
  await step("the dashboard's page had no CSP violation or error", operator.clean);
  await step("bob logs out: the session ends and the login form is back", async () => {
    await bob.page.click("#logout");
    await bob.page.locator("#login").waitFor();
    const status = await bob.page.evaluate(() => fetch("/auth/sessions").then((r) => r.status));
    assert.equal(status, 401, "the cookie no longer opens a session");
  });

  await step("alice's page had no CSP violation or error", alice.clean);
  await step("bob's page had no CSP violation or error", bob.clean);
  console.log("demo: every step passed");
} finally {
  await browser.close();
}
