//! [`ClusterStore`]: the shared bans, revocations, users, login sessions
//! and rooms' owners beside the node's own SQLite file, every store trait
//! by delegation.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::audit::{Entry, Hash, Kind, Record, Rewritten};
use palisade_core::auth::Revocation;
use palisade_core::guard::{Ban, Subject};
use palisade_core::login::{CapReached, SessionCap};
use palisade_core::ownership::{OwnerChange, OwnerRecord};
use palisade_core::store::{
    AuditStore, BanRecord, BanStore, EndReason, LoginSession, OwnerStore, Refreshed, RevocationStore, SessionStore,
    StoreError, StoredRefresh, User, UserStore,
};
use palisade_store::Sqlite;

use super::RedisShared;

/// Cluster mode's store: bans, revocations, users, login sessions and
/// rooms' owners in Redis, shared by the nodes; the audit chain in the
/// node's own SQLite file (docs/OPERATIONS.md, "Cluster mode").
#[derive(Debug)]
pub(crate) struct ClusterStore {
    pub(crate) local: Sqlite,
    pub(crate) shared: RedisShared,
}

impl BanStore for ClusterStore {
    fn bans(&self, now: Timestamp, remember_after_end: Duration) -> Result<Vec<Ban>, StoreError> {
        self.shared.bans(now, remember_after_end)
    }

    fn put(&self, ban: &Ban) -> Result<(), StoreError> {
        self.shared.put(ban)
    }

    fn lift(&self, subject: &Subject, now: Timestamp) -> Result<bool, StoreError> {
        self.shared.lift(subject, now)
    }

    fn history(&self, subject: Option<&Subject>, limit: usize) -> Result<Vec<BanRecord>, StoreError> {
        self.shared.history(subject, limit)
    }

    fn prune(&self, before: Timestamp, max: usize) -> Result<usize, StoreError> {
        self.shared.prune(before, max)
    }

    fn prune_history(&self, before: Timestamp, keep: usize) -> Result<usize, StoreError> {
        self.shared.prune_history(before, keep)
    }

    fn version(&self) -> Result<u64, StoreError> {
        self.shared.version()
    }
}

impl RevocationStore for ClusterStore {
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.shared.revocations()
    }

    fn revoke(&self, revocation: &Revocation, now: Timestamp, reason: &str) -> Result<Vec<String>, StoreError> {
        self.shared.revoke(revocation, now, reason)
    }
}

impl UserStore for ClusterStore {
    fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        self.shared.add_user(user)
    }

    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.shared.user(id)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.shared.users()
    }

    fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.shared.set_roles(id, roles)
    }

    fn remove_user(&self, id: &str, now: Timestamp) -> Result<Option<Vec<String>>, StoreError> {
        self.shared.remove_user(id, now)
    }
}

impl SessionStore for ClusterStore {
    fn open_session(
        &self,
        session: &LoginSession,
        first: &StoredRefresh,
        cap: SessionCap,
        now: Timestamp,
    ) -> Result<Result<Vec<String>, CapReached>, StoreError> {
        self.shared.open_session(session, first, cap, now)
    }

    fn refresh(
        &self,
        presented: &str,
        next: &StoredRefresh,
        reuse_grace: Duration,
        device_ok: &dyn Fn(&LoginSession) -> bool,
        now: Timestamp,
    ) -> Result<Refreshed, StoreError> {
        self.shared.refresh(presented, next, reuse_grace, device_ok, now)
    }

    fn session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        self.shared.session(id)
    }

    fn live_sessions(&self, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError> {
        self.shared.live_sessions(user, now)
    }

    fn end_session(&self, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError> {
        self.shared.end_session(id, reason, now)
    }

    fn end_user_sessions(&self, user: &str, reason: EndReason, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.shared.end_user_sessions(user, reason, now)
    }

    fn prune_sessions(&self, before: Timestamp, expired_before: Timestamp) -> Result<usize, StoreError> {
        self.shared.prune_sessions(before, expired_before)
    }
}

impl OwnerStore for ClusterStore {
    fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        self.shared.owners()
    }

    fn apply_owner_changes(&self, changes: &[OwnerChange]) -> Result<(), StoreError> {
        self.shared.apply_owner_changes(changes)
    }
}

impl AuditStore for ClusterStore {
    fn append(&self, entries: &[Entry]) -> Result<Option<(u64, Hash)>, StoreError> {
        self.local.append(entries)
    }

    fn append_after(
        &self,
        signed: Option<(u64, Hash)>,
        entries: &[Entry],
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError> {
        self.local.append_after(signed, entries)
    }

    fn prune_point(
        &self,
        older_than: Option<Timestamp>,
        keep: Option<u64>,
        below: u64,
    ) -> Result<Option<(u64, Hash)>, StoreError> {
        self.local.prune_point(older_than, keep, below)
    }

    fn prune_through(
        &self,
        signed: (u64, Hash),
        anchor: (u64, Hash),
        note: Entry,
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError> {
        self.local.prune_through(signed, anchor, note)
    }

    fn head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        self.local.head()
    }

    fn range(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.local.range(from_seq, limit)
    }

    fn since(
        &self,
        since: Timestamp,
        kind: Option<Kind>,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.local.since(since, kind, from_seq, limit)
    }
}
