//! What one client frame becomes: the session's answer, for the server to
//! perform.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::guard::{Escalation, Rate};
use crate::history::HistoryRule;
use crate::ownership::OwnerRecord;
use crate::refusal::Refusal;
use crate::replay::NonceClaim;

/// What one client frame becomes.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Add the connection to `room`, then acknowledge with the room's
    /// `seq`. Idempotent.
    Join {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (validated).
        room: Cow<'a, str>,
        /// The join made the user the room's owner (`owners =
        /// "first_join"`): the owners have a change to store.
        claimed: bool,
    },
    /// Add the connection to `room` (as [`Decision::Join`]) and replay the
    /// room's kept events after `since`, then acknowledge with the room's
    /// `seq` and whether the replay was complete.
    Recover {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (validated; the connection may join it).
        room: Cow<'a, str>,
        /// The last `seq` the client saw.
        since: u64,
        /// As for [`Decision::Join`].
        claimed: bool,
    },
    /// The user now owns `room` (a change for the store unless it owned it
    /// already) and joins it: as [`Decision::Join`].
    Create {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (validated; the connection may join it).
        room: Cow<'a, str>,
        /// The room had no owner before (a change to store).
        claimed: bool,
    },
    /// `room` has no owner any more (a change for the store): remove every
    /// member, with `removed` (`deleted`), drop its history, then
    /// acknowledge.
    DeleteRoom {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
        /// The owner it had, to put back if a cluster's shared store
        /// cannot record the deletion.
        owner: Option<OwnerRecord>,
    },
    /// Remove every connection of `user` from `room`, with `removed`
    /// (`removed_by_owner`), then acknowledge.
    RemoveMember {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
        /// The user to remove.
        user: Cow<'a, str>,
    },
    /// Remove the connection from `room`, then acknowledge.
    Leave {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Broadcast `data` as `event` in `room`, then acknowledge with the seq.
    Publish {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (the connection is a member).
        room: Cow<'a, str>,
        /// Event name (declared).
        event: Cow<'a, str>,
        /// Payload after validation and sanitizing, serialized once.
        data: Box<RawValue>,
        /// How much of the room's history keeps the event, from the same
        /// policy that accepted it.
        history: HistoryRule,
        /// The client message id to mark sent with the event's seq
        /// (`ClientIds::sent`), when it was remembered (and to forget if
        /// the commit step refuses).
        cid: Option<Cow<'a, str>>,
        /// The event's own rate, for the commit step (step 8).
        rate: Option<Rate>,
        /// The replay nonce to spend, for the commit step (step 11).
        nonce: Option<NonceClaim<'a>>,
    },
    /// A resend of a `cid` already published: acknowledge with its `seq`
    /// (`None` while the first is still being published) and
    /// `duplicate: true`, publish nothing.
    Duplicate {
        /// Correlation id.
        id: Cow<'a, str>,
        /// The first one's seq.
        seq: Option<u64>,
    },
    /// The token was replaced: remove the connection from `removed` (rooms
    /// the new token may not be in), tell the client, then acknowledge.
    Refreshed {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Rooms the session left because the new token lacks the right.
        removed: Vec<Box<str>>,
    },
    /// Refuse the request with an error frame, then perform the
    /// escalation (the refusal has been fed to the guard's scores).
    Reject(Refusal, Escalation),
    /// A `refresh` token names an external issuer whose key set lacks its
    /// key (or holds it stale): fetch the set if due, then hand the same
    /// frame to [`Session::resume`]. Asked only once the frame has passed
    /// the message rate, so a flood of such frames costs the server no
    /// more than any other flood (docs/ARCHITECTURE.md, "External issuers").
    KeysWanted {
        /// The token whose key is wanted.
        token: Cow<'a, str>,
    },
}
