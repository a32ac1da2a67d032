//! [`SessionStore`] on the `sessions` and `refresh_tokens` tables. Every
//! decision is the core's (`SessionCap::admit`, `RefreshState::judge`);
//! this module reads what they need and applies their verdict in the same
//! immediate transaction, so two logins or two refreshes racing each other
//! are decided one after the other.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::login::refresh::{RefreshState, RefreshVerdict};
use palisade_core::login::{CapReached, SessionCap};
use palisade_core::store::{EndReason, LoginSession, Refreshed, SessionStore, StoreError, StoredRefresh};
use rusqlite::{OptionalExtension as _, Row, Transaction, params};

use crate::{Sqlite, from_sql, sql, to_sql};

/// Used refresh tokens kept per session, newest first, for reuse detection:
/// a macro, so that [`PRUNE_USED`] holds it as a literal.
macro_rules! used_kept {
    () => {
        16
    };
}

// The statements of a refresh, run from the connection's statement cache:
// parsing them again on every refresh cost more instructions than running
// them ("Refresh, separated" in docs/BENCHMARKS.md).

/// The presented token, its state and its session's.
const FIND_TOKEN: &str = "SELECT t.used_ms, t.expires_ms, s.ended_ms IS NOT NULL, s.id
     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ?1";
const MARK_USED: &str = "UPDATE refresh_tokens SET used_ms = ?2 WHERE hash = ?1";
/// Keeps a session's `used_kept!()` newest used tokens. The limit is a
/// literal, not a parameter: SQLite plans with a bound LIMIT's value, so a
/// statement with `LIMIT ?` is prepared again each time it is bound.
const PRUNE_USED: &str = concat!(
    "DELETE FROM refresh_tokens WHERE session_id = ?1 AND used_ms IS NOT NULL AND hash NOT IN
     (SELECT hash FROM refresh_tokens WHERE session_id = ?1 AND used_ms IS NOT NULL
      ORDER BY used_ms DESC, issued_ms DESC LIMIT ",
    used_kept!(),
    ")"
);
const TOUCH_SESSION: &str = "UPDATE sessions SET last_active_ms = ?2, expires_ms = ?3,
     tokens_until_ms = max(coalesce(tokens_until_ms, 0), ?4) WHERE id = ?1";
const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (hash, session_id, issued_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)";

const COLUMNS: &str = "id, user_id, created_ms, last_active_ms, expires_ms, user_agent, ip, device, cookie";

/// Reads a `sessions` row selected with [`COLUMNS`].
fn read(row: &Row<'_>) -> rusqlite::Result<Result<LoginSession, StoreError>> {
    let id: String = row.get(0)?;
    let time = |i: usize| -> rusqlite::Result<Result<Timestamp, StoreError>> {
        let ms: i64 = row.get(i)?;
        Ok(from_sql(ms)
            .ok_or_else(|| StoreError(format!("sessions row {id:?}: corrupt time, not written by palisade"))))
    };
    let (created, last_active, expires) = (time(2)?, time(3)?, time(4)?);
    let (user_id, user_agent, ip, device, cookie): (String, String, String, String, bool) =
        (row.get(1)?, row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?);
    Ok((|| {
        Ok(LoginSession {
            id: id.clone(),
            user_id,
            created: created?,
            last_active: last_active?,
            expires: expires?,
            user_agent,
            ip,
            device,
            cookie,
        })
    })())
}

fn live_of(tx: &Transaction<'_>, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 AND ended_ms IS NULL AND expires_ms > ?2
             ORDER BY last_active_ms DESC, id"
        ))
        .map_err(sql("listing sessions"))?;
    let rows = stmt.query_map(params![user, to_sql(now)], read).map_err(sql("listing sessions"))?;
    rows.map(|row| row.map_err(sql("listing sessions"))?).collect()
}

/// Ends every live session of `user`; returns their ids.
pub(crate) fn end_all(
    tx: &Transaction<'_>,
    user: &str,
    reason: EndReason,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = live_of(tx, user, now)?.into_iter().map(|s| s.id).collect();
    for id in &ids {
        end(tx, id, reason, now)?;
    }
    Ok(ids)
}

/// Ends a live session and revokes its tokens until the newest of them
/// expires; `false` if it was not live.
fn end(tx: &Transaction<'_>, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError> {
    let ended = tx
        .execute(
            "UPDATE sessions SET ended_ms = ?2, end_reason = ?3 WHERE id = ?1 AND ended_ms IS NULL",
            params![id, to_sql(now), reason.as_str()],
        )
        .map_err(sql("ending a session"))?;
    if ended == 1 {
        tx.execute(
            "INSERT INTO revocations (kind, value, before_ms, created_ms, reason, expires_ms)
             VALUES ('session', ?1, NULL, ?2, ?3, (SELECT tokens_until_ms FROM sessions WHERE id = ?1))
             ON CONFLICT (kind, value) DO NOTHING",
            params![id, to_sql(now), reason.as_str()],
        )
        .map_err(sql("revoking a session"))?;
    }
    Ok(ended == 1)
}

