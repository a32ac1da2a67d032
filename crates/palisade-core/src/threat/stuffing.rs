//! Credential stuffing (docs/CONFIG.md, `[threat]`), the two patterns the
//! per-name and per-address login throttles each see only a little of:
//! failed logins for many distinct names from one address ([`Stuffing`]),
//! and one wrong password failing from many addresses ([`Spraying`]).
//! Names are kept as hashes, passwords as keyed fingerprints, never as text.
//! A `threat.allow` address is watched and reported like any other but
//! never scored ([`Failing`]).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::CryptoRng;
use sha2::Sha256;

use crate::Timestamp;
use crate::addr::IpKey;

/// Where a failed login came from: the guard's key for the address, and
/// whether a `threat.allow` entry covers the client
/// ([`Threats::allows`](super::Threats::allows)). An allowed address
/// (monitoring, offices) still counts toward both patterns and shows in
/// their alerts, so a spray it takes part in is still seen whole, but it is
/// never scored: the allow list is the operator's word that a ban there
/// costs more than it saves. The key (a /64 for IPv6) is exempt only while
/// every failure counted from it is an allowed client's: an allow entry
/// narrower than the key does not shield its unlisted neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// The guard's key for the address.
    pub ip: IpKey,
    /// A `threat.allow` entry covers the client.
    pub allowed: bool,
}

/// When one address counts as stuffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuffingSettings {
    /// Distinct names failing from one address within `window`; 0: off.
    pub names: usize,
    /// The window.
    pub window: Duration,
    /// Addresses tracked at most; past it new ones are not (memory bound).
    pub max_addresses: usize,
}

/// Failed names per address, within the window.
#[derive(Debug)]
pub struct Stuffing {
    settings: StuffingSettings,
    seen: Mutex<HashMap<IpKey, Vec<NameFailed>>>,
}

/// One name's last failure from an address.
#[derive(Debug)]
struct NameFailed {
    hash: u64,
    at: Timestamp,
    /// It came from an allowed client ([`Failing`]).
    allowed: bool,
}

/// An address that reached `names` distinct failed names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuffed {
    /// Distinct names within the window (alert then).
    pub names: usize,
    /// The address to score; `None` when it is allowed ([`Failing`]).
    pub score: Option<IpKey>,
}

impl Stuffing {
    /// An empty tracker.
    pub fn new(settings: StuffingSettings) -> Self {
        Self { settings, seen: Mutex::new(HashMap::new()) }
    }

    /// A failed login for `name` from `from`: what it made of the address
    /// when this failure makes it reach `names` distinct names (then the
    /// address starts over, so a long attack is reported once per `names`
    /// names).
    pub fn failed(&self, from: Failing, name: &str, now: Timestamp) -> Option<Stuffed> {
        let ip = from.ip;
        let s = self.settings;
        if s.names == 0 {
            return None;
        }
        let mut hasher = DefaultHasher::new();
        name.hash(&mut hasher);
        let hash = hasher.finish();
        let mut seen = self.seen.lock().ok()?;
        let since = now.as_millis().saturating_sub(u64::try_from(s.window.as_millis()).unwrap_or(u64::MAX));
        if seen.len() >= s.max_addresses && !seen.contains_key(&ip) {
            seen.retain(|_, names| names.iter().any(|n| n.at.as_millis() > since));
            if seen.len() >= s.max_addresses {
                return None;
            }
        }
        let names = seen.entry(ip).or_default();
        names.retain(|n| n.at.as_millis() > since && n.hash != hash);
        names.push(NameFailed { hash, at: now, allowed: from.allowed });
        if names.len() < s.names {
            return None;
        }
        let stuffed = Stuffed { names: names.len(), score: (!names.iter().all(|n| n.allowed)).then_some(ip) };
        seen.remove(&ip);
        Some(stuffed)
    }
}

/// Keys password fingerprints: HMAC-SHA256 under 32 random bytes drawn at
/// start and never stored or shown, so a fingerprint cannot be tried
/// against a dictionary by anyone who reads memory dumps of this table
/// without the key, and two processes' fingerprints do not match.
pub struct PasswordKey([u8; 32]);

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKey(..)")
    }
}

