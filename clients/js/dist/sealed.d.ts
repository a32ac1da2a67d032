import type { EventHandler, EventMeta, PalisadeClient, Published } from "./client.js";
import { PalisadeError } from "./errors.js";
/** Options of {@link sealedRoom}. */
export interface SealedOptions {
    /** Key id sent with each message (1–64 of `A–Z a–z 0–9 _ -`), for rotation. */
    kid?: string;
    /** Other keys by `kid`, to open messages sealed with them (e.g. before a rotation). */
    keys?: Record<string, CryptoKey>;
    /**
     * Told of each event that could not be opened (another key, altered, not
     * sealed at all): a `PalisadeError` with code `undecryptable`. The
     * event's handlers are not called. Default: `console.warn`.
     */
    onError?: (error: PalisadeError, meta: EventMeta) => void;
}
/** A room whose events (declared `opaque = true` in the policy) are end-to-end encrypted. */
export interface SealedRoom {
    readonly room: string;
    /** Encrypts `data` (as JSON) and publishes `{iv, ct, kid?}`; resolves as `client.publish` does. */
    publish(event: string, data: unknown): Promise<Published>;
    /**
     * Calls `fn(data, meta)` with each `event` decrypted, in order; what
     * cannot be decrypted goes to `onError`. `"*"`: every event of the room,
     * each expected sealed.
     */
    onEvent(event: string, fn: EventHandler): () => void;
}
/**
 * End-to-end encryption for `room` with an AES-GCM key the application
 * supplies (WebCrypto): each message is sealed under a fresh random 12-byte
 * IV, bound to the room, the event and the `kid` (additional data
 * `palisade.sealed.v1\n<room>\n<event>\n<kid or empty>`), and published
 * as `{iv, ct, kid?}` in base64url without padding. The server routes it
 * without being able to read it, and so cannot sanitize it either: render
 * what you decrypt as text (`textContent`), and validate it yourself.
 */
export declare function sealedRoom(client: PalisadeClient, room: string, key: CryptoKey, options?: SealedOptions): SealedRoom;
