//! Replay protection for events marked `replay = true`: each carries a
//! `nonce`, unique per user within the window, and a client timestamp `ts`
//! within ±window of server time. A captured message cannot be sent again,
//! and an old one cannot be sent late.

use std::time::Duration;

use crate::Timestamp;
use crate::store::NonceStore;

/// Longest nonce accepted.
pub const MAX_NONCE_LEN: usize = 128;

/// Why a message counts as replayed (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// No nonce, or an empty or oversized one.
    #[error("missing or malformed nonce")]
    BadNonce,
    /// No `ts`.
    #[error("missing timestamp")]
    MissingTimestamp,
    /// `ts` outside ±window.
    #[error("timestamp outside the window")]
    Stale,
    /// This user sent this nonce before, within the window.
    #[error("nonce seen before")]
    Seen,
}

/// Checks a message's nonce and timestamp, and records the nonce.
pub fn check(
    store: &dyn NonceStore,
    user: &str,
    nonce: Option<&str>,
    ts: Option<u64>,
    window: Duration,
    now: Timestamp,
) -> Result<(), ReplayError> {
    let nonce = nonce.filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN).ok_or(ReplayError::BadNonce)?;
    let ts = Timestamp::from_millis(ts.ok_or(ReplayError::MissingTimestamp)?);
    if ts < now.saturating_sub(window) || ts > now.saturating_add(window) {
        return Err(ReplayError::Stale);
    }
    // A `ts` is acceptable until now + window at the latest, so the nonce
    // must be remembered at least that long after its `ts`.
    let forget_at = ts.saturating_add(window).saturating_add(window);
    if store.first_use(user, nonce, forget_at, now) { Ok(()) } else { Err(ReplayError::Seen) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryNonces;

    const W: Duration = Duration::from_secs(30);
    const T0: Timestamp = Timestamp::from_secs(10_000);

    #[test]
    fn a_nonce_is_accepted_once_per_user_within_the_window() {
        let store = MemoryNonces::new(100);
        let ts = Some(T0.as_millis());
        assert_eq!(check(&store, "u1", Some("n1"), ts, W, T0), Ok(()));
        assert_eq!(check(&store, "u1", Some("n1"), ts, W, T0), Err(ReplayError::Seen));
        assert_eq!(check(&store, "u2", Some("n1"), ts, W, T0), Ok(()));
        // Still remembered at the edge of the window…
        let later = T0.saturating_add(W);
        assert_eq!(check(&store, "u1", Some("n1"), Some(later.as_millis()), W, later), Err(ReplayError::Seen));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let store = MemoryNonces::new(100);
        let edge = T0.saturating_sub(W).as_millis();
        assert_eq!(check(&store, "u", Some("a"), Some(edge), W, T0), Ok(()));
        assert_eq!(check(&store, "u", Some("b"), Some(edge - 1), W, T0), Err(ReplayError::Stale));
        let ahead = T0.saturating_add(W).as_millis();
        assert_eq!(check(&store, "u", Some("c"), Some(ahead + 1), W, T0), Err(ReplayError::Stale));
        assert_eq!(check(&store, "u", Some("d"), None, W, T0), Err(ReplayError::MissingTimestamp));
        assert_eq!(check(&store, "u", None, Some(T0.as_millis()), W, T0), Err(ReplayError::BadNonce));
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        assert_eq!(check(&store, "u", Some(&long), Some(T0.as_millis()), W, T0), Err(ReplayError::BadNonce));
    }

    #[test]
    fn a_replayed_message_fails_even_with_the_latest_acceptable_timestamp() {
        // Sent with ts = now + W, replayed at now + 2W with the same ts:
        // the ts is stale by then, and the nonce is still remembered anyway.
        let store = MemoryNonces::new(100);
        let ts = T0.saturating_add(W).as_millis();
        assert_eq!(check(&store, "u", Some("n"), Some(ts), W, T0), Ok(()));
        let replay_at = T0.saturating_add(W).saturating_add(W);
        assert_eq!(check(&store, "u", Some("n"), Some(ts), W, replay_at), Err(ReplayError::Seen));
    }
}
