/**
 * `@palisade/client`: the browser and Node client of Palisade.
 *
 * ```js
 * const client = new PalisadeClient("wss://chat.example.com/ws", { getToken });
 * await client.connect();
 * await client.join("lobby");
 * client.onEvent("lobby", "chat.message", (data, meta) => show(meta.from.name, data));
 * const { seq } = await client.publish("lobby", "chat.message", { content: "hi" });
 * ```
 */
export { PalisadeClient } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  EventHandler,
  EventMeta,
  Published,
  SocketFactory,
  SocketLike,
  State,
  Welcome,
} from "./client.js";
export { PalisadeError } from "./errors.js";
export { backoffDelay, closeAction } from "./backoff.js";
export type { BackoffOptions, CloseAction } from "./backoff.js";
export { sealedRoom } from "./sealed.js";
export type { SealedOptions, SealedRoom } from "./sealed.js";
