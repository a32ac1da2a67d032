// The client in Node against a real Palisade (the built binary): connect,
// publish and ack, refresh ahead of expiry, every close-code path the
// server can produce, reconnect with re-join and recover, the offline
// queue, and resends under the same cid, published once.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { PalisadeClient, PalisadeError } from "../dist/index.js";
import { binary, cli, need, next, recordingSocket, sleep, startServer, token, until } from "./helpers.js";
import { PausableSocket } from "./pausable.js";

const FAST = { baseMs: 50, capMs: 400 };

/** Short token lifetimes; 4008 after a few refusals; one socket per user. */
const MAIN = `
[auth]
leeway = "1s"
expiry_notice = "2s"

[abuse]
connect_rate = "100000/s"
request_rate = "100000/s"
connection_rate = "100000/s"
user_rate = "100000/s"
ip_rate = "100000/s"
max_connections_per_ip = 100000
max_connections_per_user = 1
max_pending_per_ip = 100000
restrict_at = 6
disconnect_at = 6
ban_at = 1000000
`;

const present = Boolean(binary());
let server;
const clients = [];

/** A client for `sub` (a long token unless `getToken` is given). */
function client(sub, options = {}) {
  const c = new PalisadeClient(server.url, { getToken: () => token(sub), backoff: FAST, ...options });
  clients.push(c);
  return c;
}

