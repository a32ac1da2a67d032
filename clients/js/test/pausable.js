// A minimal WebSocket client over a raw TCP socket whose reading can be
// paused: a client that stops reading, as a real slow consumer does, which
// neither browsers nor Node's WebSocket can be made to do. It speaks just
// what the tests need (text, ping, close) and fits `options.WebSocket`.

import { randomBytes } from "node:crypto";
import { connect } from "node:net";

export class PausableSocket {
  static last;

  constructor(url, protocols) {
    const u = new URL(url);
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this.buf = Buffer.alloc(0);
    this.upgraded = false;
    this.done = false;
    this.sock = connect(Number(u.port), u.hostname);
    this.sock.on("connect", () =>
      this.sock.write(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n\r\n`,
      ),
    );
    this.sock.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
    this.sock.on("error", () => {});
    this.sock.on("close", () => this.finish(1006, ""));
    PausableSocket.last = this;
  }

  pause() {
    this.sock.pause();
  }

  resume() {
    this.sock.resume();
  }

  send(text) {
    this.frame(1, Buffer.from(text));
  }

  close(code = 1000, reason = "") {
    const head = Buffer.alloc(2);
    head.writeUInt16BE(code);
    this.frame(8, Buffer.concat([head, Buffer.from(reason)]));
    this.sock.end();
  }

  parse() {
    if (!this.upgraded) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString();
      this.buf = this.buf.subarray(end + 4);
      if (!head.startsWith("HTTP/1.1 101")) return this.sock.destroy();
      this.upgraded = true;
      this.onopen?.({});
    }
    while (this.buf.length >= 2 && !this.done) {
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 1) this.onmessage?.({ data: payload.toString() });
      else if (op === 9) this.frame(10, payload);
      else if (op === 8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.frame(8, payload.subarray(0, 2));
        this.sock.end();
        return this.finish(code, payload.subarray(2).toString());
      }
    }
  }

  frame(op, payload) {
    if (this.sock.destroyed || !this.sock.writable) return;
    const mask = randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len]) : Buffer.alloc(4);
    if (len >= 126) {
      head[0] = 0x80 | op;
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
    }
    const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
    this.sock.write(Buffer.concat([head, mask, body]));
  }

  finish(code, reason) {
    if (this.done) return;
    this.done = true;
    this.onclose?.({ code, reason });
  }
}