fn insert_refresh(
    tx: &Transaction<'_>,
    session: &str,
    token: &StoredRefresh,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.prepare_cached(INSERT_REFRESH)
        .and_then(|mut stmt| stmt.execute(params![token.hash, session, to_sql(now), to_sql(token.expires)]))
        .map(drop)
        .map_err(sql("storing a refresh token"))
}

impl SessionStore for Sqlite {
    fn open_session(
        &self,
        session: &LoginSession,
        first: &StoredRefresh,
        cap: SessionCap,
        now: Timestamp,
    ) -> Result<Result<Vec<String>, CapReached>, StoreError> {
        self.write("opening a session", |tx| {
            let live = live_of(tx, &session.user_id, now)?;
            let ages: Vec<(&str, Timestamp)> = live.iter().map(|s| (s.id.as_str(), s.last_active)).collect();
            let evicted = match cap.admit(&ages) {
                Ok(ids) => ids.into_iter().map(str::to_owned).collect::<Vec<_>>(),
                Err(reached) => return Ok(Err(reached)),
            };
            for id in &evicted {
                end(tx, id, EndReason::Evicted, now)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO sessions ({COLUMNS}, tokens_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    session.id,
                    session.user_id,
                    to_sql(session.created),
                    to_sql(session.last_active),
                    to_sql(session.expires),
                    session.user_agent,
                    session.ip,
                    session.device,
                    session.cookie,
                    to_sql(first.access_expires),
                ],
            )
            .map_err(sql("opening a session"))?;
            insert_refresh(tx, &session.id, first, now)?;
            Ok(Ok(evicted))
        })
    }

