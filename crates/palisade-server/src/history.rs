//! History reads on one node (`seams::History`, docs/ARCHITECTURE.md,
//! "Seams"): the hub's rooms keep their events (`core::history::Ring`), and
//! a read answers at once.

use std::sync::Arc;

use palisade_core::Timestamp;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{History, Kept, Pending};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::Hub;

/// The memory history.
#[derive(Debug)]
pub(crate) struct LocalHistory {
    pub(crate) hub: Arc<Hub>,
}

impl History for LocalHistory {
    type Frame = Utf8Bytes;

    fn range<'a>(&'a self, room: &'a str, since: u64, now: Timestamp) -> Pending<'a, Result<Kept<Utf8Bytes>, Refusal>> {
        let (seq, replay) = self.hub.range(room, since, now);
        Box::pin(std::future::ready(Ok(Kept { seq, replay })))
    }

    fn head<'a>(&'a self, room: &'a str, now: Timestamp) -> Pending<'a, Result<u64, Refusal>> {
        Box::pin(std::future::ready(Ok(self.hub.head(room, now))))
    }

    fn clear<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>> {
        self.hub.clear_history(room);
        Box::pin(std::future::ready(Ok(())))
    }
}
