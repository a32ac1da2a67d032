//! [`AuditStore`] on the `audit` table.
//!
//! `append` chains inside the immediate transaction of [`Sqlite::write`]:
//! the head is read under the write lock, so the server and a CLI command
//! appending at once are serialized by SQLite and continue one chain.

use palisade_core::Timestamp;
use palisade_core::audit::{Entry, GENESIS, Hash, Kind, Record, Rewritten, Severity, hex, parse_hash};
use palisade_core::store::{AuditStore, StoreError};
use rusqlite::{OptionalExtension as _, Row, params};

use crate::{Sqlite, from_sql, sql, to_sql};

/// The columns, in the order [`RawRecord::read`] reads them.
const COLUMNS: &str = "seq, ts_ms, kind, severity, ip, user, session, detail, prev_hash, hash";

/// An `audit` row as SQLite returned it.
struct RawRecord {
    seq: i64,
    ts_ms: i64,
    kind: String,
    severity: String,
    ip: Option<String>,
    user: Option<String>,
    session: Option<String>,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl RawRecord {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            ts_ms: row.get(1)?,
            kind: row.get(2)?,
            severity: row.get(3)?,
            ip: row.get(4)?,
            user: row.get(5)?,
            session: row.get(6)?,
            detail: row.get(7)?,
            prev_hash: row.get(8)?,
            hash: row.get(9)?,
        })
    }

    /// The record, or an error naming the row and its bad column: a row
    /// that does not parse back was not written by this code.
    fn parse(self) -> Result<Record, StoreError> {
        let seq = self.seq;
        let bad = |column: &str, value: &dyn std::fmt::Debug| {
            StoreError(format!("audit record seq={seq}: corrupt {column} {value:?}, not written by palisade"))
        };
        let entry = Entry {
            ts: from_sql(self.ts_ms).ok_or_else(|| bad("ts_ms", &self.ts_ms))?,
            kind: Kind::from_name(&self.kind).ok_or_else(|| bad("kind", &self.kind))?,
            severity: Severity::from_name(&self.severity).ok_or_else(|| bad("severity", &self.severity))?,
            ip: self.ip,
            user: self.user,
            session: self.session,
            detail: self.detail,
        };
        Ok(Record {
            seq: u64::try_from(seq).map_err(|_| bad("seq", &seq))?,
            entry,
            prev_hash: parse_hash(&self.prev_hash).ok_or_else(|| bad("prev_hash", &self.prev_hash))?,
            hash: parse_hash(&self.hash).ok_or_else(|| bad("hash", &self.hash))?,
        })
    }
}

impl AuditStore for Sqlite {
    fn append_after(
        &self,
        signed: Option<(u64, Hash)>,
        entries: &[Entry],
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError> {
        const WHAT: &str = "appending to the audit log";
        self.write(WHAT, |tx| {
            if let Some(signed) = signed
                && let Err(rewritten) = Rewritten::check(signed, hash_at(tx, signed.0)?)
            {
                return Ok(Err(rewritten));
            }
            chain_in(tx, entries).map(Ok)
        })
    }

    fn prune_point(
        &self,
        older_than: Option<Timestamp>,
        keep: Option<u64>,
        below: u64,
    ) -> Result<Option<(u64, Hash)>, StoreError> {
        const WHAT: &str = "finding what audit.retention removes";
        let conn = self.conn();
        let Some((head, _)) = read_head(&conn)? else { return Ok(None) };
        let by_age = match older_than {
            Some(t) => conn
                .query_row("SELECT max(seq) FROM audit WHERE ts_ms < ?1", params![to_sql(t)], |row| {
                    row.get::<_, Option<i64>>(0)
                })
                .map_err(sql(WHAT))?
                .and_then(|seq| u64::try_from(seq).ok())
                .unwrap_or(0),
            None => 0,
        };
        let by_count = keep.map_or(0, |keep| head.saturating_sub(keep));
        let through = by_age.max(by_count).min(below.saturating_sub(1)).min(head.saturating_sub(1));
        if through == 0 {
            return Ok(None);
        }
        Ok(hash_at(&conn, through)?.map(|hash| (through, hash)))
    }

    fn prune_through(
        &self,
        signed: (u64, Hash),
        anchor: (u64, Hash),
        note: Entry,
    ) -> Result<Result<Option<(u64, Hash)>, Rewritten>, StoreError> {
        const WHAT: &str = "pruning the audit log";
        self.write(WHAT, |tx| {
            for known in [signed, anchor] {
                if let Err(rewritten) = Rewritten::check(known, hash_at(tx, known.0)?) {
                    return Ok(Err(rewritten));
                }
            }
            tx.execute("DELETE FROM audit WHERE seq <= ?1", params![sql_seq(anchor.0)]).map_err(sql(WHAT))?;
            chain_in(tx, std::slice::from_ref(&note)).map(Ok)
        })
    }

    fn head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        read_head(&self.conn())
    }

