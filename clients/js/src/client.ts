import { backoffDelay, closeAction, type BackoffOptions } from "./backoff.js";
import { PalisadeError } from "./errors.js";

/** Where the client stands. */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** The part of the standard `WebSocket` the client uses. */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => unknown) | null;
  onmessage: ((ev: { data: unknown }) => unknown) | null;
  onerror: ((ev: unknown) => unknown) | null;
  onclose: ((ev: { code: number; reason: string }) => unknown) | null;
}

/** A `WebSocket` constructor (the global one by default). */
export type SocketFactory = new (url: string, protocols: string[]) => SocketLike;

/** What every client may set. */
export interface BaseOptions {
  /** Messages held while not connected (default 100); more reject with `queue_full`. */
  maxQueue?: number;
  /** Reconnect timing. */
  backoff?: BackoffOptions;
  /** A message not answered this long after `publish` rejects with `timeout` (default 10000). */
  sendTimeoutMs?: number;
  /**
   * A message sent on a socket that dropped before its answer is sent again
   * (same `cid`) only within this long of its first sending (default
   * 290000: the server's `limits.client_id_window`, 5 min, less a margin);
   * later it rejects with `disconnected`.
   */
  cidWindowMs?: number;
  /** An open socket without `welcome` this long is given up (default 10000). */
  welcomeTimeoutMs?: number;
  /** The `WebSocket` constructor, where there is no global one. */
  WebSocket?: SocketFactory;
}

/** A bearer token, offered as the `palisade.bearer.<token>` subprotocol. */
export interface TokenOptions extends BaseOptions {
  /** Called before every connect and for every in-band refresh, for a fresh access token. */
  getToken: () => string | Promise<string>;
  cookie?: false;
}

/** The `palisade_session` cookie (after `/auth/login` with `cookie: true`). */
export interface CookieOptions extends BaseOptions {
  cookie: true;
  /**
   * The hook that renews the session cookie (e.g. `POST /auth/refresh`);
   * its result is ignored. Called at `expiring` (then the client
   * reconnects) and before reconnecting after a 4001.
   */
  getToken?: () => unknown;
}

export type ClientOptions = TokenOptions | CookieOptions;

/** The server's first frame (docs/PROTOCOL.md §2.2). */
export interface Welcome {
  session: string;
  user: { id: string; name: string; roles: string[] };
  csrf: string;
  heartbeat_ms: number;
  max_message_bytes: number;
  expires_at: number;
}

/** What comes with each event. */
export interface EventMeta {
  room: string;
  event: string;
  seq: number;
  from: { id: string; name: string };
  ts: number;
}

export type EventHandler = (data: unknown, meta: EventMeta) => void;

/**
 * What `publish` resolves with: the room's `seq` for the message.
 * `duplicate: true` when the server had already published it (a resend
 * after a dropped socket): `seq` is the first copy's. In the rare case the
 * first copy was still being published both times it was asked (the
 * resend, and one retry 250 ms later), `seq` is absent.
 */
export type Published = { seq: number; duplicate?: true } | { seq?: undefined; duplicate: true };

/** The client's own notifications, for `client.on(name, fn)`. */
export interface ClientEvents {
  state: State;
  welcome: Welcome;
  /** A room re-joined after a reconnect: `complete` is false when events may have been missed. */
  recover: { room: string; complete: boolean; seq: number };
  /** The server took the connection out of a room (or a re-join was refused). */
  removed: { room: string; code: string };
  /** A reconnect was scheduled. */
  reconnect: { attempt: number; delayMs: number; code: number; reason: string };
  /** Something failed that no promise reports (a refresh, getToken, a terminal close). */
  error: PalisadeError;
}

interface Outgoing {
  room: string;
  event: string;
  data: unknown;
  resolve: (v: Published) => void;
  reject: (e: PalisadeError) => void;
  timer?: ReturnType<typeof setTimeout>;
  id?: string;
  /** The client message id, the same on every resend. */
  cid: string;
  /** When it was first handed to a socket. */
  sentAt?: number;
  /** Waiting to ask again about a first copy still being published. */
  again?: ReturnType<typeof setTimeout>;
  retried?: boolean;
}

interface Room {
  lastSeq?: number;
  requested: boolean;
  joined: boolean;
  waiters: Array<[() => void, (e: PalisadeError) => void]>;
}

type Pending =
  | { kind: "send"; msg: Outgoing }
  | { kind: "join" | "recover" | "leave"; room: string; done?: () => void }
  | { kind: "refresh"; token: string };

type Frame = Record<string, any>;

