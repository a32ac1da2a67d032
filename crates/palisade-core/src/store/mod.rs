//! The narrow storage traits the backends implement, and the in-memory
//! implementations a single node uses.
//!
//! Calls take `now` like everything in this crate, so expiry is tested by
//! stepping a clock. The Redis backend (cluster mode) will implement the
//! same traits so nodes share what they have seen.

mod audit;
mod bans;
mod nonces;
mod owners;
mod revocations;
mod sessions;
mod users;

pub use audit::AuditStore;
pub use bans::{BanAction, BanRecord, BanStore, StoreError};
pub use nonces::MemoryNonces;
pub use owners::OwnerStore;
pub use revocations::RevocationStore;
pub use sessions::{EndReason, LoginSession, MAX_USER_AGENT, Refreshed, SessionStore, StoredRefresh};
pub use users::{User, UserStore};

use crate::Timestamp;

/// Why a [`NonceStore`] did not record a nonce. Every variant makes the
/// message count as replayed: a replay check that cannot remember must not
/// pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceRefused {
    /// This user recorded this nonce before, and it is still remembered.
    #[error("nonce seen before")]
    Seen,
    /// `ts` is not later than a nonce the store has already forgotten, so
    /// it cannot tell whether this one is a replay.
    #[error("timestamp older than what the nonce store still remembers")]
    Forgotten,
    /// This user holds its quota of live nonces (`replay.max_nonces_per_user`).
    #[error("user's nonce quota full")]
    UserFull,
    /// The store holds its maximum of live nonces (`replay.max_nonces`).
    #[error("nonce store full")]
    StoreFull,
}

/// Remembers which nonces each user has used, so that each is accepted
/// once (pipeline step 11, docs/ARCHITECTURE.md; docs/POLICY.md, "Replay
/// protection").
///
/// An implementation must keep this contract, which is what makes the
/// replay check sound whatever the window was when a nonce was recorded:
/// - `record` succeeds at most once per (`user`, `nonce`) while that record
///   is remembered, and refusals record nothing;
/// - a record is remembered at least until `keep_until` (longer is allowed);
/// - once a record is forgotten, every later `record` for the same user
///   whose `ts` is not after the forgotten record's `ts` is refused with
///   [`NonceRefused::Forgotten`] (it may be refused for other users too),
///   so widening the window can never make a forgotten nonce acceptable
///   again with its old `ts`;
/// - it is bounded and fails closed: a user at its quota gets
///   [`NonceRefused::UserFull`] and a full store [`NonceRefused::StoreFull`];
///   no live nonce is ever evicted to make room, so no user can make another
///   user's nonces replayable;
/// - a call costs O(1) amortized, whatever the store holds.
pub trait NonceStore: Send + Sync {
    /// Records that `user` sent `nonce` with client time `ts`, at `now`,
    /// to be remembered at least until `keep_until`.
    fn record(
        &self,
        user: &str,
        nonce: &str,
        ts: Timestamp,
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), NonceRefused>;
}
