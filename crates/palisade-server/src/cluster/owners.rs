//! Rooms' owners on Redis (docs/ARCHITECTURE.md, "Cluster mode"): one
//! record every node shares, so a room has one owner in the cluster.
//!
//! A node's sessions decide on the node's view (core's `Owners::shared`);
//! the claim or release they make is then made here, atomically, before
//! the client's `ack`, and a lost claim is settled in the view. Every
//! write adds an entry to the change stream, from which every node's view
//! learns it (`cluster::changes`).
//!
//! `{guard}:owners` maps a room to `<since ms>|<user>`; `{guard}:owned`
//! counts each user's rooms, so `limits.max_owned_rooms_per_user` holds in
//! the cluster, not per node. Both share the change stream's hash tag, so
//! one script writes all three.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::ownership::{OwnerLimits, OwnerRecord};
use palisade_core::refusal::Refusal;
use redis::aio::ConnectionManager;

use super::{Keys, within};

/// The Lua both scripts start with: `changed(changes, room, value)` adds
/// the change to the stream (`value` empty: the room has no owner), which
/// is trimmed as the bans' entries are.
macro_rules! owner_changed_lua {
    () => {
        "local function changed(changes, room, value)
  redis.call('XADD', changes, 'MAXLEN', '~', 1000, '*', 'room', room, 'owner', value)
end
local function count(owned, value, by)
  local user = string.match(value, '^%d+|(.*)$')
  if redis.call('HINCRBY', owned, user, by) <= 0 then redis.call('HDEL', owned, user) end
end
"
    };
}

/// `claim`: makes ARGV[2] the owner of room ARGV[1] since ARGV[3] unless
/// the room has one (returned), the user owns ARGV[4] rooms (`1`) or
/// ARGV[5] rooms have owners (`2`); `0` when claimed. KEYS: owners,
/// owned, changes.
const CLAIM: &str = concat!(
    owner_changed_lua!(),
    r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then return held end
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[4]) then return 1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return 2 end
local value = ARGV[3] .. '|' .. ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], value)
count(KEYS[2], value, 1)
changed(KEYS[3], ARGV[1], value)
return 0
"
);

/// `set`: gives each room ARGV[i] the owner ARGV[i + 1] (`<since>|<user>`;
/// empty: none), whatever it had, keeping the counts; how many changed.
/// KEYS: owners, owned, changes.
pub(super) const SET: &str = concat!(
    owner_changed_lua!(),
    r"
local changes = 0
for i = 1, #ARGV, 2 do
  local room, value = ARGV[i], ARGV[i + 1]
  local held = redis.call('HGET', KEYS[1], room)
  if (held or '') ~= value then
    if held then count(KEYS[2], held, -1) end
    if value == '' then
      redis.call('HDEL', KEYS[1], room)
    else
      redis.call('HSET', KEYS[1], room, value)
      count(KEYS[2], value, 1)
    end
    changed(KEYS[3], room, value)
    changes = changes + 1
  end
end
return changes
"
);

/// The keys both scripts take: owners, owned, changes.
pub(super) fn with_keys<'c, 's>(
    call: &'c mut redis::ScriptInvocation<'s>,
    keys: &Keys,
) -> &'c mut redis::ScriptInvocation<'s> {
    call.key(keys.guard("owners")).key(keys.guard("owned")).key(keys.guard("changes"))
}

/// A record as stored: `<since ms>|<user>`.
pub(super) fn encode(record: &OwnerRecord) -> String {
    format!("{}|{}", record.since.as_millis(), record.owner)
}

/// A stored value of `room` read back; `None` if palisade did not write it.
pub(super) fn decode(room: &str, value: &str) -> Option<OwnerRecord> {
    let (since, owner) = value.split_once('|')?;
    let since = Timestamp::from_millis(since.parse().ok()?);
    (!owner.is_empty()).then(|| OwnerRecord { room: room.into(), owner: owner.into(), since })
}

/// Every owner record in `pairs` (an `HGETALL` of the owners); the rooms
/// whose value does not read back are named in the error.
pub(super) fn decode_all(pairs: Vec<(String, String)>) -> Result<Vec<OwnerRecord>, String> {
    pairs
        .into_iter()
        .map(|(room, value)| decode(&room, &value).ok_or_else(|| format!("room owner of {room:?}: corrupt {value:?}")))
        .collect()
}

/// What the shared record says of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SharedClaim {
    /// The claimant owns the room now.
    Claimed,
    /// This record holds it (the claimant's own, claimed before).
    Held(OwnerRecord),
    /// The claimant, or the cluster, owns as many rooms as the limits let.
    Full,
}

/// The shared owner record, on the message path's connection.
#[derive(Debug)]
pub(crate) struct RedisOwners {
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    limits: OwnerLimits,
    claim: redis::Script,
    set: redis::Script,
}

impl RedisOwners {
    pub(crate) fn new(conn: ConnectionManager, keys: Keys, timeout: Duration, limits: OwnerLimits) -> Self {
        Self { conn, keys, timeout, limits, claim: redis::Script::new(CLAIM), set: redis::Script::new(SET) }
    }

