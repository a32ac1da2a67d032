// 4009, a slow consumer: a client that stops reading is closed by Palisade
// once its outbound queue is full, and comes back no sooner than the floor
// (the server's last `retry_after_ms` hint, else `baseMs`), re-joining its
// rooms. Browsers and Node's WebSocket always read, so this client's socket
// is test/pausable.js.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { PalisadeClient } from "../dist/index.js";
import { LENIENT, binary, need, next, startServer, token, until } from "./helpers.js";
import { PausableSocket } from "./pausable.js";

test("4009 (slow consumer): reconnect after the floor, rooms recovered", async (t) => {
  if (!need(t, "the palisade binary (cargo build)", Boolean(binary()))) return;
  const server = await startServer(LENIENT + "\n[limits]\noutbound_queue = 4\n");
  const backoff = { baseMs: 50, capMs: 400 };
  const slow = new PalisadeClient(server.url, { WebSocket: PausableSocket, getToken: () => token("slow"), backoff });
  const fast = new PalisadeClient(server.url, { getToken: () => token("fast"), backoff });
  try {
    const reconnects = [];
    slow.on("reconnect", (r) => reconnects.push(r));
    await Promise.all([slow.connect(), fast.connect()]);
    await Promise.all([slow.join("room:slow"), fast.join("room:slow")]);
    const recovered = next(slow, "recover");
    PausableSocket.last.pause();
    // About 4 MB for a reader that reads nothing: more than the socket
    // buffers and the 4 queued events hold.
    const content = () => randomBytes(15_000).toString("base64");
    const sent = Array.from({ length: 200 }, () => fast.publish("room:slow", "chat.message", { content: content() }));
    await Promise.all(sent);
    PausableSocket.last.resume();
    await until(() => reconnects.length > 0, "the 4009");
    assert.equal(reconnects[0].code, 4009);
    assert.equal(reconnects[0].reason, "slow consumer");
    assert.ok(reconnects[0].delayMs >= backoff.baseMs, "not before the floor");
    assert.equal((await recovered).room, "room:slow");
    assert.equal(slow.state, "connected");
    assert.equal(fast.state, "connected", "the publisher kept its connection");
  } finally {
    slow.close();
    fast.close();
    await server.dispose();
  }
});
