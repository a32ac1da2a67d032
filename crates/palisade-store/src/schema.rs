//! Versioned schema migrations.
//!
//! `PRAGMA user_version` holds how many entries of [`MIGRATIONS`] the file
//! has had applied. Entries are never edited or reordered once released: a
//! change to the schema is a new entry at the end.

use palisade_core::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Each entry takes the schema from version `i` to `i + 1`.
///
/// Plain tables (no `STRICT`), so that a `sqlite3` shell older than 3.37
/// can still read the file; the `CHECK`s keep the values this code parses
/// back.
const MIGRATIONS: &[&str] = &[
    // 1: bans in force or remembered (one row per subject), and every ban
    //    and lift ever made. Times are Unix milliseconds; until_ms NULL is
    //    a permanent ban.
    "CREATE TABLE bans (
        subject  TEXT PRIMARY KEY NOT NULL,
        since_ms INTEGER NOT NULL CHECK (since_ms >= 0),
        until_ms INTEGER CHECK (until_ms >= 0),
        strikes  INTEGER NOT NULL CHECK (strikes >= 0),
        reason   TEXT NOT NULL,
        source   TEXT NOT NULL CHECK (source IN ('auto', 'operator'))
    );
    CREATE INDEX bans_until ON bans (until_ms);
    CREATE TABLE ban_history (
        id       INTEGER PRIMARY KEY,
        at_ms    INTEGER NOT NULL CHECK (at_ms >= 0),
        action   TEXT NOT NULL CHECK (action IN ('ban', 'lift')),
        subject  TEXT NOT NULL,
        since_ms INTEGER NOT NULL CHECK (since_ms >= 0),
        until_ms INTEGER CHECK (until_ms >= 0),
        strikes  INTEGER NOT NULL CHECK (strikes >= 0),
        reason   TEXT NOT NULL,
        source   TEXT NOT NULL CHECK (source IN ('auto', 'operator'))
    );
    CREATE INDEX ban_history_subject ON ban_history (subject, id);",
    // 2: the own issuer's users. `roles` is a JSON array of role names;
    //    `password_hash` an argon2id PHC string.
    "CREATE TABLE users (
        id            TEXT PRIMARY KEY NOT NULL,
        roles         TEXT NOT NULL CHECK (json_valid(roles) AND json_type(roles) = 'array'),
        password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
        created_ms    INTEGER NOT NULL CHECK (created_ms >= 0)
    );",
    // 3: revoked tokens (`kind` 'token', `value` the jti) and users' tokens
    //    issued before `before_ms` (`kind` 'user', `value` the sub).
    "CREATE TABLE revocations (
        kind       TEXT NOT NULL CHECK (kind IN ('token', 'user')),
        value      TEXT NOT NULL,
        before_ms  INTEGER CHECK (before_ms >= 0 AND (kind = 'user') = (before_ms IS NOT NULL)),
        created_ms INTEGER NOT NULL CHECK (created_ms >= 0),
        reason     TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    );",
    // 4: the own issuer's login sessions and their refresh tokens (a
    //    session is one refresh family: every token rotated from one
    //    login), and revocations of a whole session (`kind` 'session',
    //    `value` the sid). SQLite cannot change a CHECK in place, so
    //    `revocations` is rebuilt with the new kind allowed.
    "CREATE TABLE revocations_4 (
        kind       TEXT NOT NULL CHECK (kind IN ('token', 'session', 'user')),
        value      TEXT NOT NULL,
        before_ms  INTEGER CHECK (before_ms >= 0 AND (kind = 'user') = (before_ms IS NOT NULL)),
        created_ms INTEGER NOT NULL CHECK (created_ms >= 0),
        reason     TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    );
    INSERT INTO revocations_4 (kind, value, before_ms, created_ms, reason)
        SELECT kind, value, before_ms, created_ms, reason FROM revocations;
    DROP TABLE revocations;
    ALTER TABLE revocations_4 RENAME TO revocations;
    CREATE INDEX revocations_created ON revocations (kind, created_ms);
    CREATE TABLE sessions (
        id             TEXT PRIMARY KEY NOT NULL,
        user_id        TEXT NOT NULL,
        created_ms     INTEGER NOT NULL CHECK (created_ms >= 0),
        last_active_ms INTEGER NOT NULL CHECK (last_active_ms >= 0),
        expires_ms     INTEGER NOT NULL CHECK (expires_ms >= 0),
        ended_ms       INTEGER CHECK (ended_ms >= 0),
        end_reason     TEXT CHECK ((ended_ms IS NULL) = (end_reason IS NULL)),
        user_agent     TEXT NOT NULL,
        ip             TEXT NOT NULL,
        device         TEXT NOT NULL,
        cookie         INTEGER NOT NULL CHECK (cookie IN (0, 1))
    );
    CREATE INDEX sessions_user ON sessions (user_id, ended_ms);
    CREATE TABLE refresh_tokens (
        hash       TEXT PRIMARY KEY NOT NULL CHECK (length(hash) = 64),
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        issued_ms  INTEGER NOT NULL CHECK (issued_ms >= 0),
        expires_ms INTEGER NOT NULL CHECK (expires_ms >= 0),
        used_ms    INTEGER CHECK (used_ms >= 0)
    );
    CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);",
    // 5: the audit log, a hash chain (palisade_core::audit): `seq` from 1
    //    with no gaps, hashes as 64 lower-case hex digits so `sqlite3` shows
    //    them as the CLI and the checkpoints print them. No CHECK on `kind`
    //    or `severity`: a later palisade may add kinds, and what does not
    //    parse is reported by `palisade audit verify`, naming its row.
    "CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
        ts_ms     INTEGER NOT NULL CHECK (ts_ms >= 0),
        kind      TEXT NOT NULL,
        severity  TEXT NOT NULL,
        ip        TEXT,
        user      TEXT,
        session   TEXT,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
        hash      TEXT NOT NULL CHECK (length(hash) = 64)
    );
    CREATE INDEX audit_ts ON audit (ts_ms);",
    // 6: when a session's access tokens expire (the newest one minted),
    //    and a session revocation keeps it, so pruning waits for the token
    //    minted under the longest `auth.token_ttl`, not today's. NULL in
    //    rows written before.
    "ALTER TABLE sessions ADD COLUMN tokens_until_ms INTEGER CHECK (tokens_until_ms >= 0);
    ALTER TABLE revocations ADD COLUMN expires_ms INTEGER CHECK (expires_ms >= 0);",
    // 7: rooms' owners (palisade_core::ownership): one row per owned room.
    "CREATE TABLE room_owners (
        room     TEXT PRIMARY KEY NOT NULL,
        owner    TEXT NOT NULL,
        since_ms INTEGER NOT NULL CHECK (since_ms >= 0)
    );",
];

