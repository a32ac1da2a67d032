//! The own issuer's users on Redis (`{guard}:users`, a hash of JSON users
//! by id), shared by every node and by `palisade user` run with a node's
//! config. Removing a user ends its sessions in the same transaction, as
//! in SQLite (`sessions`).

use palisade_core::Timestamp;
use palisade_core::store::{EndReason, StoreError, User, UserStore};
use redis::Commands as _;
use serde::{Deserialize, Serialize};

use super::sessions::{encode, read_failed, user_version};
use super::{RedisShared, decode, ms};

/// A user as stored (the id is the field).
#[derive(Serialize, Deserialize)]
struct StoredUser {
    roles: Vec<String>,
    password_hash: String,
    created: u64,
}

impl StoredUser {
    fn of(user: &User) -> Self {
        Self { roles: user.roles.clone(), password_hash: user.password_hash.clone(), created: ms(user.created) }
    }

    fn user(self, id: String) -> User {
        User { id, roles: self.roles, password_hash: self.password_hash, created: Timestamp::from_millis(self.created) }
    }
}

fn parse(id: String, text: &str) -> Result<User, StoreError> {
    let stored: StoredUser = decode(text, &format!("user {id:?}"))?;
    Ok(stored.user(id))
}

impl UserStore for RedisShared {
    fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        let text = encode(&StoredUser::of(user), "a user")?;
        self.run("adding a user", |conn, keys| conn.hset_nx(keys.guard("users"), &user.id, &text))
    }

    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let text: Option<String> = self.run("reading a user", |conn, keys| conn.hget(keys.guard("users"), id))?;
        text.map(|text| parse(id.to_owned(), &text)).transpose()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let all: Vec<(String, String)> = self.run("listing users", |conn, keys| conn.hgetall(keys.guard("users")))?;
        let mut users = all.into_iter().map(|(id, text)| parse(id, &text)).collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }

    fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.atomically("setting roles", &[&user_version(&self.keys, id)], |conn, keys| {
            let text: Option<String> = conn.hget(keys.guard("users"), id).map_err(|e| read_failed(&e))?;
            let Some(text) = text else { return Ok((false, None)) };
            let stored = StoredUser { roles: roles.to_vec(), ..decode(&text, &format!("user {id:?}"))? };
            let mut writes = redis::pipe();
            writes
                .hset(keys.guard("users"), id, encode(&stored, "a user")?)
                .ignore()
                .incr(user_version(keys, id), 1)
                .ignore();
            Ok((true, Some(writes)))
        })
    }

    fn remove_user(&self, id: &str, now: Timestamp) -> Result<Option<Vec<String>>, StoreError> {
        let ended = self.atomically("removing a user", &[&user_version(&self.keys, id)], |conn, keys| {
            let exists: bool = conn.hexists(keys.guard("users"), id).map_err(|e| read_failed(&e))?;
            if !exists {
                return Ok((None, None));
            }
            let mut writes = redis::pipe();
            let ended = Self::end_live(conn, keys, &mut writes, id, EndReason::UserRemoved, now)?;
            writes.hdel(keys.guard("users"), id).ignore().incr(user_version(keys, id), 1).ignore();
            Ok((Some(ended), Some(writes)))
        })?;
        Ok(ended.map(|ended| self.remember_ended(ended)))
    }
}
