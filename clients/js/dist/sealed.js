import { PalisadeError } from "./errors.js";
/**
 * End-to-end encryption for `room` with an AES-GCM key the application
 * supplies (WebCrypto): each message is sealed under a fresh random 12-byte
 * IV, bound to the room, the event and the `kid` (additional data
 * `palisade.sealed.v1\n<room>\n<event>\n<kid or empty>`), and published
 * as `{iv, ct, kid?}` in base64url without padding. The server routes it
 * without being able to read it, and so cannot sanitize it either: render
 * what you decrypt as text (`textContent`), and validate it yourself.
 */
export function sealedRoom(client, room, key, options = {}) {
    const { kid, keys = {}, onError = (e) => console.warn(`${room}: ${e.message}`) } = options;
    if (kid !== undefined && !/^[\w-]{1,64}$/.test(kid))
        throw new TypeError("kid: 1 to 64 of A-Z a-z 0-9 _ -");
    const subtle = globalThis.crypto.subtle;
    const bound = (event, id) => bytes(`palisade.sealed.v1\n${room}\n${event}\n${id ?? ""}`);
    // Encryption and decryption are asynchronous: chained, so that order holds.
    let sending = Promise.resolve();
    let opening = Promise.resolve();
    const seal = async (event, data) => {
        const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
        const ct = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: bound(event, kid) }, key, bytes(JSON.stringify(data)));
        const sealed = { iv: encode(iv), ct: encode(new Uint8Array(ct)) };
        if (kid !== undefined)
            sealed.kid = kid;
        return sealed;
    };
    const open = async (data, event) => {
        if (!data || typeof data.iv !== "string" || typeof data.ct !== "string")
            throw new Error("not sealed");
        const id = data.kid;
        const k = id === undefined || id === kid ? key : typeof id === "string" ? keys[id] : undefined;
        if (!k)
            throw new Error(`no key for kid ${String(id)}`);
        const iv = decode(data.iv);
        const plain = await subtle.decrypt({ name: "AES-GCM", iv, additionalData: bound(event, id) }, k, decode(data.ct));
        return JSON.parse(new TextDecoder().decode(plain));
    };
    return {
        room,
        publish(event, data) {
            const sealed = sending.then(() => seal(event, data));
            sending = sealed.catch(() => { });
            return sealed.then((d) => client.publish(room, event, d));
        },
        onEvent(event, fn) {
            return client.onEvent(room, event, (data, meta) => {
                opening = opening.then(async () => {
                    let plain;
                    try {
                        plain = await open(data, meta.event);
                    }
                    catch (e) {
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
function report(f) {
    try {
        f();
    }
    catch (e) {
        setTimeout(() => {
            throw e;
        });
    }
}
function bytes(s) {
    return new TextEncoder().encode(s);
}
/** base64url without padding. */
function encode(b) {
    let s = "";
    for (const x of b)
        s += String.fromCharCode(x);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function decode(s) {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
