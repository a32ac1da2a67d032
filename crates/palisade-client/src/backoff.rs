//! Reconnect timing and what a close code asks for: pure functions, so the
//! spread of 1,000 clients is a unit test with seeded randomness.

use std::time::Duration;

/// Exponential backoff with full jitter and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first window (default 500 ms).
    pub base: Duration,
    /// The largest window (default 30 s).
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), cap: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before reconnect number `attempt` (0 for the first after a
    /// healthy connection): `floor` (the server's hint, if any) plus a
    /// uniform draw from `[0, min(cap, base · 2^attempt))`, with `random` in
    /// `[0, 1)`. The jitter is applied after the cap, so clients at the cap
    /// stay spread over the whole window instead of all waiting `cap`.
    pub fn delay(&self, attempt: u32, floor: Duration, random: f64) -> Duration {
        let window = self.base.checked_mul(1u32 << attempt.min(30)).unwrap_or(self.cap).min(self.cap);
        let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.0 };
        floor.saturating_add(window.mul_f64(random))
    }
}

/// What a close code asks of the client (docs/PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// 4003, 4008: stop for good.
    Terminal,
    /// 4001: get a fresh token, then reconnect.
    Refresh,
    /// 4009, 4029 (and an HTTP 429 or 503 at the handshake): reconnect, but
    /// not before the server's hint.
    Slow,
    /// Anything else (1001, 1006, 1011, a refused handshake): reconnect.
    Reconnect,
}

impl CloseAction {
    /// The action for a WebSocket close code.
    pub fn of(code: u16) -> Self {
        match code {
            4003 | 4008 => Self::Terminal,
            4001 => Self::Refresh,
            4009 | 4029 => Self::Slow,
            _ => Self::Reconnect,
        }
    }
}

/// SplitMix64: a small seedable generator for jitter and nonces (neither
/// is a secret; each only has to differ between clients).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the process's hash randomness.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        Self(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw from `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_doubles_up_to_the_cap_and_the_floor_is_added() {
        let b = Backoff::default();
        let top = |attempt| b.delay(attempt, Duration::ZERO, 0.999_999);
        assert!(top(0) < Duration::from_millis(500));
        assert!(top(1) >= Duration::from_millis(999) && top(1) < Duration::from_millis(1000));
        assert!(top(6) < Duration::from_secs(30) && top(6) >= Duration::from_millis(29_999));
        assert!(top(u32::MAX) < Duration::from_secs(30));
        assert_eq!(b.delay(3, Duration::from_secs(5), 0.0), Duration::from_secs(5));
        assert_eq!(b.delay(3, Duration::ZERO, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn close_codes_map_to_actions() {
        assert_eq!(CloseAction::of(4003), CloseAction::Terminal);
        assert_eq!(CloseAction::of(4008), CloseAction::Terminal);
        assert_eq!(CloseAction::of(4001), CloseAction::Refresh);
        assert_eq!(CloseAction::of(4009), CloseAction::Slow);
        assert_eq!(CloseAction::of(4029), CloseAction::Slow);
        for code in [1000, 1001, 1006, 1011] {
            assert_eq!(CloseAction::of(code), CloseAction::Reconnect);
        }
    }

    // 1,000 clients dropped at the same instant, each with its own seed:
    // at every attempt, their delays cover the window evenly, also at the
    // cap (no lockstep), and no two clients share a whole schedule.
    #[test]
    fn a_thousand_clients_do_not_reconnect_in_lockstep() {
        let b = Backoff::default();
        let mut schedules = std::collections::HashSet::new();
        let mut buckets = [[0u32; 10]; 12];
        for seed in 0..1000u64 {
            let mut rng = Jitter::seeded(seed);
            let mut schedule = Vec::new();
            for (attempt, row) in buckets.iter_mut().enumerate() {
                let attempt = attempt as u32;
                let d = b.delay(attempt, Duration::ZERO, rng.next_f64());
                let window = b.base.checked_mul(1 << attempt).unwrap().min(b.cap);
                let bucket = (d.as_secs_f64() / window.as_secs_f64() * 10.0) as usize;
                row[bucket.min(9)] += 1;
                schedule.push(d);
            }
            schedules.insert(schedule);
        }
        assert_eq!(schedules.len(), 1000);
        for (attempt, row) in buckets.iter().enumerate() {
            // 100 expected per tenth of the window.
            assert!(row.iter().all(|&n| (50..=150).contains(&n)), "attempt {attempt}: {row:?}");
        }
    }
}