impl PasswordKey {
    /// A fresh key from `rng`.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// `password`'s fingerprint: the MAC truncated to 64 bits, enough to
    /// tell patterns apart (a collision merges two patterns, no worse).
    pub fn fingerprint(&self, password: &str) -> Fingerprint {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            // HMAC takes a key of any length: unreachable.
            return Fingerprint(0);
        };
        mac.update(password.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        Fingerprint(u64::from_be_bytes(first))
    }
}

/// A wrong password, as [`PasswordKey::fingerprint`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

/// When one password failing from many addresses counts as stuffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpraySettings {
    /// Distinct addresses one password fails from within `window`; 0: off.
    pub addresses: usize,
    /// The window (`threat.stuffing_window`).
    pub window: Duration,
    /// Passwords tracked at most; past it new ones are not (memory bound).
    pub max_passwords: usize,
    /// Addresses kept per password at most; past it the oldest goes.
    pub max_addresses_per_password: usize,
}

/// Where one address stands in a password's pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not scored yet.
    Unscored,
    /// Scored once; never again while the pattern lasts.
    Scored,
    /// Allowed ([`Failing`]): counted, never scored.
    Allowed,
}

/// One address's part in a password's pattern.
#[derive(Debug)]
struct Seen {
    ip: IpKey,
    /// Its last failure with the password.
    at: Timestamp,
    mark: Mark,
}

/// One password's failures.
#[derive(Debug, Default)]
struct Pattern {
    seen: Vec<Seen>,
    raised: bool,
}

/// What one failure made of its password's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sprayed {
    /// Addresses to score now: every address involved when the pattern is
    /// raised, then each new one that joins it; never an allowed one.
    pub score: Vec<IpKey>,
    /// Set when this failure raised the pattern (once per pattern: alert
    /// then).
    pub raised: Option<Raised>,
}

/// A pattern as it was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// Distinct addresses in it, allowed ones included.
    pub addresses: usize,
    /// The allowed ones, which [`Sprayed::score`] leaves out.
    pub allowed: Vec<IpKey>,
}

/// Failed logins per password fingerprint, within the window.
#[derive(Debug)]
pub struct Spraying {
    settings: SpraySettings,
    patterns: Mutex<HashMap<Fingerprint, Pattern>>,
}

impl Spraying {
    /// An empty tracker.
    pub fn new(settings: SpraySettings) -> Self {
        Self { settings, patterns: Mutex::new(HashMap::new()) }
    }

