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

pub mod bus;
pub mod channel;
pub mod commit;
pub mod history;

pub use crate::replay::NonceClaim;
pub use bus::{Bus, Deliver};
pub use channel::{Command, ControlChannel, Target};
pub use commit::{Claim, Commit, Committed, Outgoing};
pub use history::{History, Kept};

/// What a seam's call resolves to.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
