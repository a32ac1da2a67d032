//! Operator alerts (docs/OPERATIONS.md, "Alerts"): how a webhook body is
//! signed, and when a counter's rate is a threshold crossing. The server
//! sends and counts; what to say and when is decided here, with `now`
//! passed in.
//!
//! Signature: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`,
//! the timestamp being the `X-Palisade-Timestamp` header's decimal Unix
//! seconds, so a receiver can refuse an old or replayed delivery.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Timestamp;
use crate::signature;

/// The `X-Palisade-Signature` value of `body` sent at `timestamp` (Unix
/// seconds): `sha256=` and the hex HMAC-SHA256 of `timestamp.body`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    signature::sign(secret, &[timestamp.to_string().as_bytes(), b".", body])
}

/// Whether `signature` is `body`'s at `timestamp` under `secret`, compared
/// in constant time.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], signature: &str) -> bool {
    signature::verify(secret, &[timestamp.to_string().as_bytes(), b".", body], signature)
}

/// What a [`Threshold`] saw change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossing {
    /// The rate reached the threshold: one alert per flood.
    Raised {
        /// Events per second over the window.
        rate: f64,
    },
    /// The rate fell below half the threshold: the flood is over, and the
    /// next one is a new alert.
    Cleared {
        /// Events per second over the window.
        rate: f64,
    },
}

/// Watches a monotonic counter's rate over a sliding window. It raises once
/// when the rate reaches `per_second` and clears only below half of it, so
/// a rate hovering around the threshold is one alert, not one per sample.
#[derive(Debug, Clone)]
pub struct Threshold {
    per_second: f64,
    window: Duration,
    /// `(when, counter)`, oldest first, none older than the window plus one.
    samples: VecDeque<(Timestamp, u64)>,
    raised: bool,
}

/// Most samples one threshold keeps: a sampler ticks far less often than
/// this many times per window.
const MAX_SAMPLES: usize = 1024;

impl Threshold {
    /// A threshold of `per_second` over `window`; 0 never raises.
    pub fn new(per_second: u32, window: Duration) -> Self {
        Self { per_second: f64::from(per_second), window, samples: VecDeque::new(), raised: false }
    }

    /// Feeds the counter's value at `now`; says when the rate crossed.
    pub fn observe(&mut self, now: Timestamp, total: u64) -> Option<Crossing> {
        self.samples.push_back((now, total));
        let start = now.saturating_sub(self.window);
        // Keep one sample at or before the window's start, to measure the
        // whole window.
        while self.samples.len() > MAX_SAMPLES || self.samples.get(1).is_some_and(|(t, _)| *t <= start) {
            self.samples.pop_front();
        }
        let (since, first) = *self.samples.front()?;
        let elapsed = since.until(now);
        if self.per_second <= 0.0 || elapsed.is_zero() {
            return None;
        }
        // Over the whole window even before a window of samples: a burst
        // within one sample is spread over the window, not over the tick
        // (whose length the caller's clock may round a millisecond short).
        let rate = total.saturating_sub(first) as f64 / elapsed.max(self.window).as_secs_f64();
        if !self.raised && rate >= self.per_second {
            self.raised = true;
            return Some(Crossing::Raised { rate });
        }
        if self.raised && rate < self.per_second / 2.0 {
            self.raised = false;
            return Some(Crossing::Cleared { rate });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently:
        // `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac <SECRET>`.
        let sig = sign(SECRET, 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(sig, "sha256=f05f2539e3ae1c49aec5f8cfdad75ef6b06480b133973ffbb7ec9e18827af177");
        assert!(verify(SECRET, 1_700_000_000, br#"{"a":1}"#, &sig));
        assert!(!verify(b"another secret of thirty-two bytes", 1_700_000_000, br#"{"a":1}"#, &sig));
        assert!(!verify(SECRET, 1_700_000_001, br#"{"a":1}"#, &sig));
        assert!(!verify(SECRET, 1_700_000_000, br#"{"a":2}"#, &sig));
    }

    /// Feeds `per_second` events a second for `secs` seconds from `start`,
    /// one sample a second; returns the crossings and where it ended.
    fn feed(t: &mut Threshold, start: (u64, u64), per_second: u64, secs: u64) -> (Vec<Crossing>, (u64, u64)) {
        let (mut at, mut total) = start;
        let mut seen = Vec::new();
        for _ in 0..secs {
            at += 1;
            total += per_second;
            seen.extend(t.observe(Timestamp::from_secs(at), total));
        }
        (seen, (at, total))
    }

    #[test]
    fn a_flood_is_one_alert_and_its_end_one_clear() {
        let mut t = Threshold::new(10, Duration::from_secs(5));
        let (seen, end) = feed(&mut t, (1000, 0), 2, 10);
        assert!(seen.is_empty(), "a quiet counter raises nothing: {seen:?}");
        let (seen, end) = feed(&mut t, end, 50, 30);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(seen[0], Crossing::Raised { rate } if rate >= 10.0));
        // Hovering between half and the threshold stays raised.
        let (seen, end) = feed(&mut t, end, 7, 20);
        assert!(seen.is_empty(), "{seen:?}");
        let (seen, end) = feed(&mut t, end, 1, 20);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(seen[0], Crossing::Cleared { rate } if rate < 5.0));
        let (seen, _) = feed(&mut t, end, 50, 30);
        assert!(matches!(seen.as_slice(), [Crossing::Raised { .. }]), "a second flood is a second alert: {seen:?}");
    }

    #[test]
    fn a_burst_shorter_than_the_window_is_measured_over_the_window() {
        let mut t = Threshold::new(10, Duration::from_secs(10));
        t.observe(Timestamp::from_secs(100), 0);
        // 60 events in one second: 6/s over the 10 s window, under 10/s.
        assert_eq!(t.observe(Timestamp::from_secs(101), 60), None);
        let (seen, _) = feed(&mut t, (101, 60), 0, 15);
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn zero_never_raises_and_samples_stay_bounded() {
        let mut t = Threshold::new(0, Duration::from_secs(3600));
        let (seen, _) = feed(&mut t, (0, 0), 1_000_000, 5000);
        assert!(seen.is_empty());
        assert!(t.samples.len() <= MAX_SAMPLES);
    }
}
