//! Credential stuffing from one address (docs/CONFIG.md, `[threat]`):
//! failed logins for many distinct names within a window. The per-name and
//! per-address login throttles each see a little; this sees the spread.
//! Names are kept as hashes, never as text.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use crate::Timestamp;
use crate::addr::IpKey;

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
    seen: Mutex<HashMap<IpKey, Vec<(u64, Timestamp)>>>,
}

impl Stuffing {
    /// An empty tracker.
    pub fn new(settings: StuffingSettings) -> Self {
        Self { settings, seen: Mutex::new(HashMap::new()) }
    }

    /// A failed login for `name` from `ip`: the number of distinct names
    /// when this failure makes it reach `names` (then the address starts
    /// over, so a long attack is reported once per `names` names).
    pub fn failed(&self, ip: IpKey, name: &str, now: Timestamp) -> Option<usize> {
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
            seen.retain(|_, names| names.iter().any(|(_, at)| at.as_millis() > since));
            if seen.len() >= s.max_addresses {
                return None;
            }
        }
        let names = seen.entry(ip).or_default();
        names.retain(|(h, at)| at.as_millis() > since && *h != hash);
        names.push((hash, now));
        if names.len() < s.names {
            return None;
        }
        let distinct = names.len();
        seen.remove(&ip);
        Some(distinct)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpKey {
        IpKey::of(Ipv4Addr::new(127, 0, 0, last).into())
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + ms)
    }

    #[test]
    fn distinct_names_from_one_address_within_the_window_are_detected_once() {
        let s = Stuffing::new(StuffingSettings { names: 3, window: Duration::from_secs(60), max_addresses: 10 });
        assert_eq!(s.failed(ip(1), "a", at(0)), None);
        // The same name again is one name.
        assert_eq!(s.failed(ip(1), "a", at(1)), None);
        assert_eq!(s.failed(ip(1), "b", at(2)), None);
        // Another address's failures are its own.
        assert_eq!(s.failed(ip(2), "c", at(3)), None);
        assert_eq!(s.failed(ip(1), "c", at(4)), Some(3));
        assert_eq!(s.failed(ip(1), "d", at(5)), None);
        // Names older than the window are forgotten.
        assert_eq!(s.failed(ip(2), "d", at(61_000)), None);
        assert_eq!(s.failed(ip(2), "e", at(61_001)), None);
    }

    #[test]
    fn off_at_zero_and_bounded_in_addresses() {
        let off = Stuffing::new(StuffingSettings { names: 0, window: Duration::from_secs(60), max_addresses: 10 });
        assert_eq!(off.failed(ip(1), "a", at(0)), None);
        let s = Stuffing::new(StuffingSettings { names: 2, window: Duration::from_secs(60), max_addresses: 1 });
        assert_eq!(s.failed(ip(1), "a", at(0)), None);
        assert_eq!(s.failed(ip(2), "a", at(1)), None);
        assert_eq!(s.failed(ip(2), "b", at(2)), None);
        assert_eq!(s.failed(ip(1), "b", at(3)), Some(2));
    }
}
