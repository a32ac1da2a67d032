//! The control channel: what an operator or the guard asks of live
//! connections, wherever they are (docs/ARCHITECTURE.md, "Seams").

use palisade_protocol::CloseCode;

use crate::guard::Subject;

/// Which live connections a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every connection of an address or a user.
    Subject(&'a Subject),
    /// One connection, by its id `<node>-<n>`.
    Conn(&'a str),
    /// Every connection.
    All,
}

/// What they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close with this code.
    Close(CloseCode),
    /// Check the token against the revocations (close with 4003 if it is
    /// revoked).
    Revalidate,
    /// Leave the rooms the policy no longer allows.
    Recheck,
}

/// Whose membership of a room ends, and why (what their clients are told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving<'a> {
    /// Every member: the room was deleted (`removed`, reason `deleted`).
    Everyone,
    /// Every connection of this user: the room's owner removed them
    /// (`removed`, reason `removed_by_owner`).
    User(&'a str),
}

/// The control channel. An implementation must keep this contract:
/// - a command reaches every live connection its target names on this
///   node before `send` returns, and, on a cluster, on every other node
///   soon after (the cluster's documented bound), and no other connection;
/// - a connection id names at most one connection in the cluster, and an
///   id of another node reaches nothing here;
/// - `send` never waits on the network: a cluster's implementation hands
///   the command to other nodes in the background.
pub trait ControlChannel: Send + Sync + std::fmt::Debug {
    /// Sends `command` to `target`; how many connections of this node
    /// were asked.
    fn send(&self, target: Target<'_>, command: Command) -> usize;

    /// Asks the members of `room` that `who` names to leave it, under the
    /// same contract as `send`; how many connections of this node were
    /// asked.
    fn leave(&self, room: &str, who: Leaving<'_>) -> usize;
}