    /// Claims `room` for `user` at `now`.
    pub(crate) async fn claim(&self, room: &str, user: &str, now: Timestamp) -> Result<SharedClaim, Refusal> {
        let mut call = self.claim.prepare_invoke();
        with_keys(&mut call, &self.keys)
            .arg(room)
            .arg(user)
            .arg(now.as_millis())
            .arg(self.limits.per_user)
            .arg(self.limits.total);
        let mut conn = self.conn.clone();
        let reply: redis::Value = within(self.timeout, "room owner claim", call.invoke_async(&mut conn)).await?;
        match reply {
            redis::Value::Int(0) => Ok(SharedClaim::Claimed),
            redis::Value::Int(_) => Ok(SharedClaim::Full),
            held => {
                let value: String =
                    redis::from_redis_value(held).map_err(|e| super::unavailable("room owner claim", &e))?;
                decode(room, &value)
                    .map(SharedClaim::Held)
                    .ok_or_else(|| super::unavailable("room owner claim", &format_args!("corrupt owner of {room:?}")))
            }
        }
    }

    /// Takes `room`'s owner away (the room was deleted).
    pub(crate) async fn release(&self, room: &str) -> Result<(), Refusal> {
        let mut call = self.set.prepare_invoke();
        with_keys(&mut call, &self.keys).arg(room).arg("");
        let mut conn = self.conn.clone();
        within(self.timeout, "room owner release", call.invoke_async::<i64>(&mut conn)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cluster::testing::RedisServer;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    #[test]
    fn a_record_reads_back_and_a_foreign_value_does_not() {
        let record = OwnerRecord { room: "team:a".into(), owner: "alice|bob".into(), since: T0 };
        assert_eq!(decode("team:a", &encode(&record)), Some(record), "a user id may hold the separator");
        for odd in ["", "alice", "x|alice", "1|"] {
            assert_eq!(decode("r", odd), None, "{odd:?}");
        }
    }

    #[tokio::test]
    async fn one_claim_wins_in_the_cluster_within_the_limits_and_a_release_frees_the_room() {
        let Some(server) = RedisServer::start() else { return };
        let client = redis::Client::open(server.url()).unwrap();
        let limits = OwnerLimits { per_user: 2, total: 3 };
        let node = || async {
            let conn = ConnectionManager::new(client.clone()).await.unwrap();
            RedisOwners::new(conn, Keys::new("o"), Duration::from_secs(5), limits)
        };
        let (a, b) = (node().await, node().await);
        assert_eq!(a.claim("r1", "alice", T0).await.unwrap(), SharedClaim::Claimed);
        let alices = OwnerRecord { room: "r1".into(), owner: "alice".into(), since: T0 };
        assert_eq!(b.claim("r1", "bob", T0).await.unwrap(), SharedClaim::Held(alices.clone()), "another node");
        assert_eq!(b.claim("r1", "alice", T0).await.unwrap(), SharedClaim::Held(alices), "hers already");
        assert_eq!(b.claim("r2", "alice", T0).await.unwrap(), SharedClaim::Claimed);
        assert_eq!(a.claim("r3", "alice", T0).await.unwrap(), SharedClaim::Full, "two rooms per user, on any node");
        assert_eq!(a.claim("r3", "bob", T0).await.unwrap(), SharedClaim::Claimed);
        assert_eq!(a.claim("r4", "carol", T0).await.unwrap(), SharedClaim::Full, "three in the cluster");
        b.release("r1").await.unwrap();
        b.release("r1").await.unwrap();
        assert_eq!(a.claim("r3b", "alice", T0).await.unwrap(), SharedClaim::Claimed, "her quota came back, once");
        let mut conn = client.get_connection().unwrap();
        let pairs = redis::Commands::hgetall(&mut conn, Keys::new("o").guard("owners")).unwrap();
        let mut all: Vec<String> =
            decode_all(pairs).unwrap().into_iter().map(|r| format!("{}={}", r.room, r.owner)).collect();
        all.sort();
        assert_eq!(all, ["r2=alice", "r3=bob", "r3b=alice"]);

        // Each change is on the stream nodes learn from, in order.
        let range: redis::streams::StreamRangeReply =
            redis::Commands::xrange_all(&mut conn, Keys::new("o").guard("changes")).unwrap();
        let changes: Vec<(String, String)> =
            range.ids.iter().map(|e| (e.get::<String>("room").unwrap(), e.get::<String>("owner").unwrap())).collect();
        let at = T0.as_millis();
        let expected = [
            ("r1", format!("{at}|alice")),
            ("r2", format!("{at}|alice")),
            ("r3", format!("{at}|bob")),
            ("r1", String::new()),
            ("r3b", format!("{at}|alice")),
        ];
        assert_eq!(changes, expected.map(|(r, v)| (r.to_owned(), v)), "a release that changed nothing adds nothing");
    }
}
