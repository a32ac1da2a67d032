import { backoffDelay, closeAction } from "./backoff.js";
import { PalisadeError } from "./errors.js";
const errorOf = (f) => new PalisadeError(f.code, f.message, { path: f.path, retryAfterMs: f.retry_after_ms, ref: f.ref });
/**
 * A Palisade connection that keeps itself up: reconnects by the close code
 * with full-jitter backoff, refreshes its token in-band, re-joins and
 * recovers its rooms, and resends what a dropped socket left unanswered
 * under its `cid`, so the server publishes it once.
 */
export class PalisadeClient {
    /** Where the client stands; `on("state")` tells each change. */
    state = "disconnected";
    /** The latest `welcome`. */
    welcome;
    /** Why the server ended the client, after a terminal close (4003, 4008). */
    closeReason;
    url;
    opts;
    WS;
    ws;
    end;
    running = false;
    ready = false;
    cycling = false;
    attempt = 0;
    nextId = 0;
    generation = 0;
    timer;
    pending = new Map();
    queue = [];
    rooms = new Map();
    handlers = new Map();
    listeners = new Map();
    waiters = [];
    csrf;
    token;
    refreshing = false;
    renewCookie = false;
    refreshedFor = 0;
    notice = 0;
    hintMs = 0;
    constructor(url, options) {
        const WS = options.WebSocket ?? globalThis.WebSocket;
        if (!WS) {
            throw new Error("no WebSocket: on Node 20 run with --experimental-websocket, or pass options.WebSocket");
        }
        if (!options.cookie && !options.getToken)
            throw new Error("getToken is required without cookie: true");
        this.url = url;
        this.opts = options;
        this.WS = WS;
    }
    /** Connects (and keeps reconnecting); resolves on the next `welcome`. */
    connect() {
        if (this.state === "connected")
            return Promise.resolve();
        const p = new Promise((res, rej) => this.waiters.push([res, rej]));
        if (!this.running) {
            this.running = true;
            this.closeReason = undefined;
            void this.open();
        }
        return p;
    }
    /** Subscribes to a client notification; returns the unsubscribe function. */
    on(name, fn) {
        return this.add(this.listeners, name, fn);
    }
    /** Calls `fn(data, meta)` for each `event` in `room` (`"*"`: every event), once per `seq`. */
    onEvent(room, event, fn) {
        return this.add(this.handlers, room + "\n" + event, fn);
    }
    /** Joins `room` (and re-joins it after every reconnect); resolves once a member. */
    join(room) {
        if (this.state === "closed")
            return Promise.reject(this.closedError());
        let r = this.rooms.get(room);
        if (!r)
            this.rooms.set(room, (r = { requested: false, joined: false, waiters: [] }));
        if (r.joined)
            return Promise.resolve();
        const p = new Promise((res, rej) => r.waiters.push([res, rej]));
        if (this.ready && !r.requested)
            this.request(room, r);
        return p;
    }
    /** Leaves `room`; it is not re-joined any more. */
    leave(room) {
        const r = this.rooms.get(room);
        this.rooms.delete(room);
        if (!r)
            return Promise.resolve();
        this.settleRoom(r, new PalisadeError("left", "left the room before joining it"));
        if (!this.ready || !r.requested)
            return Promise.resolve();
        return new Promise((done) => {
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
    publish(room, event, data) {
        return new Promise((resolve, reject) => {
            if (this.state === "closed")
                return reject(this.closedError());
            const msg = { room, event, data, resolve, reject, cid: nonce() };
            if (this.ready)
                return this.transmit(msg);
            if (this.queue.length >= (this.opts.maxQueue ?? 100)) {
                return reject(new PalisadeError("queue_full", "the offline queue is full"));
            }
            this.arm(msg);
            this.queue.push(msg);
        });
    }
    /** Closes for good: every waiting promise rejects with `closed`. */
    close() {
        this.running = false;
        this.stop(new PalisadeError("closed", "the client was closed"));
        this.rooms.clear();
        this.end?.(1000, "bye");
    }
    // --- the connection ---------------------------------------------------
    async open() {
        clearTimeout(this.timer);
        const gen = ++this.generation;
        this.setState("connecting");
        let token;
        try {
            // In cookie mode the hook renews the cookie: only when it expired (4001).
            const renew = !this.opts.cookie || this.renewCookie;
            this.renewCookie = false;
            const got = renew && this.opts.getToken ? await this.opts.getToken() : undefined;
            if (!this.opts.cookie) {
                if (typeof got !== "string" || !got)
                    throw new PalisadeError("no_token", "getToken gave no token");
                token = got;
            }
        }
        catch (e) {
            if (gen !== this.generation || !this.running)
                return;
            this.emit("error", e instanceof PalisadeError ? e : new PalisadeError("get_token", String(e)));
            return this.retry(1006, "getToken failed");
        }
        if (gen !== this.generation || !this.running)
            return;
        this.token = token;
        let ws;
        try {
            ws = new this.WS(this.url, token ? ["palisade.v1", "palisade.bearer." + token] : ["palisade.v1"]);
        }
        catch (e) {
            this.emit("error", new PalisadeError("connect", String(e)));
            return this.retry(1006, "cannot open");
        }
        this.ws = ws;
        let opened = false;
        let settled = false;
        let timer;
        const settle = (code, reason) => {
            if (settled)
                return;
            settled = true;
            clearTimeout(timer);
            ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
            this.closed(ws, code, reason);
        };
        const end = (this.end = (code, reason) => {
            try {
                ws.close(code, reason);
            }
            catch { }
            settle(code, reason);
        });
        ws.onopen = () => {
            opened = true;
            timer = setTimeout(() => end(4000, "no welcome"), this.opts.welcomeTimeoutMs ?? 10_000);
        };
        ws.onmessage = (ev) => {
            if (typeof ev.data === "string")
                this.frame(ws, ev.data, () => clearTimeout(timer));
        };
        // Node 20 fires only `error`, never `close`, when the connection is
        // refused; elsewhere `close` follows `error`, with its code.
        ws.onerror = () => {
            if (!opened)
                return settle(1006, "");
            clearTimeout(timer);
            timer = setTimeout(() => settle(1006, ""), 1000);
        };
        ws.onclose = (ev) => settle(ev.code, ev.reason);
    }
    closed(ws, code, reason) {
        if (ws !== this.ws)
            return;
        this.ws = this.end = undefined;
        this.ready = false;
        this.refreshing = false;
        // What was sent and not answered goes first, in sending order, then what
        // was queued meanwhile: all of it is sent (again) after the reconnect,
        // under the same cid. Beyond maxQueue the newest are given up.
        const resend = [];
        for (const p of this.pending.values()) {
            if (p.kind === "send") {
                clearTimeout(p.msg.again);
                resend.push(p.msg);
            }
            else if (p.kind === "leave")
                p.done?.();
        }
        this.pending.clear();
        const all = [...resend, ...this.queue];
        this.queue = all.slice(0, this.opts.maxQueue ?? 100);
        for (const msg of all.slice(this.queue.length)) {
            this.drop(msg, msg.sentAt ? this.lost() : new PalisadeError("queue_full", "the offline queue is full"));
        }
        for (const r of this.rooms.values())
            r.requested = r.joined = false;
        if (!this.running)
            return;
        const cycled = this.cycling && code === 1000;
        this.cycling = false;
        if (cycled)
            return void this.open();
        const action = closeAction(code);
        if (action === "terminal") {
            this.running = false;
            this.closeReason = { code, reason };
            const e = new PalisadeError("closed", `closed by the server: ${code} ${reason}`, { closeCode: code });
            this.stop(e);
            this.rooms.clear();
            return this.emit("error", e);
        }
        if (action === "refresh")
            this.renewCookie = true;
        this.retry(code, reason, action === "slow" ? Math.max(this.hintMs, this.opts.backoff?.baseMs ?? 500) : 0);
    }
    retry(code, reason, floor = 0) {
        this.setState("disconnected");
        const delayMs = backoffDelay(this.attempt, this.opts.backoff, floor);
        this.emit("reconnect", { attempt: this.attempt, delayMs, code, reason });
        this.attempt++;
        this.hintMs = 0;
        this.timer = setTimeout(() => void this.open(), delayMs);
    }
    frame(ws, text, welcomed) {
        let f;
        try {
            f = JSON.parse(text);
        }
        catch {
            return;
        }
        if (ws !== this.ws || !f || typeof f !== "object")
            return;
        switch (f.type) {
            case "welcome":
                welcomed();
                return this.welcomed(f);
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
                if (r)
                    this.settleRoom(r, errorOf(f));
                return this.emit("removed", { room: f.room, code: f.code });
            }
        }
    }
    welcomed(w) {
        this.welcome = w;
        this.csrf = w.csrf;
        // Only a welcome proves the server took us: never TCP or the upgrade.
        this.attempt = 0;
        this.refreshedFor = this.notice = 0;
        this.ready = true;
        for (const [room, r] of this.rooms)
            this.request(room, r);
        for (const msg of this.queue.splice(0))
            this.transmit(msg);
        this.setState("connected");
        for (const [res] of this.waiters.splice(0))
            res();
        this.emit("welcome", w);
    }
    answer(f) {
        const p = typeof f.id === "string" ? this.pending.get(f.id) : undefined;
        if (!p)
            return void (f.type === "error" && f.id === undefined && this.emit("error", errorOf(f)));
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
                const seq = f.seq;
                if (typeof seq !== "number")
                    msg.resolve({ duplicate: true });
                else
                    msg.resolve(f.duplicate === true ? { seq, duplicate: true } : { seq });
            }
            else {
                if (f.code === "rate_limited")
                    this.hintMs = f.retry_after_ms ?? 0;
                msg.reject(errorOf(f));
            }
            return this.cycleIfIdle();
        }
        if (p.kind === "refresh") {
            this.refreshing = false;
            if (!ok)
                return this.emit("error", errorOf(f));
            this.token = p.token;
            // The server re-arms `expiring` for the new token before its ack: a
            // notice that came meanwhile is answered now.
            return void this.refresh(this.notice);
        }
        if (p.kind === "leave")
            return p.done?.();
        const r = this.rooms.get(p.room);
        if (!r)
            return;
        if (!ok) {
            this.rooms.delete(p.room);
            const e = errorOf(f);
            this.settleRoom(r, e);
            if (p.kind === "recover")
                this.emit("removed", { room: p.room, code: e.code });
            return;
        }
        // The room's newest seq: what comes live is above it. After a lossy
        // recover (a restart, say) it may be below what was seen before.
        const incomplete = p.kind === "recover" && f.complete !== true;
        r.lastSeq = incomplete ? f.seq : Math.max(r.lastSeq ?? 0, f.seq ?? 0);
        r.joined = true;
        this.settleRoom(r);
        if (p.kind === "recover")
            this.emit("recover", { room: p.room, complete: f.complete === true, seq: f.seq });
    }
    event(f) {
        const r = this.rooms.get(f.room);
        if (!r || typeof f.seq !== "number")
            return;
        if (r.lastSeq !== undefined && f.seq <= r.lastSeq)
            return;
        r.lastSeq = f.seq;
        const meta = { room: f.room, event: f.event, seq: f.seq, from: f.from, ts: f.ts };
        for (const key of [f.room + "\n" + f.event, f.room + "\n*"]) {
            for (const fn of this.handlers.get(key) ?? [])
                this.call(fn, f.data, meta);
        }
    }
    /** One refresh per `expiring`, never two at once. */
    async refresh(expiresAt) {
        if (this.refreshing || !(expiresAt > this.refreshedFor))
            return;
        this.refreshing = true;
        this.refreshedFor = expiresAt;
        const ws = this.ws;
        let token;
        try {
            token = this.opts.getToken ? await this.opts.getToken() : undefined;
        }
        catch (e) {
            this.refreshing = false;
            return this.emit("error", new PalisadeError("get_token", String(e)));
        }
        if (ws !== this.ws || !ws)
            return;
        if (this.opts.cookie) {
            // The page cannot read the cookie's token: it renewed the cookie
            // (getToken), and a new connection takes it up.
            if (!this.opts.getToken)
                return void (this.refreshing = false);
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
    cycleIfIdle() {
        if (!this.cycling)
            return;
        for (const p of this.pending.values())
            if (p.kind === "send")
                return;
        this.end?.(1000, "refresh");
    }
    // --- sending ----------------------------------------------------------
    request(room, r) {
        r.requested = true;
        const id = this.id();
        const kind = r.lastSeq === undefined ? "join" : "recover";
        this.pending.set(id, { kind, room });
        this.raw(kind === "join" ? { type: "join", id, room } : { type: "recover", id, room, since: r.lastSeq });
    }
    transmit(msg) {
        // The server remembers a cid for limits.client_id_window: past it a
        // resend could be published twice.
        if (msg.sentAt !== undefined && Date.now() - msg.sentAt >= (this.opts.cidWindowMs ?? 290_000)) {
            return this.drop(msg, this.lost());
        }
        msg.sentAt ??= Date.now();
        const id = this.id();
        const frame = { type: "send", id, room: msg.room, event: msg.event, data: msg.data, cid: msg.cid };
        if (this.csrf)
            frame.csrf = this.csrf;
        // For events with `replay = true`; ignored by the others.
        frame.nonce = nonce();
        frame.ts = Date.now();
        msg.id = id;
        this.pending.set(id, { kind: "send", msg });
        if (!msg.timer)
            this.arm(msg);
        this.raw(frame);
    }
    arm(msg) {
        msg.timer = setTimeout(() => {
            const i = this.queue.indexOf(msg);
            if (i >= 0)
                this.queue.splice(i, 1);
            if (msg.id)
                this.pending.delete(msg.id);
            clearTimeout(msg.again);
            msg.reject(new PalisadeError("timeout", msg.sentAt ? "not answered in time" : "not sent in time"));
            this.cycleIfIdle();
        }, this.opts.sendTimeoutMs ?? 10_000);
    }
    drop(msg, e) {
        clearTimeout(msg.timer);
        clearTimeout(msg.again);
        msg.reject(e);
    }
    lost() {
        return new PalisadeError("disconnected", "the connection dropped after sending; not sent again");
    }
    raw(frame) {
        this.ws?.send(JSON.stringify(frame));
    }
    // --- bookkeeping ------------------------------------------------------
    stop(e) {
        clearTimeout(this.timer);
        this.ready = false;
        const sends = [...this.pending.values()].flatMap((p) => (p.kind === "send" ? [p.msg] : []));
        this.pending.clear();
        for (const msg of [...sends, ...this.queue.splice(0)])
            this.drop(msg, e);
        for (const r of this.rooms.values())
            this.settleRoom(r, e);
        for (const [, rej] of this.waiters.splice(0))
            rej(e);
        this.setState("closed");
    }
    closedError() {
        return new PalisadeError("closed", "the client is closed", { closeCode: this.closeReason?.code });
    }
    settleRoom(r, e) {
        for (const [res, rej] of r.waiters.splice(0))
            e ? rej(e) : res();
    }
    setState(s) {
        if (this.state === s)
            return;
        this.state = s;
        this.emit("state", s);
    }
    id() {
        return String(++this.nextId);
    }
    add(map, key, fn) {
        let set = map.get(key);
        if (!set)
            map.set(key, (set = new Set()));
        set.add(fn);
        return () => void set.delete(fn);
    }
    emit(name, value) {
        for (const fn of this.listeners.get(name) ?? [])
            this.call(fn, value);
    }
    call(fn, ...args) {
        try {
            fn(...args);
        }
        catch (e) {
            // An application handler's error must not break the connection.
            setTimeout(() => {
                throw e;
            });
        }
    }
}
function nonce() {
    const b = new Uint8Array(16);
    globalThis.crypto.getRandomValues(b);
    let s = "";
    for (const x of b)
        s += x.toString(16).padStart(2, "0");
    return s;
}
/** A JWT's `exp` in ms, if it reads as one. */
function expiry(token) {
    try {
        const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
        return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
    }
    catch {
        return undefined;
    }
}