/// Brings the schema up to date; returns how many migrations it applied.
///
/// Each migration runs in its own immediate transaction that first reads
/// the version again, so two processes opening a new file at once apply
/// each migration exactly once between them.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    // The usual case, without taking the write lock a running server may
    // hold.
    if user_version(conn)? == MIGRATIONS.len() {
        return Ok(0);
    }
    let mut applied = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(crate::sql("migrating"))?;
        let version = user_version(&tx)?;
        let Some(migration) = MIGRATIONS.get(version) else {
            if version > MIGRATIONS.len() {
                return Err(StoreError(format!(
                    "the database has schema version {version}, newer than the {} this palisade knows: \
                     it was written by a newer palisade; run that version, or restore a backup made for this one",
                    MIGRATIONS.len()
                )));
            }
            return Ok(applied);
        };
        let next = version + 1;
        tx.execute_batch(migration).map_err(|e| StoreError(format!("schema migration {next}: {e}")))?;
        // PRAGMA takes no bound parameters; `next` is a small integer.
        tx.execute_batch(&format!("PRAGMA user_version = {next}"))
            .map_err(|e| StoreError(format!("schema migration {next}: {e}")))?;
        tx.commit().map_err(|e| StoreError(format!("schema migration {next}: {e}")))?;
        applied += 1;
    }
}

/// The schema version this build brings a file to.
#[cfg(test)]
pub(crate) const VERSION: usize = MIGRATIONS.len();

fn user_version(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(crate::sql("reading the schema version"))?;
    // user_version is a signed 32-bit header field; a negative one is not
    // ours either.
    usize::try_from(version)
        .map_err(|_| StoreError(format!("the database has schema version {version}, which no palisade writes")))
}
