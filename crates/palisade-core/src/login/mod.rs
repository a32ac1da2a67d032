//! The own issuer's login sessions: the rules `/auth/login`,
//! `/auth/refresh` and the session endpoints apply (docs/ARCHITECTURE.md,
//! "Login sessions").
//!
//! - [`throttle`]: failed logins back off, then lock, per address and per
//!   user name;
//! - [`refresh`]: refresh tokens are opaque, single-use and stored only as
//!   hashes; a reused one ends its whole session;
//! - [`device`]: a session may be bound to the device that opened it;
//! - [`SessionCap`]: how many live sessions a user may hold, and which one
//!   gives way.
//!
//! Like the rest of the crate these are decisions without I/O; the store
//! applies them inside its transactions so concurrent logins and refreshes
//! cannot both pass.

pub mod device;
pub mod refresh;
pub mod throttle;

use crate::Timestamp;

/// What happens when a user at [`SessionCap::max`] logs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPolicy {
    /// The least recently active session ends to make room.
    Evict,
    /// The new login is refused.
    Refuse,
}

/// A user's limit of concurrent live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCap {
    /// Live sessions per user, at least 1.
    pub max: usize,
    /// What gives way at the limit.
    pub policy: CapPolicy,
}

/// A login refused because the user holds [`SessionCap::max`] sessions and
/// the policy is [`CapPolicy::Refuse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session limit reached")]
pub struct CapReached;

impl SessionCap {
    /// Given the user's live sessions as `(id, last_active)`, which must end
    /// for one more to open. Ties in `last_active` go to the smaller id, so
    /// the choice does not depend on the order the store lists them in.
    pub fn admit<'a>(&self, live: &[(&'a str, Timestamp)]) -> Result<Vec<&'a str>, CapReached> {
        let max = self.max.max(1);
        if live.len() < max {
            return Ok(Vec::new());
        }
        if self.policy == CapPolicy::Refuse {
            return Err(CapReached);
        }
        let mut by_age: Vec<(&str, Timestamp)> = live.to_vec();
        by_age.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
        Ok(by_age.into_iter().take(live.len() + 1 - max).map(|(id, _)| id).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testkit::T0;

    fn at(secs: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(secs))
    }

    #[test]
    fn under_the_cap_nothing_ends() {
        let cap = SessionCap { max: 3, policy: CapPolicy::Evict };
        assert_eq!(cap.admit(&[("a", at(1)), ("b", at(2))]), Ok(Vec::new()));
        let refuse = SessionCap { max: 3, policy: CapPolicy::Refuse };
        assert_eq!(refuse.admit(&[("a", at(1)), ("b", at(2))]), Ok(Vec::new()));
    }

    #[test]
    fn at_the_cap_the_least_recently_active_gives_way_or_the_login_is_refused() {
        let live = [("a", at(5)), ("b", at(1)), ("c", at(9))];
        assert_eq!(SessionCap { max: 3, policy: CapPolicy::Evict }.admit(&live), Ok(vec!["b"]));
        assert_eq!(SessionCap { max: 3, policy: CapPolicy::Refuse }.admit(&live), Err(CapReached));
        // A cap lowered below what a user holds brings them back to it.
        assert_eq!(SessionCap { max: 1, policy: CapPolicy::Evict }.admit(&live), Ok(vec!["b", "a", "c"]));
        // Equal activity: the order is fixed by id.
        let tied = [("z", at(1)), ("y", at(1))];
        assert_eq!(SessionCap { max: 2, policy: CapPolicy::Evict }.admit(&tied), Ok(vec!["y"]));
    }
}
