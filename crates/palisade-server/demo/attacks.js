// The attack panel: each attack from the seeds, fired at this server, and
// the answer it got. Each `run` resolves with `{ code, detail }`: `code` is
// what the server answered (an error code, a close code), `detail` says it
// in words. Everything shown is text (textContent).

import { open } from "./raw.js";

/** A JWT-shaped token with a signature no key made. */
function forgedToken() {
  const b64 = (value) => btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: "alice", roles: ["admin"], iss: "palisade", aud: "palisade", iat: now, exp: now + 900 };
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.Zm9yZ2VkLXNpZ25hdHVyZQ`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A socket of this page's own session, in `room` if named. */
async function session(room) {
  const conn = await open();
  if (conn.refused !== undefined) throw new Error(`could not connect (close ${conn.refused})`);
  const joined = room && (await conn.request({ type: "join", room }));
  if (joined && joined.type !== "ack") {
    conn.close();
    throw new Error(`could not join ${room} (${joined.code})`);
  }
  return conn;
}

/** A `send` of a chat line on a raw socket, with or without the CSRF token. */
function chat(conn, content, { csrf = true } = {}) {
  const frame = { type: "send", room: "lobby", event: "chat.message", data: { content } };
  return conn.request(csrf ? { ...frame, csrf: conn.welcome.csrf } : frame);
}

/** The answer to show for a frame the server answered. */
function answered(reply) {
  if (reply.type === "error") return { code: reply.code, detail: `error ${reply.code}: "${reply.message}"` };
  if (reply.type === "closed") return { code: String(reply.code), detail: `closed with ${reply.code}` };
  return { code: reply.type, detail: `${reply.type} (not refused)` };
}

export const XSS = `<img src=x onerror="document.body.dataset.xss='ran'">`;

export const ATTACKS = [
  {
    key: "xss",
    name: "XSS payload",
    what: `Publishes the chat message ${XSS} through the client. The html sanitizer drops the image and its handler; nothing is left, which the schema refuses. Markup it keeps (<b>, <i>) is shown as text here.`,
    async run({ client }) {
      try {
        await client.publish("lobby", "chat.message", { content: XSS });
        return { code: "ack", detail: "accepted (cleaned): see the chat" };
      } catch (e) {
        return { code: e.code, detail: `error ${e.code}: the cleaned message is empty` };
      }
    },
  },
  {
    key: "oversize",
    name: "Oversize frame",
    what: "Sends one frame a byte over the limit the server announced in welcome (max_message_bytes). The server reads the frame header, not the body, and closes.",
    async run() {
      const conn = await session();
      const content = "x".repeat(conn.welcome.max_message_bytes + 1);
      conn.sendText(JSON.stringify({ type: "send", id: "big", room: "lobby", event: "chat.message", data: { content } }));
      const code = await conn.closed;
      return { code: String(code), detail: `closed with ${code} (message too big)` };
    },
  },
  {
    key: "forged",
    name: "Forged token",
    what: "Presents a token for alice with the admin role, signed by no key of the server, in an in-band refresh (a page cannot read its cookie, so this is where it can show the answer). At the handshake the same token gets HTTP 401 before the upgrade, which a browser reports only as close 1006.",
    async run() {
      const conn = await session();
      const reply = await conn.request({ type: "refresh", token: forgedToken() });
      conn.close();
      return answered(reply);
    },
  },
  {
    key: "origin",
    name: "Cross-origin connect",
    what: "A page cannot forge its Origin: the browser writes it. So the demo opens the socket from a sandboxed frame, whose origin is opaque: the browser sends Origin: null and no SameSite cookie, as for a foreign site. The server answers 403 before the upgrade (the dashboard shows the origin refusal); the browser shows the page only close 1006.",
    run({ foreign }) {
      return foreign();
    },
  },
  {
    key: "replay",
    name: "Replay",
    what: "Answers the quiz on a raw socket, then sends the same frame again with the same nonce (quiz.answer has replay = true).",
    async run() {
      const conn = await session("course:demo");
      const frame = {
        type: "send",
        room: "course:demo",
        event: "quiz.answer",
        data: { sessionId: "demo", questionId: "replayed", answer: 1 },
        csrf: conn.welcome.csrf,
        nonce: crypto.randomUUID().replace(/-/g, ""),
        ts: Date.now(),
      };
      const first = await conn.request(frame);
      // The same frame again, past the event's rate (2/s, less once this
      // address's score restricts it), so it is judged on its nonce.
      let second;
      for (let tries = 0; tries < 4; tries++) {
        await sleep(Math.min(second?.retry_after_ms ?? 1100, 5000));
        second = await conn.request(frame);
        if (second.code !== "rate_limited") break;
      }
      conn.close();
      const shown = answered(second);
      return { ...shown, detail: `first: ${first.type}; the same again: ${shown.detail}` };
    },
  },
  {
    key: "csrf",
    name: "CSRF-less send",
    what: "Sends a chat message on a cookie session without the CSRF token from welcome, as a forged cross-site request would.",
    async run() {
      const conn = await session("lobby");
      const reply = await chat(conn, "no token", { csrf: false });
      conn.close();
      return answered(reply);
    },
  },
  {
    key: "flood",
    name: "Flood",
    what: "Sends chat messages as fast as the answers come back, until the server refuses one (at most 60).",
    async run() {
      const conn = await session("lobby");
      let accepted = 0;
      for (let n = 0; n < 60; n++) {
        const reply = await chat(conn, `flood ${n}`);
        if (reply.type !== "ack") {
          conn.close();
          const shown = answered(reply);
          const after = reply.retry_after_ms === undefined ? "" : `, retry after ${reply.retry_after_ms} ms`;
          return { ...shown, detail: `${shown.detail} after ${accepted} accepted${after}` };
        }
        accepted++;
      }
      conn.close();
      return { code: "ack", detail: `${accepted} accepted, none refused` };
    },
  },
];
