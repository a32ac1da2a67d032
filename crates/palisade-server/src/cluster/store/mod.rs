//! Bans, revocations, users, login sessions and rooms' owners on Redis
//! (docs/ARCHITECTURE.md, "Cluster mode"): [`RedisShared`] implements
//! core's `BanStore`, `RevocationStore`, `UserStore` (`users`),
//! `SessionStore` (`sessions`) and `OwnerStore` (`owners`) so every node
//! reads and writes one copy, and [`ClusterStore`] (`composite`) puts it
//! beside the node's own SQLite file, which keeps the audit chain.
//!
//! The cold path: every call comes through `gateway::call` on a blocking
//! thread, so one synchronous connection behind a mutex suits it, opened
//! at the first call and again after any failure. A node notices other
//! nodes' writes the way it notices the CLI's: `server::follow` polls
//! [`BanStore::version`], a counter every write here bumps.
//!
//! Records are JSON (bans, the history) or `<before>|<created>|<reason>`
//! (revocations), so `redis-cli` reads them; a record that does not parse
//! back is an error naming it, never skipped. Read-modify-writes are Lua
//! scripts, atomic in Redis.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, check_jti, user_revocation};
use palisade_core::guard::{Ban, BanSource, Subject};
use palisade_core::store::{BanAction, BanRecord, BanStore, EndReason, RevocationStore, SessionStore as _, StoreError};
use redis::Commands as _;
use serde::{Deserialize, Serialize};

use super::Keys;

mod composite;
mod memory;
mod owners;
mod sessions;
mod throttle;
mod users;

pub(crate) use composite::ClusterStore;
pub(crate) use throttle::RedisThrottle;

/// The Lua every write script of the bans and revocations starts with:
/// `changed(version, changes)` moves the version nodes reload by and adds
/// an entry to the change stream their readers block on
/// (`cluster::changes`), trimmed to about a thousand: an entry only wakes
/// them. [`changed`] is the same for a pipeline.
macro_rules! changed_lua {
    () => {
        "local function changed(version, changes)
  redis.call('INCR', version)
  redis.call('XADD', changes, 'MAXLEN', '~', 1000, '*', 'v', '1')
end
"
    };
}

/// Adds to `writes` what [`changed_lua`] does in a script.
pub(super) fn changed(writes: &mut redis::Pipeline, keys: &Keys) {
    writes
        .incr(keys.guard("version"), 1)
        .ignore()
        .cmd("XADD")
        .arg(keys.guard("changes"))
        .arg("MAXLEN")
        .arg("~")
        .arg(1000)
        .arg("*")
        .arg("v")
        .arg("1")
        .ignore();
}

/// How long connecting, and then each reply, may take. Longer than
/// `store.timeout` (the message path's): nothing waits on these but an
/// operator or a background task, and a slow answer beats a failed ban.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How many history records one read of the list fetches while looking
/// for one subject's.
const HISTORY_PAGE: isize = 1000;

/// `put`: stores a ban and appends it to the history, unless core's
/// `Ban::replaces` says the ban in force stands (an automatic ban never
/// shortens one still in force; the script repeats that rule, which the
/// store conformance suite checks on both stores). The version moves
/// either way, so the writer reloads what stands.
/// KEYS: bans, history, version, changes. ARGV: subject, ban, history
/// record, `auto` or not, since, until (empty: permanent).
const PUT: &str = concat!(
    changed_lua!(),
    r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
changed(KEYS[3], KEYS[4])
if old and ARGV[4] == 'auto' then
  local u = cjson.decode(old)['until']
  local in_force = u == cjson.null or u > tonumber(ARGV[5])
  if in_force and (u == cjson.null or (ARGV[6] ~= '' and u >= tonumber(ARGV[6]))) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
return 1
"
);

/// `lift`: removes a ban and appends the lift, with the ban it lifted,
/// to the history. KEYS: bans, history, version, changes. ARGV: subject,
/// at.
const LIFT: &str = concat!(
    changed_lua!(),
    r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '{"at":' .. ARGV[2] .. ',"action":"lift","ban":' .. old .. '}')
changed(KEYS[3], KEYS[4])
return 1
"#
);

