//! The commit step on Redis (`seams::Commit`, docs/ARCHITECTURE.md,
//! "Cluster mode"): one script call per message (`commit.lua`) makes the
//! shared checks, gives the `seq`, keeps the event and publishes it, all
//! at once, so every node hears a room's events in `seq` order and a
//! refusal changes nothing. Redis's own clock (`TIME`) times the rates, so
//! nodes' clocks do not matter to them.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::guard::Guard;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::replay::ReplayError;
use palisade_core::seams::{Claim, Commit, Committed, Outgoing, Pending};
use palisade_core::store::NonceRefused;
use palisade_protocol::{EventFrame, ServerFrame};
use redis::aio::ConnectionManager;

use super::{Keys, within};

/// How long a room's record outlives its last event at least. A room
/// started again after it expired starts from the clock, above it.
const ROOM_TTL: Duration = Duration::from_secs(24 * 3600);

/// The nonce store's bounds (`replay.max_nonces_per_user`,
/// `replay.max_nonces`), shared by the cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NonceLimits {
    pub(crate) per_user: usize,
    pub(crate) total: usize,
}

/// The Redis commit step.
#[derive(Debug)]
pub(crate) struct RedisCommit {
    conn: ConnectionManager,
    keys: Keys,
    guard: Arc<Guard>,
    nonces: NonceLimits,
    timeout: Duration,
    script: redis::Script,
}

impl RedisCommit {
    /// A commit step on `conn`, its rates divided as `guard`'s for
    /// restricted users, each call given `timeout`.
    pub(crate) fn new(
        conn: ConnectionManager,
        keys: Keys,
        guard: Arc<Guard>,
        nonces: NonceLimits,
        timeout: Duration,
    ) -> Self {
        Self { conn, keys, guard, nonces, timeout, script: redis::Script::new(include_str!("commit.lua")) }
    }

    async fn commit_now(&self, claim: Claim<'_>, event: Outgoing<'_>) -> Result<Committed, Refusal> {
        let (head, tail) =
            halves(event.frame(&claim, 0)).ok_or_else(|| Refusal::new(Kind::Internal, "event frame without a seq"))?;
        let settings = self.guard.settings();
        let (interval, tolerance) = match claim.rate {
            Some(rate) if claim.restricted => rate.divided(settings.restrict_divisor).gcra_params(),
            Some(rate) => rate.gcra_params(),
            None => (0, 0),
        };
        let keys = &self.keys;
        let mut call = self.script.prepare_invoke();
        call.key(keys.event_rate(claim.user, claim.event))
            .key(keys.nonces(claim.user, "set"))
            .key(keys.nonces(claim.user, "ts"))
            .key(keys.shared("nonce-users"))
            .key(keys.shared("nonce-count"))
            .key(keys.shared("nonce-floor"))
            .key(keys.room(claim.room))
            .key(keys.history(claim.room))
            .arg(interval)
            .arg(tolerance)
            .arg(u8::from(settings.dry_run));
        match &claim.nonce {
            Some(nonce) => call.arg(&*nonce.nonce).arg(nonce.ts.as_millis()).arg(nonce.keep_until.as_millis()),
            None => call.arg("").arg(0).arg(0),
        };
        call.arg(self.nonces.per_user)
            .arg(self.nonces.total)
            .arg(keys.nonces_of())
            .arg(claim.history.keep)
            .arg(millis(claim.history.ttl))
            .arg(millis(ROOM_TTL.max(claim.history.ttl)))
            .arg(head)
            .arg(tail)
            .arg(keys.events(claim.room))
            .arg(claim.user);
        let mut conn = self.conn.clone();
        let (code, value, unenforced): (i64, i64, i64) =
            within(self.timeout, "commit", call.invoke_async(&mut conn)).await?;
        let wait = Duration::from_micros(u64::try_from(value).unwrap_or(0));
        let nonce = |refused| Err(Refusal::from(ReplayError::Store(refused)));
        match code {
            0 => Ok(Committed {
                seq: u64::try_from(value).unwrap_or(0),
                unenforced: u64::try_from(unenforced).ok().map(|us| rate_refusal(Duration::from_micros(us))),
            }),
            1 => Err(rate_refusal(wait)),
            2 => nonce(NonceRefused::Seen),
            3 => nonce(NonceRefused::Forgotten),
            4 => nonce(NonceRefused::UserFull),
            5 => nonce(NonceRefused::StoreFull),
            other => Err(Refusal::new(Kind::Internal, format!("commit script answered {other}"))),
        }
    }
}

