//! The own issuer's login sessions and refresh families on Redis,
//! shared by every node, so a login on one node refreshes on another and a
//! logout anywhere ends the session everywhere.
//!
//! Every decision is core's (`SessionCap::admit`, `RefreshState::judge`,
//! the device check), as in SQLite; what SQLite does in one immediate
//! transaction is an optimistic one here: `WATCH` the user's counter,
//! read, decide, and `MULTI`/`EXEC` the verdict with an `INCR` of that
//! counter, so two logins or two refreshes of one user racing each other
//! are decided one after the other ([`RedisShared::atomically`]). A Lua
//! script could not call core.
//!
//! Keys (all under the `{guard}` hash tag, beside the revocations an
//! ending session writes): `session:<sid>` (JSON), `user-sessions:<user>` (the user's session ids),
//! `user-version:<user>` (the counter), `refresh` (a hash of JSON refresh
//! tokens by hash), `session-tokens:<sid>`, `session-ends` (a sorted set:
//! when each session ended or expires, for pruning), `revoked-sessions`
//! (when each revoked session's newest access token expires) and
//! `revoked-sessions-made` (when an operator revoked one whose tokens'
//! expiry is not known here).

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::login::refresh::{RefreshState, RefreshVerdict};
use palisade_core::login::{CapReached, SessionCap};
use palisade_core::store::{EndReason, LoginSession, Refreshed, SessionStore, StoreError, StoredRefresh};
use redis::{Commands as _, Connection, Pipeline};
use serde::{Deserialize, Serialize};

use super::{Keys, RedisShared, changed, decode, ms};

/// Used refresh tokens kept per session, newest first, for reuse
/// detection: SQLite keeps as many.
const USED_KEPT: usize = 16;

/// How often an optimistic transaction is tried before the call fails:
/// each retry means another request of the same user won the race, so
/// this many in a row is a client hammering itself.
const ATTEMPTS: usize = 16;

/// A session as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSession {
    user: String,
    created: u64,
    last_active: u64,
    expires: u64,
    user_agent: String,
    ip: String,
    device: String,
    cookie: bool,
    ended: Option<u64>,
    end_reason: Option<String>,
    /// When the newest access token minted for it expires.
    tokens_until: u64,
}

impl StoredSession {
    fn of(session: &LoginSession, tokens_until: Timestamp) -> Self {
        Self {
            user: session.user_id.clone(),
            created: ms(session.created),
            last_active: ms(session.last_active),
            expires: ms(session.expires),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            device: session.device.clone(),
            cookie: session.cookie,
            ended: None,
            end_reason: None,
            tokens_until: ms(tokens_until),
        }
    }

    fn session(&self, id: &str) -> LoginSession {
        LoginSession {
            id: id.to_owned(),
            user_id: self.user.clone(),
            created: Timestamp::from_millis(self.created),
            last_active: Timestamp::from_millis(self.last_active),
            expires: Timestamp::from_millis(self.expires),
            user_agent: self.user_agent.clone(),
            ip: self.ip.clone(),
            device: self.device.clone(),
            cookie: self.cookie,
        }
    }

    fn live(&self, now: Timestamp) -> bool {
        self.ended.is_none() && self.expires > ms(now)
    }

    /// When it stops being live: ended, or expired.
    fn end(&self) -> u64 {
        self.ended.map_or(self.expires, |ended| ended.min(self.expires))
    }
}

/// A refresh token as stored (the hash is the field).
#[derive(Serialize, Deserialize)]
struct StoredToken {
    session: String,
    issued: u64,
    expires: u64,
    used: Option<u64>,
}

pub(super) fn encode<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("encoding {what}: {e}")))
}

/// What one attempt of a transaction decided: its answer, and the writes
/// that make it so (none: nothing changes).
type Decided<T> = (T, Option<Pipeline>);

/// A store error raised inside a transaction's closure, carried out
/// through redis-rs's error type and back.
fn carried(e: StoreError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "store", e.0))
}

