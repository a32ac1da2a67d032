//! Per-session CSRF tokens.
//!
//! The token travels in `welcome` and must be echoed in `csrf` on events
//! that require it. It rotates on a fixed interval (the server announces
//! the new one with a `csrf` frame); the previous token stays valid for a
//! short grace period so messages in flight during a rotation still pass.
//! Comparison is constant-time.

use std::time::Duration;

use rand::CryptoRng;
use subtle::ConstantTimeEq as _;

use crate::Timestamp;

/// Rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrfSettings {
    /// How often the token changes.
    pub rotate_every: Duration,
    /// How long the previous token is still accepted after a rotation.
    pub grace: Duration,
}

/// One session's CSRF state.
#[derive(Debug, Clone)]
pub struct CsrfToken {
    current: String,
    previous: Option<(String, Timestamp)>,
    next_rotation: Timestamp,
    settings: CsrfSettings,
}

impl CsrfToken {
    /// A fresh token from `rng` at `now`.
    pub fn new(settings: CsrfSettings, now: Timestamp, rng: &mut impl CryptoRng) -> Self {
        Self { current: fresh(rng), previous: None, next_rotation: now.saturating_add(settings.rotate_every), settings }
    }

    /// The token clients must echo now.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// When [`CsrfToken::rotate`] is next due.
    pub fn next_rotation(&self) -> Timestamp {
        self.next_rotation
    }

    /// Replaces the token with one from `rng`; the old one is accepted for
    /// the grace period.
    pub fn rotate(&mut self, now: Timestamp, rng: &mut impl CryptoRng) {
        let old = std::mem::replace(&mut self.current, fresh(rng));
        self.previous = Some((old, now.saturating_add(self.settings.grace)));
        self.next_rotation = now.saturating_add(self.settings.rotate_every);
    }

    /// Does `presented` match the current token, or the previous one
    /// within its grace period?
    pub fn verify(&self, presented: Option<&str>, now: Timestamp) -> bool {
        let Some(presented) = presented else { return false };
        let matches = |token: &str| bool::from(token.as_bytes().ct_eq(presented.as_bytes()));
        // Both comparisons always run, so timing does not say which matched.
        let current = matches(&self.current);
        let previous = self.previous.as_ref().is_some_and(|(token, until)| matches(token) & (now <= *until));
        current | previous
    }
}

fn fresh(rng: &mut impl CryptoRng) -> String {
    crate::random_id("", rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::rng;

    const S: CsrfSettings = CsrfSettings { rotate_every: Duration::from_secs(900), grace: Duration::from_secs(60) };
    const T0: Timestamp = Timestamp::from_secs(1_000);

    #[test]
    fn only_the_current_token_verifies_before_any_rotation() {
        let t = CsrfToken::new(S, T0, &mut rng());
        assert!(t.verify(Some(t.current()), T0));
        assert!(!t.verify(None, T0));
        assert!(!t.verify(Some(""), T0));
        assert!(!t.verify(Some(&format!("{}x", t.current())), T0));
    }

    #[test]
    fn the_previous_token_lasts_for_the_grace_period_only() {
        let mut rng = rng();
        let mut t = CsrfToken::new(S, T0, &mut rng);
        assert_eq!(t.next_rotation(), T0.saturating_add(S.rotate_every));
        let old = t.current().to_owned();
        let at = t.next_rotation();
        t.rotate(at, &mut rng);
        assert_ne!(t.current(), old);
        assert!(t.verify(Some(t.current()), at));
        assert!(t.verify(Some(&old), at.saturating_add(S.grace)));
        assert!(!t.verify(Some(&old), at.saturating_add(S.grace).saturating_add(Duration::from_millis(1))));
        assert_eq!(t.next_rotation(), at.saturating_add(S.rotate_every));
    }
}
