import { type BackoffOptions } from "./backoff.js";
import { PalisadeError } from "./errors.js";
/** Where the client stands. */
export type State = "connecting" | "connected" | "disconnected" | "closed";
/** The part of the standard `WebSocket` the client uses. */
export interface SocketLike {
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((ev: unknown) => unknown) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => unknown) | null;
    onerror: ((ev: unknown) => unknown) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => unknown) | null;
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
    user: {
        id: string;
        name: string;
        roles: string[];
    };
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
    from: {
        id: string;
        name: string;
    };
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
export type Published = {
    seq: number;
    duplicate?: true;
} | {
    seq?: undefined;
    duplicate: true;
};
/** The client's own notifications, for `client.on(name, fn)`. */
export interface ClientEvents {
    state: State;
    welcome: Welcome;
    /** A room re-joined after a reconnect: `complete` is false when events may have been missed. */
    recover: {
        room: string;
        complete: boolean;
        seq: number;
    };
    /** The server took the connection out of a room (or a re-join was refused). */
    removed: {
        room: string;
        code: string;
    };
    /** A reconnect was scheduled. */
    reconnect: {
        attempt: number;
        delayMs: number;
        code: number;
        reason: string;
    };
    /** Something failed that no promise reports (a refresh, getToken, a terminal close). */
    error: PalisadeError;
}
/**
 * A Palisade connection that keeps itself up: reconnects by the close code
 * with full-jitter backoff, refreshes its token in-band, re-joins and
 * recovers its rooms, and resends what a dropped socket left unanswered
 * under its `cid`, so the server publishes it once.
 */
export declare class PalisadeClient {
    /** Where the client stands; `on("state")` tells each change. */
    state: State;
    /** The latest `welcome`. */
    welcome?: Welcome;
    /** Why the server ended the client, after a terminal close (4003, 4008). */
    closeReason?: {
        code: number;
        reason: string;
    };
    private readonly url;
    private readonly opts;
    private readonly WS;
    private ws?;
    private end?;
    private running;
    private ready;
    private cycling;
    private attempt;
    private nextId;
    private generation;
    private timer?;
    private pending;
    private queue;
    private rooms;
    private handlers;
    private listeners;
    private waiters;
    private csrf?;
    private token?;
    private refreshing;
    private renewCookie;
    private refreshedFor;
    private notice;
    private hintMs;
    constructor(url: string, options: ClientOptions);
    /** Connects (and keeps reconnecting); resolves on the next `welcome`. */
    connect(): Promise<void>;
    /** Subscribes to a client notification; returns the unsubscribe function. */
    on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void;
    /** Calls `fn(data, meta)` for each `event` in `room` (`"*"`: every event), once per `seq`. */
    onEvent(room: string, event: string, fn: EventHandler): () => void;
    /** Joins `room` (and re-joins it after every reconnect); resolves once a member. */
    join(room: string): Promise<void>;
    /** Leaves `room`; it is not re-joined any more. */
    leave(room: string): Promise<void>;
    /**
     * Publishes an event with a fresh `cid`. Resolves with the room's `seq`
     * for it, or rejects with a `PalisadeError`: the server's refusal,
     * `queue_full`, `timeout`, `closed`, or `disconnected` when the socket
     * dropped after the message was sent and it could not be resent (the
     * queue was full, or `cidWindowMs` had passed). Otherwise a message left
     * unanswered by a dropped socket is sent again after the reconnect with
     * the same `cid`, and the server publishes it once.
     */
    publish(room: string, event: string, data: unknown): Promise<Published>;
    /** Closes for good: every waiting promise rejects with `closed`. */
    close(): void;
    private open;
    private closed;
    private retry;
    private frame;
    private welcomed;
    private answer;
    private event;
    /** One refresh per `expiring`, never two at once. */
    private refresh;
    /** A cookie refresh reconnects once nothing sent is waiting for its answer. */
    private cycleIfIdle;
    private request;
    private transmit;
    private arm;
    private drop;
    private lost;
    private raw;
    private stop;
    private closedError;
    private settleRoom;
    private setState;
    private id;
    private add;
    private emit;
    private call;
}