describe("against a running Palisade", { concurrency: true }, () => {
  before(async () => {
    if (present) server = await startServer(MAIN);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.dispose();
  });

  test("connect, join, publish: ack with seq, the event with meta, refusals as PalisadeError", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const alice = client("alice");
    const states = [];
    alice.on("state", (s) => states.push(s));
    await alice.connect();
    assert.equal(alice.state, "connected");
    assert.deepEqual(states, ["connecting", "connected"]);
    assert.equal(alice.welcome.user.id, "alice");
    await alice.join("room:hello");
    const seen = [];
    alice.onEvent("room:hello", "chat.message", (data, meta) => seen.push({ data, meta }));
    const { seq } = await alice.publish("room:hello", "chat.message", { content: "hi" });
    assert.equal(typeof seq, "number");
    await until(() => seen.length === 1, "the event");
    assert.deepEqual(seen[0].data, { content: "hi" });
    assert.equal(seen[0].meta.seq, seq);
    assert.deepEqual(seen[0].meta.from, { id: "alice", name: "alice" });

    const refused = await alice.publish("room:hello", "admin.wipe", {}).catch((e) => e);
    assert.ok(refused instanceof PalisadeError);
    assert.equal(refused.code, "unknown_event");
    assert.match(refused.ref, /^r_/);
    const forbidden = await alice.join("nowhere").catch((e) => e);
    assert.equal(forbidden.code, "forbidden");
    assert.equal(alice.state, "connected", "refusals do not cost the connection");
  });

  test("refusals carry path and retryAfterMs; replay- and CSRF-checked events pass as they are", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const c = client("checker");
    await c.connect();
    await c.join("room:checks");
    const invalid = await c.publish("room:checks", "note.typed", { n: "one" }).catch((e) => e);
    assert.equal(invalid.code, "invalid_payload");
    assert.equal(invalid.path, "/n");
    await c.publish("room:checks", "note.limited", { n: 1 });
    const limited = await c.publish("room:checks", "note.limited", { n: 2 }).catch((e) => e);
    assert.equal(limited.code, "rate_limited");
    assert.ok(limited.retryAfterMs > 0, String(limited.retryAfterMs));
    // A nonce and ts go with every send, the CSRF token too.
    await c.publish("room:checks", "quiz.replayed", { answer: 1 });
    await c.publish("room:checks", "quiz.replayed", { answer: 1 });
    await c.publish("room:checks", "doc.guarded", { name: "a.pdf" });
  });

  test("refreshes in-band ahead of exp on `expiring`, once, and the connection outlives the first token", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const { WebSocket, log } = recordingSocket();
    const issued = [];
    const c = client("refresher", {
      WebSocket,
      getToken: () => {
        issued.push(token("refresher", issued.length === 0 ? 3 : 600));
        return issued.at(-1);
      },
    });
    const reconnects = [];
    c.on("reconnect", (r) => reconnects.push(r));
    await c.connect();
    const expiresAt = c.welcome.expires_at;
    await until(() => log.received.find((f) => f.type === "ack" && f.id === refreshId(log)), "the refresh's ack");
    const refresh = log.sent.find((f) => f.type === "refresh");
    assert.equal(refresh.token, issued[1], "the token getToken gave");
    // Past the first token's exp + leeway the connection is still up.
    await sleep(Math.max(0, expiresAt + 1_500 - Date.now()));
    assert.equal(c.state, "connected");
    assert.deepEqual(reconnects, []);
    assert.equal(issued.length, 2, "one token per connect, one per refresh: never two refreshes");
    assert.equal(log.sent.filter((f) => f.type === "refresh").length, 1);
    await c.join("room:refresh");
  });

  test("a refreshed token that is short again is refreshed again, one refresh at a time", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const { WebSocket, log } = recordingSocket();
    const lives = [3, 3, 600];
    const c = client("rerefresher", { WebSocket, getToken: () => token("rerefresher", lives.shift() ?? 600) });
    const reconnects = [];
    c.on("reconnect", (r) => reconnects.push(r));
    await c.connect();
    const refreshes = () => log.sent.filter((f) => f.type === "refresh");
    await until(() => refreshes().length === 2 && log.received.some((f) => f.id === refreshes()[1].id), "two refreshes");
    // In wire order: each refresh is answered before the next one goes.
    let open = null;
    for (const [dir, f] of log.both) {
      if (dir === "out" && f.type === "refresh") {
        assert.equal(open, null, "a refresh while another is in flight");
        open = f.id;
      } else if (dir === "in" && f.id === open) open = null;
    }
    // Past the second token's exp + leeway, still the same connection.
    await sleep(2_500);
    assert.deepEqual(reconnects, []);
    assert.equal(c.state, "connected");
    assert.equal(refreshes().length, 2);
  });

  test("4001: a failed refresh ends in 4001, then a fresh token and a reconnect that re-joins", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    let calls = 0;
    const c = client("expirer", {
      getToken: () => {
        calls++;
        if (calls === 2) throw new Error("identity provider down");
        return token("expirer", calls === 1 ? 3 : 600);
      },
    });
    const errors = [];
    c.on("error", (e) => errors.push(e.code));
    await c.connect();
    await c.join("room:expiry");
    const closed = await next(c, "reconnect");
    assert.equal(closed.code, 4001);
    assert.equal(closed.attempt, 0, "the first reconnect after a welcome starts the backoff over");
    const recovered = await next(c, "recover");
    assert.equal(recovered.room, "room:expiry");
    assert.equal(c.state, "connected");
    assert.equal(calls, 3, "getToken per connect and per refresh");
    assert.deepEqual(errors, ["get_token"]);
    await c.publish("room:expiry", "chat.message", { content: "back" });
  });

  test("4003 (revoked) is terminal: closed with the reason, nothing retried", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const c = client("revokee");
    const reconnects = [];
    c.on("reconnect", (r) => reconnects.push(r));
    await c.connect();
    await c.join("room:revoked");
    const closed = next(c, "state", (s) => s === "closed");
    cli(server, ["revoke", "user", "revokee"]);
    await closed;
    assert.equal(c.closeReason.code, 4003);
    assert.deepEqual(reconnects, []);
    const late = await c.publish("room:revoked", "chat.message", { content: "x" }).catch((e) => e);
    assert.equal(late.code, "closed");
    assert.equal(late.closeCode, 4003);
  });

  test("4008 (too many violations) is terminal", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const c = client("violator");
    await c.connect();
    const closed = next(c, "state", (s) => s === "closed");
    for (let i = 0; i < 8 && c.state === "connected"; i++) {
      await c.publish("lobby", "no.such.event", {}).catch(() => {});
    }
    await closed;
    assert.equal(c.closeReason.code, 4008);
  });

  test("429 at the handshake: backs off with growing attempts, connects once there is room", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const first = client("solo");
    await first.connect();
    const second = client("solo");
    const attempts = [];
    second.on("reconnect", (r) => attempts.push(r.attempt));
    const connected = second.connect();
    await until(() => attempts.length >= 3, "three refused attempts");
    assert.deepEqual(attempts.slice(0, 3), [0, 1, 2], "no reset without a welcome");
    first.close();
    await connected;
    assert.equal(second.state, "connected");
  });

  test("a reconnect re-joins with recover: what was missed arrives once, in order, complete", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const room = "room:recover";
    const alice = client("ann");
    await alice.connect();
    await alice.join(room);
    let gate;
    const { WebSocket, log } = recordingSocket();
    const bob = client("ben", {
      WebSocket,
      getToken: async () => {
        await gate;
        return token("ben");
      },
    });
    const got = [];
    bob.onEvent(room, "*", (data, meta) => got.push([meta.seq, data.content]));
    await bob.connect();
    await bob.join(room);
    await alice.publish(room, "chat.message", { content: "one" });
    await until(() => got.length === 1, "one");

    // Bob's socket drops; while he is away alice says two things.
    let open;
    gate = new Promise((r) => (open = r));
    log.sockets.at(-1).close();
    await next(bob, "reconnect");
    await alice.publish(room, "chat.message", { content: "two" });
    await alice.publish(room, "chat.message", { content: "three" });
    open();
    const recovered = await next(bob, "recover");
    assert.deepEqual({ ...recovered, seq: 0 }, { room, complete: true, seq: 0 });
    await alice.publish(room, "chat.message", { content: "four" });
    await until(() => got.length >= 4, "four");
    await sleep(100);
    assert.deepEqual(
      got.map(([, c]) => c),
      ["one", "two", "three", "four"],
    );
    assert.equal(new Set(got.map(([s]) => s)).size, got.length, "no seq twice");
    assert.ok(log.sent.some((f) => f.type === "recover" && f.room === room), "recover, not a bare join");
  });

  test("a message whose answer was lost with the socket is resent with its cid: published once, resolved with its seq", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const room = "room:once";
    const watcher = client("watcher");
    await watcher.connect();
    await watcher.join(room);
    const seen = [];
    watcher.onEvent(room, "chat.message", (data, meta) => seen.push([meta.seq, data.content]));
    const { WebSocket, log } = recordingSocket();
    const sender = client("sender", { WebSocket });
    await sender.connect();
    await sender.join(room);
    const recovered = next(sender, "recover");
    const pending = sender.publish(room, "chat.message", { content: "maybe" });
    // The client drops its socket before the ack can be read: the server
    // has the message (it came before the close) and publishes it.
    log.sockets.at(-1).close();
    await recovered;
    const published = await pending;
    assert.equal(typeof published.seq, "number");
    assert.equal(published.duplicate, true, "the resend was answered with the first copy's seq");
    await sender.publish(room, "chat.message", { content: "after" });
    await until(() => seen.some(([, c]) => c === "after"), "the next message");
    const sends = log.sent.filter((f) => f.type === "send" && f.data.content === "maybe");
    assert.equal(sends.length, 2, "sent, and sent again after the reconnect");
    assert.equal(typeof sends[0].cid, "string");
    assert.equal(sends[1].cid, sends[0].cid, "under the same cid");
    // After the re-join: the recover went out before the resend.
    const order = log.sent.map((f) => f.type);
    assert.ok(order.lastIndexOf("recover") < log.sent.lastIndexOf(sends[1]), order.join(","));
    const maybes = seen.filter(([, c]) => c === "maybe");
    assert.deepEqual(maybes, [[published.seq, "maybe"]], "the room got it exactly once, with that seq");
    assert.equal(new Set(seen.map(([s]) => s)).size, seen.length);
  });

  test("the room got it, the ack was never read (TCP killed unread): the resend is a duplicate with the first seq", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const room = "room:killed";
    const watcher = client("watcher5");
    await watcher.connect();
    await watcher.join(room);
    const seen = [];
    watcher.onEvent(room, "chat.message", (data, meta) => seen.push([meta.seq, data.content]));
    const sent = [];
    class Tapped extends PausableSocket {
      send(text) {
        sent.push(JSON.parse(text));
        super.send(text);
      }
    }
    const sender = client("sender5", { WebSocket: Tapped });
    await sender.connect();
    await sender.join(room);
    const socket = PausableSocket.last;
    socket.pause(); // the ack will wait, unread, in the socket
    const pending = sender.publish(room, "chat.message", { content: "killed" });
    await until(() => seen.length === 1, "the room has it");
    socket.sock.destroy(); // the connection dies with the ack in it
    const published = await pending;
    assert.deepEqual(published, { seq: seen[0][0], duplicate: true });
    await sender.publish(room, "chat.message", { content: "next" });
    await until(() => seen.length === 2, "the next message");
    assert.deepEqual(
      seen.map(([, c]) => c),
      ["killed", "next"],
      "exactly once",
    );
    const sends = sent.filter((f) => f.type === "send" && f.data.content === "killed");
    assert.equal(sends.length, 2);
    assert.equal(sends[1].cid, sends[0].cid);
  });

  test("a message the dropped socket never delivered is sent again and published once, not as a duplicate", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const room = "room:lossy";
    const watcher = client("watcher2");
    await watcher.connect();
    await watcher.join(room);
    const seen = [];
    watcher.onEvent(room, "chat.message", (data, meta) => seen.push([meta.seq, data.content]));
    const { WebSocket, log } = recordingSocket();
    // A socket that loses the first send of "lost" and drops: the server
    // never sees the first copy.
    let lose = true;
    class Lossy extends WebSocket {
      send(data) {
        if (lose && JSON.parse(data).data?.content === "lost") {
          lose = false;
          log.sent.push(JSON.parse(data));
          return this.close();
        }
        super.send(data);
      }
    }
    const sender = client("sender2", { WebSocket: Lossy });
    await sender.connect();
    await sender.join(room);
    const published = await sender.publish(room, "chat.message", { content: "lost" });
    assert.equal(published.duplicate, undefined);
    await until(() => seen.length === 1, "the event");
    assert.deepEqual(seen, [[published.seq, "lost"]]);
    const sends = log.sent.filter((f) => f.type === "send");
    assert.equal(sends.length, 2);
    assert.equal(sends[1].cid, sends[0].cid);
  });

  test("no resend past cidWindowMs or beyond maxQueue: those reject `disconnected`, are not sent again", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const room = "room:window";
    const { WebSocket, log } = recordingSocket();
    const sender = client("sender3", { WebSocket, cidWindowMs: 0 });
    await sender.connect();
    await sender.join(room);
    const pending = sender.publish(room, "chat.message", { content: "stale" });
    log.sockets.at(-1).close();
    const lost = await pending.catch((e) => e);
    assert.ok(lost instanceof PalisadeError);
    assert.equal(lost.code, "disconnected");
    await next(sender, "recover");
    assert.equal(log.sent.filter((f) => f.type === "send").length, 1, "never sent again");

    const rec = recordingSocket();
    const bounded = client("sender4", { WebSocket: rec.WebSocket, maxQueue: 1 });
    await bounded.connect();
    await bounded.join(room);
    const first = bounded.publish(room, "chat.message", { content: "kept" });
    const second = bounded.publish(room, "chat.message", { content: "over" });
    rec.log.sockets.at(-1).close();
    assert.equal((await second.catch((e) => e)).code, "disconnected", "beyond maxQueue");
    assert.equal(typeof (await first).seq, "number");
    const resent = rec.log.sent.filter((f) => f.type === "send").map((f) => f.data.content);
    assert.deepEqual(resent, ["kept", "over", "kept"]);
  });

  test("queued while offline: sent once on connect, acked", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const { WebSocket, log } = recordingSocket();
    const c = client("queuer", { WebSocket, maxQueue: 5 });
    const joined = c.join("room:queue");
    const acks = [1, 2, 3].map((n) => c.publish("room:queue", "chat.message", { content: `q${n}` }));
    assert.equal(c.state, "disconnected");
    await c.connect();
    await joined;
    const seqs = (await Promise.all(acks)).map((a) => a.seq);
    assert.deepEqual([...seqs].sort(), seqs, "in order");
    assert.equal(log.sent.filter((f) => f.type === "send").length, 3);
  });
});

