//! Refresh tokens: opaque, random, single-use, and stored only as their
//! SHA-256. Every refresh gives a new one and marks the old one used; all
//! the tokens rotated from one login form its session (the refresh
//! family). A used token presented again means two parties hold the
//! session, so the whole session ends (docs/ARCHITECTURE.md, "Login
//! sessions").

use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::device::hex;
use crate::Timestamp;

/// Every refresh token starts with this, so one pasted where an access
/// token belongs (or the reverse) is recognised and refused at once.
pub const REFRESH_PREFIX: &str = "prt_";

/// Random bytes in a refresh token.
const SECRET_BYTES: usize = 32;
/// Length of a refresh token: the prefix and 32 bytes in unpadded base64url.
const TOKEN_LEN: usize = REFRESH_PREFIX.len() + 43;

/// A new refresh token and the hash the store keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// What the client gets, once.
    pub token: String,
    /// What the store keeps: 64 hex characters.
    pub hash: String,
}

impl std::fmt::Debug for NewRefreshToken {
    // The token itself never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRefreshToken").finish_non_exhaustive()
    }
}

impl NewRefreshToken {
    /// A fresh token from `rng` (the server's is a CSPRNG seeded by the
    /// operating system).
    pub fn generate(rng: &mut impl rand::CryptoRng) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(REFRESH_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
        let hash = hash_of(&token);
        Self { token, hash }
    }
}

/// The store's key for a presented refresh token, or `None` when it cannot
/// be one of ours (wrong prefix, length or alphabet) and needs no lookup.
pub fn refresh_token_hash(presented: &str) -> Option<String> {
    let secret = presented.strip_prefix(REFRESH_PREFIX)?;
    let well_formed =
        presented.len() == TOKEN_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hash_of(presented))
}

fn hash_of(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// What the store knows of a presented refresh token and its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshState {
    /// When this token was used to refresh, if it was.
    pub used: Option<Timestamp>,
    /// When this token stops being accepted.
    pub expires: Timestamp,
    /// Whether its session has ended (logout, revocation, eviction, reuse).
    pub session_ended: bool,
}

/// The decision on one refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// Mark the token used, issue the next one.
    Rotate,
    /// A used token again, after the grace: end the session.
    Reused,
    /// A used token again within the grace after its use: refused, but
    /// the session stays (two tabs of one browser racing to refresh).
    RecentlyUsed,
    /// The session has ended.
    Ended,
    /// The token is past its lifetime.
    Expired,
}

impl RefreshState {
    /// Decides a refresh at `now`. A reuse is judged before anything else:
    /// whoever holds an old token, the session it came from must end even
    /// if it has expired meanwhile.
    pub fn judge(&self, reuse_grace: Duration, now: Timestamp) -> RefreshVerdict {
        if let Some(used) = self.used {
            if self.session_ended {
                return RefreshVerdict::Ended;
            }
            return if now < used.saturating_add(reuse_grace) {
                RefreshVerdict::RecentlyUsed
            } else {
                RefreshVerdict::Reused
            };
        }
        if self.session_ended {
            RefreshVerdict::Ended
        } else if now >= self.expires {
            RefreshVerdict::Expired
        } else {
            RefreshVerdict::Rotate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    #[test]
    fn tokens_are_random_and_only_their_own_shape_is_looked_up() {
        let mut rng = crate::testkit::rng();
        let a = NewRefreshToken::generate(&mut rng);
        let b = NewRefreshToken::generate(&mut rng);
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), TOKEN_LEN);
        assert_eq!(refresh_token_hash(&a.token).as_deref(), Some(a.hash.as_str()));
        assert_eq!(a.hash.len(), 64);
        assert!(!format!("{a:?}").contains(&a.token));
        // An access token, a truncated token, a foreign alphabet: no lookup.
        assert_eq!(refresh_token_hash("eyJhbGciOiJIUzI1NiJ9.e30.sig"), None);
        assert_eq!(refresh_token_hash(&a.token[..TOKEN_LEN - 1]), None);
        let mut odd = a.token;
        odd.replace_range(TOKEN_LEN - 1.., "+");
        assert_eq!(refresh_token_hash(&odd), None);
    }

    #[test]
    fn a_token_rotates_once_and_a_reuse_ends_the_session() {
        let grace = Duration::from_secs(2);
        let expires = T0.saturating_add(Duration::from_secs(7 * 86_400));
        let fresh = RefreshState { used: None, expires, session_ended: false };
        assert_eq!(fresh.judge(grace, T0), RefreshVerdict::Rotate);
        assert_eq!(fresh.judge(grace, expires), RefreshVerdict::Expired, "the lifetime is exclusive");
        let ended = RefreshState { session_ended: true, ..fresh };
        assert_eq!(ended.judge(grace, T0), RefreshVerdict::Ended);

        let used = RefreshState { used: Some(T0), ..fresh };
        assert_eq!(used.judge(grace, T0.saturating_add(Duration::from_secs(1))), RefreshVerdict::RecentlyUsed);
        assert_eq!(used.judge(grace, T0.saturating_add(grace)), RefreshVerdict::Reused);
        assert_eq!(used.judge(grace, expires.saturating_add(grace)), RefreshVerdict::Reused, "even when expired");
        assert_eq!(RefreshState { session_ended: true, ..used }.judge(grace, expires), RefreshVerdict::Ended);
    }
}
