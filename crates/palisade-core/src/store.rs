//! The narrow storage traits the backends implement, and the in-memory
//! implementations a single node uses.
//!
//! Calls take `now` like everything in this crate, so expiry is tested by
//! stepping a clock. The Redis backend (cluster mode) will implement the
//! same traits so nodes share what they have seen.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::Mutex;

use crate::Timestamp;

/// Remembers replay nonces until they expire.
pub trait NonceStore: Send + Sync {
    /// Records `nonce` for `user` until `forget_at`; returns `false` if it
    /// was already recorded and not yet forgotten, or if it cannot be
    /// recorded (full), so the caller refuses the message.
    fn first_use(&self, user: &str, nonce: &str, forget_at: Timestamp, now: Timestamp) -> bool;
}

const SHARDS: usize = 16;

/// In-memory nonces, bounded: sharded maps that drop expired entries when
/// they fill, and refuse new ones when full of live entries (fail closed:
/// a replay check that cannot remember must not pass).
#[derive(Debug)]
pub struct MemoryNonces {
    shards: Vec<Mutex<HashMap<Box<str>, Timestamp>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl MemoryNonces {
    /// A store holding at most about `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }
}

impl NonceStore for MemoryNonces {
    fn first_use(&self, user: &str, nonce: &str, forget_at: Timestamp, now: Timestamp) -> bool {
        // `\0` cannot appear in a user id (control characters are refused
        // in claims), so the key is unambiguous.
        let key = format!("{user}\0{nonce}");
        let shard = usize::try_from(self.hasher.hash_one(&key)).unwrap_or(0) % SHARDS;
        // A poisoned shard only ever held complete inserts and removals.
        let mut map = self.shards[shard].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(key.as_str()).is_some_and(|until| *until >= now) {
            return false;
        }
        if map.len() >= self.per_shard {
            map.retain(|_, until| *until >= now);
            if map.len() >= self.per_shard {
                return false;
            }
        }
        map.insert(key.into_boxed_str(), forget_at);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: Timestamp = Timestamp::from_secs(100);

    #[test]
    fn nonces_are_forgotten_after_their_time() {
        let s = MemoryNonces::new(64);
        let until = T0.saturating_add(Duration::from_secs(60));
        assert!(s.first_use("u", "n", until, T0));
        assert!(!s.first_use("u", "n", until, until));
        assert!(s.first_use("u", "n", until, until.saturating_add(Duration::from_millis(1))));
    }

    #[test]
    fn a_full_store_drops_expired_entries_then_refuses() {
        let s = MemoryNonces::new(SHARDS);
        let soon = T0.saturating_add(Duration::from_secs(1));
        let mut accepted = 0;
        for i in 0..(SHARDS * 8) {
            if s.first_use("u", &i.to_string(), soon, T0) {
                accepted += 1;
            }
        }
        // One live entry per shard at most: the rest are refused, not stored.
        assert!(accepted <= SHARDS, "{accepted}");
        let later = soon.saturating_add(Duration::from_secs(1));
        assert!(s.first_use("u", "fresh", later, later), "expired entries make room");
    }
}
