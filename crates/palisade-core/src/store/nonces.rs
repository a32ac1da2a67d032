//! [`MemoryNonces`]: the nonce store of a single node.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{NonceRefused, NonceStore};
use crate::Timestamp;

/// Shards only spread lock contention: the limits are per user and global,
/// so which shard a user lands in decides nothing.
const SHARDS: usize = 16;

/// In-memory nonces with a quota per user and a global cap; see the
/// [`NonceStore`] contract. Users are sharded by a keyed hash, and each
/// shard forgets records in insertion order from a queue, so a call never
/// scans what the store holds.
#[derive(Debug)]
pub struct MemoryNonces {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_per_user: usize,
    max_nonces: usize,
    /// Records held by all shards, so the global cap is exact rather than
    /// a per-shard share that a few users hashed together could exhaust.
    live: AtomicUsize,
}

#[derive(Debug)]
struct Shard {
    /// Each user's remembered nonces; a user with none has no entry.
    users: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Every record of `users`, oldest first.
    queue: VecDeque<Record>,
    /// Every `ts` before this is refused: records at or after it are all
    /// still remembered (the [`NonceStore`] contract's "forgotten" rule,
    /// kept per shard rather than per user so it outlives the users it
    /// came from). It only rises past what `now - window` already refuses
    /// if the window was widened (or the clock stepped back) since the
    /// record was made: a record
    /// with keep_until = t + 2·window has ts ≤ t + window, so when it is
    /// forgotten (after keep_until) its ts + 1 ms ≤ now - window.
    horizon: Timestamp,
}

#[derive(Debug)]
struct Record {
    user: Arc<str>,
    nonce: Arc<str>,
    ts: Timestamp,
    keep_until: Timestamp,
}

impl MemoryNonces {
    /// A store holding at most `max_nonces` live nonces, and at most
    /// `max_per_user` for any one user.
    pub fn new(max_nonces: usize, max_per_user: usize) -> Self {
        let shard =
            || Mutex::new(Shard { users: HashMap::new(), queue: VecDeque::new(), horizon: Timestamp::from_millis(0) });
        Self {
            shards: (0..SHARDS).map(|_| shard()).collect(),
            hasher: RandomState::new(),
            max_per_user,
            max_nonces,
            live: AtomicUsize::new(0),
        }
    }

    fn shard_index(&self, user: &str) -> usize {
        usize::try_from(self.hasher.hash_one(user)).unwrap_or(0) % SHARDS
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // Nothing run under a shard lock can panic (no indexing, no
        // unwrap), so a poisoned shard is still consistent.
        self.shards[index % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_record(
        &self,
        user: &str,
        nonce: &str,
        ts: Timestamp,
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), NonceRefused> {
        let mut shard = self.lock(self.shard_index(user));
        self.expire(&mut shard, now);
        let held = shard.users.get_key_value(user);
        if held.is_some_and(|(_, nonces)| nonces.contains(nonce)) {
            return Err(NonceRefused::Seen);
        }
        if ts < shard.horizon {
            return Err(NonceRefused::Forgotten);
        }
        if held.map_or(0, |(_, nonces)| nonces.len()) >= self.max_per_user {
            return Err(NonceRefused::UserFull);
        }
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_nonces).then_some(n + 1))
            .map_err(|_| NonceRefused::StoreFull)?;
        let user = held.map_or_else(|| Arc::from(user), |(key, _)| Arc::clone(key));
        let nonce: Arc<str> = Arc::from(nonce);
        shard.users.entry(Arc::clone(&user)).or_default().insert(Arc::clone(&nonce));
        shard.queue.push_back(Record { user, nonce, ts, keep_until });
        Ok(())
    }

    /// Forgets the shard's records due at `now`, from the front of its
    /// queue. Amortized O(1): each record is pushed once and popped once.
    /// The queue is in `keep_until` order while the window and the clock
    /// move forward (keep_until = now + 2·window, replay.rs); when they do
    /// not, a record due earlier than one ahead of it waits for that one,
    /// which only remembers it longer than promised.
    fn expire(&self, shard: &mut Shard, now: Timestamp) {
        let mut forgotten = 0;
        while shard.queue.front().is_some_and(|r| r.keep_until < now) {
            let Some(record) = shard.queue.pop_front() else { break };
            if let Some(nonces) = shard.users.get_mut(&record.user) {
                nonces.remove(&record.nonce);
                if nonces.is_empty() {
                    shard.users.remove(&record.user);
                }
            }
            shard.horizon = shard.horizon.max(record.ts.saturating_add(Duration::from_millis(1)));
            forgotten += 1;
        }
        self.live.fetch_sub(forgotten, Ordering::AcqRel);
    }
}

