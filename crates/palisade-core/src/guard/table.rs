//! The guard's per-key state (per address, per user), bounded and evicted
//! when idle (docs/ARCHITECTURE.md, "Abuse defence").
//!
//! Sharded so no lock is global; each shard holds at most its share of
//! `abuse.max_tracked_keys`. A key arriving at a full shard first makes the
//! shard drop its idle entries; if every entry is live, the newcomer shares
//! one overflow entry with every other newcomer, which is stricter for them
//! and never lets the table grow: an attacker with more addresses than the
//! table holds gets one shared limit, not one each.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Timestamp;

const SHARDS: usize = 64;
/// A full shard that found nothing idle is not searched again for this
/// long, so a table full of live keys costs O(1) per newcomer.
const RESWEEP: Duration = Duration::from_secs(1);

/// Where a key's state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Its own entry.
    Own,
    /// The shared overflow entry (the table was full).
    Overflow,
}

#[derive(Debug)]
struct Shard<K, V> {
    map: HashMap<K, V>,
    /// Before this, the shard is known to hold no idle entry.
    no_idle_until: Timestamp,
}

/// Keyed state with a size bound.
#[derive(Debug)]
pub(crate) struct Table<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    per_shard: usize,
    overflow: Mutex<V>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V: Default> Table<K, V> {
    /// A table of at most about `max_keys` keys.
    pub(crate) fn new(max_keys: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(Shard { map: HashMap::new(), no_idle_until: Timestamp::from_millis(0) }))
            .collect();
        Self {
            shards,
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            overflow: Mutex::default(),
            hasher: RandomState::new(),
        }
    }

    /// Runs `f` on `key`'s state, created if new; `idle` says which entries
    /// a full shard may drop.
    pub(crate) fn with<Q, R>(
        &self,
        key: &Q,
        now: Timestamp,
        idle: impl Fn(&V) -> bool,
        f: impl FnOnce(&mut V) -> R,
    ) -> (R, Place)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = self.shard(key);
        if let Some(v) = shard.map.get_mut(key) {
            return (f(v), Place::Own);
        }
        if shard.map.len() >= self.per_shard && now >= shard.no_idle_until {
            shard.map.retain(|_, v| !idle(v));
            if shard.map.len() >= self.per_shard {
                shard.no_idle_until = now.saturating_add(RESWEEP);
            }
        }
        if shard.map.len() < self.per_shard {
            return (f(shard.map.entry(key.to_owned()).or_default()), Place::Own);
        }
        drop(shard);
        (f(&mut lock(&self.overflow)), Place::Overflow)
    }

    /// Runs `f` on the state `key` had at `place`, if it still exists (a
    /// live key is never dropped, so one holding a connection does).
    pub(crate) fn with_existing<Q, R>(&self, key: &Q, place: Place, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match place {
            Place::Own => self.shard(key).map.get_mut(key).map(f),
            Place::Overflow => Some(f(&mut lock(&self.overflow))),
        }
    }

    /// Reads `key`'s state without creating it.
    pub(crate) fn peek<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).map.get(key).map(f)
    }

    /// Drops every idle entry, and gives back the memory of a shard that
    /// a burst of keys had grown: after a flood from many addresses the
    /// tables shrink again, not just empty.
    pub(crate) fn sweep(&self, idle: impl Fn(&V) -> bool) {
        for shard in &*self.shards {
            let mut shard = lock(shard);
            shard.map.retain(|_, v| !idle(v));
            if shard.map.capacity() > 4 * shard.map.len().max(16) {
                shard.map.shrink_to_fit();
            }
        }
    }

    /// The `n` keys `score` ranks highest (above 0), highest first. One
    /// shard is locked at a time, and at most `4n` candidates are kept
    /// between shards, whatever the table holds.
    pub(crate) fn top(&self, n: usize, score: impl Fn(&V) -> f64) -> Vec<(K, f64)>
    where
        K: Clone,
    {
        let by_score = |a: &(K, f64), b: &(K, f64)| b.1.total_cmp(&a.1);
        let mut found: Vec<(K, f64)> = Vec::new();
        for shard in &*self.shards {
            let shard = lock(shard);
            found.extend(
                shard.map.iter().map(|(k, v)| (k, score(v))).filter(|(_, s)| *s > 0.0).map(|(k, s)| (k.clone(), s)),
            );
            drop(shard);
            if found.len() > 4 * n.max(1) {
                found.select_nth_unstable_by(n, by_score);
                found.truncate(n);
            }
        }
        found.sort_unstable_by(by_score);
        found.truncate(n);
        found
    }

    /// Keys held (not counting the overflow entry).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        // The shard index comes from a per-table random hasher: keys are
        // chosen by clients, who must not be able to aim them all at one
        // shard.
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[index])
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a small in-place change; a panic elsewhere cannot
    // leave an entry half-written in a way that matters more than losing
    // the limiter.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    #[test]
    fn a_full_table_drops_idle_keys_then_shares_an_overflow_entry() {
        let table: Table<u32, u32> = Table::new(SHARDS); // one key per shard
        let busy = |v: &u32| *v == 0; // 0 means idle here
        for k in 0..10_000u32 {
            let (_, place) = table.with(&k, T0, busy, |v| *v += 1);
            assert!(place == Place::Own || place == Place::Overflow);
        }
        assert!(table.len() <= SHARDS, "never more than the bound: {}", table.len());
        // Entries that went idle make room again.
        table.sweep(|_| true);
        assert_eq!(table.len(), 0);
        let (_, place) = table.with(&1, T0, busy, |v| *v += 1);
        assert_eq!(place, Place::Own);
        assert_eq!(table.with_existing(&1, Place::Own, |v| *v), Some(1));
        assert_eq!(table.peek(&2, |v| *v), None);
    }

    #[test]
    fn top_ranks_the_highest_scores_across_shards_and_skips_zero() {
        let table: Table<u32, u32> = Table::new(100_000);
        for k in 0..5_000u32 {
            table.with(&k, T0, |_| false, |v| *v = k % 1000);
        }
        let top = table.top(3, |v| f64::from(*v));
        assert_eq!(top.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [999.0; 3]);
        assert!(top.iter().all(|(k, _)| k % 1000 == 999));
        assert!(table.top(10_000, |v| f64::from(*v)).iter().all(|(_, s)| *s > 0.0), "a zero score is no leader");
        assert!(table.top(0, |v| f64::from(*v)).is_empty());
    }
}
