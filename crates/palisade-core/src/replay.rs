//! Replay protection for events marked `replay = true`: each carries a
//! `nonce`, unique per user within the window, and a client timestamp `ts`
//! within ±window of server time. A captured message cannot be sent again,
//! and an old one cannot be sent late.
//!
//! The check is split across the pipeline (docs/ARCHITECTURE.md):
//! [`check_fresh`] at step 5 touches no state, and [`NonceClaim::record`]
//! at step 11, in the commit step, remembers the nonce, last, after
//! authorization, schema and sanitizers. A refused message therefore consumes nothing, so a user with
//! no right to an event cannot fill the store that protects it for others.

use std::borrow::Cow;
use std::time::Duration;

use crate::Timestamp;
use crate::refusal::{Kind, Refusal};
use crate::store::{NonceRefused, NonceStore};

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
    /// The store did not record the nonce: seen before, or it cannot tell.
    #[error(transparent)]
    Store(#[from] NonceRefused),
}

impl From<ReplayError> for Refusal {
    fn from(e: ReplayError) -> Self {
        Refusal::new(Kind::Replay, format!("replay: {e}"))
    }
}

/// A nonce and timestamp that passed [`check_fresh`], to be spent once
/// every other check has passed (pipeline step 11, the commit step).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a fresh nonce protects nothing until it is recorded"]
pub struct NonceClaim<'a> {
    /// The nonce.
    pub nonce: Cow<'a, str>,
    /// The client's `ts`.
    pub ts: Timestamp,
    /// Remember it at least until then.
    pub keep_until: Timestamp,
}

/// The stateless part (pipeline step 5): the nonce is well formed and `ts`
/// is within ±`window` of `now`.
pub fn check_fresh(
    nonce: Option<Cow<'_, str>>,
    ts: Option<u64>,
    window: Duration,
    now: Timestamp,
) -> Result<NonceClaim<'_>, ReplayError> {
    let nonce = nonce.filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN).ok_or(ReplayError::BadNonce)?;
    let ts = Timestamp::from_millis(ts.ok_or(ReplayError::MissingTimestamp)?);
    if ts < now.saturating_sub(window) || ts > now.saturating_add(window) {
        return Err(ReplayError::Stale);
    }
    // The same message passes the check above until ts + window, and
    // ts ≤ now + window, so now + 2·window covers it. Counting from `now`
    // rather than `ts` keeps the store's records in expiry order (it
    // forgets from the front of a queue) while the window is unchanged.
    let keep_until = now.saturating_add(window).saturating_add(window);
    Ok(NonceClaim { nonce, ts, keep_until })
}

impl NonceClaim<'_> {
    /// The stateful part (pipeline step 11): records the nonce for `user`,
    /// refusing it if `user` sent it before or the store cannot remember.
    pub fn record(&self, store: &dyn NonceStore, user: &str, now: Timestamp) -> Result<(), ReplayError> {
        Ok(store.record(user, &self.nonce, self.ts, self.keep_until, now)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryNonces;

    const W: Duration = Duration::from_secs(30);
    const T0: Timestamp = Timestamp::from_secs(10_000);

    fn check(
        store: &dyn NonceStore,
        user: &str,
        nonce: &str,
        ts: Timestamp,
        window: Duration,
        now: Timestamp,
    ) -> Result<(), ReplayError> {
        check_fresh(Some(Cow::Borrowed(nonce)), Some(ts.as_millis()), window, now)?.record(store, user, now)
    }

    const SEEN: Result<(), ReplayError> = Err(ReplayError::Store(NonceRefused::Seen));

    #[test]
    fn a_nonce_is_accepted_once_per_user_within_the_window() {
        let store = MemoryNonces::new(100, 10);
        assert_eq!(check(&store, "u1", "n1", T0, W, T0), Ok(()));
        assert_eq!(check(&store, "u1", "n1", T0, W, T0), SEEN);
        assert_eq!(check(&store, "u2", "n1", T0, W, T0), Ok(()));
        // Still remembered at the edge of the window…
        let later = T0.saturating_add(W);
        assert_eq!(check(&store, "u1", "n1", later, W, later), SEEN);
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let t = |ms: u64| Some(ms);
        let edge = T0.saturating_sub(W).as_millis();
        assert!(check_fresh(Some(Cow::Borrowed("a")), t(edge), W, T0).is_ok());
        assert_eq!(check_fresh(Some(Cow::Borrowed("b")), t(edge - 1), W, T0), Err(ReplayError::Stale));
        let ahead = T0.saturating_add(W).as_millis();
        assert!(check_fresh(Some(Cow::Borrowed("c")), t(ahead), W, T0).is_ok());
        assert_eq!(check_fresh(Some(Cow::Borrowed("c")), t(ahead + 1), W, T0), Err(ReplayError::Stale));
        assert_eq!(check_fresh(Some(Cow::Borrowed("d")), None, W, T0), Err(ReplayError::MissingTimestamp));
        assert_eq!(check_fresh(None, t(T0.as_millis()), W, T0), Err(ReplayError::BadNonce));
        assert_eq!(check_fresh(Some(Cow::Borrowed("")), t(T0.as_millis()), W, T0), Err(ReplayError::BadNonce));
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        assert_eq!(check_fresh(Some(Cow::Borrowed(&long)), t(T0.as_millis()), W, T0), Err(ReplayError::BadNonce));
    }

    #[test]
    fn the_stateless_check_records_nothing() {
        let store = MemoryNonces::new(100, 10);
        for _ in 0..3 {
            assert!(check_fresh(Some(Cow::Borrowed("n")), Some(T0.as_millis()), W, T0).is_ok());
        }
        assert_eq!(check(&store, "u", "n", T0, W, T0), Ok(()));
    }

    #[test]
    fn a_replayed_message_fails_even_with_the_latest_acceptable_timestamp() {
        // Sent with ts = now + W, replayed at now + 2W with the same ts:
        // the ts is still inside the window then, and the nonce remembered.
        let store = MemoryNonces::new(100, 10);
        let ts = T0.saturating_add(W);
        assert_eq!(check(&store, "u", "n", ts, W, T0), Ok(()));
        let replay_at = T0.saturating_add(W).saturating_add(W);
        assert_eq!(check(&store, "u", "n", ts, W, replay_at), SEEN);
        let stale_at = replay_at.saturating_add(Duration::from_millis(1));
        assert_eq!(check(&store, "u", "n", ts, W, stale_at), Err(ReplayError::Stale));
    }

    #[test]
    fn widening_the_window_does_not_make_a_forgotten_nonce_replayable() {
        let store = MemoryNonces::new(100, 10);
        assert_eq!(check(&store, "u", "n", T0, W, T0), Ok(()));
        // Past the old expiry (T0 + 2W), the window is widened to 300 s by
        // a reload: the old ts is inside the new window, the nonce is gone.
        let wide = Duration::from_secs(300);
        let later = T0.saturating_add(W * 2).saturating_add(Duration::from_secs(1));
        assert_eq!(check(&store, "u", "n", T0, wide, later), Err(ReplayError::Store(NonceRefused::Forgotten)));
        // Older timestamps that the new window allows are refused too, until
        // the store has remembered that far back; newer ones pass.
        let older = T0.saturating_sub(Duration::from_secs(100));
        assert_eq!(check(&store, "u", "m", older, wide, later), Err(ReplayError::Store(NonceRefused::Forgotten)));
        let newer = T0.saturating_add(Duration::from_secs(1));
        assert_eq!(check(&store, "u", "m", newer, wide, later), Ok(()));
    }
}