impl Commit for RedisCommit {
    fn commit<'a>(
        &'a self,
        claim: Claim<'a>,
        event: Outgoing<'a>,
        _now: Timestamp,
    ) -> Pending<'a, Result<Committed, Refusal>> {
        Box::pin(self.commit_now(claim, event))
    }
}

/// What the guard says of an event over its rate, for the same wait.
fn rate_refusal(wait: Duration) -> Refusal {
    Refusal::new(Kind::RateExcess, "event rate exceeded").retry_after(wait)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The event frame before and after its `seq`, for the script to put the
/// `seq` between: the frame serialized with `seq` 0, cut there. The room
/// is the only field before it, and room names are ASCII with nothing to
/// escape, so the first `"seq":0` is the field.
fn halves(frame: EventFrame<'_>) -> Option<(String, String)> {
    const FIELD: &str = "\"seq\":";
    let text = ServerFrame::Event(EventFrame { seq: 0, ..frame }).to_json();
    let at = text.find("\"seq\":0")? + FIELD.len();
    Some((text[..at].to_owned(), text[at + 1..].to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use palisade_core::seams::{Bus, Deliver};
    use palisade_protocol::Identity;
    use serde_json::value::RawValue;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;
    use crate::cluster::bus::RedisBus;
    use crate::cluster::history::RedisHistory;
    use crate::cluster::testing::RedisServer;
    use crate::commit::conformance;
    use crate::config::{Config, Source};
    use crate::hub::Hub;

    #[test]
    fn the_halves_around_the_seq_make_the_frame() {
        let data = RawValue::from_string(r#"{"text":"\"seq\":0 and 7"}"#.to_owned()).unwrap();
        let frame = || EventFrame {
            room: "r",
            seq: 1_700_000_000_000_001,
            event: "chat.message",
            from: Identity { id: "u\"1", name: "\"seq\":0" },
            data: &data,
            ts: 5,
        };
        let whole = ServerFrame::Event(frame()).to_json();
        let (head, tail) = halves(frame()).unwrap();
        assert_eq!(format!("{head}1700000000000001{tail}"), whole);
    }

    #[tokio::test]
    async fn the_redis_commit_history_and_bus_pass_the_conformance_suite() {
        let Some(server) = RedisServer::start() else { return };
        let client = redis::Client::open(server.url()).unwrap();
        let conn = ConnectionManager::new(client.clone()).await.unwrap();
        let config = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
        let guard = Arc::new(Guard::new(config.abuse.settings().unwrap()));
        let keys = Keys::new("conformance");
        let timeout = Duration::from_secs(5);
        let limits = NonceLimits { per_user: 10, total: 100 };
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let hub = Arc::new(Hub::default());
            let sink = Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>;
            let clock = Arc::new(crate::cluster::ClockCheck::new(Duration::from_secs(1)));
            let bus = RedisBus::connect(&client, conn.clone(), keys.clone(), sink, timeout, None, clock).await.unwrap();
            let node = conformance::Node {
                commit: Box::new(RedisCommit::new(conn.clone(), keys.clone(), Arc::clone(&guard), limits, timeout)),
                history: Box::new(RedisHistory::new(conn.clone(), keys.clone(), timeout)),
                bus: Arc::new(bus) as Arc<dyn Bus<Frame = Utf8Bytes>>,
            };
            nodes.push((hub, node));
        }
        conformance::run(nodes.try_into().unwrap()).await;
    }
}