    fn refresh(
        &self,
        presented: &str,
        next: &StoredRefresh,
        reuse_grace: Duration,
        device_ok: &dyn Fn(&LoginSession) -> bool,
        now: Timestamp,
    ) -> Result<Refreshed, StoreError> {
        self.write("refreshing", |tx| {
            let found = tx
                .prepare_cached(FIND_TOKEN)
                .and_then(|mut stmt| {
                    stmt.query_row([presented], |row| {
                        Ok((
                            row.get::<_, Option<i64>>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, bool>(2)?,
                            row.get::<_, String>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(sql("refreshing"))?;
            let Some((used_ms, expires_ms, session_ended, sid)) = found else { return Ok(Refreshed::Unknown) };
            let corrupt =
                || StoreError(format!("refresh token of session {sid:?}: corrupt time, not written by palisade"));
            let used = used_ms.map(|ms| from_sql(ms).ok_or_else(corrupt)).transpose()?;
            let state = RefreshState { used, expires: from_sql(expires_ms).ok_or_else(corrupt)?, session_ended };
            let session = tx
                .prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))
                .and_then(|mut stmt| stmt.query_row([&sid], read))
                .map_err(sql("refreshing"))??;
            match state.judge(reuse_grace, now) {
                RefreshVerdict::Rotate => {}
                RefreshVerdict::Reused => {
                    end(tx, &sid, EndReason::Reused, now)?;
                    return Ok(Refreshed::Reused(session));
                }
                refused => return Ok(Refreshed::Refused(refused)),
            }
            if !device_ok(&session) {
                return Ok(Refreshed::WrongDevice(session));
            }
            let run = |query: &str, params: &[&dyn rusqlite::ToSql]| {
                tx.prepare_cached(query).and_then(|mut stmt| stmt.execute(params)).map_err(sql("refreshing"))
            };
            run(MARK_USED, params![presented, to_sql(now)])?;
            // Used tokens are kept to recognise a reuse, but only the
            // newest few: a session refreshed in a loop must not grow the
            // table without bound. An older copy presented later is just
            // unknown (refused, without ending the session).
            run(PRUNE_USED, params![sid])?;
            insert_refresh(tx, &sid, next, now)?;
            run(TOUCH_SESSION, params![sid, to_sql(now), to_sql(next.expires), to_sql(next.access_expires)])?;
            Ok(Refreshed::Rotated(LoginSession { last_active: now, expires: next.expires, ..session }))
        })
    }

    fn session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        let conn = self.conn();
        let found = conn
            .query_row(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"), [id], read)
            .optional()
            .map_err(sql("reading a session"))?;
        found.transpose()
    }

    fn live_sessions(&self, user: &str, now: Timestamp) -> Result<Vec<LoginSession>, StoreError> {
        // A read, but through a transaction so the same query serves the
        // cap's count inside `open_session`.
        self.write("listing sessions", |tx| live_of(tx, user, now))
    }

    fn end_session(&self, id: &str, reason: EndReason, now: Timestamp) -> Result<bool, StoreError> {
        self.write("ending a session", |tx| end(tx, id, reason, now))
    }

    fn end_user_sessions(&self, user: &str, reason: EndReason, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.write("ending a user's sessions", |tx| end_all(tx, user, reason, now))
    }

    fn prune_sessions(&self, before: Timestamp, expired_before: Timestamp) -> Result<usize, StoreError> {
        self.write("pruning sessions", |tx| {
            let before = to_sql(before);
            let sessions = tx
                .execute("DELETE FROM sessions WHERE coalesce(min(ended_ms, expires_ms), expires_ms) < ?1", [before])
                .map_err(sql("pruning sessions"))?;
            let revocations = tx
                .execute(
                    "DELETE FROM revocations WHERE kind = 'session'
                     AND CASE WHEN expires_ms IS NULL THEN created_ms < ?1 ELSE expires_ms < ?2 END",
                    params![before, to_sql(expired_before)],
                )
                .map_err(sql("pruning session revocations"))?;
            Ok(sessions + revocations)
        })
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::login::CapPolicy;

    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const GRACE: Duration = Duration::from_secs(2);
    const EVICT: SessionCap = SessionCap { max: 2, policy: CapPolicy::Evict };

    fn fresh() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(&dir.path().join("data")).unwrap();
        (dir, store)
    }

    fn at(secs: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(secs))
    }

    fn session(id: &str, user: &str, now: Timestamp) -> LoginSession {
        LoginSession {
            id: id.into(),
            user_id: user.into(),
            created: now,
            last_active: now,
            expires: now.saturating_add(WEEK),
            user_agent: "test".into(),
            ip: "127.0.0.1".into(),
            device: "d1".into(),
            cookie: false,
        }
    }

    fn token(hash: char, now: Timestamp) -> StoredRefresh {
        StoredRefresh {
            hash: hash.to_string().repeat(64),
            expires: now.saturating_add(WEEK),
            access_expires: at15(now),
        }
    }

    /// When an access token minted at `now` expires (15 minutes).
    fn at15(now: Timestamp) -> Timestamp {
        now.saturating_add(Duration::from_secs(900))
    }

    fn any_device(_: &LoginSession) -> bool {
        true
    }

    #[test]
    fn a_session_refreshed_in_a_loop_keeps_only_its_newest_used_token_rows() {
        let (_dir, store) = fresh();
        store.open_session(&session("s1", "alice", T0), &token('0', T0), EVICT, T0).unwrap().unwrap();
        let hash = |n: u32| format!("{n:064x}");
        let mut current = token('0', T0).hash;
        for n in 1..=40u32 {
            let now = at(u64::from(n) * 10);
            let next = StoredRefresh { hash: hash(n), expires: now.saturating_add(WEEK), access_expires: at15(now) };
            assert!(matches!(store.refresh(&current, &next, GRACE, &any_device, now).unwrap(), Refreshed::Rotated(_)));
            current = next.hash;
        }
        let rows: i64 = store.conn().query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, used_kept!() + 1, "the newest used ones and the current one");
    }

    #[test]
    fn a_refresh_runs_cached_statements_that_are_never_prepared_again() {
        use rusqlite::StatementStatus;
        let (_dir, store) = fresh();
        // Two sessions, and twenty refreshes of the second.
        store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
        store.open_session(&session("s2", "alice", T0), &token('b', T0), EVICT, T0).unwrap().unwrap();
        let mut current = token('b', T0).hash;
        for n in 1..=20u32 {
            let now = at(u64::from(n));
            let next = StoredRefresh {
                hash: format!("{n:064x}"),
                expires: now.saturating_add(WEEK),
                access_expires: at15(now),
            };
            assert!(matches!(store.refresh(&current, &next, GRACE, &any_device, now).unwrap(), Refreshed::Rotated(_)));
            current = next.hash;
        }
        let conn = store.conn();
        // The refresh token insert serves the two logins too.
        for (query, runs) in
            [(FIND_TOKEN, 20), (MARK_USED, 20), (PRUNE_USED, 20), (INSERT_REFRESH, 22), (TOUCH_SESSION, 20)]
        {
            let stmt = conn.prepare_cached(query).unwrap();
            let short = &query[..30];
            assert_eq!(stmt.get_status(StatementStatus::Run), runs, "{short}: run from the cache every time");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{short}: never prepared again");
            assert_eq!(stmt.get_status(StatementStatus::FullscanStep), 0, "{short}: an index, not a table scan");
        }
    }
}