const errorOf = (f: Frame): PalisadeError =>
  new PalisadeError(f.code, f.message, { path: f.path, retryAfterMs: f.retry_after_ms, ref: f.ref });

/**
 * A Palisade connection that keeps itself up: reconnects by the close code
 * with full-jitter backoff, refreshes its token in-band, re-joins and
 * recovers its rooms, and resends what a dropped socket left unanswered
 * under its `cid`, so the server publishes it once.
 */
export class PalisadeClient {
  /** Where the client stands; `on("state")` tells each change. */
  state: State = "disconnected";
  /** The latest `welcome`. */
  welcome?: Welcome;
  /** Why the server ended the client, after a terminal close (4003, 4008). */
  closeReason?: { code: number; reason: string };

  private readonly url: string;
  private readonly opts: ClientOptions;
  private readonly WS: SocketFactory;
  private ws?: SocketLike;
  private end?: (code: number, reason: string) => void;
  private running = false;
  private ready = false;
  private cycling = false;
  private attempt = 0;
  private nextId = 0;
  private generation = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private pending = new Map<string, Pending>();
  private queue: Outgoing[] = [];
  private rooms = new Map<string, Room>();
  private handlers = new Map<string, Set<EventHandler>>();
  private listeners = new Map<string, Set<(v: any) => void>>();
  private waiters: Array<[() => void, (e: PalisadeError) => void]> = [];
  private csrf?: string;
  private token?: string;
  private refreshing = false;
  private renewCookie = false;
  private refreshedFor = 0;
  private notice = 0;
  private hintMs = 0;

  constructor(url: string, options: ClientOptions) {
    const WS = options.WebSocket ?? (globalThis as any).WebSocket;
    if (!WS) {
      throw new Error("no WebSocket: on Node 20 run with --experimental-websocket, or pass options.WebSocket");
    }
    if (!options.cookie && !options.getToken) throw new Error("getToken is required without cookie: true");
    this.url = url;
    this.opts = options;
    this.WS = WS;
  }

