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
export function sealedRoom(
  client: PalisadeClient,
  room: string,
  key: CryptoKey,
  options: SealedOptions = {},
): SealedRoom {
  const { kid, keys = {}, onError = (e: PalisadeError) => console.warn(`${room}: ${e.message}`) } = options;
  if (kid !== undefined && !/^[\w-]{1,64}$/.test(kid)) throw new TypeError("kid: 1 to 64 of A-Z a-z 0-9 _ -");
  const subtle = globalThis.crypto.subtle;
  const bound = (event: string, id?: string) => bytes(`palisade.sealed.v1\n${room}\n${event}\n${id ?? ""}`);
  // Encryption and decryption are asynchronous: chained, so that order holds.
  let sending: Promise<unknown> = Promise.resolve();
  let opening: Promise<unknown> = Promise.resolve();

  const seal = async (event: string, data: unknown) => {
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
    const ct = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: bound(event, kid) }, key, bytes(JSON.stringify(data)));
    const sealed: Record<string, string> = { iv: encode(iv), ct: encode(new Uint8Array(ct)) };
    if (kid !== undefined) sealed.kid = kid;
    return sealed;
  };

  const open = async (data: any, event: string): Promise<unknown> => {
    if (!data || typeof data.iv !== "string" || typeof data.ct !== "string") throw new Error("not sealed");
    const id: unknown = data.kid;
    const k = id === undefined || id === kid ? key : typeof id === "string" ? keys[id] : undefined;
    if (!k) throw new Error(`no key for kid ${String(id)}`);
    const iv = decode(data.iv);
    const plain = await subtle.decrypt({ name: "AES-GCM", iv, additionalData: bound(event, id as string) }, k, decode(data.ct));
    return JSON.parse(new TextDecoder().decode(plain));
  };

  return {
    room,
    publish(event, data) {
      const sealed = sending.then(() => seal(event, data));
      sending = sealed.catch(() => {});
      return sealed.then((d) => client.publish(room, event, d));
    },
    onEvent(event, fn) {
      return client.onEvent(room, event, (data, meta) => {
        opening = opening.then(async () => {
          let plain: unknown;
          try {
            plain = await open(data, meta.event);
          } catch (e) {
            const why = e instanceof Error && e.name !== "OperationError" ? e.message : "wrong key or altered";
            return report(() => onError(new PalisadeError("undecryptable", `seq ${meta.seq}: cannot decrypt (${why})`), meta));
          }
          report(() => fn(plain, meta));
        });
      });
    },
  };
}

/** Calls `f`; what it throws is rethrown on its own, never into the chain or the client. */
function report(f: () => void): void {
  try {
    f();
  } catch (e) {
    setTimeout(() => {
      throw e;
    });
  }
}

function bytes(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s);
}

/** base64url without padding. */
function encode(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decode(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
