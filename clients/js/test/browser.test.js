// The same main scenarios in a real browser: Debian's chromium, driven by
// playwright-core, loads the built ESM bundle (dist/) from a page served on
// loopback, and talks to a real Palisade: connect, join, publish and ack,
// events; end-to-end encryption with sealedRoom; a cookie session that logs
// in through the page's own origin and follows CSRF rotations; a server
// restart, with reconnect, recover and the queued message sent once.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { COOKIE, ROOT, addUser, binary, need, startServer, token } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/**
 * The page's origin: `/` is an empty page, `/dist/*` the bundle, and
 * `/auth/*` is passed to Palisade, so a login sets its cookies for this
 * host as it would behind one reverse proxy.
 */
function pageServer(target) {
  const server = createServer(async (req, res) => {
    if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>t</title>");
    const file = /^\/dist\/([a-z]+\.js)$/.exec(req.url ?? "");
    if (file && existsSync(join(ROOT, "dist", file[1]))) {
      return res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(join(ROOT, "dist", file[1])));
    }
    if (req.method === "POST" && req.url?.startsWith("/auth/")) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const headers = {};
      for (const h of ["content-type", "cookie", "origin"]) if (req.headers[h]) headers[h] = req.headers[h];
      const answer = await fetch(target.current.http + req.url, {
        method: "POST",
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      res.setHeader("set-cookie", answer.headers.getSetCookie());
      res.writeHead(answer.status, { "content-type": "application/json" });
      return res.end(await answer.text());
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Each step's limit: a step that hangs fails with its name, long before the Rust runner's own limit. */
const STEP_MS = 60_000;

/** Awaits `promise`, or fails naming `step` after STEP_MS. */
function step(name, promise) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" did not finish within ${STEP_MS / 1000} s`)), STEP_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

test("in chromium: publish, sealed room, cookie session with CSRF rotation, restart with recover", async (t) => {
  if (!need(t, "the palisade binary (cargo build)", Boolean(binary()))) return;
  if (!need(t, `chromium at ${CHROMIUM} (apt-get install chromium)`, existsSync(CHROMIUM))) return;
  const { chromium } = await import("playwright-core");
  const target = { current: await startServer(COOKIE) };
  addUser(target.current, "dora", ["student"]);
  const pages = await pageServer(target);
  const origin = `http://127.0.0.1:${pages.address().port}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.exposeFunction("mintToken", (sub) => token(sub));
    await page.goto(origin + "/");
    const url = target.current.url;

    // Token mode: two clients, publish and ack, events with meta.
    const basic = await step("publish", page.evaluate(async (url) => {
      const { PalisadeClient } = await import("/dist/index.js");
      const a = new PalisadeClient(url, { getToken: () => window.mintToken("ada") });
      const b = new PalisadeClient(url, { getToken: () => window.mintToken("bea") });
      await Promise.all([a.connect(), b.connect()]);
      await Promise.all([a.join("lobby"), b.join("lobby")]);
      const got = new Promise((resolve) => b.onEvent("lobby", "chat.message", (data, meta) => resolve({ data, meta })));
      const ack = await a.publish("lobby", "chat.message", { content: "hi from chromium" });
      const event = await got;
      const refused = await a.publish("lobby", "nope", {}).catch((e) => ({ name: e.name, code: e.code }));
      a.close();
      b.close();
      return { ack, event, refused, state: a.state };
    }, url));
    assert.equal(basic.event.meta.seq, basic.ack.seq);
    assert.deepEqual(basic.event.meta.from, { id: "ada", name: "ada" });
    assert.deepEqual(basic.event.data, { content: "hi from chromium" });
    assert.deepEqual(basic.refused, { name: "PalisadeError", code: "unknown_event" });
    assert.equal(basic.state, "closed");

    // End-to-end encryption: WebCrypto in the page, the opaque `dm.sealed`
    // event; the same key reads, another key is reported.
    const sealed = await step("sealed room", page.evaluate(async (url) => {
      const { PalisadeClient, sealedRoom } = await import("/dist/index.js");
      const raw = crypto.getRandomValues(new Uint8Array(32));
      const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
      const other = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      const [a, b, c] = ["sia", "sib", "sic"].map((sub) => new PalisadeClient(url, { getToken: () => window.mintToken(sub) }));
      await Promise.all([a, b, c].map((x) => x.connect()));
      await Promise.all([a, b, c].map((x) => x.join("room:e2e")));
      const got = new Promise((resolve) => sealedRoom(b, "room:e2e", key).onEvent("dm.sealed", (data, meta) => resolve({ data, seq: meta.seq })));
      const failed = new Promise((resolve) =>
        sealedRoom(c, "room:e2e", other, { onError: (e) => resolve(e.code) }).onEvent("dm.sealed", () => resolve("delivered")),
      );
      const wire = new Promise((resolve) => c.onEvent("room:e2e", "dm.sealed", (data) => resolve(Object.keys(data).sort())));
      const ack = await sealedRoom(a, "room:e2e", key).publish("dm.sealed", { content: "<i>sealed</i> in chromium" });
      const out = { ack: ack.seq, got: await got, failed: await failed, wire: await wire };
      [a, b, c].forEach((x) => x.close());
      return out;
    }, url));
    assert.deepEqual(sealed.got, { data: { content: "<i>sealed</i> in chromium" }, seq: sealed.ack });
    assert.equal(sealed.failed, "undecryptable");
    assert.deepEqual(sealed.wire, ["ct", "iv"]);

    // Cookie mode: log in through the page's origin; the HttpOnly cookie
    // rides on the WebSocket; sends carry the rotating CSRF token.
    const cookie = await step("cookie session", page.evaluate(async (url) => {
      const { PalisadeClient } = await import("/dist/index.js");
      const login = await fetch("/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "dora", password: "correct horse battery staple", cookie: true }),
      });
      if (login.status !== 200) return { login: login.status };
      const c = new PalisadeClient(url, {
        cookie: true,
        getToken: async () => void (await fetch("/auth/refresh", { method: "POST" })),
      });
      await c.connect();
      await c.join("room:browser");
      const first = await c.publish("room:browser", "chat.message", { content: "one" });
      const firstCsrf = c.welcome.csrf;
      await new Promise((r) => setTimeout(r, 2200)); // past two rotations, no grace
      const second = await c.publish("room:browser", "chat.message", { content: "two" });
      const user = c.welcome.user.id;
      c.close();
      return { user, first: typeof first.seq, second: second.seq > first.seq, firstCsrf: typeof firstCsrf };
    }, url));
    assert.deepEqual(cookie, { user: "dora", first: "number", second: true, firstCsrf: "string" });

    // Restart: 1001, retries while down, then reconnect + recover + the queued message once.
    await step("before the restart", page.evaluate(async (url) => {
      const { PalisadeClient } = await import("/dist/index.js");
      const c = new PalisadeClient(url, {
        getToken: () => window.mintToken("rex"),
        backoff: { baseMs: 50, capMs: 400 },
        sendTimeoutMs: 20000,
      });
      window.rex = { c, got: [], reconnects: [], recovered: null };
      c.onEvent("lobby", "chat.message", (data, meta) => window.rex.got.push([meta.seq, data.content]));
      c.on("reconnect", (r) => window.rex.reconnects.push(r.code));
      c.on("recover", (r) => (window.rex.recovered = r));
      await c.connect();
      await c.join("lobby");
      await c.publish("lobby", "chat.message", { content: "before" });
    }, url));
    await target.current.stop();
    await page.waitForFunction(() => window.rex.reconnects.length >= 2, null, { timeout: STEP_MS });
    await page.evaluate(() => {
      window.rex.queued = window.rex.c.publish("lobby", "chat.message", { content: "queued" });
    });
    target.current = await startServer(COOKIE, { dir: target.current.dir, port: target.current.port });
    const restarted = await step("after the restart", page.evaluate(async () => {
      const { seq } = await window.rex.queued;
      while (window.rex.got.length < 2) await new Promise((r) => setTimeout(r, 20));
      window.rex.c.close();
      return { seq, got: window.rex.got, first: window.rex.reconnects[0], recovered: window.rex.recovered };
    }));
    assert.equal(restarted.first, 1001);
    assert.deepEqual(
      restarted.got.map(([, c]) => c),
      ["before", "queued"],
      "each once",
    );
    assert.equal(restarted.got[1][0], restarted.seq);
    assert.deepEqual(restarted.recovered && { ...restarted.recovered, seq: 0 }, { room: "lobby", complete: false, seq: 0 });
  } finally {
    await browser.close();
    pages.close();
    await target.current.dispose();
  }
});
