//! [`OwnerStore`] on the `room_owners` table.

use palisade_core::ownership::{OwnerChange, OwnerRecord};
use palisade_core::store::{OwnerStore, StoreError};
use rusqlite::params;

use crate::{Sqlite, from_sql, sql, to_sql};

impl OwnerStore for Sqlite {
    fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT room, owner, since_ms FROM room_owners ORDER BY room")
            .map_err(sql("reading room owners"))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
            .map_err(sql("reading room owners"))?;
        rows.map(|row| {
            let (room, owner, since_ms) = row.map_err(sql("reading room owners"))?;
            let since = from_sql(since_ms).ok_or_else(|| {
                StoreError(format!("room_owners row {room:?}: corrupt since_ms, not written by palisade"))
            })?;
            Ok(OwnerRecord { room: room.into(), owner: owner.into(), since })
        })
        .collect()
    }

    fn apply_owner_changes(&self, changes: &[OwnerChange]) -> Result<(), StoreError> {
        self.write("storing room owners", |tx| {
            for change in changes {
                match change {
                    OwnerChange::Claimed(r) => tx.execute(
                        "INSERT INTO room_owners (room, owner, since_ms) VALUES (?1, ?2, ?3)
                         ON CONFLICT (room) DO UPDATE SET owner = excluded.owner, since_ms = excluded.since_ms",
                        params![&*r.room, &*r.owner, to_sql(r.since)],
                    ),
                    OwnerChange::Released(room) => tx.execute("DELETE FROM room_owners WHERE room = ?1", [&**room]),
                }
                .map_err(sql("storing room owners"))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::Timestamp;

    use super::*;

    #[test]
    fn owner_changes_survive_reopening_and_a_release_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let record = |room: &str, owner: &str| OwnerRecord {
            room: room.into(),
            owner: owner.into(),
            since: Timestamp::from_secs(1_700_000_000),
        };
        {
            let store = Sqlite::open_in(&path).unwrap();
            let changes =
                [OwnerChange::Claimed(record("team:a", "alice")), OwnerChange::Claimed(record("team:b", "bob"))];
            store.apply_owner_changes(&changes).unwrap();
            store.apply_owner_changes(&[OwnerChange::Released("team:b".into())]).unwrap();
            store.apply_owner_changes(&[OwnerChange::Claimed(record("team:a", "carol"))]).unwrap();
        }
        let store = Sqlite::open_in(&path).unwrap();
        assert_eq!(store.owners().unwrap(), [record("team:a", "carol")]);
    }
}
