//! State shared by every task of one server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use palisade_core::Timestamp;
use palisade_core::store::MemoryNonces;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::settings::Settings;
use crate::ws::hub::Hub;

/// Shared server state, passed as `Arc<AppState>`.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    pub(crate) hub: Hub,
    /// Replay nonces seen by this node.
    pub(crate) nonces: MemoryNonces,
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    open: AtomicUsize,
}

impl AppState {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            nonces: MemoryNonces::new(settings.config.replay.max_nonces, settings.config.replay.max_nonces_per_user),
            settings,
            hub: Hub::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            open: AtomicUsize::new(0),
        }
    }

    /// Reserves a connection slot, or `None` at `limits.max_connections`.
    /// The slot is held from the upgrade answer until the socket closes.
    pub(crate) fn reserve_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.settings.config.limits.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }

    /// Open WebSocket connections.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One reserved connection slot; released on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The wall clock, read in one place.
pub(crate) fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}
