// Cookie sessions (docs/PROTOCOL.md §11.4): every send carries the CSRF
// token, which follows each rotation (here every second, with no grace, so
// a stale token would fail at once); at `expiring` the client lets the app
// renew the cookie (getToken) and reconnects, recovering its rooms.

import assert from "node:assert/strict";
import { test } from "node:test";
import { PalisadeClient } from "../dist/index.js";
import { COOKIE, addUser, binary, cookieLogin, need, next, recordingSocket, startServer, until } from "./helpers.js";

const ORIGIN = "http://127.0.0.1:5173";

test("cookie mode: CSRF echoed and rotated, cookie renewed and the socket replaced at `expiring`", async (t) => {
  if (!need(t, "the palisade binary (cargo build)", Boolean(binary()))) return;
  const server = await startServer(COOKIE);
  addUser(server, "carol", ["student"]);
  let cookies = await cookieLogin(server, "carol", ORIGIN);
  const headers = { origin: ORIGIN, cookie: cookies.session };
  const { WebSocket, log } = recordingSocket(headers);
  let renewals = 0;
  const c = new PalisadeClient(server.url, {
    cookie: true,
    WebSocket,
    backoff: { baseMs: 50, capMs: 400 },
    // The app's hook: renew the session cookie (a browser's fetch would
    // carry the refresh cookie by itself).
    getToken: async () => {
      renewals++;
      cookies = await cookieLogin(server, "carol", ORIGIN, cookies.refresh);
      headers.cookie = cookies.session;
      return "";
    },
  });
  try {
    await c.connect();
    assert.equal(c.welcome.user.id, "carol");
    await c.join("room:cookie");
    await c.publish("room:cookie", "chat.message", { content: "first" });

    // Two rotations later, the latest token is the one sent.
    const rotated = () => log.received.filter((f) => f.type === "csrf");
    await until(() => rotated().length >= 2, "two rotations");
    const ack = await c.publish("room:cookie", "chat.message", { content: "rotated" });
    assert.equal(typeof ack.seq, "number");
    const sent = log.sent.filter((f) => f.type === "send").at(-1);
    assert.equal(sent.csrf, rotated().at(-1).csrf, "the newest CSRF token");
    assert.notEqual(sent.csrf, c.welcome.csrf);

    // At `expiring` (3 s before the 6 s token's exp): renew, reconnect, recover.
    const recovered = await next(c, "recover");
    assert.equal(recovered.room, "room:cookie");
    assert.equal(renewals, 1);
    assert.equal(log.sockets.length, 2);
    assert.equal(c.state, "connected");
    await c.publish("room:cookie", "chat.message", { content: "renewed" });
  } finally {
    c.close();
    await server.dispose();
  }
});
