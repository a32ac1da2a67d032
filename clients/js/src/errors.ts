/**
 * The one error type of the client. `code` is a server error code
 * (docs/PROTOCOL.md §3: `forbidden`, `invalid_payload`, `rate_limited`, …)
 * or one of the client's own:
 *
 * - `disconnected`: the message was sent, then the socket dropped before its
 *   answer came, and it could not be sent again under its `cid`: the
 *   offline queue was full, or `cidWindowMs` had passed (the server no
 *   longer remembers the cid). Whether the server published it is unknown.
 * - `timeout`: not sent (or not answered) within `sendTimeoutMs`; if it had
 *   been sent, whether the server published it is unknown.
 * - `queue_full`: the offline queue already holds `maxQueue` messages.
 * - `closed`: the client was closed, by `close()` or by a terminal close
 *   code (4003, 4008; see `closeCode`).
 */
export class PalisadeError extends Error {
  /** Server error code, or `disconnected`, `timeout`, `queue_full`, `closed`. */
  readonly code: string;
  /** With `invalid_payload`: the JSON Pointer of the field at fault inside `data`. */
  readonly path?: string;
  /** With `rate_limited`: milliseconds until the same request would be allowed. */
  readonly retryAfterMs?: number;
  /** The server's `r_…` reference, matching its log line. */
  readonly ref?: string;
  /** With `closed`: the WebSocket close code that ended the client, if any. */
  readonly closeCode?: number;

  constructor(
    code: string,
    message?: string,
    extra: { path?: string; retryAfterMs?: number; ref?: string; closeCode?: number } = {},
  ) {
    super(message ?? code);
    this.name = "PalisadeError";
    this.code = code;
    if (extra.path !== undefined) this.path = extra.path;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.ref !== undefined) this.ref = extra.ref;
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
  }
}
