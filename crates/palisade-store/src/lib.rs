//! Palisade's embedded durable store: one SQLite file,
//! `<data_dir>/palisade.db`, behind the narrow traits of
//! `palisade_core::store`.
//!
//! SQLite rather than a single-process key-value store because operators
//! run `palisade ban …` and `palisade user …` while the server runs,
//! and inspect the file with `sqlite3`. Every connection opens the file in
//! WAL mode with `synchronous=FULL` (these are security records, written
//! rarely) and a busy timeout, so the server and the CLI take turns instead
//! of failing.
//!
//! The calls are synchronous and may block on the disk or on another
//! process's transaction: the server makes them from a blocking thread,
//! never from an async worker. One [`Sqlite`] holds one connection behind a
//! mutex.
//!
//! The schema is versioned: opening applies each missing
//! migration in its own transaction and records the count in
//! `PRAGMA user_version`; a file written by a newer palisade is refused
//! rather than guessed at. Each table family has its own module (`bans`,
//! `users`, `revocations`, `sessions`, `audit`, `owners`), and a new table is a new entry at
//! the end of the migration list.

#![forbid(unsafe_code)]

mod audit;
mod bans;
mod owners;
mod revocations;
mod schema;
mod sessions;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "palisade.db";

/// How long a statement waits for another connection's write lock before
/// failing with "database is locked". Writes here are single rows, so
/// anything near this means a stuck process, not contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store: one connection to one database file.
///
/// Any number of processes may open the same file; each sees the others'
/// committed writes at its next call.
pub struct Sqlite {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Sqlite {
    /// Opens (creating it and its directory if needed) the database at
    /// `path` and brings its schema up to date.
    ///
    /// A new file is created with mode 0600 on unix, a new directory with
    /// 0700. Fails if the file's schema is newer than this build knows.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let fail = |e: rusqlite::Error| StoreError(format!("cannot open {}: {e}", path.display()));
        let mut conn = Connection::open(path).map_err(fail)?;
        // Set first, so the pragmas and migrations below wait for a server
        // that is writing at the same moment.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        let mode = wal_mode(&conn).map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!("{}: cannot switch to WAL mode (journal_mode is {mode})", path.display())));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(fail)?;
        schema::migrate(&mut conn).map_err(|e| StoreError(format!("{}: {}", path.display(), e.0)))?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_owned() })
    }

    /// Opens `<data_dir>/palisade.db` (see [`Sqlite::open`]).
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&data_dir.join(DB_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection. A panic while it was held cannot have left a
    /// transaction half-applied: an unfinished [`rusqlite::Transaction`]
    /// rolls back when it is dropped during the unwind.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in an immediate (write-locked from the start) transaction
    /// and commits. Immediate, so a read followed by a write never meets a
    /// snapshot that another process has moved past.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(what))?;
        let value = f(&tx)?;
        tx.commit().map_err(sql(what))?;
        Ok(value)
    }
}

/// Creates `path` empty with mode 0600 (and its directory with 0700) if it
/// does not exist, so SQLite never creates it with the umask's mode; the
/// `-wal` and `-shm` files SQLite adds take the database file's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let fail =
        |what: &str, p: &Path, e: std::io::Error| StoreError(format!("cannot create {what} {}: {e}", p.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| fail("directory", dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail("database", path, e)),
    }
}

/// Switches to WAL and returns the journal mode now in force. On a new
/// file another process may be switching at the same moment; SQLite then
/// answers "busy" at once rather than calling the busy handler (waiting
/// could deadlock two lock upgrades), so retry here, within the busy
/// timeout.
fn wal_mode(conn: &Connection) -> Result<String, rusqlite::Error> {
    const PAUSE: Duration = Duration::from_millis(10);
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(PAUSE);
            }
            result => return result,
        }
    }
}

/// Maps a SQLite error to a [`StoreError`] that says what was being done.
fn sql(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

/// A timestamp as SQLite's signed 64-bit integer. Past `i64::MAX` ms (292
/// million years) it saturates, which only the "never" of a saturated
/// deadline reaches.
fn to_sql(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// The inverse of [`to_sql`]; `None` for a negative value, which this code
/// never writes.
fn from_sql(ms: i64) -> Option<Timestamp> {
    u64::try_from(ms).ok().map(Timestamp::from_millis)
}

#[cfg(test)]
mod tests;
