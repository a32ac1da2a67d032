//! Cluster mode on Redis (docs/ARCHITECTURE.md, "Cluster mode"): the
//! seams of the message path implemented on one Redis primary, so nodes
//! that share it behave as one server. Each passes the same conformance
//! suite as the memory implementation, against a real `redis-server`.

use std::time::Duration;

use palisade_core::refusal::{Kind, Refusal};

pub(crate) mod bus;
pub(crate) mod channel;
pub(crate) mod commit;
pub(crate) mod history;
pub(crate) mod store;
#[cfg(test)]
pub(crate) mod testing;

/// The names of a cluster's keys and channels, under one prefix
/// (`store.prefix`). A room's keys share a hash tag, and so do a user's,
/// so each group would sit in one slot of a Redis Cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: Box<str>,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.into() }
    }

    /// A room's record: `seq`, `seed` (the `seq` its life started after)
    /// and `ttl` (its history's, in milliseconds).
    fn room(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}", self.prefix)
    }

    /// A room's kept events, a stream with ids `<seq>-0`.
    fn history(&self, room: &str) -> String {
        format!("{}:history:{{{room}}}", self.prefix)
    }

    /// The channel a room's events are published on.
    fn events(&self, room: &str) -> String {
        format!("{}:events:{{{room}}}", self.prefix)
    }

    /// The channel nodes send each other control commands on.
    fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// The room a channel of [`Keys::events`] is for.
    fn room_of_channel<'c>(&self, channel: &'c str) -> Option<&'c str> {
        channel.strip_prefix(&*self.prefix)?.strip_prefix(":events:{")?.strip_suffix('}')
    }

    /// A user's limiter for one event.
    fn event_rate(&self, user: &str, event: &str) -> String {
        format!("{}:rate:{{{user}}}:{event}", self.prefix)
    }

    /// What comes before a user's name in the keys of its nonces.
    fn nonces_of(&self) -> String {
        format!("{}:nonce:{{", self.prefix)
    }

    /// A user's nonces: `<nonces_of><user>}:set` (by keep-until) and
    /// `…:ts` (their timestamps).
    fn nonces(&self, user: &str, part: &str) -> String {
        format!("{}{user}}}:{part}", self.nonces_of())
    }

    /// A key shared by every user (the nonce count, the forgotten floor,
    /// the users with live nonces).
    fn shared(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// One of the bans' and revocations' keys (`cluster::store`): `bans`,
    /// `ban-history`, `revocations`, `version`. They share a hash tag, so
    /// each script's keys sit in one slot.
    fn guard(&self, name: &str) -> String {
        format!("{}:{{guard}}:{name}", self.prefix)
    }
}

/// What a client is told when Redis does not answer in time: retry soon.
fn unavailable(what: &str, e: &dyn std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "redis: {what} failed");
    Refusal::new(Kind::Internal, "shared state unavailable").retry_after(Duration::from_secs(1))
}

/// Runs `call` within `timeout`, as a refusal when it fails or is late.
async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Refusal> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unavailable(what, &e)),
        Err(_) => Err(unavailable(what, &format_args!("no answer within {timeout:?}"))),
    }
}