impl NonceStore for MemoryNonces {
    fn record(
        &self,
        user: &str,
        nonce: &str,
        ts: Timestamp,
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), NonceRefused> {
        match self.try_record(user, nonce, ts, keep_until, now) {
            Err(NonceRefused::StoreFull) => {
                // Shards nobody has touched lately may hold records already
                // due (abandoned users): forget those before failing closed.
                // One shard lock at a time, so no lock order to get wrong.
                for index in 0..SHARDS {
                    self.expire(&mut self.lock(index), now);
                }
                self.try_record(user, nonce, ts, keep_until, now)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_secs(100);

    fn at(secs: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(secs))
    }

    /// Records `nonce` with ts = now, kept 60 s.
    fn record(s: &MemoryNonces, user: &str, nonce: &str, now: Timestamp) -> Result<(), NonceRefused> {
        s.record(user, nonce, now, now.saturating_add(Duration::from_secs(60)), now)
    }

    fn users_held(s: &MemoryNonces) -> usize {
        (0..SHARDS).map(|i| s.lock(i).users.len()).sum()
    }

    #[test]
    fn a_nonce_is_refused_while_remembered_and_its_old_ts_after() {
        let s = MemoryNonces::new(64, 8);
        assert_eq!(record(&s, "u", "n", T0), Ok(()));
        assert_eq!(record(&s, "v", "n", T0), Ok(()), "nonces are per user");
        assert_eq!(s.record("u", "n", T0, at(60), at(60)), Err(NonceRefused::Seen), "kept until keep_until");
        let after = at(60).saturating_add(Duration::from_millis(1));
        assert_eq!(s.record("u", "n", T0, at(200), after), Err(NonceRefused::Forgotten), "old ts, forgotten");
        assert_eq!(s.record("u", "n", after, at(200), after), Ok(()), "a later ts is a new message");
    }

    #[test]
    fn a_user_flooding_to_its_quota_does_not_affect_another_user() {
        let s = MemoryNonces::new(64, 4);
        for i in 0..4 {
            assert_eq!(record(&s, "attacker", &i.to_string(), T0), Ok(()));
        }
        for i in 4..100 {
            assert_eq!(record(&s, "attacker", &i.to_string(), T0), Err(NonceRefused::UserFull));
        }
        assert_eq!(s.live.load(Ordering::Acquire), 4, "refusals store nothing");
        for i in 0..4 {
            assert_eq!(record(&s, "honest", &i.to_string(), T0), Ok(()));
        }
        assert_eq!(record(&s, "honest", "0", T0), Err(NonceRefused::Seen));
    }

    #[test]
    fn expiry_frees_a_users_quota() {
        let s = MemoryNonces::new(64, 2);
        assert_eq!(record(&s, "u", "a", T0), Ok(()));
        assert_eq!(record(&s, "u", "b", at(30)), Ok(()));
        assert_eq!(record(&s, "u", "c", at(60)), Err(NonceRefused::UserFull));
        // "a" is due after T0 + 60 s; "b" is still remembered.
        assert_eq!(record(&s, "u", "c", at(61)), Ok(()));
        assert_eq!(record(&s, "u", "d", at(61)), Err(NonceRefused::UserFull));
        assert_eq!(record(&s, "u", "b", at(61)), Err(NonceRefused::Seen));
    }

    #[test]
    fn abandoned_users_are_forgotten_when_their_shard_is_next_used() {
        let s = MemoryNonces::new(64, 8);
        let shard = s.shard_index("gone");
        let neighbour = (0..10_000).map(|i| format!("u{i}")).find(|u| s.shard_index(u) == shard).unwrap();
        for i in 0..8 {
            assert_eq!(record(&s, "gone", &i.to_string(), T0), Ok(()));
        }
        assert_eq!(users_held(&s), 1);
        assert_eq!(record(&s, &neighbour, "n", at(61)), Ok(()));
        assert!(!s.lock(shard).users.contains_key("gone"));
        assert_eq!(users_held(&s), 1);
        assert_eq!(s.live.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_full_store_fails_closed_and_takes_max_over_quota_users_to_fill() {
        let s = MemoryNonces::new(8, 2);
        for user in ["a", "b", "c", "d"] {
            for n in ["1", "2"] {
                assert_eq!(record(&s, user, n, T0), Ok(()));
            }
        }
        assert_eq!(record(&s, "e", "1", at(10)), Err(NonceRefused::StoreFull));
        assert_eq!(record(&s, "a", "3", at(10)), Err(NonceRefused::UserFull));
        assert_eq!(record(&s, "a", "1", at(10)), Err(NonceRefused::Seen), "still remembered when full");
        // Whichever shards they are in, due records elsewhere make room.
        for user in ["e", "a", "b", "c", "d"] {
            assert_eq!(record(&s, user, "3", at(61)), Ok(()), "{user}");
        }
        assert_eq!(s.live.load(Ordering::Acquire), 5);
    }

    #[test]
    fn records_out_of_keep_until_order_are_kept_at_least_as_long() {
        // A shrunk window: the second record is due before the first.
        let s = MemoryNonces::new(64, 8);
        assert_eq!(s.record("u", "long", T0, at(300), T0), Ok(()));
        assert_eq!(s.record("u", "short", T0, at(60), T0), Ok(()));
        assert_eq!(s.record("u", "short", T0, at(400), at(100)), Err(NonceRefused::Seen));
        assert_eq!(s.record("u", "x", at(301), at(400), at(301)), Ok(()));
        assert_eq!(s.live.load(Ordering::Acquire), 1, "both forgotten once the first is due");
    }
}
