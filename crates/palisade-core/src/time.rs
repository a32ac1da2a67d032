use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock instant in Unix milliseconds.
///
/// Core code never reads the clock: callers pass a `Timestamp` in, and tests
/// construct whatever instant they need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// From Unix milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// From Unix seconds (JWT `exp`, `nbf`, `iat`).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Unix milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Unix seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Time from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }
}

/// How far another clock, read once between `sent` and `received` (by
/// this clock) as `remote`, is from this one: its distance from the
/// midpoint, within half the round trip (a cluster node against Redis's
/// `TIME`, docs/OPERATIONS.md, "Cluster mode").
pub fn clock_skew(sent: Timestamp, received: Timestamp, remote: Timestamp) -> Duration {
    let midpoint = sent.0 + received.0.saturating_sub(sent.0) / 2;
    Duration::from_millis(remote.0.abs_diff(midpoint))
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t.as_millis(), 10_000);
        assert_eq!(t.saturating_sub(Duration::from_secs(20)), Timestamp::from_millis(0));
        assert_eq!(Timestamp::from_millis(u64::MAX).saturating_add(Duration::from_secs(1)).as_millis(), u64::MAX);
        assert_eq!(t.until(Timestamp::from_secs(12)), Duration::from_secs(2));
        assert_eq!(t.until(Timestamp::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn clock_skew_is_the_distance_from_the_round_trips_midpoint_either_way() {
        let at = Timestamp::from_millis;
        assert_eq!(clock_skew(at(1_000), at(1_010), at(1_005)), Duration::ZERO);
        assert_eq!(
            clock_skew(at(1_000), at(1_010), at(2_505)),
            Duration::from_millis(1_500),
            "the other clock is ahead"
        );
        assert_eq!(clock_skew(at(1_000), at(1_010), at(5)), Duration::from_millis(1_000), "or behind");
        assert_eq!(clock_skew(at(1_000), at(990), at(1_000)), Duration::ZERO, "a clock stepped back in between");
    }
}
