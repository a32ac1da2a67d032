//! [`RevocationStore`] on the `revocations` table.

use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, check_jti, user_revocation};
use palisade_core::store::{EndReason, RevocationStore, StoreError};
use rusqlite::params;

use crate::{Sqlite, from_sql, sql, to_sql};

impl RevocationStore for Sqlite {
    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT kind, value, before_ms FROM revocations ORDER BY kind, value")
            .map_err(sql("reading revocations"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<i64>>(2)?))
            })
            .map_err(sql("reading revocations"))?;
        rows.map(|row| {
            let (kind, value, before_ms) = row.map_err(sql("reading revocations"))?;
            let bad = || StoreError(format!("revocations row ({kind}, {value:?}): corrupt, not written by palisade"));
            match (kind.as_str(), before_ms) {
                ("token", None) => check_jti(&value).map(|()| Revocation::Token(value.clone())).map_err(|_| bad()),
                ("session", None) => check_jti(&value).map(|()| Revocation::Session(value.clone())).map_err(|_| bad()),
                ("user", Some(ms)) => {
                    let before = from_sql(ms).ok_or_else(bad)?;
                    user_revocation(&value, before).map_err(|_| bad())
                }
                _ => Err(bad()),
            }
        })
        .collect()
    }

    fn revoke(&self, revocation: &Revocation, now: Timestamp, reason: &str) -> Result<Vec<String>, StoreError> {
        let (kind, value, before) = match revocation {
            Revocation::Token(jti) => ("token", jti.as_str(), None),
            Revocation::Session(sid) => ("session", sid.as_str(), None),
            Revocation::User { user, before } => ("user", user.as_str(), Some(to_sql(*before))),
        };
        self.write("revoking", |tx| {
            // A session's revocation is kept until its newest access token
            // expires, as when the session ends at a logout.
            tx.execute(
                "INSERT INTO revocations (kind, value, before_ms, created_ms, reason, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         CASE WHEN ?1 = 'session' THEN (SELECT tokens_until_ms FROM sessions WHERE id = ?2) END)
                 ON CONFLICT (kind, value) DO UPDATE SET before_ms = max(before_ms, excluded.before_ms),
                     expires_ms = max(coalesce(expires_ms, excluded.expires_ms), coalesce(excluded.expires_ms, expires_ms))",
                params![kind, value, before, to_sql(now), reason],
            )
            .map_err(sql("revoking"))?;
            match revocation {
                Revocation::User { user, .. } => crate::sessions::end_all(tx, user, EndReason::Revoked, now),
                Revocation::Token(_) | Revocation::Session(_) => Ok(Vec::new()),
            }
        })
    }
}
