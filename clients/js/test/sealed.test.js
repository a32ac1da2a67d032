// The end-to-end encryption helper against a real Palisade whose policy
// declares `dm.sealed` opaque: two clients with the same AES-GCM key read
// each other, the server routes only {iv, ct, kid}, a client with another
// key is told it cannot decrypt (its handler is never called), and the
// server refuses plain text on the opaque event.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PalisadeClient, PalisadeError, sealedRoom } from "../dist/index.js";
import { LENIENT, binary, need, startServer, token, until } from "./helpers.js";

const present = Boolean(binary());
const ROOM = "room:sealed";
const ROOM2 = "room:sealed2";
let server;
const clients = [];

const newKey = () => crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);

async function member(sub, room = ROOM) {
  const c = new PalisadeClient(server.url, { getToken: () => token(sub), backoff: { baseMs: 50, capMs: 400 } });
  clients.push(c);
  await c.connect();
  await c.join(room);
  return c;
}

describe("sealedRoom against a running Palisade", { concurrency: false }, () => {
  before(async () => {
    if (present) server = await startServer(LENIENT);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.dispose();
  });

  test("same key: exchanged and read; another key: reported, not delivered; plain text refused", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const key = await newKey();
    const [alice, bob, carol, raw] = await Promise.all(["s-alice", "s-bob", "s-carol", "s-raw"].map((sub) => member(sub)));
    const sa = sealedRoom(alice, ROOM, key, { kid: "k2026" });
    const sb = sealedRoom(bob, ROOM, key, { kid: "k2026" });
    const carolErrors = [];
    const sc = sealedRoom(carol, ROOM, await newKey(), { kid: "k2026", onError: (e, meta) => carolErrors.push([e, meta]) });

    const bobGot = [];
    const aliceGot = [];
    const carolGot = [];
    const wire = [];
    sb.onEvent("dm.sealed", (data, meta) => bobGot.push([meta.seq, meta.from.id, data]));
    sa.onEvent("*", (data, meta) => aliceGot.push([meta.seq, data]));
    sc.onEvent("dm.sealed", (data) => carolGot.push(data));
    raw.onEvent(ROOM, "dm.sealed", (data) => wire.push(data));

    const secret = { content: "<b>meet</b> at 9 — ünïcode ✓", n: [1, 2, 3] };
    const first = await sa.publish("dm.sealed", secret);
    const second = await sb.publish("dm.sealed", { content: "ok" });
    assert.equal(typeof first.seq, "number");
    await until(() => bobGot.length === 2 && aliceGot.length === 2 && carolErrors.length === 2 && wire.length === 2, "both, everywhere");

    assert.deepEqual(bobGot, [
      [first.seq, "s-alice", secret],
      [second.seq, "s-bob", { content: "ok" }],
    ]);
    assert.deepEqual(aliceGot, [
      [first.seq, secret],
      [second.seq, { content: "ok" }],
    ]);
    // What the server and any other member see: ciphertext only.
    for (const data of wire) {
      assert.deepEqual(Object.keys(data).sort(), ["ct", "iv", "kid"]);
      assert.match(data.iv, /^[A-Za-z0-9_-]{16}$/, "12 bytes, base64url without padding");
      assert.match(data.ct, /^[A-Za-z0-9_-]+$/);
      assert.equal(data.kid, "k2026");
      assert.ok(!JSON.stringify(data).includes("meet"));
    }
    assert.notEqual(wire[0].iv, wire[1].iv, "a fresh IV per message");

    // Another key: reported through onError, never given to the handler.
    assert.deepEqual(carolGot, []);
    assert.ok(carolErrors[0][0] instanceof PalisadeError);
    assert.equal(carolErrors[0][0].code, "undecryptable");
    assert.equal(carolErrors[0][1].seq, first.seq);

    // Plain text on the opaque event: the server refuses it.
    const plain = await alice.publish(ROOM, "dm.sealed", { content: "in clear" }).catch((e) => e);
    assert.ok(plain instanceof PalisadeError);
    assert.equal(plain.code, "invalid_payload");
    const smuggled = await alice.publish(ROOM, "dm.sealed", { ...wire[0], note: "in clear" }).catch((e) => e);
    assert.equal(smuggled.code, "invalid_payload", "no plain field riding along");
  });

  test("bound to room, event and kid; rotation reads older kids, in order", async (t) => {
    if (!need(t, "the palisade binary (cargo build)", present)) return;
    const [oldKey, newKeyNow] = [await newKey(), await newKey()];
    const [writer, reader] = await Promise.all(["s-writer", "s-reader"].map((sub) => member(sub, ROOM2)));
    const errors = [];
    const got = [];
    const sr = sealedRoom(reader, ROOM2, newKeyNow, { kid: "v2", keys: { v1: oldKey }, onError: (e) => errors.push(e.message) });
    sr.onEvent("dm.sealed", (data) => got.push(data.n));
    await sealedRoom(writer, ROOM2, oldKey, { kid: "v1" }).publish("dm.sealed", { n: 1 });
    await sealedRoom(writer, ROOM2, newKeyNow, { kid: "v2" }).publish("dm.sealed", { n: 2 });
    // Sealed for another room (captured before it is sent), replayed here:
    // the additional data differs.
    let captured;
    const spy = { publish: (room, event, data) => ((captured = data), Promise.resolve({ seq: 0 })) };
    await sealedRoom(spy, "room:elsewhere", newKeyNow, { kid: "v2" }).publish("dm.sealed", { n: 3 });
    await writer.publish(ROOM2, "dm.sealed", captured);
    // The kid stripped: bound to an empty kid, refused too.
    await writer.publish(ROOM2, "dm.sealed", { iv: captured.iv, ct: captured.ct });
    // An unknown kid.
    await writer.publish(ROOM2, "dm.sealed", { ...captured, kid: "v9" });
    await sealedRoom(writer, ROOM2, newKeyNow, { kid: "v2" }).publish("dm.sealed", { n: 4 });
    await until(() => got.length === 3 && errors.length === 3, "all of it");
    assert.deepEqual(got, [1, 2, 4], "in order, the old kid read with its key");
    assert.match(errors[0], /wrong key or altered/);
    assert.match(errors[1], /wrong key or altered/);
    assert.match(errors[2], /no key for kid v9/);
    assert.throws(() => sealedRoom(writer, ROOM2, oldKey, { kid: "not/base64url" }), TypeError);
  });
});
