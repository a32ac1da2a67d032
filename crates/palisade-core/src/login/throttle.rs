//! Failed logins, counted per user name from one client address, per
//! address across names, and per name across addresses: a few are free,
//! then each one doubles the wait before the next attempt, and at a limit
//! the name from that address, or the address, locks for a while. Unknown
//! names are counted like known ones, so the throttle says nothing about
//! which names exist.
//!
//! Nothing one address does locks a name for anyone else: the hard lock
//! is per (name, address). Guessing one name from many addresses slows the
//! name down instead, and only once more distinct addresses than
//! [`ThrottleSettings::free_addresses_per_user`] have failed on it, so one
//! address (or a handful) can never make its owner wait.
//!
//! A success clears the name's counts but not the address's: one valid
//! account must not let an address guess others' passwords at full speed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::Timestamp;
use crate::addr::IpKey;
use crate::store::StoreError;

/// When failures start to cost, for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Failures with no wait after them.
    pub free: u32,
    /// Failures that lock the key for [`ThrottleSettings::lock_for`].
    pub lock_after: u32,
}

/// `login.*` throttle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Per client address (IPv6 by /64), across names.
    pub per_ip: Steps,
    /// Per user name (whether or not the user exists) from one address.
    pub per_user: Steps,
    /// Distinct addresses that may fail on one name before every attempt
    /// at it waits (the same doubling wait, never a lock).
    pub free_addresses_per_user: u32,
    /// The wait after the first failure past the free ones; doubled after
    /// each further failure.
    pub base_delay: Duration,
    /// The longest wait short of a lock.
    pub max_delay: Duration,
    /// How long a locked key stays locked.
    pub lock_for: Duration,
    /// A key's failures are forgotten this long after its last one.
    pub forget_after: Duration,
    /// Keys tracked at most; past it the stalest key is forgotten.
    pub max_tracked: usize,
}

/// A login attempt refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// When to try again.
    pub retry_after: Duration,
    /// Whether the key is locked, rather than backing off.
    pub locked: bool,
    /// Which key.
    pub by: KeyKind,
}

/// Which kind of key blocked an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The client address, across names.
    Ip,
    /// The user name from this address.
    User,
    /// The user name from every address (a slow-down, never a lock).
    Name,
}

/// What one failure did to the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The address's failures, this one included.
    pub ip_failures: u32,
    /// The name's failures from this address, this one included.
    pub user_failures: u32,
    /// Distinct addresses that failed on the name lately.
    pub user_addresses: u32,
    /// Whether this failure locked the address or the name from it.
    pub locked: bool,
}

/// One key's failures, as counted and as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Failures since the key was last forgotten.
    pub failures: u32,
    /// The last of them.
    pub last_failure: Timestamp,
    /// No attempt under the key before this.
    pub blocked_until: Timestamp,
}

impl Entry {
    /// `<failures>|<last failure ms>|<blocked until ms>`, for a store.
    pub fn record(&self) -> String {
        format!("{}|{}|{}", self.failures, self.last_failure.as_millis(), self.blocked_until.as_millis())
    }

    /// The entry a [`Entry::record`] wrote; `None` for anything else.
    pub fn parse(record: &str) -> Option<Self> {
        let mut parts = record.splitn(3, '|');
        let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let failures = u32::try_from(next()?).ok()?;
        let (last, until) = (next()?, next()?);
        Some(Self {
            failures,
            last_failure: Timestamp::from_millis(last),
            blocked_until: Timestamp::from_millis(until),
        })
    }
}

/// The three keys an attempt by `ip` as `user` is counted under, in
/// [`KeyKind`] order (address, name from the address, name), named for a
/// store.
pub fn keys(ip: IpKey, user: &str) -> [String; 3] {
    let name = name_key(user);
    [format!("ip:{ip}"), format!("user:{ip}:{name}"), format!("name:{name}")]
}

/// The throttle's rules, on the entries of one attempt's [`keys`] (`None`:
/// nothing counted), wherever they are kept.
impl ThrottleSettings {
    /// May the attempt whose entries these are go ahead at `now`?
    pub fn check(&self, entries: &[Option<Entry>; 3], now: Timestamp) -> Result<(), Blocked> {
        for ((entry, by), steps) in entries.iter().zip(KINDS).zip(self.steps()) {
            if let Some(entry) = entry.filter(|e| self.live(e, now))
                && now < entry.blocked_until
            {
                return Err(Blocked {
                    retry_after: now.until(entry.blocked_until),
                    locked: entry.failures >= steps.lock_after,
                    by,
                });
            }
        }
        Ok(())
    }

