// A bare WebSocket speaking palisade.v1 by hand, for the attack panel: the
// client library would never send what an attacker sends (no CSRF token, a
// used nonce, a frame past the limit), so the attacks build their frames
// themselves. Every wait is bounded.

const WAIT_MS = 5000;

/** The server's WebSocket URL, on the origin this page came from. */
export function socketUrl(host = location.host) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${host}/ws`;
}

/** A promise that rejects after `ms` with `what` timed out. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Opens a socket with `protocols` (the cookie goes with it, as the browser
 * sends it to its own site): resolves with the connection once `welcome`
 * came, or with `{ refused: code }` when the socket closed before.
 */
export function open(protocols = ["palisade.v1"]) {
  const ws = new WebSocket(socketUrl(), protocols);
  const waiting = new Map();
  let next = 0;
  let closedWith;
  const closed = new Promise((resolve) => {
    ws.addEventListener("close", (e) => {
      closedWith = e.code;
      resolve(e.code);
      for (const [, settle] of waiting) settle({ type: "closed", code: e.code });
    });
  });
  const welcome = new Promise((resolve) => {
    ws.addEventListener("message", (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame.type === "welcome") resolve(frame);
      const settle = frame.id !== undefined && waiting.get(frame.id);
      if (settle) {
        waiting.delete(frame.id);
        settle(frame);
      }
    });
  });
  const conn = {
    ws,
    closed,
    /** Sends `frame` with a fresh id: the server's `ack` or `error` for it. */
    request(frame) {
      if (closedWith !== undefined) return Promise.resolve({ type: "closed", code: closedWith });
      const id = `a${++next}`;
      const answer = new Promise((resolve) => waiting.set(id, resolve));
      ws.send(JSON.stringify({ ...frame, id }));
      return within(answer, WAIT_MS, frame.type);
    },
    /** Sends text as it is, without waiting. */
    sendText(text) {
      ws.send(text);
    },
    close() {
      ws.close(1000);
    },
  };
  return within(Promise.race([welcome.then((w) => ({ ...conn, welcome: w })), closed.then((code) => ({ refused: code }))]), WAIT_MS, "connect");
}
