//! The seams the message path reaches state through that a cluster shares
//! (docs/ARCHITECTURE.md, "Seams"). Core defines them and never calls
//! them: the server implements them in memory for one node, and cluster
//! mode on Redis implements the same traits.
//!
//! A call returns a boxed future, so a backend that needs the network has
//! the same signature as one that answers at once, and the traits stay
//! object safe without an async runtime in core.

use std::future::Future;
use std::pin::Pin;

use crate::refusal::{Kind, Refusal};

pub mod bus;
pub mod channel;
pub mod commit;
pub mod history;

pub use crate::replay::NonceClaim;
pub use bus::{Bus, Deliver};
pub use channel::{Command, ControlChannel, Leaving, Target};
pub use commit::{Claim, Commit, Committed, Outgoing};
pub use history::{History, Kept};

/// What a seam's call resolves to.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a node does with a handshake while it cannot reach the state it
/// shares with other nodes (`store.fail_mode`, docs/CONFIG.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Admit on the node's own copy of the bans and revocations, which is
    /// as current as any while no node can write the shared one, and its
    /// own connection limits.
    #[default]
    Open,
    /// Refuse (503 `unavailable`, try again in a second).
    Closed,
}

impl FailMode {
    /// A handshake's verdict, given whether the shared state answers.
    pub fn admit(self, shared_ready: bool) -> Result<(), Refusal> {
        match self {
            Self::Closed if !shared_ready => {
                Err(Refusal::new(Kind::Unavailable, "shared state unreachable (store.fail_mode = closed)")
                    .retry_after(std::time::Duration::from_secs(1)))
            }
            Self::Open | Self::Closed => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_node_without_its_shared_state_refuses_and_says_when_to_retry() {
        assert_eq!(FailMode::Open.admit(false), Ok(()));
        assert_eq!(FailMode::Open.admit(true), Ok(()));
        assert_eq!(FailMode::Closed.admit(true), Ok(()));
        let refused = FailMode::Closed.admit(false).unwrap_err();
        assert_eq!((refused.kind, refused.kind.status()), (Kind::Unavailable, 503));
        assert_eq!(refused.retry_after, Some(std::time::Duration::from_secs(1)));
    }
}
