// A server restart: every socket gets 1001, the client retries while the
// port refuses (Node 20 fires only `error` then), comes back when the
// server does, re-joins with recover (told it is incomplete: history is in
// memory and a restart loses it) and sends what it queued meanwhile, once.

import assert from "node:assert/strict";
import { test } from "node:test";
import { PalisadeClient } from "../dist/index.js";
import { LENIENT, binary, need, next, recordingSocket, startServer, token, until } from "./helpers.js";

test("1001 on restart: reconnect, re-join with recover (incomplete), queued messages sent once", async (t) => {
  if (!need(t, "the palisade binary (cargo build)", Boolean(binary()))) return;
  let server = await startServer(LENIENT);
  const { WebSocket, log } = recordingSocket();
  const c = new PalisadeClient(server.url, {
    WebSocket,
    getToken: () => token("restarter"),
    backoff: { baseMs: 50, capMs: 400 },
    sendTimeoutMs: 20_000,
  });
  try {
    const got = [];
    c.onEvent("lobby", "chat.message", (data, meta) => got.push([meta.seq, data.content]));
    await c.connect();
    await c.join("lobby");
    await c.publish("lobby", "chat.message", { content: "before" });
    await until(() => got.length === 1, "the first event");

    const reconnects = [];
    c.on("reconnect", (r) => reconnects.push(r));
    await server.stop();
    await until(() => reconnects.length >= 3, "retries while the server is down");
    assert.equal(reconnects[0].code, 1001, "server shutting down");
    assert.deepEqual(
      reconnects.slice(0, 3).map((r) => r.attempt),
      [0, 1, 2],
      "the backoff grows while the port refuses",
    );
    const queued = c.publish("lobby", "chat.message", { content: "while away" });

    const recovering = next(c, "recover");
    server = await startServer(LENIENT, { dir: server.dir, port: server.port });
    const recovered = await recovering;
    assert.equal(recovered.room, "lobby");
    assert.equal(recovered.complete, false, "the restart lost the room's history");
    const { seq } = await queued;
    await until(() => got.length === 2, "the queued message, live");
    assert.deepEqual(got[1], [seq, "while away"]);
    assert.equal(log.sent.filter((f) => f.type === "send" && f.data.content === "while away").length, 1);
    assert.ok(seq > got[0][0], "seq never goes backwards across a restart");
    assert.equal(c.state, "connected");
  } finally {
    c.close();
    await server.dispose();
  }
});