    /// Counts a failed attempt (wrong password or unknown user) at `now`
    /// into its entries.
    pub fn fail(&self, entries: &mut [Option<Entry>; 3], now: Timestamp) -> Failure {
        let [per_ip, per_user, name] = self.steps();
        let [ip_entry, user_entry, name_entry] = entries;
        let (ip_failures, ip_locked) = self.count(ip_entry, per_ip, now);
        let (user_failures, user_locked) = self.count(user_entry, per_user, now);
        // The name counts addresses, not failures: an address adds one the
        // first time it fails on the name, however often it fails after.
        let user_addresses = if user_failures == 1 {
            self.count(name_entry, name, now).0
        } else {
            name_entry.filter(|e| self.live(e, now)).map_or(0, |e| e.failures)
        };
        Failure { ip_failures, user_failures, user_addresses, locked: ip_locked || user_locked }
    }

    /// Whether `entry` still counts at `now`: blocked, or failed lately.
    pub fn live(&self, entry: &Entry, now: Timestamp) -> bool {
        now < self.keep_until(entry)
    }

    /// When `entry` may be forgotten.
    pub fn keep_until(&self, entry: &Entry) -> Timestamp {
        entry.blocked_until.max(entry.last_failure.saturating_add(self.forget_after))
    }

    /// The steps of each kind of key, in [`KeyKind`] order; a name from
    /// every address has free addresses, then waits, never a lock.
    fn steps(&self) -> [Steps; 3] {
        [self.per_ip, self.per_user, Steps { free: self.free_addresses_per_user, lock_after: u32::MAX }]
    }