  /** Connects (and keeps reconnecting); resolves on the next `welcome`. */
  connect(): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    const p = new Promise<void>((res, rej) => this.waiters.push([res, rej]));
    if (!this.running) {
      this.running = true;
      this.closeReason = undefined;
      void this.open();
    }
    return p;
  }

  /** Subscribes to a client notification; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void {
    return this.add(this.listeners, name, fn);
  }

  /** Calls `fn(data, meta)` for each `event` in `room` (`"*"`: every event), once per `seq`. */
  onEvent(room: string, event: string, fn: EventHandler): () => void {
    return this.add(this.handlers, room + "\n" + event, fn);
  }

  /** Joins `room` (and re-joins it after every reconnect); resolves once a member. */
  join(room: string): Promise<void> {
    if (this.state === "closed") return Promise.reject(this.closedError());
    let r = this.rooms.get(room);
    if (!r) this.rooms.set(room, (r = { requested: false, joined: false, waiters: [] }));
    if (r.joined) return Promise.resolve();
    const p = new Promise<void>((res, rej) => r.waiters.push([res, rej]));
    if (this.ready && !r.requested) this.request(room, r);
    return p;
  }

  /** Leaves `room`; it is not re-joined any more. */
  leave(room: string): Promise<void> {
    const r = this.rooms.get(room);
    this.rooms.delete(room);
    if (!r) return Promise.resolve();
    this.settleRoom(r, new PalisadeError("left", "left the room before joining it"));
    if (!this.ready || !r.requested) return Promise.resolve();
    return new Promise<void>((done) => {
      const id = this.id();
      this.pending.set(id, { kind: "leave", room, done });
      this.raw({ type: "leave", id, room });
    });
  }

  /**
   * Publishes an event with a fresh `cid`. Resolves with the room's `seq`
   * for it, or rejects with a `PalisadeError`: the server's refusal,
   * `queue_full`, `timeout`, `closed`, or `disconnected` when the socket
   * dropped after the message was sent and it could not be resent (the
   * queue was full, or `cidWindowMs` had passed). Otherwise a message left
   * unanswered by a dropped socket is sent again after the reconnect with
   * the same `cid`, and the server publishes it once.
   */
  publish(room: string, event: string, data: unknown): Promise<Published> {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") return reject(this.closedError());
      const msg: Outgoing = { room, event, data, resolve, reject, cid: nonce() };
      if (this.ready) return this.transmit(msg);
      if (this.queue.length >= (this.opts.maxQueue ?? 100)) {
        return reject(new PalisadeError("queue_full", "the offline queue is full"));
      }
      this.arm(msg);
      this.queue.push(msg);
    });
  }

  /** Closes for good: every waiting promise rejects with `closed`. */
  close(): void {
    this.running = false;
    this.stop(new PalisadeError("closed", "the client was closed"));
    this.rooms.clear();
    this.end?.(1000, "bye");
  }

  // --- the connection ---------------------------------------------------

  private async open(): Promise<void> {
    clearTimeout(this.timer);
    const gen = ++this.generation;
    this.setState("connecting");
    let token: string | undefined;
    try {
      // In cookie mode the hook renews the cookie: only when it expired (4001).
      const renew = !this.opts.cookie || this.renewCookie;
      this.renewCookie = false;
      const got = renew && this.opts.getToken ? await this.opts.getToken() : undefined;
      if (!this.opts.cookie) {
        if (typeof got !== "string" || !got) throw new PalisadeError("no_token", "getToken gave no token");
        token = got;
      }
    } catch (e) {
      if (gen !== this.generation || !this.running) return;
      this.emit("error", e instanceof PalisadeError ? e : new PalisadeError("get_token", String(e)));
      return this.retry(1006, "getToken failed");
    }
    if (gen !== this.generation || !this.running) return;
    this.token = token;
    let ws: SocketLike;
    try {
      ws = new this.WS(this.url, token ? ["palisade.v1", "palisade.bearer." + token] : ["palisade.v1"]);
    } catch (e) {
      this.emit("error", new PalisadeError("connect", String(e)));
      return this.retry(1006, "cannot open");
    }
    this.ws = ws;
    let opened = false;
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (code: number, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      this.closed(ws, code, reason);
    };
    const end = (this.end = (code: number, reason: string) => {
      try {
        ws.close(code, reason);
      } catch {}
      settle(code, reason);
    });
    ws.onopen = () => {
      opened = true;
      timer = setTimeout(() => end(4000, "no welcome"), this.opts.welcomeTimeoutMs ?? 10_000);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") this.frame(ws, ev.data, () => clearTimeout(timer));
    };
    // Node 20 fires only `error`, never `close`, when the connection is
    // refused; elsewhere `close` follows `error`, with its code.
    ws.onerror = () => {
      if (!opened) return settle(1006, "");
      clearTimeout(timer);
      timer = setTimeout(() => settle(1006, ""), 1000);
    };
    ws.onclose = (ev) => settle(ev.code, ev.reason);
  }

  private closed(ws: SocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = this.end = undefined;
    this.ready = false;
    this.refreshing = false;
    // What was sent and not answered goes first, in sending order, then what
    // was queued meanwhile: all of it is sent (again) after the reconnect,
    // under the same cid. Beyond maxQueue the newest are given up.
    const resend: Outgoing[] = [];
    for (const p of this.pending.values()) {
      if (p.kind === "send") {
        clearTimeout(p.msg.again);
        resend.push(p.msg);
      } else if (p.kind === "leave") p.done?.();
    }
    this.pending.clear();
    const all = [...resend, ...this.queue];
    this.queue = all.slice(0, this.opts.maxQueue ?? 100);
    for (const msg of all.slice(this.queue.length)) {
      this.drop(msg, msg.sentAt ? this.lost() : new PalisadeError("queue_full", "the offline queue is full"));
    }
    for (const r of this.rooms.values()) r.requested = r.joined = false;
    if (!this.running) return;
    const cycled = this.cycling && code === 1000;
    this.cycling = false;
    if (cycled) return void this.open();
    const action = closeAction(code);
    if (action === "terminal") {
      this.running = false;
      this.closeReason = { code, reason };
      const e = new PalisadeError("closed", `closed by the server: ${code} ${reason}`, { closeCode: code });
      this.stop(e);
      this.rooms.clear();
      return this.emit("error", e);
    }
    if (action === "refresh") this.renewCookie = true;
    this.retry(code, reason, action === "slow" ? Math.max(this.hintMs, this.opts.backoff?.baseMs ?? 500) : 0);
  }

  private retry(code: number, reason: string, floor = 0): void {
    this.setState("disconnected");
    const delayMs = backoffDelay(this.attempt, this.opts.backoff, floor);
    this.emit("reconnect", { attempt: this.attempt, delayMs, code, reason });
    this.attempt++;
    this.hintMs = 0;
    this.timer = setTimeout(() => void this.open(), delayMs);
  }

  private frame(ws: SocketLike, text: string, welcomed: () => void): void {
    let f: Frame;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (ws !== this.ws || !f || typeof f !== "object") return;
    switch (f.type) {
      case "welcome":
        welcomed();
        return this.welcomed(f as unknown as Welcome);
      case "ack":
      case "error":
        return this.answer(f);
      case "event":
        return this.event(f);
      case "expiring":
        this.notice = f.expires_at;
        return void this.refresh(f.expires_at);
      case "csrf":
        this.csrf = f.csrf;
        return;
      case "removed": {
        const r = this.rooms.get(f.room);
        this.rooms.delete(f.room);
        if (r) this.settleRoom(r, errorOf(f));
        return this.emit("removed", { room: f.room, code: f.code });
      }
    }
  }

  private welcomed(w: Welcome): void {
    this.welcome = w;
    this.csrf = w.csrf;
    // Only a welcome proves the server took us: never TCP or the upgrade.
    this.attempt = 0;
    this.refreshedFor = this.notice = 0;
    this.ready = true;
    for (const [room, r] of this.rooms) this.request(room, r);
    for (const msg of this.queue.splice(0)) this.transmit(msg);
    this.setState("connected");
    for (const [res] of this.waiters.splice(0)) res();
    this.emit("welcome", w);
  }

  private answer(f: Frame): void {
    const p = typeof f.id === "string" ? this.pending.get(f.id) : undefined;
    if (!p) return void (f.type === "error" && f.id === undefined && this.emit("error", errorOf(f)));
    this.pending.delete(f.id);
    const ok = f.type === "ack";
    if (p.kind === "send") {
      const msg = p.msg;
      if (ok && f.duplicate === true && typeof f.seq !== "number" && !msg.retried) {
        // The first copy is still being published: ask once more, shortly.
        msg.retried = true;
        this.pending.set(f.id, p);
        msg.again = setTimeout(() => this.pending.delete(f.id) && this.transmit(msg), 250);
        return;
      }
      clearTimeout(msg.timer);
      if (ok) {
        const seq: unknown = f.seq;
        if (typeof seq !== "number") msg.resolve({ duplicate: true });
        else msg.resolve(f.duplicate === true ? { seq, duplicate: true } : { seq });
      } else {
        if (f.code === "rate_limited") this.hintMs = f.retry_after_ms ?? 0;
        msg.reject(errorOf(f));
      }
      return this.cycleIfIdle();
    }
    if (p.kind === "refresh") {
      this.refreshing = false;
      if (!ok) return this.emit("error", errorOf(f));
      this.token = p.token;
      // The server re-arms `expiring` for the new token before its ack: a
      // notice that came meanwhile is answered now.
      return void this.refresh(this.notice);
    }
    if (p.kind === "leave") return p.done?.();
    const r = this.rooms.get(p.room);
    if (!r) return;
    if (!ok) {
      this.rooms.delete(p.room);
      const e = errorOf(f);
      this.settleRoom(r, e);
      if (p.kind === "recover") this.emit("removed", { room: p.room, code: e.code });
      return;
    }
    // The room's newest seq: what comes live is above it. After a lossy
    // recover (a restart, say) it may be below what was seen before.
    const incomplete = p.kind === "recover" && f.complete !== true;
    r.lastSeq = incomplete ? f.seq : Math.max(r.lastSeq ?? 0, f.seq ?? 0);
    r.joined = true;
    this.settleRoom(r);
    if (p.kind === "recover") this.emit("recover", { room: p.room, complete: f.complete === true, seq: f.seq });
  }

  private event(f: Frame): void {
    const r = this.rooms.get(f.room);
    if (!r || typeof f.seq !== "number") return;
    if (r.lastSeq !== undefined && f.seq <= r.lastSeq) return;
    r.lastSeq = f.seq;
    const meta: EventMeta = { room: f.room, event: f.event, seq: f.seq, from: f.from, ts: f.ts };
    for (const key of [f.room + "\n" + f.event, f.room + "\n*"]) {
      for (const fn of this.handlers.get(key) ?? []) this.call(fn, f.data, meta);
    }
  }

  /** One refresh per `expiring`, never two at once. */
  private async refresh(expiresAt: number): Promise<void> {
    if (this.refreshing || !(expiresAt > this.refreshedFor)) return;
    this.refreshing = true;
    this.refreshedFor = expiresAt;
    const ws = this.ws;
    let token: unknown;
    try {
      token = this.opts.getToken ? await this.opts.getToken() : undefined;
    } catch (e) {
      this.refreshing = false;
      return this.emit("error", new PalisadeError("get_token", String(e)));
    }
    if (ws !== this.ws || !ws) return;
    if (this.opts.cookie) {
      // The page cannot read the cookie's token: it renewed the cookie
      // (getToken), and a new connection takes it up.
      if (!this.opts.getToken) return void (this.refreshing = false);
      this.cycling = true;
      this.ready = false;
      return this.cycleIfIdle();
    }
    // A token that does not outlive this notice would only be warned again
    // at once: let 4001 come, and the reconnect ask again.
    const exp = typeof token === "string" ? expiry(token) : undefined;
    if (typeof token !== "string" || !token || token === this.token || (exp !== undefined && exp <= expiresAt)) {
      return void (this.refreshing = false);
    }
    const id = this.id();
    this.pending.set(id, { kind: "refresh", token });
    this.raw({ type: "refresh", id, token });
  }

  /** A cookie refresh reconnects once nothing sent is waiting for its answer. */
  private cycleIfIdle(): void {
    if (!this.cycling) return;
    for (const p of this.pending.values()) if (p.kind === "send") return;
    this.end?.(1000, "refresh");
  }

  // --- sending ----------------------------------------------------------

  private request(room: string, r: Room): void {
    r.requested = true;
    const id = this.id();
    const kind = r.lastSeq === undefined ? "join" : "recover";
    this.pending.set(id, { kind, room });
    this.raw(kind === "join" ? { type: "join", id, room } : { type: "recover", id, room, since: r.lastSeq });
  }

  private transmit(msg: Outgoing): void {
    // The server remembers a cid for limits.client_id_window: past it a
    // resend could be published twice.
    if (msg.sentAt !== undefined && Date.now() - msg.sentAt >= (this.opts.cidWindowMs ?? 290_000)) {
      return this.drop(msg, this.lost());
    }
    msg.sentAt ??= Date.now();
    const id = this.id();
    const frame: Frame = { type: "send", id, room: msg.room, event: msg.event, data: msg.data, cid: msg.cid };
    if (this.csrf) frame.csrf = this.csrf;
    // For events with `replay = true`; ignored by the others.
    frame.nonce = nonce();
    frame.ts = Date.now();
    msg.id = id;
    this.pending.set(id, { kind: "send", msg });
    if (!msg.timer) this.arm(msg);
    this.raw(frame);
  }

  private arm(msg: Outgoing): void {
    msg.timer = setTimeout(() => {
      const i = this.queue.indexOf(msg);
      if (i >= 0) this.queue.splice(i, 1);
      if (msg.id) this.pending.delete(msg.id);
      clearTimeout(msg.again);
      msg.reject(new PalisadeError("timeout", msg.sentAt ? "not answered in time" : "not sent in time"));
      this.cycleIfIdle();
    }, this.opts.sendTimeoutMs ?? 10_000);
  }

  private drop(msg: Outgoing, e: PalisadeError): void {
    clearTimeout(msg.timer);
    clearTimeout(msg.again);
    msg.reject(e);
  }

  private lost(): PalisadeError {
    return new PalisadeError("disconnected", "the connection dropped after sending; not sent again");
  }

  private raw(frame: Frame): void {
    this.ws?.send(JSON.stringify(frame));
  }

  // --- bookkeeping ------------------------------------------------------

  private stop(e: PalisadeError): void {
    clearTimeout(this.timer);
    this.ready = false;
    const sends = [...this.pending.values()].flatMap((p) => (p.kind === "send" ? [p.msg] : []));
    this.pending.clear();
    for (const msg of [...sends, ...this.queue.splice(0)]) this.drop(msg, e);
    for (const r of this.rooms.values()) this.settleRoom(r, e);
    for (const [, rej] of this.waiters.splice(0)) rej(e);
    this.setState("closed");
  }

  private closedError(): PalisadeError {
    return new PalisadeError("closed", "the client is closed", { closeCode: this.closeReason?.code });
  }

  private settleRoom(r: Room, e?: PalisadeError): void {
    for (const [res, rej] of r.waiters.splice(0)) e ? rej(e) : res();
  }

  private setState(s: State): void {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  private id(): string {
    return String(++this.nextId);
  }

  private add<F>(map: Map<string, Set<F>>, key: string, fn: F): () => void {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  private emit<K extends keyof ClientEvents>(name: K, value: ClientEvents[K]): void {
    for (const fn of this.listeners.get(name) ?? []) this.call(fn, value);
  }

  private call(fn: (...a: any[]) => void, ...args: unknown[]): void {
    try {
      fn(...args);
    } catch (e) {
      // An application handler's error must not break the connection.
      setTimeout(() => {
        throw e;
      });
    }
  }
}

function nonce(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** A JWT's `exp` in ms, if it reads as one. */
function expiry(token: string): number | undefined {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
