//! The durable home of bans.

use crate::Timestamp;
use crate::guard::{Ban, Subject};

/// A storage backend failed. The message is for the operator's log; it
/// never reaches a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// One line of a subject's ban history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// When it happened.
    pub at: Timestamp,
    /// `ban` or `lift`.
    pub action: BanAction,
    /// The ban imposed or lifted.
    pub ban: Ban,
}

/// What a [`BanRecord`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanAction {
    /// A ban was imposed (or replaced).
    Ban,
    /// A ban was lifted by an operator.
    Lift,
}

/// Bans that survive a restart and that other processes (the CLI, later
/// other nodes) can change while the server runs.
///
/// The server keeps the bans in force in a [`crate::guard::BanList`] and
/// only calls this off the message path: at start, when [`BanStore::version`]
/// moves, and to persist a ban it imposed.
pub trait BanStore: Send + Sync + std::fmt::Debug {
    /// Every ban in force, or ended but still within `remember_after_end`
    /// of its end at `now` (its strikes count for the next ban), and every
    /// permanent one.
    fn bans(&self, now: Timestamp, remember_after_end: std::time::Duration) -> Result<Vec<Ban>, StoreError>;

    /// Stores `ban` in place of the subject's previous one and appends it
    /// to the history, unless [`Ban::replaces`] says the ban the store
    /// holds stands (then nothing is written or recorded; the caller's
    /// next read of the bans finds what stands). Durable when this returns.
    fn put(&self, ban: &Ban) -> Result<(), StoreError>;

    /// Removes the ban on `subject` (forgetting its strikes) and appends the
    /// lift to the history; `false` if there was none.
    fn lift(&self, subject: &Subject, now: Timestamp) -> Result<bool, StoreError>;

    /// The newest `limit` history records, of one subject or of all,
    /// newest first.
    fn history(&self, subject: Option<&Subject>, limit: usize) -> Result<Vec<BanRecord>, StoreError>;

    /// Deletes the bans that ended before `before` (permanent ones stay),
    /// so the table holds only what [`BanStore::bans`] can still return,
    /// and then, past `max` bans, the automatic ones that end soonest, as
    /// [`crate::guard::BanList`] does; the history keeps them. Returns how
    /// many went.
    fn prune(&self, before: Timestamp, max: usize) -> Result<usize, StoreError>;

    /// Deletes the history records written before `before`, and all but
    /// the newest `keep`. Returns how many went.
    fn prune_history(&self, before: Timestamp, keep: usize) -> Result<usize, StoreError>;

    /// A number that changes whenever any process changed the bans, so a
    /// server notices a CLI change by polling it.
    fn version(&self) -> Result<u64, StoreError>;
}