    fn range(&self, from_seq: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2"),
            params![sql_seq(from_seq), sql_limit(limit)],
        )
    }

    fn since(
        &self,
        since: Timestamp,
        kind: Option<Kind>,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM audit WHERE seq >= ?1 AND ts_ms >= ?2 AND (?3 IS NULL OR kind = ?3)
                 ORDER BY seq LIMIT ?4"
            ),
            params![sql_seq(from_seq), to_sql(since), kind.map(Kind::name), sql_limit(limit)],
        )
    }
}

impl Sqlite {
    fn query(&self, query: &str, params: impl rusqlite::Params) -> Result<Vec<Record>, StoreError> {
        const WHAT: &str = "reading the audit log";
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(query).map_err(sql(WHAT))?;
        let rows = stmt.query_map(params, RawRecord::read).map_err(sql(WHAT))?;
        rows.map(|row| row.map_err(sql(WHAT)).and_then(RawRecord::parse)).collect()
    }
}

/// Chains `entries` after the head, inside the caller's transaction;
/// returns the new head.
fn chain_in(tx: &rusqlite::Transaction<'_>, entries: &[Entry]) -> Result<Option<(u64, Hash)>, StoreError> {
    const WHAT: &str = "appending to the audit log";
    let mut head = read_head(tx)?;
    let mut stmt = tx
        .prepare_cached(&format!("INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"))
        .map_err(sql(WHAT))?;
    for entry in entries {
        let (last, prev) = head.unwrap_or((0, GENESIS));
        let seq = last.checked_add(1).ok_or_else(|| StoreError(format!("{WHAT}: seq overflow")))?;
        let record = entry.clone().chain(seq, prev);
        let e = &record.entry;
        stmt.execute(params![
            i64::try_from(seq).map_err(|_| StoreError(format!("{WHAT}: seq overflow")))?,
            to_sql(e.ts),
            e.kind.name(),
            e.severity.name(),
            e.ip,
            e.user,
            e.session,
            e.detail,
            hex(&record.prev_hash),
            hex(&record.hash),
        ])
        .map_err(sql(WHAT))?;
        head = Some((seq, record.hash));
    }
    Ok(head)
}

/// The hash of the record at `seq`, `None` if there is none (or it does
/// not parse, which is as good as gone for the writer's check).
fn hash_at(conn: &rusqlite::Connection, seq: u64) -> Result<Option<Hash>, StoreError> {
    let hash: Option<String> = conn
        .query_row("SELECT hash FROM audit WHERE seq = ?1", params![sql_seq(seq)], |row| row.get(0))
        .optional()
        .map_err(sql("reading an audit record's hash"))?;
    Ok(hash.as_deref().and_then(parse_hash))
}

