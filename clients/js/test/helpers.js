// A real Palisade for the tests: the built binary as a child process with a
// temp config on loopback, tokens signed with the config's HS256 key, and
// users added with `palisade user add`.

import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve as absolute } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, "..");
const REPO = join(ROOT, "..", "..");
export const SECRET = "js-client-test-secret-js-client-test!!";
export const PASSWORD = "correct horse battery staple";

/** The server binary: `PALISADE_BIN`, else the newest of target/{debug,release}. */
export function binary() {
  if (process.env.PALISADE_BIN) return absolute(process.env.PALISADE_BIN);
  const found = ["debug", "release"]
    .map((p) => join(REPO, "target", p, "palisade"))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0];
}

/**
 * Skips the test (`t.skip`) when something external is missing, or fails
 * it under CI=true, where scripts/test.sh must have installed it.
 */
export function need(t, what, present) {
  if (present) return true;
  if (process.env.CI === "true") throw new Error(`${what} is missing under CI (scripts/test.sh installs it)`);
  t.skip(`${what} is missing`);
  return false;
}

/** The policy every test server runs: rooms with and without history, an opaque (end-to-end encrypted) event. */
export const POLICY = `
[roles.user]
permissions = ["chat:send"]
[roles.student]
permissions = ["chat:send"]

[rooms.lobby]
history = 100
[rooms."room:*"]
history = 100
[rooms.plain]

[events."chat.message"]
permission = "chat:send"

[events."note.typed"]
schema = """{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}"""
[events."note.limited"]
rate = "1/min"
[events."quiz.replayed"]
replay = true
[events."doc.guarded"]
csrf = true
[events."dm.sealed"]
opaque = true
max_bytes = 16384
`;

/** Rates and thresholds no test of the client reaches (the abuse tests set their own). */
export const LENIENT = `
[abuse]
connect_rate = "100000/s"
request_rate = "100000/s"
connection_rate = "100000/s"
user_rate = "100000/s"
ip_rate = "100000/s"
max_connections_per_ip = 100000
max_connections_per_user = 100000
max_pending_per_ip = 100000
restrict_at = 1000000
disconnect_at = 1000000
ban_at = 1000000
`;

/** Cookie sessions with short lives: tokens of 6 s, CSRF rotated every second without grace. */
export const COOKIE = `
[auth]
token_ttl = "6s"
expiry_notice = "3s"
leeway = "1s"

[csrf]
rotate_every = "1s"
grace = "0s"
${LENIENT}`;

function config(dir, extra) {
  return `
[server]
listen = "127.0.0.1:0"
allow_plaintext = true
shutdown_grace = "1s"
data_dir = ${JSON.stringify(join(dir, "data"))}

[[auth.keys]]
id = "k1"
algorithm = "HS256"
secret = "${SECRET}"

[origins]
allow = ["http://127.0.0.1:*"]

[audit]
checkpoint_key = "js-client-audit-checkpoint-key-0123456789!"

[admin]
enabled = false
${extra}`;
}

/**
 * Starts `palisade serve --config` with [POLICY] and `extra` TOML (tables
 * given in `extra` must not repeat those of the base config); resolves once
 * it prints where it listens.
 */
export async function startServer(extra = LENIENT, { dir, port } = {}) {
  dir ??= mkdtempSync(join(tmpdir(), "palisade-js-"));
  const path = join(dir, "palisade.toml");
  writeFileSync(path, config(dir, POLICY + extra));
  const args = ["serve", "--config", path, "--listen", `127.0.0.1:${port ?? 0}`];
  const child = spawn(binary(), args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address in 10 s:\n${log}`)), 10_000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /listening on ws:\/\/([0-9.]+:\d+)\/ws/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`palisade exited (${code}):\n${log}`)));
  });
  child.stderr.removeAllListeners("data");
  child.stderr.resume();
  const exited = new Promise((r) => child.on("exit", r));
  return {
    dir,
    config: path,
    addr,
    port: Number(addr.split(":")[1]),
    url: `ws://${addr}/ws`,
    http: `http://${addr}`,
    /** SIGTERM: the server closes every socket with 1001 and exits. */
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
    /** Stops it and removes its directory. */
    async dispose() {
      await this.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An HS256 token for `sub` living `ttl` seconds, signed with the test key. */
export function token(sub, ttl = 600, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT", kid: "k1" });
  const body = b64({ sub, exp: now + ttl, iat: now, iss: "palisade", aud: "palisade", ...claims });
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** Runs `palisade ARGS --config <the server's>` (stdin: `input`); its stdout. */
export function cli(server, args, input = "") {
  const out = spawnSync(binary(), [...args, "--config", server.config], { input, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`palisade ${args[0]} failed: ${out.stderr}`);
  return out.stdout;
}

/** Adds a user of the own issuer with [PASSWORD]. */
export function addUser(server, id, roles = []) {
  cli(server, ["user", "add", id, ...roles.flatMap((r) => ["--role", r])], PASSWORD + "\n");
}

/**
 * `POST /auth/login` with `cookie: true` from `origin` (or, with `refresh`,
 * `POST /auth/refresh` with that cookie): `{ session, refresh }`, each as
 * `name=value` for a Cookie header.
 */
export async function cookieLogin(server, user, origin, refresh) {
  const res = await fetch(`${server.http}/auth/${refresh ? "refresh" : "login"}`, {
    method: "POST",
    headers: refresh ? { origin, cookie: refresh } : { "content-type": "application/json", origin },
    body: refresh ? undefined : JSON.stringify({ username: user, password: PASSWORD, cookie: true }),
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`);
  const cookie = (name) => res.headers.getSetCookie().find((c) => c.startsWith(name + "="))?.split(";")[0];
  return { session: cookie("palisade_session"), refresh: cookie("palisade_refresh") };
}

/** Resolves with the first value `fn` returns that is not undefined, polling every 20 ms (10 s at most). */
export async function until(fn, what = "condition") {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the next `name` notification of `client` that `pred` accepts. */
export function next(client, name, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} in 10 s`));
    }, 10_000);
    const off = client.on(name, (v) => {
      if (!pred(v)) return;
      clearTimeout(timer);
      off();
      resolve(v);
    });
  });
}

/**
 * A `WebSocket` class that records what the client sends and receives
 * (`sent`, `received`, and both in order in `both`), can
 * be dropped from the client's side, and adds `headers` (Node only: Cookie,
 * Origin).
 */
export function recordingSocket(headers) {
  const log = { sent: [], received: [], sockets: [], both: [] };
  class Recording extends WebSocket {
    constructor(url, protocols) {
      super(url, headers ? { protocols, headers } : protocols);
      log.sockets.push(this);
      this.addEventListener("message", (ev) => {
        log.received.push(JSON.parse(ev.data));
        log.both.push(["in", JSON.parse(ev.data)]);
      });
    }
    send(data) {
      log.sent.push(JSON.parse(data));
      log.both.push(["out", JSON.parse(data)]);
      super.send(data);
    }
  }
  return { WebSocket: Recording, log };
}
