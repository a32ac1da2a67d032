//! The durable home of the own issuer's login sessions and their refresh
//! tokens.

use std::time::Duration;

use crate::Timestamp;
use crate::login::refresh::RefreshVerdict;
use crate::login::{CapReached, SessionCap};
use crate::store::StoreError;

/// One login session: one refresh family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    /// `sid` of every token minted for it.
    pub id: String,
    /// The user (`sub`).
    pub user_id: String,
    /// When the login happened.
    pub created: Timestamp,
    /// The last login or refresh.
    pub last_active: Timestamp,
    /// When its newest refresh token expires, and so the session with it.
    pub expires: Timestamp,
    /// `User-Agent` at login, cut to [`MAX_USER_AGENT`] characters.
    pub user_agent: String,
    /// The client address at login.
    pub ip: String,
    /// The device fingerprint ([`crate::login::device::fingerprint`]).
    pub device: String,
    /// Whether the session's tokens travel in cookies.
    pub cookie: bool,
}

/// Longest user agent kept with a session.
pub const MAX_USER_AGENT: usize = 256;

/// A refresh token to store: its hash and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    /// [`crate::login::refresh::NewRefreshToken::hash`].
    pub hash: String,
    /// When it stops being accepted.
    pub expires: Timestamp,
    /// When the access token minted beside it expires: a revocation of its
    /// session is kept until then, whatever `auth.token_ttl` says later.
    pub access_expires: Timestamp,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The presented token is now used and the next one stored; the
    /// session as it is now.
    Rotated(LoginSession),
    /// A used token came back after the grace: the session has been ended
    /// and revoked.
    Reused(LoginSession),
    /// The session's device check refused; nothing changed.
    WrongDevice(LoginSession),
    /// Refused with this verdict ([`RefreshVerdict::Ended`],
    /// [`RefreshVerdict::Expired`] or [`RefreshVerdict::RecentlyUsed`]);
    /// nothing changed.
    Refused(RefreshVerdict),
    /// No such token: never issued, or pruned.
    Unknown,
}

/// Why a session ended, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `POST /auth/logout`.
    Logout,
    /// `POST /auth/logout-all`, or an operator's revocation of the user.
    LogoutAll,
    /// A newer login took its place under the session cap.
    Evicted,
    /// A used refresh token came back.
    Reused,
    /// The user was removed.
    UserRemoved,
    /// An operator revoked this session.
    Revoked,
}

impl EndReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Evicted => "evicted",
            Self::Reused => "refresh_reused",
            Self::UserRemoved => "user_removed",
            Self::Revoked => "revoked",
        }
    }
}

/// Login sessions. Ending a session also records a
/// [`crate::auth::Revocation::Session`] in the same transaction, so its
/// access tokens stop working wherever revocations are followed.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Opens `session` with its first refresh token, within `cap`: ends the
    /// sessions that give way (reported by id) or refuses, atomically with
    /// the count.
    fn open_session(
        &self,
        session: &LoginSession,
        first: &StoredRefresh,
        cap: SessionCap,
        now: Timestamp,
    ) -> Result<Result<Vec<String>, CapReached>, StoreError>;

    /// Refreshes with the token hashed as `presented`: judges it
    /// ([`crate::login::refresh::RefreshState::judge`]) and, in the same
    /// transaction, rotates to `next` or ends the session on a reuse.
    /// `device_ok` sees the session before a rotation and may refuse it
    /// (the device binding); a refusal changes nothing.
    fn refresh(
        &self,
        presented: &str,
        next: &StoredRefresh,
        reuse_grace: Duration,
        device_ok: &dyn Fn(&LoginSession) -> bool,
        now: Timestamp,
    ) -> Result<Refreshed, StoreError>;

    /// The session with this id, ended or not.
    fn session(&self, id: &str) -> Result<Option<LoginSession>, StoreError>;

    /// The user's sessions that have neither ended nor expired, most
    /// recently active first.
    fn live_sessions(&self, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError>;

    /// Ends one session; `false` if it had ended already or never was.
    fn end_session(&self, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError>;

    /// Ends every live session of `user`; returns their ids.
    fn end_user_sessions(&self, user: &str, reason: EndReason, now: Timestamp) -> Result<Vec<String>, StoreError>;

    /// Deletes sessions that ended or expired before `before` with their
    /// refresh tokens, and session revocations whose newest access token
    /// expired before `expired_before` (or, for one that does not know its
    /// tokens' expiry, made before `before`): by then every access token
    /// minted for them has expired.
    fn prune_sessions(&self, before: Timestamp, expired_before: Timestamp) -> Result<usize, StoreError>;
}