/// `prune`: removes the bans that ended before ARGV[1], then, past
/// ARGV[2] bans, the automatic ones that end soonest. KEYS: bans, version,
/// changes.
const PRUNE: &str = concat!(
    changed_lua!(),
    r"
local all = redis.call('HGETALL', KEYS[1])
local before = tonumber(ARGV[1])
local gone, left, auto = 0, 0, {}
for i = 1, #all, 2 do
  local ban = cjson.decode(all[i + 1])
  local u = ban['until']
  if u ~= cjson.null and u < before then
    redis.call('HDEL', KEYS[1], all[i])
    gone = gone + 1
  else
    left = left + 1
    if ban['source'] == 'auto' then
      table.insert(auto, {all[i], u == cjson.null and math.huge or u})
    end
  end
end
local over = left - tonumber(ARGV[2])
if over > 0 then
  table.sort(auto, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
  for i = 1, math.min(over, #auto) do
    redis.call('HDEL', KEYS[1], auto[i][1])
    gone = gone + 1
  end
end
if gone > 0 then changed(KEYS[2], KEYS[3]) end
return gone
"
);

/// `prune_history`: keeps the newest ARGV[2] records (the list's head)
/// and, of those, the ones at or after ARGV[1]. KEYS: history.
const PRUNE_HISTORY: &str = r"
local len = redis.call('LLEN', KEYS[1])
local keep = tonumber(ARGV[2])
if keep < len then
  if keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, keep - 1) end
end
local before = tonumber(ARGV[1])
local kept = redis.call('LRANGE', KEYS[1], 0, -1)
local old = 0
for i, record in ipairs(kept) do
  if cjson.decode(record)['at'] < before then
    redis.call('LSET', KEYS[1], i - 1, '')
    old = old + 1
  end
end
if old > 0 then redis.call('LREM', KEYS[1], 0, '') end
return len - #kept + old
";

/// `revoke`: adds a revocation; a user's keeps the later instant (and its
/// first record's time and reason, as SQLite does). KEYS: revocations,
/// version, changes. ARGV: field, record, before (empty but for a user).
const REVOKE: &str = concat!(
    changed_lua!(),
    r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  if ARGV[3] == '' then return 0 end
  local before = tonumber(string.match(old, '^(%d*)|'))
  if before and before >= tonumber(ARGV[3]) then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. string.match(old, '^%d*(|.*)$'))
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
changed(KEYS[2], KEYS[3])
return 1
"
);

/// A ban as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredBan {
    subject: String,
    since: u64,
    until: Option<u64>,
    strikes: u32,
    reason: String,
    source: String,
}

impl StoredBan {
    fn of(ban: &Ban) -> Self {
        Self {
            subject: ban.subject.to_string(),
            since: ban.since.as_millis(),
            until: ban.until.map(Timestamp::as_millis),
            strikes: ban.strikes,
            reason: ban.reason.clone(),
            source: ban.source.as_str().to_owned(),
        }
    }

    fn parse(self, name: &str) -> Result<Ban, StoreError> {
        let bad = |what: &str, value: &dyn std::fmt::Debug| {
            StoreError(format!("{name}: corrupt {what} {value:?}, not written by palisade"))
        };
        Ok(Ban {
            subject: self.subject.parse().map_err(|_| bad("subject", &self.subject))?,
            since: Timestamp::from_millis(self.since),
            until: self.until.map(Timestamp::from_millis),
            strikes: self.strikes,
            source: BanSource::from_name(&self.source).ok_or_else(|| bad("source", &self.source))?,
            reason: self.reason,
        })
    }
}

/// A history record as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRecord {
    at: u64,
    action: String,
    ban: StoredBan,
}

/// Reads one JSON record, or an error naming it.
fn decode<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError(format!("{name}: corrupt ({e}), not written by palisade")))
}

/// A timestamp for a script: milliseconds, saturated to what Redis's
/// integers hold.
fn ms(t: Timestamp) -> u64 {
    t.as_millis().min(i64::MAX.cast_unsigned())
}

/// A count for a script, saturated as [`ms`] is.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX).min(i64::MAX.cast_unsigned())
}