    /// A failed login with `password` from `from`: the addresses to score,
    /// if any. The pattern is raised when `addresses` distinct addresses
    /// (allowed ones included) have failed with it within the window; it
    /// stays raised while failures keep coming within the window, so later
    /// addresses are scored too, each once, and allowed ones never.
    pub fn failed(&self, from: Failing, password: Fingerprint, now: Timestamp) -> Option<Sprayed> {
        let s = self.settings;
        if s.addresses == 0 {
            return None;
        }
        let mut patterns = self.patterns.lock().ok()?;
        let since = now.as_millis().saturating_sub(u64::try_from(s.window.as_millis()).unwrap_or(u64::MAX));
        let live = |p: &Pattern| p.seen.iter().any(|seen| seen.at.as_millis() > since);
        if patterns.len() >= s.max_passwords && !patterns.contains_key(&password) {
            patterns.retain(|_, p| live(p));
            if patterns.len() >= s.max_passwords {
                return None;
            }
        }
        let pattern = patterns.entry(password).or_default();
        pattern.seen.retain(|seen| seen.at.as_millis() > since);
        if pattern.seen.is_empty() {
            // Quiet for a whole window: a later run is a new pattern.
            pattern.raised = false;
        }
        let mark = match pattern.seen.iter_mut().find(|seen| seen.ip == from.ip) {
            Some(seen) => {
                seen.at = now;
                if !from.allowed && seen.mark == Mark::Allowed {
                    seen.mark = Mark::Unscored;
                }
                seen.mark
            }
            None => {
                if pattern.seen.len() >= s.max_addresses_per_password {
                    let oldest = pattern.seen.iter().enumerate().min_by_key(|(_, seen)| seen.at).map(|(i, _)| i);
                    if let Some(i) = oldest {
                        pattern.seen.swap_remove(i);
                    }
                }
                let mark = if from.allowed { Mark::Allowed } else { Mark::Unscored };
                pattern.seen.push(Seen { ip: from.ip, at: now, mark });
                mark
            }
        };
        if pattern.raised {
            if mark != Mark::Unscored {
                return None;
            }
            pattern.seen.iter_mut().filter(|seen| seen.ip == from.ip).for_each(|seen| seen.mark = Mark::Scored);
            return Some(Sprayed { score: vec![from.ip], raised: None });
        }
        if pattern.seen.len() < s.addresses {
            return None;
        }
        pattern.raised = true;
        let (mut score, mut allowed) = (Vec::new(), Vec::new());
        for seen in &mut pattern.seen {
            if seen.mark == Mark::Allowed {
                allowed.push(seen.ip);
            } else {
                seen.mark = Mark::Scored;
                score.push(seen.ip);
            }
        }
        Some(Sprayed { score, raised: Some(Raised { addresses: pattern.seen.len(), allowed }) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpKey {
        IpKey::of(Ipv4Addr::new(127, 0, 0, last).into())
    }

    fn from(last: u8) -> Failing {
        Failing { ip: ip(last), allowed: false }
    }

    fn allowed(last: u8) -> Failing {
        Failing { ip: ip(last), allowed: true }
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + ms)
    }

    #[test]
    fn distinct_names_from_one_address_within_the_window_are_detected_once() {
        let s = Stuffing::new(StuffingSettings { names: 3, window: Duration::from_secs(60), max_addresses: 10 });
        assert_eq!(s.failed(from(1), "a", at(0)), None);
        // The same name again is one name.
        assert_eq!(s.failed(from(1), "a", at(1)), None);
        assert_eq!(s.failed(from(1), "b", at(2)), None);
        // Another address's failures are its own.
        assert_eq!(s.failed(from(2), "c", at(3)), None);
        assert_eq!(s.failed(from(1), "c", at(4)), Some(Stuffed { names: 3, score: Some(ip(1)) }));
        assert_eq!(s.failed(from(1), "d", at(5)), None);
        // Names older than the window are forgotten.
        assert_eq!(s.failed(from(2), "d", at(61_000)), None);
        assert_eq!(s.failed(from(2), "e", at(61_001)), None);
    }

    #[test]
    fn off_at_zero_and_bounded_in_addresses() {
        let off = Stuffing::new(StuffingSettings { names: 0, window: Duration::from_secs(60), max_addresses: 10 });
        assert_eq!(off.failed(from(1), "a", at(0)), None);
        let s = Stuffing::new(StuffingSettings { names: 2, window: Duration::from_secs(60), max_addresses: 1 });
        assert_eq!(s.failed(from(1), "a", at(0)), None);
        assert_eq!(s.failed(from(2), "a", at(1)), None);
        assert_eq!(s.failed(from(2), "b", at(2)), None);
        assert_eq!(s.failed(from(1), "b", at(3)), Some(Stuffed { names: 2, score: Some(ip(1)) }));
    }

    #[test]
    fn an_allowed_address_stuffing_is_reported_but_not_scored() {
        let s = Stuffing::new(StuffingSettings { names: 2, window: Duration::from_secs(60), max_addresses: 10 });
        assert_eq!(s.failed(allowed(1), "a", at(0)), None);
        assert_eq!(s.failed(allowed(1), "b", at(1)), Some(Stuffed { names: 2, score: None }));
        // One failure of an unlisted client behind the same key: scored.
        assert_eq!(s.failed(allowed(1), "c", at(2)), None);
        assert_eq!(s.failed(from(1), "d", at(3)), Some(Stuffed { names: 2, score: Some(ip(1)) }));
    }

    fn spraying(addresses: usize, max_passwords: usize, per_password: usize) -> Spraying {
        Spraying::new(SpraySettings {
            addresses,
            window: Duration::from_secs(60),
            max_passwords,
            max_addresses_per_password: per_password,
        })
    }

    #[test]
    fn fingerprints_are_keyed_and_stable_per_key() {
        let mut rng = crate::testkit::rng();
        let (a, b) = (PasswordKey::random(&mut rng), PasswordKey::random(&mut rng));
        assert_eq!(a.fingerprint("hunter2"), a.fingerprint("hunter2"));
        assert_ne!(a.fingerprint("hunter2"), a.fingerprint("hunter3"));
        assert_ne!(a.fingerprint("hunter2"), b.fingerprint("hunter2"), "another key, another fingerprint");
        assert!(!format!("{a:?}").contains(|c: char| c.is_ascii_digit()), "the key is never shown");
    }

    #[test]
    fn one_password_from_many_addresses_scores_them_all_then_each_newcomer_once() {
        let key = PasswordKey::random(&mut crate::testkit::rng());
        let (spray, other) = (key.fingerprint("Winter2026!"), key.fingerprint("my own typo"));
        let s = spraying(3, 10, 10);
        assert_eq!(s.failed(from(1), spray, at(0)), None);
        // The same address again is one address.
        assert_eq!(s.failed(from(1), spray, at(1)), None);
        assert_eq!(s.failed(from(2), spray, at(2)), None);
        // An unrelated password is its own pattern.
        assert_eq!(s.failed(from(9), other, at(3)), None);
        let raised = s.failed(from(3), spray, at(4)).unwrap();
        assert_eq!(raised.raised, Some(Raised { addresses: 3, allowed: vec![] }));
        let mut scored = raised.score;
        scored.sort();
        assert_eq!(scored, [ip(1), ip(2), ip(3)]);
        // Scored once each; a newcomer within the window is scored alone.
        assert_eq!(s.failed(from(2), spray, at(5)), None);
        assert_eq!(s.failed(from(4), spray, at(6)), Some(Sprayed { score: vec![ip(4)], raised: None }));
        assert_eq!(s.failed(from(4), spray, at(7)), None);
        assert_eq!(s.failed(from(9), other, at(8)), None, "the unrelated address is never scored");
        // A whole quiet window: the next run is a new pattern.
        assert_eq!(s.failed(from(5), spray, at(70_000)), None);
    }

    #[test]
    fn allowed_addresses_count_toward_a_pattern_but_are_never_scored() {
        let spray = PasswordKey::random(&mut crate::testkit::rng()).fingerprint("Winter2026!");
        let s = spraying(3, 10, 10);
        assert_eq!(s.failed(allowed(1), spray, at(0)), None);
        assert_eq!(s.failed(from(2), spray, at(1)), None);
        let raised = s.failed(from(3), spray, at(2)).unwrap();
        assert_eq!(raised.raised, Some(Raised { addresses: 3, allowed: vec![ip(1)] }));
        assert_eq!(raised.score, [ip(2), ip(3)]);
        // Nor as it fails again, nor as an allowed newcomer.
        assert_eq!(s.failed(allowed(1), spray, at(3)), None);
        assert_eq!(s.failed(allowed(4), spray, at(4)), None);
        // An unlisted client behind an allowed key makes the key scorable.
        assert_eq!(s.failed(from(4), spray, at(5)), Some(Sprayed { score: vec![ip(4)], raised: None }));
    }

    #[test]
    fn off_at_zero_and_bounded_in_passwords_and_addresses() {
        let key = PasswordKey::random(&mut crate::testkit::rng());
        assert_eq!(spraying(0, 10, 10).failed(from(1), key.fingerprint("x"), at(0)), None);
        let s = spraying(2, 1, 10);
        assert_eq!(s.failed(from(1), key.fingerprint("a"), at(0)), None);
        // A second password is not tracked while the first is live.
        assert_eq!(s.failed(from(2), key.fingerprint("b"), at(1)), None);
        assert_eq!(s.failed(from(3), key.fingerprint("b"), at(2)), None);
        assert!(s.failed(from(2), key.fingerprint("a"), at(3)).is_some());
        // Two addresses kept per password: the oldest makes room.
        let s = spraying(3, 10, 2);
        let p = key.fingerprint("p");
        for (n, t) in [(1, 0), (2, 1), (3, 2)] {
            assert_eq!(s.failed(from(n), p, at(t)), None, "never three at once");
        }
    }
}