describe("without a server", () => {
  test("the offline queue is bounded and its messages time out; a refused connection (Node 20: only `error`) is retried", async () => {
    const port = await new Promise((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
    const c = new PalisadeClient(`ws://127.0.0.1:${port}/ws`, {
      getToken: () => token("nobody"),
      maxQueue: 2,
      sendTimeoutMs: 300,
      backoff: FAST,
    });
    const attempts = [];
    c.on("reconnect", (r) => attempts.push(r.attempt));
    c.connect().catch(() => {});
    const a = c.publish("lobby", "chat.message", { content: "a" });
    const b = c.publish("lobby", "chat.message", { content: "b" });
    const full = await c.publish("lobby", "chat.message", { content: "c" }).catch((e) => e);
    assert.equal(full.code, "queue_full");
    assert.equal((await a.catch((e) => e)).code, "timeout");
    assert.equal((await b.catch((e) => e)).code, "timeout");
    await until(() => attempts.length >= 3, "retries");
    assert.deepEqual(attempts.slice(0, 3), [0, 1, 2]);
    c.close();
    assert.equal(c.state, "closed");
  });
});

function refreshId(log) {
  return log.sent.find((f) => f.type === "refresh")?.id;
}

describe("with a scripted socket", () => {
  test("a duplicate ack without seq (first copy still being published) is asked again once, 250 ms later", async () => {
    const sent = [];
    // Answers each send with the next scripted ack; everything else as the server would.
    const answers = [{ duplicate: true }, { duplicate: true, seq: 7 }, { duplicate: true }, { duplicate: true }];
    class Scripted {
      constructor() {
        this.onopen = this.onmessage = this.onerror = this.onclose = null;
        setTimeout(() => {
          this.onopen?.({});
          this.reply({ type: "welcome", session: "s", user: { id: "u", name: "u", roles: [] }, csrf: "c", heartbeat_ms: 30000, max_message_bytes: 65536, expires_at: Date.now() + 600000 });
        });
      }
      reply(f) {
        setTimeout(() => this.onmessage?.({ data: JSON.stringify(f) }));
      }
      send(text) {
        const f = JSON.parse(text);
        sent.push([Date.now(), f]);
        if (f.type === "join") this.reply({ type: "ack", id: f.id, seq: 1 });
        if (f.type === "send") this.reply({ type: "ack", id: f.id, ...answers.shift() });
      }
      close() {}
    }
    const c = new PalisadeClient("ws://scripted/ws", { getToken: () => "t", WebSocket: Scripted });
    await c.connect();
    await c.join("lobby");
    assert.deepEqual(await c.publish("lobby", "chat.message", { n: 1 }), { seq: 7, duplicate: true });
    assert.deepEqual(await c.publish("lobby", "chat.message", { n: 2 }), { duplicate: true }, "no seq after the one retry");
    const sends = sent.filter(([, f]) => f.type === "send");
    assert.equal(sends.length, 4);
    assert.equal(sends[1][1].cid, sends[0][1].cid);
    assert.equal(sends[3][1].cid, sends[2][1].cid);
    assert.notEqual(sends[2][1].cid, sends[0][1].cid, "a fresh cid per publish");
    assert.ok(sends[1][0] - sends[0][0] >= 240, "shortly after, not at once");
    c.close();
  });
});