/// Bans and revocations on Redis, shared by every node of the cluster.
pub(crate) struct RedisShared {
    /// Holds `store.redis_url`, a secret: never in `Debug` or an error.
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    keys: Keys,
    /// Locked only inside [`RedisShared::run`], after the connection.
    memory: Mutex<memory::Memory>,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl RedisShared {
    /// The store on `client`'s server, under `keys`. Nothing is dialled
    /// yet: commands that never touch shared state (`palisade audit`) work
    /// while Redis is away.
    pub(crate) fn new(client: redis::Client, keys: Keys) -> Self {
        Self { client, conn: Mutex::new(None), keys, memory: Mutex::default() }
    }

    /// Runs `call` on the connection, opening it first if needed. After a
    /// failure the connection is dropped: it may be half-read or dead, and
    /// the next call dials afresh.
    fn run<T>(
        &self,
        what: &str,
        call: impl FnOnce(&mut redis::Connection, &Keys) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = match &mut *slot {
            Some(conn) => conn,
            empty => empty.insert(self.connect().map_err(|e| failed(what, &e))?),
        };
        call(conn, &self.keys).map_err(|e| {
            *slot = None;
            failed(what, &e)
        })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, memory::Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.set_write_timeout(Some(TIMEOUT))?;
        Ok(conn)
    }

    /// Every history record, newest first, `limit` at most, of `subject`
    /// if given: read a page at a time, since one subject's are scattered.
    fn records(&self, subject: Option<&str>, limit: usize) -> Result<Vec<BanRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start: isize = 0;
        while records.len() < limit {
            let page: Vec<String> = self.run("reading the ban history", |conn, keys| {
                conn.lrange(keys.guard("ban-history"), start, start.saturating_add(HISTORY_PAGE - 1))
            })?;
            for (offset, text) in page.iter().enumerate() {
                let name = format!("ban-history record {}", start.saturating_add_unsigned(offset));
                let stored: StoredRecord = decode(text, &name)?;
                if subject.is_some_and(|s| s != stored.ban.subject) {
                    continue;
                }
                let action = match stored.action.as_str() {
                    "ban" => BanAction::Ban,
                    "lift" => BanAction::Lift,
                    other => return Err(StoreError(format!("{name}: corrupt action {other:?}"))),
                };
                records.push(BanRecord {
                    at: Timestamp::from_millis(stored.at),
                    action,
                    ban: stored.ban.parse(&name)?,
                });
                if records.len() == limit {
                    break;
                }
            }
            if page.len() < HISTORY_PAGE.cast_unsigned() {
                break;
            }
            start = start.saturating_add(HISTORY_PAGE);
        }
        Ok(records)
    }
}

/// A Redis failure as a [`StoreError`], naming the setting to check but
/// not its value: redis-rs's messages give the server's answer or the
/// socket's error, never the URL's password.
fn failed(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError(format!("Redis (store.redis_url): {what}: {e}"))
}

impl BanStore for RedisShared {
    fn bans(&self, now: Timestamp, remember_after_end: Duration) -> Result<Vec<Ban>, StoreError> {
        let all: Vec<(String, String)> = self.run("reading bans", |conn, keys| conn.hgetall(keys.guard("bans")))?;
        self.memory().read_bans(&all);
        let mut bans = Vec::new();
        for (subject, text) in all {
            let name = format!("bans field {subject:?}");
            let ban = decode::<StoredBan>(&text, &name)?.parse(&name)?;
            if ban.until.is_none_or(|until| until.saturating_add(remember_after_end) > now) {
                bans.push((subject, ban));
            }
        }
        bans.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(bans.into_iter().map(|(_, ban)| ban).collect())
    }

    /// The history record's time is the ban's `since`, as in SQLite.
    fn put(&self, ban: &Ban) -> Result<(), StoreError> {
        let stored = StoredBan::of(ban);
        let text = serde_json::to_string(&stored).map_err(|e| StoreError(format!("encoding a ban: {e}")))?;
        let record = StoredRecord { at: stored.since, action: "ban".into(), ban: stored };
        let record = serde_json::to_string(&record).map_err(|e| StoreError(format!("encoding a ban: {e}")))?;
        let written = self.run("storing a ban", |conn, keys| {
            redis::Script::new(PUT)
                .key(keys.guard("bans"))
                .key(keys.guard("ban-history"))
                .key(keys.guard("version"))
                .key(keys.guard("changes"))
                .arg(ban.subject.to_string())
                .arg(&text)
                .arg(&record)
                .arg(ban.source.as_str())
                .arg(ms(ban.since))
                .arg(ban.until.map_or(String::new(), |t| ms(t).to_string()))
                .invoke::<i64>(conn)
        })?;
        if written == 1 {
            self.memory().put(ban.subject.to_string(), text);
        }
        Ok(())
    }

    fn lift(&self, subject: &Subject, now: Timestamp) -> Result<bool, StoreError> {
        let lifted: i64 = self.run("lifting a ban", |conn, keys| {
            redis::Script::new(LIFT)
                .key(keys.guard("bans"))
                .key(keys.guard("ban-history"))
                .key(keys.guard("version"))
                .key(keys.guard("changes"))
                .arg(subject.to_string())
                .arg(ms(now))
                .invoke(conn)
        })?;
        self.memory().lift(&subject.to_string());
        Ok(lifted == 1)
    }

