//! Rates and the GCRA limiter: O(1) state per key (one instant), exact
//! `retry_after`, and `now` passed in.
//!
//! Written here rather than taken from `governor`: governor reads its own
//! clock inside `check`, while every decision in this crate takes `now` as
//! an argument so it can be tested by stepping a virtual clock, and the
//! guard keeps a key's limiters, score and connection count in one map
//! entry so one lookup serves them all and one sweep evicts them together.
//! The algorithm is the few lines below.

use std::time::Duration;

use crate::Timestamp;

/// A rate like "10/s": `count` events per `per`, in bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed…
    pub count: u32,
    /// …per this period.
    pub per: Duration,
}

impl Rate {
    /// Parses "N/s", "N/min", "N/h" (also "N/sec", "N/m", "N/hour").
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const WHY: &str = "a rate is \"N/s\", \"N/min\" or \"N/h\" with N > 0";
        let (count, unit) = raw.split_once('/').ok_or(WHY)?;
        let count: u32 = count.trim().parse().map_err(|_| WHY)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(WHY),
        };
        if count == 0 { Err(WHY) } else { Ok(Self { count, per }) }
    }

    /// The same rate divided by `divisor` (a restricted key's rate); the
    /// burst shrinks with it, to at least one.
    pub fn divided(self, divisor: u32) -> Self {
        let divisor = divisor.max(1);
        if self.count >= divisor {
            Self { count: self.count / divisor, per: self.per }
        } else {
            // Fewer than one event per period: one event per longer period.
            Self { count: 1, per: self.per.saturating_mul(divisor) / self.count.max(1) }
        }
    }

    /// The GCRA's emission interval and burst tolerance, in microseconds:
    /// what a limiter kept outside this process (the cluster's commit
    /// script) needs to decide as [`Gcra::check`] does.
    pub fn gcra_params(self) -> (u64, u64) {
        let interval = interval_us(self);
        // The burst: `count` events may arrive at once.
        (interval, interval.saturating_mul(u64::from(self.count.saturating_sub(1))))
    }
}

/// One limiter's state: the theoretical arrival time of the next event, in
/// microseconds since the Unix epoch (0: never used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    tat_us: u64,
}

impl Gcra {
    /// Counts one event at `now` against `rate`, or says how long until one
    /// would be allowed. A refused event costs nothing, so a client that
    /// keeps hammering is not pushed further back than its rate.
    pub fn check(&mut self, rate: Rate, now: Timestamp) -> Result<(), Duration> {
        let now_us = now.as_millis().saturating_mul(1000);
        let (interval, tolerance) = rate.gcra_params();
        let tat = self.tat_us.max(now_us);
        let earliest = tat.saturating_sub(tolerance);
        if now_us < earliest {
            return Err(Duration::from_micros(earliest - now_us));
        }
        self.tat_us = tat.saturating_add(interval);
        Ok(())
    }

    /// Whether the limiter is back to a full burst at `now`, so forgetting
    /// it changes nothing.
    pub fn idle(&self, now: Timestamp) -> bool {
        self.tat_us <= now.as_millis().saturating_mul(1000)
    }
}

/// Microseconds between events at `rate`.
fn interval_us(rate: Rate) -> u64 {
    let per = u64::try_from(rate.per.as_micros()).unwrap_or(u64::MAX);
    (per / u64::from(rate.count.max(1))).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    fn at(ms: u64) -> Timestamp {
        T0.saturating_add(Duration::from_millis(ms))
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let rate = Rate::parse("10/s").unwrap();
        let mut g = Gcra::default();
        for _ in 0..10 {
            assert_eq!(g.check(rate, at(0)), Ok(()));
        }
        assert_eq!(g.check(rate, at(0)), Err(Duration::from_millis(100)));
        assert_eq!(g.check(rate, at(40)), Err(Duration::from_millis(60)), "refusals cost nothing");
        assert_eq!(g.check(rate, at(100)), Ok(()));
        assert_eq!(g.check(rate, at(100)), Err(Duration::from_millis(100)));
        assert!(!g.idle(at(100)));
        assert!(g.idle(at(1100)));
        // After a full period idle, the whole burst is back.
        for _ in 0..10 {
            assert_eq!(g.check(rate, at(1100)), Ok(()));
        }
    }

    #[test]
    fn slow_rates_and_retry_after() {
        let rate = Rate::parse("20/min").unwrap();
        let mut g = Gcra::default();
        for _ in 0..20 {
            g.check(rate, at(0)).unwrap();
        }
        assert_eq!(g.check(rate, at(0)), Err(Duration::from_secs(3)));
        assert_eq!(g.check(rate, at(3000)), Ok(()));
    }

    #[test]
    fn dividing_a_rate_keeps_at_least_one_event() {
        assert_eq!(Rate::parse("20/s").unwrap().divided(4), Rate { count: 5, per: Duration::from_secs(1) });
        assert_eq!(Rate::parse("2/s").unwrap().divided(4), Rate { count: 1, per: Duration::from_secs(2) });
        assert_eq!(Rate::parse("1/s").unwrap().divided(4), Rate { count: 1, per: Duration::from_secs(4) });
        assert_eq!(Rate::parse("1/s").unwrap().divided(0), Rate::parse("1/s").unwrap());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("10/s").unwrap(), Rate { count: 10, per: Duration::from_secs(1) });
        assert_eq!(Rate::parse(" 5 / min ").unwrap().per, Duration::from_secs(60));
        for bad in ["0/s", "x/s", "10", "10/day", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }
}
