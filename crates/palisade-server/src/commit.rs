//! The commit step on one node (`seams::Commit`, docs/ARCHITECTURE.md,
//! "Seams"): the event's rate and the replay nonce checked against this
//! process's guard and nonce store (core's `seams::commit::check`), then
//! the hub gives the event the room's next `seq`, keeps it and queues it
//! for every member, under the room's lock, so members see `seq` order.
//! It answers at once: awaiting it never holds a connection's queue.

use std::sync::Arc;

use palisade_core::Timestamp;
use palisade_core::guard::Guard;
use palisade_core::refusal::Refusal;
use palisade_core::seams::{Claim, Commit, Committed, Outgoing, Pending, commit};
use palisade_core::store::MemoryNonces;
use palisade_protocol::{EventFrame, Identity, ServerFrame};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::Hub;

/// The memory commit step.
#[derive(Debug)]
pub(crate) struct LocalCommit {
    pub(crate) hub: Arc<Hub>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) nonces: MemoryNonces,
}

impl LocalCommit {
    fn commit_now(&self, claim: &Claim<'_>, event: &Outgoing<'_>, now: Timestamp) -> Result<Committed, Refusal> {
        let unenforced = commit::check(claim, &self.guard, &self.nonces, now)?;
        let seq = self.hub.publish(claim.room, claim.history, now, |seq| {
            let frame = EventFrame {
                room: claim.room,
                seq,
                event: claim.event,
                from: Identity { id: event.from_id, name: event.from_name },
                data: event.data,
                ts: event.ts.as_millis(),
            };
            Utf8Bytes::from(ServerFrame::Event(frame).to_json())
        });
        Ok(Committed { seq, unenforced })
    }
}

impl Commit for LocalCommit {
    fn commit<'a>(
        &'a self,
        claim: Claim<'a>,
        event: Outgoing<'a>,
        now: Timestamp,
    ) -> Pending<'a, Result<Committed, Refusal>> {
        Box::pin(std::future::ready(self.commit_now(&claim, &event, now)))
    }
}