    fn history(&self, subject: Option<&Subject>, limit: usize) -> Result<Vec<BanRecord>, StoreError> {
        self.records(subject.map(Subject::to_string).as_deref(), limit)
    }

    fn prune(&self, before: Timestamp, max: usize) -> Result<usize, StoreError> {
        let gone: usize = self.run("pruning bans", |conn, keys| {
            redis::Script::new(PRUNE)
                .key(keys.guard("bans"))
                .key(keys.guard("version"))
                .key(keys.guard("changes"))
                .arg(ms(before))
                .arg(count(max))
                .invoke(conn)
        })?;
        Ok(gone)
    }

    fn prune_history(&self, before: Timestamp, keep: usize) -> Result<usize, StoreError> {
        self.run("pruning the ban history", |conn, keys| {
            redis::Script::new(PRUNE_HISTORY)
                .key(keys.guard("ban-history"))
                .arg(ms(before))
                .arg(count(keep))
                .invoke(conn)
        })
    }

    /// The counter every write of a ban or a revocation bumps, this
    /// node's own included: those cost it one needless reload. Put back
    /// first if Redis lost them (`memory`).
    fn version(&self) -> Result<u64, StoreError> {
        self.run("reading the version", |conn, keys| self.memory().version(conn, keys))
    }
}

impl RevocationStore for RedisShared {
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let all: Vec<(String, String)> =
            self.run("reading revocations", |conn, keys| conn.hgetall(keys.guard("revocations")))?;
        self.memory().read_revocations(&all);
        let mut revocations = Vec::new();
        for (field, text) in all {
            let bad = || StoreError(format!("revocations field {field:?}: corrupt, not written by palisade"));
            let (kind, value) = field.split_once(':').ok_or_else(bad)?;
            let before = text.split_once('|').ok_or_else(bad)?.0;
            let revocation = match (kind, before) {
                ("token", "") => check_jti(value).map(|()| Revocation::Token(value.to_owned())).map_err(|_| bad()),
                ("session", "") => check_jti(value).map(|()| Revocation::Session(value.to_owned())).map_err(|_| bad()),
                ("user", ms) => {
                    let before = ms.parse().map(Timestamp::from_millis).map_err(|_| bad())?;
                    user_revocation(value, before).map_err(|_| bad())
                }
                _ => Err(bad()),
            }?;
            revocations.push(((kind.to_owned(), value.to_owned()), revocation));
        }
        revocations.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(revocations.into_iter().map(|(_, r)| r).collect())
    }

    /// The revocation, then a revoked user's sessions. Redis cannot do
    /// both in one transaction as SQLite does (the sessions' is
    /// optimistic, the revocation's a script); this order means a failure
    /// between them leaves the tokens revoked on every node (what matters
    /// most) and an error for the operator to retry, which ends the
    /// sessions then (revoking again keeps the later instant). A refresh
    /// between the two mints a token the user's revocation covers.
    fn revoke(&self, revocation: &Revocation, now: Timestamp, reason: &str) -> Result<Vec<String>, StoreError> {
        let (kind, value, before) = match revocation {
            Revocation::Token(jti) => ("token", jti.as_str(), String::new()),
            Revocation::Session(sid) => ("session", sid.as_str(), String::new()),
            Revocation::User { user, before } => ("user", user.as_str(), ms(*before).to_string()),
        };
        let record = format!("{before}|{}|{reason}", ms(now));
        let field = format!("{kind}:{value}");
        self.run("revoking", |conn, keys| {
            redis::Script::new(REVOKE)
                .key(keys.guard("revocations"))
                .key(keys.guard("version"))
                .key(keys.guard("changes"))
                .arg(&field)
                .arg(&record)
                .arg(&before)
                .invoke::<i64>(conn)?;
            // Its tokens' expiry is not known here: pruned by when it was
            // made, as SQLite does (`sessions`).
            if let Revocation::Session(sid) = revocation {
                redis::cmd("ZADD")
                    .arg(keys.guard("revoked-sessions-made"))
                    .arg("NX")
                    .arg(ms(now))
                    .arg(sid)
                    .exec(conn)?;
            }
            Ok(())
        })?;
        self.memory().revoke(field, record);
        match revocation {
            Revocation::User { user, .. } => self.end_user_sessions(user, EndReason::Revoked, now),
            Revocation::Token(_) | Revocation::Session(_) => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests;
