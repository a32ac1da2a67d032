//! Rooms' owners on Redis for the store's callers (`OwnerStore`): the
//! record `cluster::owners` claims on, read whole when a node starts and
//! written by `palisade` commands run with a node's config.

use palisade_core::ownership::{OwnerChange, OwnerRecord};
use palisade_core::store::{OwnerStore, StoreError};
use redis::Commands as _;

use super::RedisShared;
use crate::cluster::owners::{SET, decode_all, encode, with_keys};

impl OwnerStore for RedisShared {
    fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        let pairs: Vec<(String, String)> =
            self.run("reading room owners", |conn, keys| conn.hgetall(keys.guard("owners")))?;
        decode_all(pairs).map_err(StoreError)
    }

    fn apply_owner_changes(&self, changes: &[OwnerChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // One script for all: one transaction, as the trait asks.
        let script = redis::Script::new(SET);
        let mut call = script.prepare_invoke();
        for change in changes {
            match change {
                OwnerChange::Claimed(record) => call.arg(&*record.room).arg(encode(record)),
                OwnerChange::Released(room) => call.arg(&**room).arg(""),
            };
        }
        self.run("writing room owners", |conn, keys| with_keys(&mut call, keys).invoke::<i64>(conn)).map(drop)
    }
}
