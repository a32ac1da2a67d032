//! [`UserStore`] on the `users` table.

use palisade_core::Timestamp;
use palisade_core::store::{EndReason, StoreError, User, UserStore};
use rusqlite::{OptionalExtension as _, Row, params};

use crate::{Sqlite, from_sql, sql, to_sql};

const COLUMNS: &str = "id, roles, password_hash, created_ms";

/// Reads a `users` row; a row this code did not write is an error naming
/// it, never a panic.
fn read(row: &Row<'_>) -> rusqlite::Result<Result<User, StoreError>> {
    let (id, roles, password_hash, created_ms): (String, String, String, i64) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let bad = |column: &str| StoreError(format!("users row {id:?}: corrupt {column}, not written by palisade"));
    let parsed = serde_json::from_str::<Vec<String>>(&roles).map_err(|_| bad("roles")).and_then(|roles| {
        Ok(User {
            roles,
            created: from_sql(created_ms).ok_or_else(|| bad("created_ms"))?,
            password_hash,
            id: id.clone(),
        })
    });
    Ok(parsed)
}

impl UserStore for Sqlite {
    fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles = serde_json::to_string(&user.roles).map_err(|e| StoreError(format!("adding a user: {e}")))?;
        self.write("adding a user", |tx| {
            tx.execute(
                "INSERT INTO users (id, roles, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                params![user.id, roles, user.password_hash, to_sql(user.created)],
            )
            .map(|added| added == 1)
            .map_err(sql("adding a user"))
        })
    }

    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let conn = self.conn();
        // Cached: every refresh reads its user's current roles.
        let found = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id], read).optional())
            .map_err(sql("reading a user"))?;
        found.transpose()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY id")).map_err(sql("listing users"))?;
        let rows = stmt.query_map([], read).map_err(sql("listing users"))?;
        rows.map(|row| row.map_err(sql("listing users"))?).collect()
    }

    fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        let roles = serde_json::to_string(roles).map_err(|e| StoreError(format!("changing roles: {e}")))?;
        self.write("changing roles", |tx| {
            tx.execute("UPDATE users SET roles = ?2 WHERE id = ?1", params![id, roles])
                .map(|n| n == 1)
                .map_err(sql("changing roles"))
        })
    }

    fn remove_user(&self, id: &str, now: Timestamp) -> Result<Option<Vec<String>>, StoreError> {
        self.write("removing a user", |tx| {
            let removed = tx.execute("DELETE FROM users WHERE id = ?1", [id]).map_err(sql("removing a user"))?;
            if removed == 0 {
                return Ok(None);
            }
            crate::sessions::end_all(tx, id, EndReason::UserRemoved, now).map(Some)
        })
    }
}
