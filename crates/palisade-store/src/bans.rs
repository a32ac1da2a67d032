//! [`BanStore`] on the `bans` and `ban_history` tables.
//!
//! Subjects and sources are stored in their text forms (`ip:127.0.0.2`,
//! `user:alice`; `auto`, `operator`), so `sqlite3 palisade.db 'SELECT * FROM
//! bans'` reads as the CLI prints. A row that does not parse back was not
//! written by this code: it is reported as an error naming the row, never
//! skipped and never a panic.

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::guard::{Ban, BanSource, Subject};
use palisade_core::store::{BanAction, BanRecord, BanStore, StoreError};
use rusqlite::{OptionalExtension as _, Row, params};

use crate::{Sqlite, from_sql, sql, to_sql};

/// A `bans` or `ban_history` row's ban columns, as SQLite returned them.
struct RawBan {
    subject: String,
    since_ms: i64,
    until_ms: Option<i64>,
    strikes: i64,
    reason: String,
    source: String,
}

impl RawBan {
    /// Reads the six ban columns starting at column `at`.
    fn read(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            subject: row.get(at)?,
            since_ms: row.get(at + 1)?,
            until_ms: row.get(at + 2)?,
            strikes: row.get(at + 3)?,
            reason: row.get(at + 4)?,
            source: row.get(at + 5)?,
        })
    }

    /// The ban, or an error naming the row (`row`) and its bad column.
    fn parse(self, row: &str) -> Result<Ban, StoreError> {
        let bad = |column: &str, value: &dyn std::fmt::Debug| {
            StoreError(format!("{row}: corrupt {column} {value:?}, not written by palisade"))
        };
        Ok(Ban {
            subject: self.subject.parse().map_err(|_| bad("subject", &self.subject))?,
            since: from_sql(self.since_ms).ok_or_else(|| bad("since_ms", &self.since_ms))?,
            until: match self.until_ms {
                None => None,
                Some(ms) => Some(from_sql(ms).ok_or_else(|| bad("until_ms", &ms))?),
            },
            strikes: u32::try_from(self.strikes).map_err(|_| bad("strikes", &self.strikes))?,
            source: BanSource::from_name(&self.source).ok_or_else(|| bad("source", &self.source))?,
            reason: self.reason,
        })
    }
}

