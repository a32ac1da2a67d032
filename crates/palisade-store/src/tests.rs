//! The SQLite store's own tests: the file, its schema and its rows. What
//! every store of bans and revocations must do is the conformance suite in
//! `crates/palisade-server/src/store/conformance.rs`, which runs against
//! this store as well as Redis.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::guard::{Ban, BanSource, Subject};
use palisade_core::store::BanStore;

use super::*;

const MIN: Duration = Duration::from_secs(60);
const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn subject(s: &str) -> Subject {
    s.parse().unwrap()
}

fn ban(s: &str, since: Timestamp, length: Option<Duration>, strikes: u32) -> Ban {
    Ban {
        subject: subject(s),
        since,
        until: length.map(|l| since.saturating_add(l)),
        strikes,
        reason: format!("reason for {s}"),
        source: if strikes > 1 { BanSource::Auto } else { BanSource::Operator },
    }
}

fn fresh() -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open_in(&dir.path().join("data")).unwrap();
    (dir, store)
}

#[test]
fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let permanent = ban("user:forever", T0, None, 1);
    let temporary = ban("ip:127.0.0.2", T0, Some(15 * MIN), 2);
    {
        let store = Sqlite::open_in(dir.path()).unwrap();
        store.put(&permanent).unwrap();
        store.put(&temporary).unwrap();
    }
    let store = Sqlite::open_in(dir.path()).unwrap();
    assert_eq!(store.bans(T0, Duration::ZERO).unwrap(), [temporary, permanent]);
    assert_eq!(store.history(None, 10).unwrap().len(), 2);

    let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    assert_eq!(schema::migrate(&mut conn).unwrap(), 0, "an up-to-date file needs nothing");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(usize::try_from(version).unwrap(), schema::VERSION);

    let mut blank = Connection::open(dir.path().join("blank.db")).unwrap();
    assert_eq!(schema::migrate(&mut blank).unwrap(), schema::VERSION);
    assert_eq!(schema::migrate(&mut blank).unwrap(), 0);
}

#[test]
fn the_file_is_in_wal_mode_with_full_sync_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open_in(&dir.path().join("nested/data")).unwrap();
    assert_eq!(store.path(), dir.path().join("nested/data").join(DB_FILE));
    let conn = store.conn();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&dir.path().join("nested/data")), 0o700);
        assert_eq!(mode(&dir.path().join("nested/data/palisade.db-wal")), 0o600, "SQLite copies the file's mode");
    }
}

#[test]
fn version_moves_on_another_connections_write_not_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Sqlite::open_in(dir.path()).unwrap();
    let cli = Sqlite::open_in(dir.path()).unwrap();
    let v0 = server.version().unwrap();
    assert_eq!(server.version().unwrap(), v0, "stable while nothing happens");

    server.put(&ban("ip:127.0.0.2", T0, Some(MIN), 1)).unwrap();
    assert_eq!(server.version().unwrap(), v0, "own write");

    cli.put(&ban("user:mallory", T0, None, 1)).unwrap();
    let v1 = server.version().unwrap();
    assert_ne!(v1, v0, "the CLI's ban");
    assert_eq!(server.bans(T0, Duration::ZERO).unwrap().len(), 2, "and the server reads it");

    assert!(cli.lift(&subject("user:mallory"), T0).unwrap());
    assert_ne!(server.version().unwrap(), v1, "the CLI's lift");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(Sqlite::open_in(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", schema::VERSION + 1)).unwrap();
    drop(conn);
    let err = Sqlite::open_in(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("schema version {}", schema::VERSION + 1)), "{err}");
    assert!(err.contains("newer palisade"), "{err}");
    assert!(err.contains(DB_FILE), "names the file: {err}");
}

#[test]
fn a_corrupt_row_is_an_error_naming_it() {
    let (_dir, store) = fresh();
    store.put(&ban("ip:127.0.0.2", T0, None, 1)).unwrap();
    store.conn().execute("UPDATE bans SET subject = 'host:nope'", []).unwrap();
    let err = store.bans(T0, Duration::ZERO).unwrap_err().to_string();
    assert!(err.contains("bans row \"host:nope\"") && err.contains("subject"), "{err}");

    store.conn().execute("UPDATE ban_history SET since_ms = -5", []).unwrap_err();
    store.conn().execute("UPDATE ban_history SET strikes = 1 << 40", []).unwrap();
    let err = store.history(None, 10).unwrap_err().to_string();
    assert!(err.contains("ban_history row 1") && err.contains("strikes"), "{err}");
}

#[test]
fn processes_opening_a_new_file_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let stores: Vec<Sqlite> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| Sqlite::open(&path))).collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    stores[0].put(&ban("ip:127.0.0.2", T0, None, 1)).unwrap();
    assert_eq!(stores[3].bans(T0, Duration::ZERO).unwrap().len(), 1);
}

mod users {
    use palisade_core::store::{User, UserStore};

    use super::*;

    fn user(id: &str, roles: &[&str]) -> User {
        User {
            id: id.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{id}"),
            created: T0,
        }
    }

    #[test]
    fn a_corrupt_user_row_is_an_error_naming_it_and_bad_values_are_refused() {
        let (_dir, store) = fresh();
        store.add_user(&user("alice", &["student"])).unwrap();
        store.conn().execute("UPDATE users SET roles = '{}'", []).unwrap_err();
        store.conn().execute("UPDATE users SET password_hash = 'plain'", []).unwrap_err();
        store.conn().execute("UPDATE users SET roles = '[1]'", []).unwrap();
        let err = store.user("alice").unwrap_err().to_string();
        assert!(err.contains("users row \"alice\"") && err.contains("roles"), "{err}");
        assert!(store.users().is_err());
    }
}
