//! Rooms' owners: core's record ([`Owners`]), which sessions decide by,
//! and the one task that writes its changes to the store, so a restart
//! keeps them (docs/ARCHITECTURE.md, "Room owners").

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ownership::{OwnerLimits, Owners};
use palisade_core::store::StoreError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::gateway::Store;

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The record and the writer's wake-up.
#[derive(Debug, Default)]
pub(crate) struct OwnerLedger {
    pub(crate) owners: Owners,
    wake: Notify,
}

impl OwnerLedger {
    /// An empty ledger within `limits`.
    pub(crate) fn new(limits: OwnerLimits) -> Self {
        Self { owners: Owners::new(limits), wake: Notify::new() }
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
