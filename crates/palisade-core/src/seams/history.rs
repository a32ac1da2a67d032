//! History reads: what a room keeps for `recover` (docs/ARCHITECTURE.md,
//! "Seams"). Appends are the commit step's, so an event is kept before
//! anyone can see its `seq`.

use super::Pending;
use crate::Timestamp;
use crate::history::Replay;
use crate::refusal::Refusal;

/// A room's newest `seq` and what it keeps after a client's last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept<F> {
    /// The room's newest `seq`: the next event's is above it.
    pub seq: u64,
    /// The kept events after `since`, oldest first, and whether they are
    /// all the events after it.
    pub replay: Replay<F>,
}

/// History reads. An implementation must keep this contract:
/// - `range` gives every event the room keeps with a `seq` above `since`,
///   oldest first, each exactly as members received it;
/// - `complete` is true only when those are all the events after `since`
///   (nothing expired, dropped, or given by an earlier life of the room),
///   and false for a `since` above the room's newest `seq`;
/// - the room need not have members, here or anywhere;
/// - `head` gives the room's newest `seq`: every event published after
///   the call has a greater one;
/// - `clear` forgets every event the room keeps, and its `seq` goes on:
///   `head` never goes back.
pub trait History: Send + Sync + std::fmt::Debug {
    /// The frames events are kept as.
    type Frame;

    /// What `room` keeps after `since`, at `now`.
    fn range<'a>(
        &'a self,
        room: &'a str,
        since: u64,
        now: Timestamp,
    ) -> Pending<'a, Result<Kept<Self::Frame>, Refusal>>;

    /// `room`'s newest `seq`, at `now`.
    fn head<'a>(&'a self, room: &'a str, now: Timestamp) -> Pending<'a, Result<u64, Refusal>>;

    /// Forgets what `room` keeps (the room was deleted).
    fn clear<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>>;
}
