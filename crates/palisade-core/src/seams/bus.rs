//! The bus: a room's events, from the node that committed them to every
//! node with members in the room, the committing node's own included
//! (docs/ARCHITECTURE.md, "Seams").

use super::Pending;
use crate::refusal::Refusal;

/// Where the bus hands a node the events of the rooms it subscribed to:
/// the node's own members of the room.
pub trait Deliver<F>: Send + Sync + std::fmt::Debug {
    /// Hands `frame`, event `seq` of `room`, to this node's members of
    /// `room`. Called in the room's `seq` order; must not block.
    fn deliver(&self, room: &str, seq: u64, frame: &F);

    /// The node may have missed events of `room` (its subscription was
    /// interrupted): its members here must recover what they missed.
    fn lost(&self, room: &str);
}

/// The bus. An implementation must keep this contract:
/// - once `subscribe(room)` resolves, every event of `room` published
///   after it, by any node, reaches this node's [`Deliver`], until as many
///   `unsubscribe(room)` calls as `subscribe` calls;
/// - a node gets nothing of a room it is not subscribed to;
/// - every node hears a room's events in one order, the order the broker
///   received them (the commit step publishes under the room's `seq`, so
///   that is `seq` order), and one node's publishes reach each node in the
///   order it made them;
/// - the publishing node gets its own events through its [`Deliver`], the
///   same path as every other node: there is no shortcut to be out of
///   order with;
/// - `publish` and `unsubscribe` never wait on the network: a cluster's
///   implementation hands them on in the background, in call order, so
///   events may still come for a while after the last `unsubscribe`, but
///   not after a later `subscribe` of the same node resolves;
/// - a `subscribe` dropped before it resolves counts nothing.
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// The frames events travel as.
    type Frame;

    /// Subscribes this node to `room`, counted.
    fn subscribe<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>>;

    /// Takes back one `subscribe(room)`.
    fn unsubscribe(&self, room: &str);

    /// Publishes `frame`, event `seq` of `room`, to every node subscribed
    /// to the room.
    fn publish(&self, room: &str, seq: u64, frame: Self::Frame);

    /// Whether the node hears its rooms now: false while a cluster's
    /// subscriber connection is away (`/readyz` says so).
    fn ready(&self) -> bool;
}
