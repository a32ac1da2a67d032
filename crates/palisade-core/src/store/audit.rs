//! The durable home of the audit log.

use crate::Timestamp;
use crate::audit::{Entry, Hash, Kind, Record, Rewritten};
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
    fn append(&self, entries: &[Entry]) -> Result<Option<(u64, Hash)>, StoreError> {
        self.append_after(None, entries)?.map_err(|e| StoreError(e.to_string()))
    }

    /// [`AuditStore::append`] for a writer that signs checkpoints: with
    /// `signed` (the `(seq, hash)` it signed last), the same transaction
    /// first checks that the record at that `seq` still has that hash, and
    /// writes nothing if it does not ([`Rewritten`]): a chain rewritten
    /// under the writer must never be continued and signed.
    fn append_after(
        &self,
        signed: Option<(u64, Hash)>,
        entries: &[Entry],
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError>;

    /// The newest record retention may remove, `(seq, hash)`: the last one
    /// older than `older_than`, or the last but `keep`, whichever is later;
    /// always before `below` (the record the writer signed last, which
    /// stays, and so does the head). `None`: nothing to remove.
    fn prune_point(
        &self,
        older_than: Option<Timestamp>,
        keep: Option<u64>,
        below: u64,
    ) -> Result<Option<(u64, Hash)>, StoreError>;

    /// In one transaction: checks that the record the writer signed last
    /// (`signed`) and the one at `anchor`'s `seq` still have their hashes
    /// ([`Rewritten`] if not, and nothing changes: retention must not sign
    /// an anchor in a rewritten chain), removes the anchor's record and
    /// every record before it, and appends `note`, the retention record
    /// that carries the signed anchor (see
    /// [`crate::audit::retention_entry`]). Returns the new head.
    fn prune_through(
        &self,
        signed: (u64, Hash),
        anchor: (u64, Hash),
        note: Entry,
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError>;

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
