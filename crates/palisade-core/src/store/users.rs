//! The own issuer's users.

use crate::Timestamp;
use crate::store::StoreError;

/// A user of the own issuer.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The id, which becomes the token's `sub` (the rules of
    /// [`crate::auth::check_sub`]).
    pub id: String,
    /// Roles the user's tokens carry.
    pub roles: Vec<String>,
    /// argon2id PHC string ([`crate::auth::hash_password`]).
    pub password_hash: String,
    /// When the user was added.
    pub created: Timestamp,
}

impl std::fmt::Debug for User {
    // A password hash never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("roles", &self.roles).finish_non_exhaustive()
    }
}

/// Where the own issuer's users live. Operators change it with
/// `palisade user …`, also while the server runs.
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Adds `user`; `false` (and nothing changed) if the id exists.
    fn add_user(&self, user: &User) -> Result<bool, StoreError>;

    /// The user with this id.
    fn user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Every user, by id.
    fn users(&self) -> Result<Vec<User>, StoreError>;

    /// Replaces the user's roles; `false` if there is no such user. Tokens
    /// carry the new roles from the user's next login or refresh.
    fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError>;

    /// Removes the user and, in the same transaction, ends their live
    /// login sessions (revoking them) at `now`: the ended sessions' ids, or
    /// `None` if there was no such user.
    fn remove_user(&self, id: &str, now: Timestamp) -> Result<Option<Vec<String>>, StoreError>;
}
