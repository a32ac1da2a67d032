//! [`ClusterStore`]: the shared bans and revocations beside the node's own
//! SQLite file, every store trait by delegation.

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

/// Cluster mode's store: bans and revocations in Redis, shared by the
/// nodes; users, login sessions, owners and the audit chain in the node's
/// own SQLite file (docs/OPERATIONS.md, "Cluster mode").
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

    /// Moves with either counter: the shared one, and the file's, which
    /// moves when another process ends login sessions here (`palisade
    /// user remove`) and so revokes them. Only a change matters, never
    /// the value: the shared one is turned half-way so that the two small
    /// counters do not cancel out.
    fn version(&self) -> Result<u64, StoreError> {
        Ok(self.shared.version()?.rotate_left(32) ^ self.local.version()?)
    }
}

impl RevocationStore for ClusterStore {
    /// The shared revocations and this node's own: ending a login session
    /// (a logout, a reused refresh token) revokes it in the file, with the
    /// session, and those stay on the node that holds the session.
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let mut all = self.shared.revocations()?;
        all.extend(self.local.revocations()?);
        Ok(all)
    }

    /// Redis first, then the user's sessions here. SQLite did both in one
    /// transaction; across two stores, this order means a failure between
    /// them leaves the tokens revoked on every node (what matters most)
    /// and an error for the operator to retry, which ends the sessions
    /// then (revoking again keeps the later instant). The other order
    /// could end the sessions and leave their tokens working elsewhere.
    /// A refresh between the two mints a token the session's own
    /// revocation covers, on this node.
    fn revoke(&self, revocation: &Revocation, now: Timestamp, reason: &str) -> Result<Vec<String>, StoreError> {
        self.shared.revoke(revocation, now, reason)?;
        match revocation {
            Revocation::User { user, .. } => self.local.end_user_sessions(user, EndReason::Revoked, now),
            Revocation::Token(_) | Revocation::Session(_) => Ok(Vec::new()),
        }
    }
}

impl UserStore for ClusterStore {
    fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        self.local.add_user(user)
    }

    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.local.user(id)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.local.users()
    }

    fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.local.set_roles(id, roles)
    }

    fn remove_user(&self, id: &str, now: Timestamp) -> Result<Option<Vec<String>>, StoreError> {
        self.local.remove_user(id, now)
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
        self.local.open_session(session, first, cap, now)
    }

    fn refresh(
        &self,
        presented: &str,
        next: &StoredRefresh,
        reuse_grace: Duration,
        device_ok: &dyn Fn(&LoginSession) -> bool,
        now: Timestamp,
    ) -> Result<Refreshed, StoreError> {
        self.local.refresh(presented, next, reuse_grace, device_ok, now)
    }

    fn session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        self.local.session(id)
    }

    fn live_sessions(&self, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError> {
        self.local.live_sessions(user, now)
    }

    fn end_session(&self, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError> {
        self.local.end_session(id, reason, now)
    }

    fn end_user_sessions(&self, user: &str, reason: EndReason, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.local.end_user_sessions(user, reason, now)
    }

    fn prune_sessions(&self, before: Timestamp, expired_before: Timestamp) -> Result<usize, StoreError> {
        self.local.prune_sessions(before, expired_before)
    }
}

impl OwnerStore for ClusterStore {
    fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        self.local.owners()
    }

    fn apply_owner_changes(&self, changes: &[OwnerChange]) -> Result<(), StoreError> {
        self.local.apply_owner_changes(changes)
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
