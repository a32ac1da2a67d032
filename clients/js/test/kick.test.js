// A server that accepts the upgrade and kicks at once, before any
// `welcome`. Palisade always sends `welcome` first, so this one case is a
// tiny local server: TCP and the 101 succeed every time, and the backoff
// must keep growing anyway (socket.io resets it on open and retries fast
// forever).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { test } from "node:test";
import { PalisadeClient } from "../dist/index.js";
import { until } from "./helpers.js";

/** Accepts every upgrade, then kicks at once (close 1011), or with `hang` says nothing. */
function kicker(hang = false) {
  let upgrades = 0;
  const sockets = new Set();
  const server = createServer((_, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket) => {
    upgrades++;
    sockets.add(socket);
    const accept = createHash("sha1")
      .update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
      .digest("base64");
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: palisade.v1\r\n\r\n`,
    );
    socket.on("error", () => {});
    // Close frame 1011, then hang up.
    if (!hang) socket.end(Buffer.from([0x88, 0x02, 0x03, 0xf3]));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        upgrades: () => upgrades,
        stop: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

test("accept-then-kick never resets the backoff: attempts only grow", async () => {
  const { stop, port, upgrades } = await kicker();
  const c = new PalisadeClient(`ws://127.0.0.1:${port}/ws`, {
    getToken: () => "not-a-real-token",
    backoff: { baseMs: 20, capMs: 200 },
  });
  const seen = [];
  c.on("reconnect", (r) => seen.push(r));
  c.connect().catch(() => {});
  try {
    await until(() => seen.length >= 6, "six kicks");
    assert.deepEqual(
      seen.slice(0, 6).map((r) => [r.attempt, r.code]),
      [0, 1, 2, 3, 4, 5].map((attempt) => [attempt, 1011]),
      "the upgrade succeeded and the server kicked each time, and it never counted as a healthy connection",
    );
    assert.ok(upgrades() >= 6);
    assert.ok(seen.every((r) => r.delayMs < 200), "within the cap");
    assert.equal(c.state === "connected", false);
  } finally {
    c.close();
    stop();
  }
});

test("accept-then-hang: no welcome in time is a failed attempt too", async () => {
  const { stop, port, upgrades } = await kicker(true);
  const c = new PalisadeClient(`ws://127.0.0.1:${port}/ws`, {
    getToken: () => "not-a-real-token",
    backoff: { baseMs: 20, capMs: 200 },
    welcomeTimeoutMs: 100,
  });
  const seen = [];
  c.on("reconnect", (r) => seen.push(r));
  c.connect().catch(() => {});
  try {
    await until(() => seen.length >= 3, "three silent upgrades");
    assert.deepEqual(
      seen.slice(0, 3).map((r) => [r.attempt, r.code, r.reason]),
      [
        [0, 4000, "no welcome"],
        [1, 4000, "no welcome"],
        [2, 4000, "no welcome"],
      ],
    );
    assert.ok(upgrades() >= 3);
  } finally {
    c.close();
    stop();
  }
});