impl BanStore for Sqlite {
    fn bans(&self, now: Timestamp, remember_after_end: Duration) -> Result<Vec<Ban>, StoreError> {
        // until + remember > now, as until > now - remember so that nothing
        // overflows in SQL (it may go below zero, which keeps every row).
        let remember = i64::try_from(remember_after_end.as_millis()).unwrap_or(i64::MAX);
        let cutoff = to_sql(now).saturating_sub(remember);
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT subject, since_ms, until_ms, strikes, reason, source FROM bans
                 WHERE until_ms IS NULL OR until_ms > ?1 ORDER BY subject",
            )
            .map_err(sql("reading bans"))?;
        let rows = stmt.query_map([cutoff], |row| RawBan::read(row, 0)).map_err(sql("reading bans"))?;
        let mut bans = Vec::new();
        for raw in rows {
            let raw = raw.map_err(sql("reading bans"))?;
            let name = format!("bans row {:?}", raw.subject);
            bans.push(raw.parse(&name)?);
        }
        Ok(bans)
    }

    /// The history record's time is the ban's `since`: the moment it was
    /// imposed.
    fn put(&self, ban: &Ban) -> Result<(), StoreError> {
        let subject = ban.subject.to_string();
        let until = ban.until.map(to_sql);
        self.write("storing a ban", |tx| {
            // Core's rule: an automatic ban never shortens one in force that
            // another process wrote and this one had not read yet.
            let old = tx
                .query_row(
                    "SELECT subject, since_ms, until_ms, strikes, reason, source FROM bans WHERE subject = ?1",
                    [&subject],
                    |row| RawBan::read(row, 0),
                )
                .optional()
                .map_err(sql("storing a ban"))?;
            if let Some(old) = old
                && !ban.replaces(&old.parse(&format!("bans row {subject:?}"))?)
            {
                return Ok(());
            }
            tx.execute(
                "INSERT INTO bans (subject, since_ms, until_ms, strikes, reason, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (subject) DO UPDATE SET since_ms = excluded.since_ms,
                     until_ms = excluded.until_ms, strikes = excluded.strikes,
                     reason = excluded.reason, source = excluded.source",
                params![subject, to_sql(ban.since), until, ban.strikes, ban.reason, ban.source.as_str()],
            )
            .map_err(sql("storing a ban"))?;
            append(tx, to_sql(ban.since), BanAction::Ban, &subject, ban)
        })
    }

    fn lift(&self, subject: &Subject, now: Timestamp) -> Result<bool, StoreError> {
        let text = subject.to_string();
        self.write("lifting a ban", |tx| {
            let raw = tx
                .query_row(
                    "DELETE FROM bans WHERE subject = ?1
                     RETURNING subject, since_ms, until_ms, strikes, reason, source",
                    [&text],
                    |row| RawBan::read(row, 0),
                )
                .optional()
                .map_err(sql("lifting a ban"))?;
            let Some(raw) = raw else { return Ok(false) };
            let ban = raw.parse(&format!("bans row {text:?}"))?;
            append(tx, to_sql(now), BanAction::Lift, &text, &ban)?;
            Ok(true)
        })
    }

    fn history(&self, subject: Option<&Subject>, limit: usize) -> Result<Vec<BanRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let subject = subject.map(Subject::to_string);
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, at_ms, action, subject, since_ms, until_ms, strikes, reason, source
                 FROM ban_history WHERE ?1 IS NULL OR subject = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql("reading ban history"))?;
        let rows = stmt
            .query_map(params![subject, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?, RawBan::read(row, 3)?))
            })
            .map_err(sql("reading ban history"))?;
        let mut records = Vec::new();
        for row in rows {
            let (id, at_ms, action, raw) = row.map_err(sql("reading ban history"))?;
            let name = format!("ban_history row {id}");
            let at = from_sql(at_ms).ok_or_else(|| StoreError(format!("{name}: corrupt at_ms {at_ms}")))?;
            let action = match action.as_str() {
                "ban" => BanAction::Ban,
                "lift" => BanAction::Lift,
                other => return Err(StoreError(format!("{name}: corrupt action {other:?}"))),
            };
            records.push(BanRecord { at, action, ban: raw.parse(&name)? });
        }
        Ok(records)
    }

    fn prune(&self, before: Timestamp, max: usize) -> Result<usize, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.write("pruning bans", |tx| {
            let ended = tx
                .execute("DELETE FROM bans WHERE until_ms IS NOT NULL AND until_ms < ?1", [to_sql(before)])
                .map_err(sql("pruning bans"))?;
            let over = tx
                .execute(
                    "DELETE FROM bans WHERE subject IN (
                         SELECT subject FROM bans WHERE source = 'auto' ORDER BY until_ms
                         LIMIT max(0, (SELECT count(*) FROM bans) - ?1))",
                    [max],
                )
                .map_err(sql("pruning bans"))?;
            Ok(ended + over)
        })
    }

    fn prune_history(&self, before: Timestamp, keep: usize) -> Result<usize, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.write("pruning the ban history", |tx| {
            // The newest `keep` rows are those above the id `keep` rows
            // down; with fewer rows the subquery is NULL and keeps all.
            tx.execute(
                "DELETE FROM ban_history WHERE at_ms < ?1
                     OR id <= (SELECT id FROM ban_history ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![to_sql(before), keep],
            )
            .map_err(sql("pruning the ban history"))
        })
    }

    /// `PRAGMA data_version`: it moves when another connection (another
    /// process, or another [`Sqlite`] on the same file) commits, to any
    /// table. This connection's own writes do not move it, which is what
    /// the server wants: the bans it stores itself are in its memory
    /// already. A move with no ban changed (a later table's write) costs
    /// the caller one needless reload, never a missed one.
    fn version(&self) -> Result<u64, StoreError> {
        let version: i64 =
            self.conn().query_row("PRAGMA data_version", [], |row| row.get(0)).map_err(sql("reading data_version"))?;
        // SQLite's counter is unsigned in practice; reinterpret rather
        // than fail, since only changes matter.
        Ok(version.cast_unsigned())
    }
}

/// Appends one history record.
fn append(
    tx: &rusqlite::Transaction<'_>,
    at_ms: i64,
    action: BanAction,
    subject: &str,
    ban: &Ban,
) -> Result<(), StoreError> {
    let action = match action {
        BanAction::Ban => "ban",
        BanAction::Lift => "lift",
    };
    tx.execute(
        "INSERT INTO ban_history (at_ms, action, subject, since_ms, until_ms, strikes, reason, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            at_ms,
            action,
            subject,
            to_sql(ban.since),
            ban.until.map(to_sql),
            ban.strikes,
            ban.reason,
            ban.source.as_str()
        ],
    )
    .map_err(sql("appending to the ban history"))?;
    Ok(())
}
