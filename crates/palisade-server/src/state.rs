//! State shared by every task of one server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::admin::session::AdminSessions;
use palisade_core::auth::Revocations;
use palisade_core::guard::{Guard, Ticket, Verdict};
use palisade_core::log::{LogBudget, LogVerdict};
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::store::MemoryNonces;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::abuse::Counters;
use crate::auth::Login;
use crate::settings::Settings;
use crate::ws::ConnLimits;
use crate::ws::hub::Hub;

pub(crate) use crate::gateway::Store;

/// Shared server state, passed as `Arc<AppState>`.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    /// The time every connection and handshake decides by.
    pub(crate) clock: Clock,
    /// What a connection needs of the limits, taken from the config once.
    pub(crate) conn_limits: ConnLimits,
    pub(crate) hub: Hub,
    /// Replay nonces seen by this node.
    pub(crate) nonces: MemoryNonces,
    /// Rates, scores and the bans in force.
    pub(crate) guard: Arc<Guard>,
    /// Where bans and revocations are kept (the embedded database).
    pub(crate) store: Arc<dyn Store>,
    /// Revoked tokens in force.
    pub(crate) revocations: Revocations,
    /// The own issuer's endpoints, when on (`login.enabled` and a key that
    /// can sign).
    pub(crate) login: Option<Login>,
    /// Guard decisions, by kind.
    pub(crate) counters: Counters,
    /// The audit log's queue.
    pub(crate) audit: crate::audit::Audit,
    /// Metric handles (`/metrics` on the admin listener).
    pub(crate) metrics: crate::admin::metrics::Metrics,
    /// Browser sessions on the admin listener (`POST /api/login`).
    pub(crate) admin_sessions: std::sync::Mutex<AdminSessions>,
    /// External issuers' key set fetches, one at a time per issuer.
    pub(crate) jwks: crate::jwks::JwksFetcher,
    /// How many refusal lines a flood may write (`log.refusals_per_second`).
    pub(crate) refusal_log: LogBudget,
    /// The store's last answer to `/readyz`.
    pub(crate) store_probe: crate::admin::StoreProbe,
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    open: AtomicUsize,
}

impl AppState {
    pub(crate) fn new(
        settings: Settings,
        guard: Guard,
        store: Arc<dyn Store>,
        revocations: Revocations,
        login: Option<Login>,
    ) -> Self {
        // First: it installs the process's recorder, which every metric
        // handle registered after it (the audit queue's too) reports to.
        let metrics = crate::admin::metrics::Metrics::new();
        Self {
            login,
            guard: Arc::new(guard),
            store,
            revocations,
            counters: Counters::default(),
            audit: crate::audit::Audit::new(&settings.config.audit),
            metrics,
            admin_sessions: std::sync::Mutex::new(AdminSessions::new(
                settings.config.admin.max_sessions,
                settings.config.admin.max_sessions_per_user,
                settings.config.admin.session_lifetime,
            )),
            jwks: crate::jwks::JwksFetcher::default(),
            nonces: MemoryNonces::new(settings.config.replay.max_nonces, settings.config.replay.max_nonces_per_user),
            refusal_log: LogBudget::new(settings.config.log.refusals_per_second, Duration::from_secs(1)),
            store_probe: crate::admin::StoreProbe::default(),
            clock: Clock::start(),
            conn_limits: ConnLimits::new(&settings),
            settings,
            hub: Hub::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            open: AtomicUsize::new(0),
        }
    }

    /// Reserves a connection slot, or `None` at `limits.max_connections`.
    /// The slot is held from the upgrade answer until the socket closes.
    pub(crate) fn reserve_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.settings.config.limits.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot { state: Arc::clone(self), ticket: None })
    }

    /// May one more refusal line be written now (`log.refusals_per_second`)?
    /// The first line allowed after a suppression is preceded by the count
    /// of lines suppressed, so a flood shows in the log as a number.
    pub(crate) fn admit_refusal_line(&self) -> bool {
        match self.refusal_log.admit(self.clock.now()) {
            LogVerdict::Write { suppressed } => {
                if suppressed > 0 {
                    tracing::warn!(suppressed, "refusal log lines suppressed by log.refusals_per_second");
                }
                true
            }
            LogVerdict::Suppress => false,
        }
    }

    /// Open WebSocket connections.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One reserved connection slot, and the guard's count of the
/// connection's address and user; both released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    state: Arc<AppState>,
    ticket: Option<Ticket>,
}

impl Slot {
    /// The slot, also holding the guard's ticket.
    pub(crate) fn with_ticket(mut self, ticket: Ticket) -> Self {
        self.ticket = Some(ticket);
        self
    }

    /// Counts the connection against `user` too (`Guard::admit`).
    pub(crate) fn admit_user(&mut self, user: &str, now: Timestamp) -> Verdict {
        match &mut self.ticket {
            Some(ticket) => self.state.guard.admit(ticket, user, now),
            // Only the conformance echo has a slot without a ticket, and it
            // has no user.
            None => Verdict::Refuse(Refusal::new(Kind::Internal, "slot without a ticket")),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ticket) = self.ticket.take() {
            self.state.guard.release(ticket);
        }
    }
}

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
