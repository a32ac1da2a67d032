//! The server's time: a leaf every layer may read.

use std::time::Duration;

use palisade_core::Timestamp;
use tokio::time::Instant;

/// The wall clock, for the CLI's one-shot token minting; a running server
/// reads [`Clock`].
pub(crate) fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

/// The server's clock: the wall time at start plus the monotonic time since,
/// read through tokio so it stands still under `tokio::time::pause` and
/// tests advance it instead of sleeping. Wall-clock steps after the start
/// (NTP, an operator) do not move it, so deadlines never jump; over a long
/// uptime it drifts from the wall clock only by the monotonic clock's rate
/// error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start_ts: Timestamp,
    start: Instant,
}

impl Clock {
    /// Reads the wall clock once.
    pub(crate) fn start() -> Self {
        Self { start_ts: now(), start: Instant::now() }
    }

    /// The current time.
    pub(crate) fn now(&self) -> Timestamp {
        // Rounded down to the millisecond, so at `instant_at(t)` the time is
        // at least `t` and a timer that fires finds its deadline passed.
        self.start_ts.saturating_add(self.start.elapsed())
    }

    /// The tokio instant at which [`Clock::now`] reaches `at`; the start for
    /// times before it.
    pub(crate) fn instant_at(&self, at: Timestamp) -> Instant {
        // Timestamps saturate at u64::MAX ms (about 584 million years), which
        // an `Instant` may not hold; such a deadline is never reached anyway.
        const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
        self.start + self.start_ts.until(at).min(FAR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_moves_only_with_tokio_time() {
        let clock = Clock::start();
        let t0 = clock.now();
        tokio::task::yield_now().await;
        assert_eq!(clock.now(), t0, "paused: no time passes by itself");
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), t0.saturating_add(Duration::from_millis(1500)));
        // A deadline on this clock is reached exactly when its instant is.
        let at = t0.saturating_add(Duration::from_secs(20));
        tokio::time::sleep_until(clock.instant_at(at)).await;
        assert_eq!(clock.now(), at);
        // A past deadline is due at once.
        assert!(clock.instant_at(t0.saturating_sub(Duration::from_secs(5))) <= Instant::now());
    }
}
