//! The anomaly score: a sum of violation weights that halves every
//! `abuse.score_half_life`, kept as one value and the time it was last
//! updated (O(1), no list of past violations).

use std::time::Duration;

use crate::Timestamp;

/// Below this a score counts as zero, so its key may be forgotten.
const NEGLIGIBLE: f64 = 0.5;

/// A decaying score.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    value: f64,
    at: Timestamp,
}

impl Score {
    /// The score at `now`.
    pub fn at(&self, half_life: Duration, now: Timestamp) -> f64 {
        if self.value == 0.0 || half_life.is_zero() {
            return self.value;
        }
        let elapsed = self.at.until(now).as_secs_f64();
        self.value * 0.5f64.powf(elapsed / half_life.as_secs_f64())
    }

    /// Adds `weight` at `now`; returns the new score.
    pub fn add(&mut self, weight: f64, half_life: Duration, now: Timestamp) -> f64 {
        self.value = self.at(half_life, now) + weight;
        self.at = now;
        self.value
    }

    /// Back to zero (after the ban it led to).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether the score has decayed to nothing at `now`.
    pub fn negligible(&self, half_life: Duration, now: Timestamp) -> bool {
        self.at(half_life, now) < NEGLIGIBLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::T0;

    #[test]
    fn a_score_halves_every_half_life() {
        let hl = Duration::from_secs(300);
        let mut s = Score::default();
        assert_eq!(s.add(8.0, hl, T0), 8.0);
        assert!((s.at(hl, T0.saturating_add(hl)) - 4.0).abs() < 1e-9);
        assert!((s.add(1.0, hl, T0.saturating_add(hl * 2)) - 3.0).abs() < 1e-9);
        assert!(!s.negligible(hl, T0.saturating_add(hl * 2)));
        assert!(s.negligible(hl, T0.saturating_add(hl * 5)));
        s.reset();
        assert_eq!(s.at(hl, T0), 0.0);
    }
}
