//! Rooms' owners: core's record ([`Owners`]), which sessions decide by,
//! and the one task that writes its changes to the store, so a restart
//! keeps them (docs/ARCHITECTURE.md, "Room owners"). In a cluster the
//! record is this node's view of the shared one: claims and deletions are
//! made there before the client's `ack`, and the view learns every
//! node's from the change stream.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::ownership::{OwnerLimits, OwnerRecord, Owners};
use palisade_core::refusal::Refusal;
use palisade_core::store::StoreError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cluster::changes::OwnerNews;
use crate::cluster::owners::{RedisOwners, SharedClaim};
use crate::gateway::Store;

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The record, the writer's wake-up, and in a cluster the shared record.
#[derive(Debug)]
pub(crate) struct OwnerLedger {
    pub(crate) owners: Owners,
    wake: Notify,
    shared: Option<RedisOwners>,
}

impl OwnerLedger {
    /// An empty ledger within `limits`; `shared`: a cluster's record.
    pub(crate) fn new(limits: OwnerLimits, shared: Option<RedisOwners>) -> Self {
        let owners = if shared.is_some() { Owners::shared(limits) } else { Owners::new(limits) };
        Self { owners, wake: Notify::new(), shared }
    }

    /// A session made `user` the owner of `room` in this node's view (a
    /// join or a `create`): on one node a change for the writer; in a
    /// cluster, a claim in the shared record, which may have another
    /// owner (or be full) and then settles the view. Whether `user` owns
    /// the room.
    pub(crate) async fn claimed(&self, room: &str, user: &str, now: Timestamp) -> Result<bool, Refusal> {
        let Some(shared) = &self.shared else {
            self.changed();
            return Ok(true);
        };
        let (holder, answer) = match shared.claim(room, user, now).await {
            Ok(SharedClaim::Claimed) => return Ok(true),
            Ok(SharedClaim::Held(holder)) => {
                let theirs = *holder.owner == *user;
                (Some(holder), Ok(theirs))
            }
            Ok(SharedClaim::Full) => (None, Ok(false)),
            Err(refusal) => (None, Err(refusal)),
        };
        self.owners.settle(room, user, holder);
        answer
    }

    /// A session deleted `room`, which `owner` owned in this node's view:
    /// on one node a change for the writer; in a cluster, the shared
    /// record's too, and when that fails the view gets its owner back
    /// (the deletion is refused, to be tried again).
    pub(crate) async fn released(&self, room: &str, owner: Option<OwnerRecord>) -> Result<(), Refusal> {
        let Some(shared) = &self.shared else {
            self.changed();
            return Ok(());
        };
        let released = shared.release(room).await;
        if released.is_err() && self.owners.owner(room).is_none() {
            self.owners.set(room, owner);
        }
        released
    }

    /// What the change stream says of the shared record (a cluster).
    pub(crate) fn learn(&self, news: OwnerNews) {
        match news {
            OwnerNews::Changed(room, holder) => self.owners.set(&room, holder),
            OwnerNews::All(records) => {
                info!(rooms = records.len(), "room owners reloaded from the cluster");
                self.owners.load(records);
            }
        }
    }

    /// Reads the owners the store keeps (at start).
    pub(crate) async fn load(&self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let records = crate::gateway::call("owners_read", store, |s| s.owners()).await?;
        info!(rooms = records.len(), "room owners loaded");
        self.owners.load(records);
        Ok(())
    }

    /// A session changed the owners: the writer has something to store.
    pub(crate) fn changed(&self) {
        self.wake.notify_one();
    }

    /// Writes changes as they come until `stop`, then what is left. A
    /// failed write is kept and tried again: memory stays right meanwhile,
    /// and only a restart during a store outage loses the latest changes.
    pub(crate) async fn write(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                () = self.wake.notified() => false,
            };
            let changes = self.owners.take_changes();
            if !changes.is_empty() {
                let batch = changes.clone();
                match crate::gateway::call("owners_write", &store, move |s| s.apply_owner_changes(&batch)).await {
                    Ok(()) => failing = false,
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            error!(error = %e, "cannot store room owners; retrying, memory keeps them meanwhile");
                        }
                        self.owners.restore_changes(changes);
                        if !stopping {
                            tokio::time::sleep(RETRY).await;
                            self.wake.notify_one();
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}
