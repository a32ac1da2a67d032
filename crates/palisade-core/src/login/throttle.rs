//! Failed logins, counted per client address and per user name: a few are
//! free, then each one doubles the wait before the next attempt, and at a
//! limit the key locks for a while. Unknown names are counted like known
//! ones, so the throttle says nothing about which names exist.
//!
//! A success clears the name's count but not the address's: one valid
//! account must not let an address guess others' passwords at full speed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::Timestamp;
use crate::addr::IpKey;

/// When failures start to cost, for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Failures with no wait after them.
    pub free: u32,
    /// Failures that lock the key for [`ThrottleSettings::lock_for`].
    pub lock_after: u32,
}

/// `auth.login_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Per client address (IPv6 by /64).
    pub per_ip: Steps,
    /// Per user name, whether or not the user exists.
    pub per_user: Steps,
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
    /// Which key: the address or the user name.
    pub by: KeyKind,
}

/// Which kind of key blocked an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The client address.
    Ip,
    /// The user name.
    User,
}

/// What one failure did to the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The address's failures, this one included.
    pub ip_failures: u32,
    /// The name's failures, this one included.
    pub user_failures: u32,
    /// Whether this failure locked the address or the name.
    pub locked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpKey),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Timestamp,
    blocked_until: Timestamp,
}

/// Longest user name counted as given; a longer one counts as its first
/// bytes, so a flood of huge names costs bounded memory.
const MAX_NAME_KEY: usize = 128;

/// The failure counts.
#[derive(Debug)]
pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self { settings, entries: Mutex::new(HashMap::new()) }
    }

    /// May `ip` try to log in as `user` at `now`?
    pub fn check(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<(), Blocked> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let steps =
            [(Key::Ip(ip), KeyKind::Ip, self.settings.per_ip), (user_key(user), KeyKind::User, self.settings.per_user)];
        for (key, by, steps) in steps {
            if let Some(entry) = entries.get(&key).filter(|e| self.live(e, now))
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

    /// Counts a failed attempt (wrong password or unknown user) at `now`.
    pub fn failed(&self, ip: IpKey, user: &str, now: Timestamp) -> Failure {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (ip_failures, ip_locked) = self.count(&mut entries, Key::Ip(ip), self.settings.per_ip, now);
        let (user_failures, user_locked) = self.count(&mut entries, user_key(user), self.settings.per_user, now);
        Failure { ip_failures, user_failures, locked: ip_locked || user_locked }
    }

    /// A successful login as `user`: its name's count starts over.
    pub fn succeeded(&self, user: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&user_key(user));
    }

    /// Forgets keys whose failures are forgotten and that are not blocked.
    pub fn sweep(&self, now: Timestamp) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, e| self.live(e, now));
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn live(&self, entry: &Entry, now: Timestamp) -> bool {
        now < entry.blocked_until || now < entry.last_failure.saturating_add(self.settings.forget_after)
    }

    fn count(&self, entries: &mut HashMap<Key, Entry>, key: Key, steps: Steps, now: Timestamp) -> (u32, bool) {
        if !entries.contains_key(&key) && entries.len() >= self.settings.max_tracked.max(1) {
            entries.retain(|_, e| self.live(e, now));
            if entries.len() >= self.settings.max_tracked.max(1) {
                // Every key is live: the stalest gives way. Rare (a table
                // full of failing keys) and O(n) only then.
                let stalest = entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(k, _)| k.clone());
                if let Some(stalest) = stalest {
                    entries.remove(&stalest);
                }
            }
        }
        let entry = entries.entry(key).or_insert(Entry { failures: 0, last_failure: now, blocked_until: now });
        if !self.live(entry, now) {
            *entry = Entry { failures: 0, last_failure: now, blocked_until: now };
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let locked = entry.failures >= steps.lock_after;
        let wait = if locked {
            self.settings.lock_for
        } else if entry.failures > steps.free {
            let doublings = (entry.failures - steps.free - 1).min(31);
            self.settings.base_delay.saturating_mul(1 << doublings).min(self.settings.max_delay)
        } else {
            Duration::ZERO
        };
        entry.blocked_until = entry.blocked_until.max(now.saturating_add(wait));
        (entry.failures, locked)
    }
}

fn user_key(user: &str) -> Key {
    // Case-folded so `Alice` and `alice` share a count.
    let mut end = user.len().min(MAX_NAME_KEY);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    Key::User(user[..end].to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    const SETTINGS: ThrottleSettings = ThrottleSettings {
        per_ip: Steps { free: 10, lock_after: 50 },
        per_user: Steps { free: 3, lock_after: 10 },
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
    fn failures_are_free_then_double_then_lock() {
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
            let blocked = t.check(ip(2), "Alice", now).unwrap_err();
            assert_eq!((blocked.retry_after, blocked.locked, blocked.by), (secs(wait), false, KeyKind::User));
            assert!(t.check(ip(2), "alice", now.saturating_add(secs(wait) - Duration::from_millis(1))).is_err());
            now = now.saturating_add(secs(wait));
            assert!(t.check(ip(2), "alice", now).is_ok());
        }
        // The tenth failure locks the name, from any address.
        let failure = t.failed(ip(1), "alice", now);
        assert_eq!((failure.user_failures, failure.locked), (10, true));
        let blocked = t.check(ip(3), "alice", now).unwrap_err();
        assert_eq!((blocked.retry_after, blocked.locked), (secs(900), true));
        assert!(t.check(ip(3), "bob", now).is_ok(), "other names are not locked");
        assert!(t.check(ip(3), "alice", now.saturating_add(secs(900))).is_ok(), "the lock ends");
    }

    #[test]
    fn an_address_is_counted_across_names_and_a_success_does_not_clear_it() {
        let t = LoginThrottle::new(SETTINGS);
        for n in 0..11 {
            t.failed(ip(1), &format!("user{n}"), T0);
            t.succeeded(&format!("user{n}"));
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
        t.succeeded("alice");
        assert!(t.check(ip(9), "alice", T0).is_ok());
        t.failed(ip(1), "carol", T0);
        assert_eq!(t.tracked(), 2, "the address and carol");
        t.sweep(T0.saturating_add(secs(899)));
        assert_eq!(t.tracked(), 2);
        t.sweep(T0.saturating_add(secs(900)));
        assert_eq!(t.tracked(), 0);
        // Counting starts over after the forget time.
        let later = T0.saturating_add(secs(2000));
        assert_eq!(t.failed(ip(1), "carol", later).user_failures, 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = LoginThrottle::new(ThrottleSettings { max_tracked: 100, ..SETTINGS });
        for n in 0..1000u32 {
            t.failed(ip(1), &format!("u{n}"), T0.saturating_add(Duration::from_millis(u64::from(n))));
        }
        assert!(t.tracked() <= 100, "{}", t.tracked());
        // The address, still failing, is the freshest key and stays.
        assert!(t.check(ip(1), "anyone", T0.saturating_add(secs(1))).is_err());
        let long = "é".repeat(1000);
        t.failed(ip(2), &long, T0);
        assert!(t.check(ip(3), &long[..MAX_NAME_KEY], T0).is_ok(), "counted by its first bytes, the first is free");
    }
}
