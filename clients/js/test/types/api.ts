// The public API as issue 18 names it, type-checked against dist/index.d.ts
// by test/dist.test.js (`tsc --noEmit --strict`): a rename or a changed
// signature fails there.
import { PalisadeClient, PalisadeError, backoffDelay, closeAction, sealedRoom } from "../../dist/index.js";
import type { EventMeta, Published, SealedRoom, State } from "../../dist/index.js";

async function tour(): Promise<void> {
  const client = new PalisadeClient("ws://127.0.0.1:8080/ws", {
    getToken: async () => "token",
    maxQueue: 10,
    cidWindowMs: 60_000,
    backoff: { baseMs: 100, capMs: 1000 },
  });
  const cookie = new PalisadeClient("ws://127.0.0.1:8080/ws", { cookie: true });
  await client.connect();
  const state: State = client.state;
  const off: () => void = client.on("state", (s: State) => void s);
  await client.join("lobby");
  const stop = client.onEvent("lobby", "chat.message", (data: unknown, meta: EventMeta) => {
    const seq: number = meta.seq;
    const from: string = meta.from.id + meta.from.name;
    void [data, seq, from];
  });
  try {
    const published: Published = await client.publish("lobby", "chat.message", { content: "hi" });
    // `seq` is absent only for a resend whose first copy was still being published.
    if (published.seq !== undefined) {
      const seq: number = published.seq;
      const duplicate: true | undefined = published.duplicate;
      void [seq, duplicate];
    } else {
      const duplicate: true = published.duplicate;
      void duplicate;
    }
  } catch (e) {
    if (e instanceof PalisadeError) {
      const fields: [string, string | undefined, number | undefined, string | undefined] = [
        e.code,
        e.path,
        e.retryAfterMs,
        e.ref,
      ];
      void fields;
    }
  }
  client.on("recover", ({ room, complete }) => void [room, complete]);
  await client.leave("lobby");
  client.close();
  cookie.close();
  void [state, off, stop, backoffDelay(3), closeAction(4001)];
}
void tour;

async function sealed(client: PalisadeClient, key: CryptoKey): Promise<void> {
  const onError = (e: PalisadeError, meta: EventMeta) => void [e.code, meta.seq];
  const dm: SealedRoom = sealedRoom(client, "dm", key, { kid: "k1", keys: { k0: key }, onError });
  const off: () => void = dm.onEvent("dm.sealed", (data: unknown, meta: EventMeta) => void [data, meta]);
  const published: Published = await dm.publish("dm.sealed", { text: "x" });
  void [off, published, sealedRoom(client, "dm", key)];
}
void sealed;

// @ts-expect-error: without cookie mode a getToken is required
new PalisadeClient("ws://127.0.0.1:8080/ws", { maxQueue: 1 });
