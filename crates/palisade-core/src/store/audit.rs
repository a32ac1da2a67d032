//! The durable home of the audit log.

use crate::Timestamp;
use crate::audit::{Entry, Hash, Kind, Record};
use crate::store::StoreError;

/// The audit chain, appendable by any process.
///
/// An implementation chains inside its write transaction: it reads the
/// head, gives each entry the next `seq` and links it to the hash before
/// ([`Entry::chain`]), and commits all of them or none. So the server's
/// writer and a CLI command appending at the same moment are put one after
/// the other and never fork the chain, and nothing else has to know the
/// head.
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Chains and stores `entries`, in order, in one transaction; returns
    /// the new head, `None` if the log is (still) empty. Durable when this
    /// returns.
    fn append(&self, entries: &[Entry]) -> Result<Option<(u64, Hash)>, StoreError>;

    /// The last record's `seq` and hash, `None` for an empty log.
    fn head(&self) -> Result<Option<(u64, Hash)>, StoreError>;

    /// At most `limit` records with `seq >= from_seq`, in `seq` order.
    fn range(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// At most `limit` records with `seq >= from_seq` at or after `since`,
    /// of `kind` if given, in `seq` order: an export, read in pages.
    fn since(
        &self,
        since: Timestamp,
        kind: Option<Kind>,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;
}
