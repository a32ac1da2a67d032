/** The action for a close code. */
export function closeAction(code) {
    switch (code) {
        case 4003:
        case 4008:
            return "terminal";
        case 4001:
            return "refresh";
        case 4009:
        case 4029:
            return "slow";
        default:
            return "reconnect";
    }
}
/**
 * The delay before reconnect number `attempt` (0 for the first after a
 * healthy connection): uniform in [0, min(cap, base · 2^attempt)), plus
 * `floorMs` (the server's hint) when there is one. The jitter is applied
 * after the cap, so clients at the cap stay spread over the whole window
 * instead of all waiting exactly `cap`.
 */
export function backoffDelay(attempt, options = {}, floorMs = 0) {
    const base = options.baseMs ?? 500;
    const cap = options.capMs ?? 30_000;
    const random = options.random ?? Math.random;
    const window = Math.min(cap, base * 2 ** Math.min(attempt, 30));
    return Math.max(0, floorMs) + Math.floor(random() * window);
}
