//! Putting revocations in force: the list every handshake and live
//! connection checks, replaced by fresher reads of the store, and every
//! live connection asked to check its token again when it grew.
//!
//! A service, not a handler: the store poll and the endpoints that write
//! revocations both come through here.

use std::sync::Arc;

use palisade_core::auth::{Revocation, RevocationMark, Revocations};
use palisade_core::seams::{Command, ControlChannel, Target};
use tracing::{error, info};

use crate::gateway::Store;

/// The revocations in force, and what applying a new list needs.
#[derive(Debug)]
pub(crate) struct Revoker {
    revocations: Arc<Revocations>,
    channel: Arc<dyn ControlChannel>,
    store: Arc<dyn Store>,
}

impl Revoker {
    pub(crate) fn new(revocations: Arc<Revocations>, channel: Arc<dyn ControlChannel>, store: Arc<dyn Store>) -> Self {
        Self { revocations, channel, store }
    }

    /// Puts `list`, read after `mark`, in force unless a newer read is;
    /// if it revoked anything new, every live connection checks its token
    /// again (and closes with 4003 if revoked).
    pub(crate) fn apply(&self, list: Vec<Revocation>, mark: RevocationMark) {
        if self.revocations.replace_read(list, mark) {
            let asked = self.channel.send(Target::All, Command::Revalidate);
            info!(asked, "revocations changed: live connections check their tokens");
        }
    }

    /// Reads the revocations again after this process wrote some (a
    /// logout, a reused refresh token): the store's change counter moves
    /// only for other processes' writes, so the store poll would not see
    /// them.
    pub(crate) async fn reload(&self) {
        let mark = self.revocations.mark();
        match crate::gateway::call("revocations_read", &self.store, |store| store.revocations()).await {
            Ok(list) => self.apply(list, mark),
            Err(e) => error!(error = %e, "cannot read the revocations; the poll will retry"),
        }
    }
}