impl RedisShared {
    /// Runs `decide` under `WATCH` of the `watch` keys and applies its
    /// writes in one `MULTI`/`EXEC`; tries again, up to [`ATTEMPTS`] times,
    /// when another client changed a watched key in between. `decide` reads only after the
    /// `WATCH`, so its answer is judged on what the writes replace.
    pub(super) fn atomically<T>(
        &self,
        what: &str,
        watch: &[&str],
        mut decide: impl FnMut(&mut Connection, &Keys) -> Result<Decided<T>, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(what, |conn, keys| {
            for _ in 0..ATTEMPTS {
                redis::cmd("WATCH").arg(watch).exec(conn)?;
                let (answer, writes) = decide(conn, keys).map_err(carried)?;
                let Some(mut writes) = writes else {
                    redis::cmd("UNWATCH").exec(conn)?;
                    return Ok(answer);
                };
                let done: Option<redis::Value> = writes.atomic().query(conn)?;
                if done.is_some() {
                    return Ok(answer);
                }
            }
            Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "lost the race for the same keys too many times in a row",
            )))
        })
    }

    /// The user's sessions, by id, ended ones too (until pruned).
    fn sessions_of(conn: &mut Connection, keys: &Keys, user: &str) -> Result<Vec<(String, StoredSession)>, StoreError> {
        let ids: Vec<String> = conn.smembers(user_sessions(keys, user)).map_err(|e| read_failed(&e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<Option<String>> = redis::cmd("MGET")
            .arg(ids.iter().map(|id| session_key(keys, id)).collect::<Vec<_>>())
            .query(conn)
            .map_err(|e| read_failed(&e))?;
        let mut all = Vec::new();
        for (id, text) in ids.into_iter().zip(texts) {
            if let Some(text) = text {
                let stored = decode(&text, &format!("session {id:?}"))?;
                all.push((id, stored));
            }
        }
        Ok(all)
    }

    fn live_of(
        conn: &mut Connection,
        keys: &Keys,
        user: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, StoredSession)>, StoreError> {
        let mut live: Vec<_> = Self::sessions_of(conn, keys, user)?.into_iter().filter(|(_, s)| s.live(now)).collect();
        live.sort_by(|(a, x), (b, y)| y.last_active.cmp(&x.last_active).then_with(|| a.cmp(b)));
        Ok(live)
    }

    fn stored_session(conn: &mut Connection, keys: &Keys, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let text: Option<String> = conn.get(session_key(keys, id)).map_err(|e| read_failed(&e))?;
        text.map(|text| decode(&text, &format!("session {id:?}"))).transpose()
    }

    /// Adds to `writes` the end of every live session of `user` (read
    /// under the caller's `WATCH` of the user's counter); the revocations'
    /// ids and records.
    pub(super) fn end_live(
        conn: &mut Connection,
        keys: &Keys,
        writes: &mut Pipeline,
        user: &str,
        reason: EndReason,
        now: Timestamp,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Self::live_of(conn, keys, user, now)?
            .into_iter()
            .map(|(id, stored)| end(writes, keys, &id, stored, reason, now))
            .collect()
    }

    /// Remembers the revocations of ended sessions, to put back if Redis
    /// loses them; their ids.
    pub(super) fn remember_ended(&self, ended: Vec<(String, String)>) -> Vec<String> {
        let mut memory = self.memory();
        ended
            .into_iter()
            .map(|(id, record)| {
                memory.revoke(format!("session:{id}"), record);
                id
            })
            .collect()
    }
}

pub(super) fn read_failed(e: &redis::RedisError) -> StoreError {
    super::failed("reading sessions", e)
}

fn session_key(keys: &Keys, id: &str) -> String {
    keys.guard(&format!("session:{id}"))
}

fn user_sessions(keys: &Keys, user: &str) -> String {
    keys.guard(&format!("user-sessions:{user}"))
}

pub(super) fn user_version(keys: &Keys, user: &str) -> String {
    keys.guard(&format!("user-version:{user}"))
}

fn session_tokens(keys: &Keys, id: &str) -> String {
    keys.guard(&format!("session-tokens:{id}"))
}

/// Adds to `writes` the end of a live session and the revocation of its
/// tokens until the newest of them expires, as SQLite's `end` does; the
/// revocation's field and record.
fn end(
    writes: &mut Pipeline,
    keys: &Keys,
    id: &str,
    mut stored: StoredSession,
    reason: EndReason,
    now: Timestamp,
) -> Result<(String, String), StoreError> {
    stored.ended = Some(ms(now));
    stored.end_reason = Some(reason.as_str().to_owned());
    let record = format!("|{}|{}", ms(now), reason.as_str());
    writes
        .set(session_key(keys, id), encode(&stored, "a session")?)
        .ignore()
        .zadd(keys.guard("session-ends"), id, stored.end())
        .ignore()
        .hset_nx(keys.guard("revocations"), format!("session:{id}"), &record)
        .ignore()
        .zadd(keys.guard("revoked-sessions"), id, stored.tokens_until)
        .ignore();
    changed(writes, keys);
    Ok((id.to_owned(), record))
}

fn store_token(
    writes: &mut Pipeline,
    keys: &Keys,
    id: &str,
    token: &StoredRefresh,
    now: Timestamp,
) -> Result<(), StoreError> {
    let stored = StoredToken { session: id.to_owned(), issued: ms(now), expires: ms(token.expires), used: None };
    writes
        .hset(keys.guard("refresh"), &token.hash, encode(&stored, "a refresh token")?)
        .ignore()
        .sadd(session_tokens(keys, id), &token.hash)
        .ignore();
    Ok(())
}

impl SessionStore for RedisShared {
    fn open_session(
        &self,
        session: &LoginSession,
        first: &StoredRefresh,
        cap: SessionCap,
        now: Timestamp,
    ) -> Result<Result<Vec<String>, CapReached>, StoreError> {
        let user = session.user_id.as_str();
        let opened = self.atomically("opening a session", &[&user_version(&self.keys, user)], |conn, keys| {
            let live = Self::live_of(conn, keys, user, now)?;
            let ages: Vec<(&str, Timestamp)> =
                live.iter().map(|(id, s)| (id.as_str(), Timestamp::from_millis(s.last_active))).collect();
            let evicted: Vec<String> = match cap.admit(&ages) {
                Ok(ids) => ids.into_iter().map(str::to_owned).collect(),
                Err(reached) => return Ok((Err(reached), None)),
            };
            let mut writes = redis::pipe();
            let mut ended = Vec::new();
            for (id, stored) in live.into_iter().filter(|(id, _)| evicted.contains(id)) {
                ended.push(end(&mut writes, keys, &id, stored, EndReason::Evicted, now)?);
            }
            let stored = StoredSession::of(session, first.access_expires);
            writes
                .set(session_key(keys, &session.id), encode(&stored, "a session")?)
                .ignore()
                .sadd(user_sessions(keys, user), &session.id)
                .ignore()
                .zadd(keys.guard("session-ends"), &session.id, stored.end())
                .ignore()
                .incr(user_version(keys, user), 1)
                .ignore();
            store_token(&mut writes, keys, &session.id, first, now)?;
            Ok((Ok(ended), Some(writes)))
        })?;
        Ok(opened.map(|ended| self.remember_ended(ended)))
    }

    fn refresh(
        &self,
        presented: &str,
        next: &StoredRefresh,
        reuse_grace: Duration,
        device_ok: &dyn Fn(&LoginSession) -> bool,
        now: Timestamp,
    ) -> Result<Refreshed, StoreError> {
        // Whose it is, to watch that user's counter: a token never moves
        // to another session, so this read needs no watch.
        let text: Option<String> = self.run("refreshing", |conn, keys| conn.hget(keys.guard("refresh"), presented))?;
        let Some(text) = text else { return Ok(Refreshed::Unknown) };
        let sid = decode::<StoredToken>(&text, "a refresh token")?.session;
        let Some(owner) = self.run("refreshing", |conn, keys| Ok(Self::stored_session(conn, keys, &sid)))?? else {
            return Ok(Refreshed::Unknown);
        };
        let mut reused = None;
        let refreshed = self.atomically("refreshing", &[&user_version(&self.keys, &owner.user)], |conn, keys| {
            let text: Option<String> = conn.hget(keys.guard("refresh"), presented).map_err(|e| read_failed(&e))?;
            let Some(text) = text else { return Ok((Refreshed::Unknown, None)) };
            let token: StoredToken = decode(&text, "a refresh token")?;
            let Some(stored) = Self::stored_session(conn, keys, &sid)? else { return Ok((Refreshed::Unknown, None)) };
            let session = stored.session(&sid);
            let state = RefreshState {
                used: token.used.map(Timestamp::from_millis),
                expires: Timestamp::from_millis(token.expires),
                session_ended: stored.ended.is_some(),
            };
            match state.judge(reuse_grace, now) {
                RefreshVerdict::Rotate => {}
                RefreshVerdict::Reused => {
                    let mut writes = redis::pipe();
                    reused = Some(end(&mut writes, keys, &sid, stored, EndReason::Reused, now)?);
                    writes.incr(user_version(keys, &session.user_id), 1).ignore();
                    return Ok((Refreshed::Reused(session), Some(writes)));
                }
                refused => return Ok((Refreshed::Refused(refused), None)),
            }
            if !device_ok(&session) {
                return Ok((Refreshed::WrongDevice(session), None));
            }
            let mut writes = redis::pipe();
            let used = StoredToken { used: Some(ms(now)), ..token };
            writes.hset(keys.guard("refresh"), presented, encode(&used, "a refresh token")?).ignore();
            forget_old_used(conn, keys, &mut writes, &sid, presented, ms(now))?;
            store_token(&mut writes, keys, &sid, next, now)?;
            let touched = StoredSession {
                last_active: ms(now),
                expires: ms(next.expires),
                tokens_until: stored.tokens_until.max(ms(next.access_expires)),
                ..stored
            };
            writes
                .set(session_key(keys, &sid), encode(&touched, "a session")?)
                .ignore()
                .zadd(keys.guard("session-ends"), &sid, touched.end())
                .ignore()
                .incr(user_version(keys, &session.user_id), 1)
                .ignore();
            Ok((Refreshed::Rotated(LoginSession { last_active: now, expires: next.expires, ..session }), Some(writes)))
        })?;
        if let (Refreshed::Reused(_), Some(ended)) = (&refreshed, reused) {
            self.remember_ended(vec![ended]);
        }
        Ok(refreshed)
    }

    fn session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        let stored = self.run("reading a session", |conn, keys| Ok(Self::stored_session(conn, keys, id)))??;
        Ok(stored.map(|s| s.session(id)))
    }

    fn live_sessions(&self, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError> {
        let live = self.run("listing sessions", |conn, keys| Ok(Self::live_of(conn, keys, user, now)))??;
        Ok(live.into_iter().map(|(id, s)| s.session(&id)).collect())
    }

    fn end_session(&self, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError> {
        let Some(owner) = self.run("ending a session", |conn, keys| Ok(Self::stored_session(conn, keys, id)))?? else {
            return Ok(false);
        };
        let ended = self.atomically("ending a session", &[&user_version(&self.keys, &owner.user)], |conn, keys| {
            match Self::stored_session(conn, keys, id)? {
                Some(stored) if stored.ended.is_none() => {
                    let mut writes = redis::pipe();
                    let ended = end(&mut writes, keys, id, stored, reason, now)?;
                    writes.incr(user_version(keys, &owner.user), 1).ignore();
                    Ok((Some(ended), Some(writes)))
                }
                _ => Ok((None, None)),
            }
        })?;
        Ok(!self.remember_ended(ended.into_iter().collect()).is_empty())
    }

    /// In one transaction.
    fn end_user_sessions(&self, user: &str, reason: EndReason, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let ended = self.atomically("ending a user's sessions", &[&user_version(&self.keys, user)], |conn, keys| {
            let mut writes = redis::pipe();
            let ended = Self::end_live(conn, keys, &mut writes, user, reason, now)?;
            if ended.is_empty() {
                return Ok((ended, None));
            }
            writes.incr(user_version(keys, user), 1).ignore();
            Ok((ended, Some(writes)))
        })?;
        Ok(self.remember_ended(ended))
    }

    /// Sessions whose end is before `before`, with their tokens; session
    /// revocations once their tokens have expired. Each session goes in a
    /// transaction of its user's; the revocations in one script-free pass,
    /// since nothing else writes them once made.
    fn prune_sessions(&self, before: Timestamp, expired_before: Timestamp) -> Result<usize, StoreError> {
        let due: Vec<String> = self.run("pruning sessions", |conn, keys| {
            conn.zrangebyscore(keys.guard("session-ends"), "-inf", format!("({}", ms(before)))
        })?;
        let mut gone = 0;
        for id in due {
            let Some(owner) =
                self.run("pruning sessions", |conn, keys| Ok(Self::stored_session(conn, keys, &id)))??
            else {
                self.run("pruning sessions", |conn, keys| conn.zrem::<_, _, ()>(keys.guard("session-ends"), &id))?;
                continue;
            };
            let pruned =
                self.atomically("pruning sessions", &[&user_version(&self.keys, &owner.user)], |conn, keys| {
                    match Self::stored_session(conn, keys, &id)? {
                        Some(stored) if stored.end() < ms(before) => {
                            let tokens: Vec<String> =
                                conn.smembers(session_tokens(keys, &id)).map_err(|e| read_failed(&e))?;
                            let mut writes = redis::pipe();
                            if !tokens.is_empty() {
                                writes.hdel(keys.guard("refresh"), tokens).ignore();
                            }
                            writes
                                .del(session_key(keys, &id))
                                .ignore()
                                .del(session_tokens(keys, &id))
                                .ignore()
                                .srem(user_sessions(keys, &stored.user), &id)
                                .ignore()
                                .zrem(keys.guard("session-ends"), &id)
                                .ignore()
                                .incr(user_version(keys, &stored.user), 1)
                                .ignore();
                            Ok((true, Some(writes)))
                        }
                        _ => Ok((false, None)),
                    }
                })?;
            gone += usize::from(pruned);
        }
        let revocations = self.run("pruning session revocations", |conn, keys| {
            let mut ids: Vec<String> =
                conn.zrangebyscore(keys.guard("revoked-sessions"), "-inf", format!("({}", ms(expired_before)))?;
            let made: Vec<String> =
                conn.zrangebyscore(keys.guard("revoked-sessions-made"), "-inf", format!("({}", ms(before)))?;
            ids.extend(made);
            if ids.is_empty() {
                return Ok(0);
            }
            let fields: Vec<String> = ids.iter().map(|id| format!("session:{id}")).collect();
            let mut writes = redis::pipe();
            writes
                .atomic()
                .hdel(keys.guard("revocations"), &fields)
                .zrem(keys.guard("revoked-sessions"), &ids)
                .ignore()
                .zrem(keys.guard("revoked-sessions-made"), &ids)
                .ignore();
            changed(&mut writes, keys);
            let (removed,): (usize,) = writes.query(conn)?;
            Ok(removed)
        })?;
        Ok(gone + revocations)
    }
}

/// Adds to `writes` the deletion of the session's used tokens past the
/// newest [`USED_KEPT`], counting the one being used now (`presented`, at
/// `now`): a session refreshed in a loop must not grow Redis without
/// bound, and an older copy presented later is just unknown.
fn forget_old_used(
    conn: &mut Connection,
    keys: &Keys,
    writes: &mut Pipeline,
    sid: &str,
    presented: &str,
    now: u64,
) -> Result<(), StoreError> {
    let hashes: Vec<String> = conn.smembers(session_tokens(keys, sid)).map_err(|e| read_failed(&e))?;
    if hashes.len() <= USED_KEPT {
        return Ok(());
    }
    let texts: Vec<Option<String>> =
        redis::cmd("HMGET").arg(keys.guard("refresh")).arg(&hashes).query(conn).map_err(|e| read_failed(&e))?;
    let mut used: Vec<(u64, u64, String)> = Vec::new();
    for (hash, text) in hashes.into_iter().zip(texts) {
        let Some(text) = text else { continue };
        let token: StoredToken = decode(&text, "a refresh token")?;
        let used_at = if hash == presented { Some(now) } else { token.used };
        if let Some(at) = used_at {
            used.push((at, token.issued, hash));
        }
    }
    used.sort_by(|a, b| b.cmp(a));
    let old: Vec<String> = used.into_iter().skip(USED_KEPT).map(|(_, _, hash)| hash).collect();
    if !old.is_empty() {
        writes.hdel(keys.guard("refresh"), &old).ignore().srem(session_tokens(keys, sid), &old).ignore();
    }
    Ok(())
}
