/** Reconnect timing: exponential growth, full jitter, a cap. */
export interface BackoffOptions {
    /** The first window, in ms (default 500). */
    baseMs?: number;
    /** The largest window, in ms (default 30000). */
    capMs?: number;
    /** Source of randomness in [0, 1) (default `Math.random`); tests pass their own. */
    random?: () => number;
}
/** What a close code asks of the client (docs/PROTOCOL.md §4). */
export type CloseAction = 
/** 4003, 4008: stop for good. */
"terminal"
/** 4001: get a fresh token, then reconnect. */
 | "refresh"
/** 4009, 4029: reconnect, but not before the server's hint. */
 | "slow"
/** Anything else (1001, 1006, 1011, a refused handshake): reconnect. */
 | "reconnect";
/** The action for a close code. */
export declare function closeAction(code: number): CloseAction;
/**
 * The delay before reconnect number `attempt` (0 for the first after a
 * healthy connection): uniform in [0, min(cap, base · 2^attempt)), plus
 * `floorMs` (the server's hint) when there is one. The jitter is applied
 * after the cap, so clients at the cap stay spread over the whole window
 * instead of all waiting exactly `cap`.
 */
export declare function backoffDelay(attempt: number, options?: BackoffOptions, floorMs?: number): number;
