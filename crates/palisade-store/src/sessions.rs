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
    use palisade_core::auth::Revocation;
    use palisade_core::login::CapPolicy;
    use palisade_core::store::RevocationStore as _;

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

    fn revoked_sessions(store: &Sqlite) -> Vec<String> {
        let all = store.revocations().unwrap();
        all.into_iter().filter_map(|r| if let Revocation::Session(s) = r { Some(s) } else { None }).collect()
    }

    #[test]
    fn a_refresh_token_rotates_once_and_its_reuse_ends_the_session() {
        let (_dir, store) = fresh();
        assert_eq!(store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap(), Ok(vec![]));
        let first = token('a', T0).hash;
        let Refreshed::Rotated(s) = store.refresh(&first, &token('b', at(60)), GRACE, &any_device, at(60)).unwrap()
        else {
            panic!("expected a rotation")
        };
        assert_eq!((s.last_active, s.expires), (at(60), at(60).saturating_add(WEEK)));
        // The same token within the grace: refused, the session stays.
        let again = store.refresh(&first, &token('c', at(61)), GRACE, &any_device, at(61)).unwrap();
        assert_eq!(again, Refreshed::Refused(RefreshVerdict::RecentlyUsed));
        assert!(revoked_sessions(&store).is_empty());
        // After the grace: a reuse, and the whole family ends with it.
        let reused = store.refresh(&first, &token('c', at(70)), GRACE, &any_device, at(70)).unwrap();
        assert!(matches!(reused, Refreshed::Reused(ref s) if s.id == "s1"), "{reused:?}");
        assert_eq!(revoked_sessions(&store), vec!["s1".to_owned()]);
        // The newest token of the family is dead too.
        let next = token('b', at(60)).hash;
        assert_eq!(
            store.refresh(&next, &token('d', at(71)), GRACE, &any_device, at(71)).unwrap(),
            Refreshed::Refused(RefreshVerdict::Ended)
        );
        assert!(store.live_sessions("alice", at(71)).unwrap().is_empty());
        assert_eq!(
            store.refresh(&"f".repeat(64), &token('e', at(72)), GRACE, &any_device, at(72)).unwrap(),
            Refreshed::Unknown
        );
    }

    #[test]
    fn a_session_refreshed_in_a_loop_keeps_only_its_newest_used_tokens() {
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
        // A recent copy is still recognised as a reuse; the oldest is gone.
        assert_eq!(
            store.refresh(&token('0', T0).hash, &token('x', at(500)), GRACE, &any_device, at(500)).unwrap(),
            Refreshed::Unknown
        );
        assert!(matches!(
            store.refresh(&hash(39), &token('y', at(501)), GRACE, &any_device, at(501)).unwrap(),
            Refreshed::Reused(_)
        ));
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

    #[test]
    fn a_refused_device_or_an_expired_token_changes_nothing() {
        let (_dir, store) = fresh();
        store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
        let first = token('a', T0).hash;
        let wrong = store.refresh(&first, &token('b', at(1)), GRACE, &|_| false, at(1)).unwrap();
        assert!(matches!(wrong, Refreshed::WrongDevice(_)));
        // Not used by the refusal: it still rotates from the right device.
        assert!(matches!(
            store.refresh(&first, &token('b', at(2)), GRACE, &any_device, at(2)).unwrap(),
            Refreshed::Rotated(_)
        ));
        let late = at(2).saturating_add(WEEK);
        let second = token('b', at(2)).hash;
        assert_eq!(
            store.refresh(&second, &token('c', late), GRACE, &any_device, late).unwrap(),
            Refreshed::Refused(RefreshVerdict::Expired)
        );
    }

    #[test]
    fn the_cap_evicts_the_least_recently_active_or_refuses() {
        let (_dir, store) = fresh();
        store.open_session(&session("s1", "alice", T0), &token('a', T0), EVICT, T0).unwrap().unwrap();
        store.open_session(&session("s2", "alice", at(1)), &token('b', at(1)), EVICT, at(1)).unwrap().unwrap();
        // s1 refreshes, so s2 is now the least recently active.
        store.refresh(&token('a', T0).hash, &token('c', at(2)), GRACE, &any_device, at(2)).unwrap();
        store.open_session(&session("s9", "bob", at(3)), &token('9', at(3)), EVICT, at(3)).unwrap().unwrap();
        let evicted = store.open_session(&session("s3", "alice", at(4)), &token('d', at(4)), EVICT, at(4)).unwrap();
        assert_eq!(evicted, Ok(vec!["s2".to_owned()]));
        let live: Vec<String> = store.live_sessions("alice", at(5)).unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(live, ["s3", "s1"], "most recently active first");
        let refuse = SessionCap { max: 2, policy: CapPolicy::Refuse };
        assert_eq!(
            store.open_session(&session("s4", "alice", at(6)), &token('e', at(6)), refuse, at(6)).unwrap(),
            Err(CapReached)
        );
        assert!(store.session("s4").unwrap().is_none(), "a refused login leaves nothing behind");
        assert_eq!(revoked_sessions(&store), vec!["s2".to_owned()]);
    }

    #[test]
    fn ending_sessions_revokes_them_and_pruning_forgets_them_later() {
        let (_dir, store) = fresh();
        for (id, hash) in [("s1", 'a'), ("s2", 'b')] {
            store
                .open_session(
                    &session(id, "alice", T0),
                    &token(hash, T0),
                    SessionCap { max: 10, policy: CapPolicy::Evict },
                    T0,
                )
                .unwrap()
                .unwrap();
        }
        assert!(store.end_session("s1", EndReason::Logout, at(1)).unwrap());
        assert!(!store.end_session("s1", EndReason::Logout, at(2)).unwrap(), "already ended");
        assert_eq!(store.end_user_sessions("alice", EndReason::LogoutAll, at(3)).unwrap(), vec!["s2".to_owned()]);
        let mut revoked = revoked_sessions(&store);
        revoked.sort();
        assert_eq!(revoked, ["s1", "s2"]);
        // Nothing ended before at(1): nothing pruned; later, the sessions,
        // and once their tokens (minted at T0 for 15 minutes) have expired,
        // the revocations.
        assert_eq!(store.prune_sessions(at(1), at(1)).unwrap(), 0);
        assert_eq!(store.prune_sessions(at(10), at(10)).unwrap(), 2, "two sessions");
        assert_eq!(revoked_sessions(&store).len(), 2, "their tokens live on");
        assert_eq!(store.prune_sessions(at(10), at(901)).unwrap(), 2, "two revocations");
        assert!(store.session("s1").unwrap().is_none());
        assert!(revoked_sessions(&store).is_empty());
        // The refresh tokens went with their sessions.
        assert_eq!(
            store.refresh(&token('a', T0).hash, &token('c', at(11)), GRACE, &any_device, at(11)).unwrap(),
            Refreshed::Unknown
        );
    }

    #[test]
    fn revoking_or_removing_a_user_ends_their_sessions_in_the_same_transaction() {
        use palisade_core::auth::user_revocation;
        use palisade_core::store::{User, UserStore as _};
        let (_dir, store) = fresh();
        let cap = SessionCap { max: 10, policy: CapPolicy::Evict };
        for (id, user, hash) in [("s1", "alice", 'a'), ("s2", "alice", 'b'), ("s3", "bob", 'c')] {
            store.open_session(&session(id, user, T0), &token(hash, T0), cap, T0).unwrap().unwrap();
        }
        let mut ended = store.revoke(&user_revocation("alice", at(1)).unwrap(), at(1), "").unwrap();
        ended.sort();
        assert_eq!(ended, ["s1", "s2"]);
        assert!(store.live_sessions("alice", at(2)).unwrap().is_empty());
        assert_eq!(store.revoke(&Revocation::Token("t1".into()), at(2), "").unwrap(), Vec::<String>::new());

        let bob = User { id: "bob".into(), roles: Vec::new(), password_hash: "$argon2id$x".into(), created: T0 };
        assert!(store.add_user(&bob).unwrap());
        assert_eq!(store.remove_user("bob", at(3)).unwrap(), Some(vec!["s3".to_owned()]));
        assert_eq!(store.remove_user("bob", at(4)).unwrap(), None);
        let mut revoked = revoked_sessions(&store);
        revoked.sort();
        assert_eq!(revoked, ["s1", "s2", "s3"]);
    }

    #[test]
    fn a_session_revocation_lasts_as_long_as_its_newest_token_whatever_the_ttl_now() {
        let (_dir, store) = fresh();
        let day = Duration::from_secs(86_400);
        // Minted under a day-long token ttl; the ttl is 15 minutes by the
        // time the session ends.
        let long = StoredRefresh { access_expires: T0.saturating_add(day), ..token('a', T0) };
        store.open_session(&session("s1", "alice", T0), &long, EVICT, T0).unwrap().unwrap();
        let short = token('b', at(60));
        assert!(matches!(
            store.refresh(&long.hash, &short, GRACE, &any_device, at(60)).unwrap(),
            Refreshed::Rotated(_)
        ));
        store.open_session(&session("s2", "alice", T0), &token('c', T0), EVICT, T0).unwrap().unwrap();
        assert!(store.end_session("s1", EndReason::Logout, at(61)).unwrap());
        assert!(store.end_session("s2", EndReason::Logout, at(61)).unwrap());
        // An hour on, today's ttl says every token is gone: only s2's are.
        let hour = at(3600);
        store.prune_sessions(hour, hour).unwrap();
        assert_eq!(revoked_sessions(&store), ["s1"], "the day-long token still needs its revocation");
        let after = T0.saturating_add(day).saturating_add(Duration::from_secs(1));
        store.prune_sessions(after, after).unwrap();
        assert!(revoked_sessions(&store).is_empty());
    }
}