/// The last row's `seq` and hash.
fn read_head(conn: &rusqlite::Connection) -> Result<Option<(u64, Hash)>, StoreError> {
    const WHAT: &str = "reading the audit log's head";
    let row = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()
        .map_err(sql(WHAT))?;
    let Some((seq, hash)) = row else { return Ok(None) };
    let bad = || StoreError(format!("audit record seq={seq}: corrupt seq or hash, not written by palisade"));
    Ok(Some((u64::try_from(seq).map_err(|_| bad())?, parse_hash(&hash).ok_or_else(bad)?)))
}

/// A `seq` bound as SQLite's integer (past `i64::MAX` nothing is stored).
fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::Verifier;
    use palisade_core::refusal;

    use super::*;

    fn entry(ms: u64, kind: Kind) -> Entry {
        Entry::new(Timestamp::from_millis(ms), kind, "why").ip("127.0.0.1")
    }

    fn verify(store: &Sqlite) -> Result<(u64, Hash), String> {
        let mut verifier = Verifier::new();
        for record in store.range(1, usize::MAX).map_err(|e| e.0)? {
            verifier.push(&record).map_err(|e| e.to_string())?;
        }
        Ok(verifier.head())
    }

    #[test]
    fn appends_chain_across_connections_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.db");
        let (server, cli) = (Sqlite::open(&path).unwrap(), Sqlite::open(&path).unwrap());
        assert_eq!(server.head().unwrap(), None);
        assert_eq!(server.append(&[]).unwrap(), None);
        let origin = Kind::Refused(refusal::Kind::Origin);
        let first = server.append(&[entry(10, origin), entry(11, origin)]).unwrap().unwrap();
        assert_eq!(first.0, 2);
        // Another connection (the CLI) continues the same chain.
        let second = cli.append(&[entry(12, Kind::Ban)]).unwrap().unwrap();
        assert_eq!(second.0, 3);
        assert_eq!(server.head().unwrap(), Some(second));
        let third = server.append(&[entry(13, Kind::Unban)]).unwrap().unwrap();
        drop((server, cli));
        let reopened = Sqlite::open(&path).unwrap();
        assert_eq!(reopened.head().unwrap(), Some(third));
        assert_eq!(verify(&reopened), Ok(third));
        let records = reopened.range(1, 10).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(records[0].prev_hash, GENESIS);
        assert_eq!(records[2].entry, entry(12, Kind::Ban));
        assert_eq!(reopened.range(3, 1).unwrap()[0].seq, 3);
    }

    #[test]
    fn concurrent_appenders_never_fork_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.db");
        Sqlite::open(&path).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = Sqlite::open(&path).unwrap();
                    for i in 0..25 {
                        store.append(&[entry(t * 100 + i, Kind::AdminAction)]).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let store = Sqlite::open(&path).unwrap();
        assert_eq!(verify(&store).map(|h| h.0), Ok(100));
    }

    #[test]
    fn since_filters_by_time_and_kind_in_pages() {
        let (_dir, store) = {
            let dir = tempfile::tempdir().unwrap();
            let store = Sqlite::open_in(dir.path()).unwrap();
            (dir, store)
        };
        let csrf = Kind::Refused(refusal::Kind::Csrf);
        store.append(&[entry(1, csrf), entry(2, Kind::Ban), entry(3, csrf), entry(4, csrf)]).unwrap();
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(store.since(Timestamp::from_millis(2), None, 1, 10).unwrap()), [2, 3, 4]);
        assert_eq!(seqs(store.since(Timestamp::from_millis(0), Some(csrf), 1, 10).unwrap()), [1, 3, 4]);
        assert_eq!(seqs(store.since(Timestamp::from_millis(0), Some(csrf), 2, 1).unwrap()), [3]);
        assert!(store.since(Timestamp::from_millis(0), Some(Kind::Unban), 1, 10).unwrap().is_empty());
    }

    #[test]
    fn an_edited_row_is_caught_and_a_corrupt_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(dir.path()).unwrap();
        store.append(&[entry(1, Kind::Ban), entry(2, Kind::Ban), entry(3, Kind::Ban)]).unwrap();
        store.conn().execute("UPDATE audit SET detail = 'whx' WHERE seq = 2", []).unwrap();
        assert!(verify(&store).unwrap_err().contains("seq=2"), "{:?}", verify(&store));
        store.conn().execute("UPDATE audit SET kind = 'nonsense' WHERE seq = 3", []).unwrap();
        let err = store.range(1, 10).unwrap_err().0;
        assert!(err.contains("seq=3") && err.contains("kind"), "{err}");
    }

    #[test]
    fn an_append_after_a_rewritten_signed_record_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(dir.path()).unwrap();
        let signed = store.append(&[entry(1, Kind::Ban), entry(2, Kind::Ban), entry(3, Kind::Ban)]).unwrap().unwrap();
        // Another process appending after it is fine: the signed record stays.
        store.append(&[entry(4, Kind::Unban)]).unwrap();
        let head = store.append_after(Some(signed), &[entry(5, Kind::Ban)]).unwrap().unwrap().unwrap();
        assert_eq!(head.0, 5);
        // Record 2 deleted and the chain recomputed without a key.
        let kept: Vec<Entry> =
            store.range(1, 10).unwrap().into_iter().filter(|r| r.seq != 2).map(|r| r.entry).collect();
        store.conn().execute("DELETE FROM audit", []).unwrap();
        store.append(&kept).unwrap();
        assert!(verify(&store).is_ok(), "the forged chain verifies on its own");
        let rewritten = store.append_after(Some(signed), &[entry(6, Kind::Ban)]).unwrap().unwrap_err();
        assert_eq!(rewritten.seq, 3);
        assert_eq!(store.head().unwrap().unwrap().0, 4, "nothing written");
    }

    #[test]
    fn pruning_keeps_the_head_and_leaves_a_chain_that_verifies_from_its_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(dir.path()).unwrap();
        let entries: Vec<Entry> = (1..=10).map(|ms| entry(ms * 1000, Kind::AdminAction)).collect();
        let head = store.append(&entries).unwrap().unwrap();
        // By count: keep 4 of 10; never the signed record or past it.
        let point = store.prune_point(None, Some(4), head.0).unwrap().unwrap();
        assert_eq!(point.0, 6);
        assert_eq!(store.prune_point(None, Some(4), 3).unwrap().map(|p| p.0), Some(2));
        // By age: records before 5 s.
        assert_eq!(store.prune_point(Some(Timestamp::from_millis(5000)), None, head.0).unwrap().map(|p| p.0), Some(4));
        assert_eq!(store.prune_point(Some(Timestamp::from_millis(99_000)), None, 99).unwrap().map(|p| p.0), Some(9));
        assert_eq!(store.prune_point(None, Some(10), head.0).unwrap(), None);
        let note = entry(11_000, Kind::Retention);
        let wrong = (head.0, point.1);
        assert_eq!(
            store.prune_through(wrong, point, note.clone()).unwrap().unwrap_err().seq,
            10,
            "signed record checked"
        );
        let new_head = store.prune_through(head, point, note).unwrap().unwrap().unwrap();
        assert_eq!(new_head.0, 11);
        let kept = store.range(1, 100).unwrap();
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 8, 9, 10, 11]);
        assert_eq!(kept[0].prev_hash, point.1);
        let mut verifier = Verifier::after(point.0, point.1);
        for record in &kept {
            verifier.push(record).unwrap();
        }
        // A stale anchor (its record gone or changed) prunes nothing.
        let stale = store.prune_through(head, point, entry(12_000, Kind::Retention)).unwrap().unwrap_err();
        assert_eq!((stale.seq, stale.found), (6, None));
        assert_eq!(store.head().unwrap(), Some(new_head));
    }
}