    fn count(&self, entry: &mut Option<Entry>, steps: Steps, now: Timestamp) -> (u32, bool) {
        let fresh = Entry { failures: 0, last_failure: now, blocked_until: now };
        let entry = entry.get_or_insert(fresh);
        if !self.live(entry, now) {
            *entry = fresh;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let locked = entry.failures >= steps.lock_after;
        let wait = if locked {
            self.lock_for
        } else if entry.failures > steps.free {
            let doublings = (entry.failures - steps.free - 1).min(31);
            self.base_delay.saturating_mul(1 << doublings).min(self.max_delay)
        } else {
            Duration::ZERO
        };
        entry.blocked_until = entry.blocked_until.max(now.saturating_add(wait));
        (entry.failures, locked)
    }
}

const KINDS: [KeyKind; 3] = [KeyKind::Ip, KeyKind::User, KeyKind::Name];

/// Where the failure counts live: one process's memory
/// ([`LoginThrottle`]), or a store the nodes of a cluster share. Either
/// applies [`ThrottleSettings`]' rules.
pub trait ThrottleCounts: Send + Sync + std::fmt::Debug {
    /// May `ip` try to log in as `user` at `now`?
    fn check(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Result<(), Blocked>, StoreError>;

    /// Counts a failed attempt at `now`.
    fn failed(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Failure, StoreError>;

    /// A successful login as `user` from `ip`: the name's counts start
    /// over (from this address and from every address).
    fn succeeded(&self, ip: IpKey, user: &str) -> Result<(), StoreError>;

    /// Forgets what no longer counts (a store that expires keys itself
    /// has nothing to do).
    fn sweep(&self, _now: Timestamp) {}
}

/// Longest user name counted as given; a longer one counts as its first
/// bytes, so a flood of huge names costs bounded memory.
const MAX_NAME_KEY: usize = 128;

/// The failure counts in this process's memory, bounded by
/// [`ThrottleSettings::max_tracked`].
#[derive(Debug)]
pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self { settings, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May `ip` try to log in as `user` at `now`?
    pub fn check(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<(), Blocked> {
        let entries = self.lock();
        self.settings.check(&keys(ip, user).map(|k| entries.get(&k).copied()), now)
    }

    /// Counts a failed attempt (wrong password or unknown user) at `now`.
    pub fn failed(&self, ip: IpKey, user: &str, now: Timestamp) -> Failure {
        let mut entries = self.lock();
        let keys = keys(ip, user);
        self.make_room(&mut entries, &keys, now);
        let mut counted = keys.each_ref().map(|k| entries.get(k).copied());
        let failure = self.settings.fail(&mut counted, now);
        for (key, entry) in keys.into_iter().zip(counted) {
            if let Some(entry) = entry {
                entries.insert(key, entry);
            }
        }
        failure
    }

    /// A successful login as `user` from `ip`: the name's counts start
    /// over (from this address and from every address).
    pub fn succeeded(&self, ip: IpKey, user: &str) {
        let mut entries = self.lock();
        let [_, from_ip, name] = keys(ip, user);
        entries.remove(&from_ip);
        entries.remove(&name);
    }

    /// Forgets keys whose failures are forgotten and that are not blocked.
    pub fn sweep(&self, now: Timestamp) {
        self.lock().retain(|_, e| self.settings.live(e, now));
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Keeps the table within `max_tracked` once `keys` are in it: the
    /// forgotten keys go, then, if every key is live, the stalest. Rare (a
    /// table full of failing keys) and O(n) only then.
    fn make_room(&self, entries: &mut HashMap<String, Entry>, keys: &[String; 3], now: Timestamp) {
        let max = self.settings.max_tracked.max(keys.len());
        let room = |entries: &HashMap<String, Entry>| {
            entries.len() + keys.iter().filter(|k| !entries.contains_key(*k)).count() <= max
        };
        if room(entries) {
            return;
        }
        entries.retain(|_, e| self.settings.live(e, now));
        while !room(entries) {
            let stalest = entries
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone());
            let Some(stalest) = stalest else { return };
            entries.remove(&stalest);
        }
    }
}

impl ThrottleCounts for LoginThrottle {
    fn check(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Result<(), Blocked>, StoreError> {
        Ok(Self::check(self, ip, user, now))
    }

    fn failed(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Failure, StoreError> {
        Ok(Self::failed(self, ip, user, now))
    }

    fn succeeded(&self, ip: IpKey, user: &str) -> Result<(), StoreError> {
        Self::succeeded(self, ip, user);
        Ok(())
    }

    fn sweep(&self, now: Timestamp) {
        Self::sweep(self, now);
    }
}

fn name_key(user: &str) -> String {
    // Case-folded so `Alice` and `alice` share a count.
    let mut end = user.len().min(MAX_NAME_KEY);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    const SETTINGS: ThrottleSettings = ThrottleSettings {
        per_ip: Steps { free: 10, lock_after: 50 },
        per_user: Steps { free: 3, lock_after: 10 },
        free_addresses_per_user: 5,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        lock_for: Duration::from_secs(900),
        forget_after: Duration::from_secs(900),
        max_tracked: 1000,
    };

    fn ip(n: u8) -> IpKey {
        IpKey::of([127, 0, 0, n].into())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn failures_are_free_then_double_then_lock_the_name_from_that_address() {
        let t = LoginThrottle::new(SETTINGS);
        let mut now = T0;
        for _ in 0..3 {
            assert!(t.check(ip(1), "alice", now).is_ok());
            t.failed(ip(1), "alice", now);
        }
        assert!(t.check(ip(1), "alice", now).is_ok(), "three free failures");
        // Failures 4, 5, 6 … wait 1, 2, 4 … seconds.
        for wait in [1, 2, 4, 8, 16, 32] {
            t.failed(ip(1), "alice", now);
            let blocked = t.check(ip(1), "Alice", now).unwrap_err();
            assert_eq!((blocked.retry_after, blocked.locked, blocked.by), (secs(wait), false, KeyKind::User));
            assert!(t.check(ip(1), "alice", now.saturating_add(secs(wait) - Duration::from_millis(1))).is_err());
            now = now.saturating_add(secs(wait));
            assert!(t.check(ip(1), "alice", now).is_ok());
        }
        // The tenth failure locks the name from this address.
        let failure = t.failed(ip(1), "alice", now);
        assert_eq!((failure.user_failures, failure.user_addresses, failure.locked), (10, 1, true));
        let blocked = t.check(ip(1), "alice", now).unwrap_err();
        assert_eq!((blocked.retry_after, blocked.locked), (secs(900), true));
        assert!(t.check(ip(1), "alice", now.saturating_add(secs(900))).is_ok(), "the lock ends");
    }

    #[test]
    fn one_address_failing_on_a_name_never_blocks_it_for_another() {
        let t = LoginThrottle::new(SETTINGS);
        let mut now = T0;
        // The attacker fails as fast as the throttle lets it, lock after
        // lock, for hours.
        for _ in 0..200 {
            if let Err(blocked) = t.check(ip(66), "alice", now) {
                now = now.saturating_add(blocked.retry_after);
                continue;
            }
            t.failed(ip(66), "alice", now);
            assert!(t.check(ip(1), "alice", now).is_ok(), "alice from her own address is never held up");
        }
        assert!(now > T0.saturating_add(secs(3600)), "the attacker's locks renewed for over an hour");
        // A few addresses (up to the free number) are not enough either.
        for n in 67..71 {
            t.failed(ip(n), "alice", now);
        }
        assert!(t.check(ip(1), "alice", now).is_ok());
    }

    #[test]
    fn many_addresses_on_one_name_slow_it_down_but_never_lock_it() {
        let t = LoginThrottle::new(SETTINGS);
        let now = T0;
        for n in 1..=5 {
            // Repeats from one address count once.
            t.failed(ip(n), "alice", now);
            t.failed(ip(n), "alice", now);
        }
        assert!(t.check(ip(200), "alice", now).is_ok(), "five addresses are free");
        let failure = t.failed(ip(6), "alice", now);
        assert_eq!((failure.user_addresses, failure.locked), (6, false));
        let blocked = t.check(ip(200), "alice", now).unwrap_err();
        assert_eq!((blocked.by, blocked.locked, blocked.retry_after), (KeyKind::Name, false, secs(1)));
        let mut last = Duration::ZERO;
        for n in 7..=100 {
            let failure = t.failed(ip(n), "alice", now);
            assert!(!failure.locked);
            let blocked = t.check(ip(200), "alice", now).unwrap_err();
            assert!(!blocked.locked && blocked.retry_after >= last && blocked.retry_after <= secs(60));
            last = blocked.retry_after;
        }
        assert_eq!(last, secs(60), "capped at the longest wait");
        assert!(t.check(ip(200), "alice", now.saturating_add(secs(60))).is_ok(), "a wait, not a lock");
        assert!(t.check(ip(200), "bob", now).is_ok(), "other names are not slowed");
    }

    #[test]
    fn an_address_is_counted_across_names_and_a_success_does_not_clear_it() {
        let t = LoginThrottle::new(SETTINGS);
        for n in 0..11 {
            t.failed(ip(1), &format!("user{n}"), T0);
            t.succeeded(ip(1), &format!("user{n}"));
        }
        let blocked = t.check(ip(1), "someone", T0).unwrap_err();
        assert_eq!((blocked.by, blocked.retry_after), (KeyKind::Ip, secs(1)));
        assert!(t.check(ip(2), "someone", T0).is_ok());
    }

    #[test]
    fn a_success_clears_the_name_and_time_forgets_the_rest() {
        let t = LoginThrottle::new(SETTINGS);
        for _ in 0..5 {
            t.failed(ip(1), "alice", T0);
        }
        assert!(t.check(ip(1), "alice", T0).is_err());
        t.succeeded(ip(1), "alice");
        assert!(t.check(ip(1), "alice", T0).is_ok());
        t.failed(ip(1), "carol", T0);
        assert_eq!(t.tracked(), 3, "the address, carol from it, and carol's addresses");
        t.sweep(T0.saturating_add(secs(899)));
        assert_eq!(t.tracked(), 3);
        t.sweep(T0.saturating_add(secs(900)));
        assert_eq!(t.tracked(), 0);
        // Counting starts over after the forget time.
        let later = T0.saturating_add(secs(2000));
        let failure = t.failed(ip(1), "carol", later);
        assert_eq!((failure.user_failures, failure.user_addresses), (1, 1));
    }

    #[test]
    fn an_entry_round_trips_through_its_record_and_nothing_else_parses() {
        let entry = Entry { failures: 3, last_failure: T0, blocked_until: T0.saturating_add(secs(5)) };
        assert_eq!(Entry::parse(&entry.record()), Some(entry));
        for bad in ["", "1|2", "x|1|2", "1|2|3|4", "99999999999|1|2", "-1|2|3"] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let t = LoginThrottle::new(ThrottleSettings { max_tracked: 100, ..SETTINGS });
        for n in 0..1000u32 {
            t.failed(ip(1), &format!("u{n}"), T0.saturating_add(Duration::from_millis(u64::from(n))));
        }
        assert!(t.tracked() <= 100, "{}", t.tracked());
        // The address, still failing, is among the freshest keys and stays.
        assert!(t.check(ip(1), "anyone", T0.saturating_add(secs(1))).is_err());
        let long = "é".repeat(1000);
        t.failed(ip(2), &long, T0);
        assert!(t.check(ip(2), &long[..MAX_NAME_KEY], T0).is_ok(), "counted by its first bytes, the first is free");
    }
}
