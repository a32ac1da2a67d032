//! The durable home of revocations.

use crate::Timestamp;
use crate::auth::Revocation;
use crate::store::StoreError;

/// Revocations that survive a restart and that other processes (the CLI,
/// later the admin API) add while the server runs; the server follows
/// [`crate::store::BanStore::version`], which moves for every table.
pub trait RevocationStore: Send + Sync + std::fmt::Debug {
    /// Every revocation.
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// Adds `revocation` at `now` with an operator's `reason`. Revoking a
    /// user again keeps the later instant, and ends the user's live login
    /// sessions in the same transaction, so no refresh can mint a token
    /// between the two. The ended sessions' ids (none but for a user).
    /// Durable when this returns.
    fn revoke(&self, revocation: &Revocation, now: Timestamp, reason: &str) -> Result<Vec<String>, StoreError>;
}
