//! History reads on Redis (`seams::History`, docs/ARCHITECTURE.md,
//! "Cluster mode"): a room's record and its stream, read by one script
//! (`range.lua`) so the `seq` and the events agree.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::history::{Replay, SEQ_PER_MS};
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::seams::{History, Kept, Pending};
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Keys, within};

/// Most events one read returns. A room keeps at most its `history`
/// (`rooms."<pattern>".history`); a read cut short says it is not complete.
const MAX_EVENTS: usize = 10_000;

/// The Redis history.
#[derive(Debug)]
pub(crate) struct RedisHistory {
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    script: redis::Script,
}

impl RedisHistory {
    pub(crate) fn new(conn: ConnectionManager, keys: Keys, timeout: Duration) -> Self {
        Self { conn, keys, timeout, script: redis::Script::new(include_str!("range.lua")) }
    }

    async fn range_now(&self, room: &str, since: u64) -> Result<Kept<Utf8Bytes>, Refusal> {
        let mut call = self.script.prepare_invoke();
        call.key(self.keys.room(room))
            .key(self.keys.history(room))
            .arg(format!("{}-0", since.saturating_add(1)))
            .arg(MAX_EVENTS);
        let mut conn = self.conn.clone();
        let reply: redis::Value = within(self.timeout, "history read", call.invoke_async(&mut conn)).await?;
        read_reply(reply, since)
            .ok_or_else(|| Refusal::new(Kind::Internal, "history read answered in an unknown shape"))
    }
}

impl History for RedisHistory {
    type Frame = Utf8Bytes;

    fn range<'a>(
        &'a self,
        room: &'a str,
        since: u64,
        _now: Timestamp,
    ) -> Pending<'a, Result<Kept<Utf8Bytes>, Refusal>> {
        Box::pin(self.range_now(room, since))
    }

    fn head<'a>(&'a self, room: &'a str, _now: Timestamp) -> Pending<'a, Result<u64, Refusal>> {
        // The events after u64::MAX: none, with the room's seq.
        Box::pin(async move { Ok(self.range_now(room, u64::MAX - 1).await?.seq) })
    }

    fn clear<'a>(&'a self, room: &'a str) -> Pending<'a, Result<(), Refusal>> {
        // The stream only: the room's record keeps its `seq`, which goes on.
        let mut conn = self.conn.clone();
        let key = self.keys.history(room);
        Box::pin(async move { within(self.timeout, "history clear", conn.del::<_, ()>(key)).await })
    }
}

/// What `range.lua` answered, for a read after `since`.
fn read_reply(reply: redis::Value, since: u64) -> Option<Kept<Utf8Bytes>> {
    let redis::Value::Array(items) = reply else { return None };
    let mut items = items.into_iter();
    let now_ms: u64 = number(items.next()?)?;
    let Some(seq) = items.next() else {
        // No record: the room's next life starts from the clock, above
        // this (the commit seeds it at its own, later, instant).
        let seq = now_ms.saturating_mul(SEQ_PER_MS);
        return Some(Kept { seq, replay: Replay { events: Vec::new(), complete: since == seq } });
    };
    let seq: u64 = number(seq)?;
    let ttl_ms: u64 = number(items.next()?)?;
    let mut kept = Vec::new();
    for entry in items {
        let redis::Value::Array(entry) = entry else { return None };
        let [id, frame, at] = <[redis::Value; 3]>::try_from(entry).ok()?;
        let id: String = redis::from_redis_value(id).ok()?;
        let entry_seq: u64 = id.strip_suffix("-0")?.parse().ok()?;
        let frame: String = redis::from_redis_value(frame).ok()?;
        let at: u64 = number(at)?;
        kept.push((entry_seq, at, frame));
    }
    // Expired events are lost: the live ones are what follows the last
    // expired (events are kept in time order).
    let live: Vec<(u64, String)> =
        kept.into_iter().filter(|(_, at, _)| at.saturating_add(ttl_ms) > now_ms).map(|(s, _, f)| (s, f)).collect();
    let complete = since == seq
        || (since < seq
            && live.first().is_some_and(|(first, _)| *first == since + 1)
            && live.last().is_some_and(|(last, _)| *last == seq));
    let events = live.into_iter().map(|(_, frame)| Utf8Bytes::from(frame)).collect();
    Some(Kept { seq, replay: Replay { events, complete } })
}

/// A number the script gave as a string or an integer.
fn number(value: redis::Value) -> Option<u64> {
    match value {
        redis::Value::Int(n) => u64::try_from(n).ok(),
        other => redis::from_redis_value::<String>(other).ok()?.parse().ok(),
    }
}
