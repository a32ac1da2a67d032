//! Cluster mode on Redis (docs/ARCHITECTURE.md, "Cluster mode"): the
//! seams of the message path implemented on one Redis primary, so nodes
//! that share it behave as one server. Each passes the same conformance
//! suite as the memory implementation, against a real `redis-server`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_core::refusal::{Kind, Refusal};

use crate::config::Config;

pub(crate) mod bus;
pub(crate) mod changes;
pub(crate) mod channel;
pub(crate) mod commit;
pub(crate) mod history;
pub(crate) mod owners;
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

/// The Redis client `[store]` names: `redis://`, or `rediss://` trusting
/// the system's roots or `store.redis_ca_file`'s. Nothing is dialled yet.
/// Errors never show the URL, which may hold a password.
pub(crate) fn client(config: &Config) -> Result<redis::Client, String> {
    let store = &config.store;
    let opened = if store.redis_ca_file.is_empty() {
        redis::Client::open(store.redis_url.as_str())
    } else {
        let path = config.base_dir.join(&store.redis_ca_file);
        let root_cert = std::fs::read(&path).map_err(|e| format!("store.redis_ca_file {}: {e}", path.display()))?;
        redis::Client::build_with_tls(
            store.redis_url.as_str(),
            redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) },
        )
    };
    opened.map_err(|e| format!("Redis (store.redis_url): {e}"))
}

/// This node's clock against Redis's (`TIME`), as last measured: a node
/// whose clock is further off than `store.max_clock_skew` is not ready, for
/// tokens' `exp` and the replay window are judged by each node's clock
/// while rates and `seq` seeds are judged by Redis's.
#[derive(Debug)]
pub(crate) struct ClockCheck {
    skew_ms: AtomicU64,
    max: Duration,
}

impl ClockCheck {
    pub(crate) fn new(max: Duration) -> Self {
        Self { skew_ms: AtomicU64::new(0), max }
    }

    fn record(&self, skew: Duration) {
        self.skew_ms.store(u64::try_from(skew.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The last skew measured.
    pub(crate) fn skew(&self) -> Duration {
        Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Whether the last skew measured is within `store.max_clock_skew`.
    pub(crate) fn within(&self) -> bool {
        self.skew() <= self.max
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_within_the_clock_bound_until_a_skew_above_it_is_measured() {
        let check = ClockCheck::new(Duration::from_secs(1));
        assert!(check.within(), "nothing measured yet");
        check.record(Duration::from_millis(1_000));
        assert!(check.within());
        check.record(Duration::from_millis(1_001));
        assert!(!check.within());
        check.record(Duration::from_millis(3));
        assert!(check.within(), "fixed, ready again");
    }
}
