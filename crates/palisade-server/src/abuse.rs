//! The server's side of the abuse guard (docs/ARCHITECTURE.md, "Abuse
//! defence"): the counters' public view, and forgetting idle keys. What
//! the guard decides is performed by `crate::enforce`; following what
//! other processes write to the store is `crate::follow`.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::refusal::Kind;
use tracing::{info, warn};

use crate::state::AppState;

/// How often idle limiter and score state is forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often ended bans past `abuse.ban_memory`, and login sessions whose
/// tokens have all expired, are deleted from the store (neither is returned
/// by it anyway; this keeps the tables small).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A read-only view of a running server's counters.
#[derive(Debug, Clone)]
pub struct Stats(pub(crate) Arc<AppState>);

impl Stats {
    /// Refusals of `kind` enforced so far (handshakes and requests).
    pub fn refused(&self, kind: Kind) -> u64 {
        self.0.enforce.counters.refused(kind)
    }

    /// Refusals of `kind` that `abuse.dry_run` let through.
    pub fn unenforced(&self, kind: Kind) -> u64 {
        self.0.enforce.counters.unenforced(kind)
    }

    /// Bans imposed by the guard (enforced).
    pub fn bans(&self) -> u64 {
        self.0.enforce.counters.bans()
    }

    /// Connections the guard closed with 4008.
    pub fn disconnects(&self) -> u64 {
        self.0.enforce.counters.disconnects()
    }

    /// Audit records dropped because the writer's queue was full
    /// (`audit.queue`).
    pub fn audit_dropped(&self) -> u64 {
        self.0.audit.dropped()
    }

    /// Audit records written to the store.
    pub fn audit_written(&self) -> u64 {
        self.0.audit.written()
    }

    /// Audit records the store failed to write.
    pub fn audit_failed(&self) -> u64 {
        self.0.audit.failed()
    }

    /// Audit records sent to the SIEM (`siem.syslog`; 0 without one).
    pub fn siem_sent(&self) -> u64 {
        self.0.siem.as_ref().map_or(0, |siem| siem.sent())
    }

    /// Audit records the SIEM lost: dropped from a full `siem.queue`, or
    /// removed from the store before they were read. Each is told in a gap
    /// record.
    pub fn siem_dropped(&self) -> u64 {
        self.0.siem.as_ref().map_or(0, |siem| siem.dropped())
    }

    /// Whether the SIEM sender is connected to its receiver.
    pub fn siem_connected(&self) -> bool {
        self.0.siem.as_ref().is_some_and(|siem| siem.is_connected())
    }

    /// Addresses and users whose limits and scores are kept now.
    pub fn tracked(&self) -> (usize, usize) {
        self.0.guard.tracked()
    }
}

/// Forgets idle limiter, score and failed-login state in memory every
/// [`SWEEP_EVERY`], and long-ended bans and sessions in the store every
/// [`PRUNE_EVERY`].
pub(crate) async fn sweep(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {
                let now = state.clock.now();
                state.guard.sweep(now);
                state.hub.sweep(now);
                if let Some(login) = &state.login {
                    login.sweep(now);
                }
            }
            _ = prune.tick() => {
                let store = Arc::clone(&state.store);
                let now = state.clock.now();
                let bans_before = now.saturating_sub(state.guard.settings().ban_terms.memory);
                // By then every access token minted for an ended session
                // has expired, so its revocation has nothing left to stop
                // (a revocation that knows its newest token's expiry waits
                // for that, whatever the ttl is now).
                let auth = &state.settings.config.auth;
                let sessions_before = now.saturating_sub(auth.token_ttl.saturating_add(auth.leeway));
                let abuse = &state.settings.config.abuse;
                let max_bans = abuse.max_bans;
                let (history_before, history_rows) =
                    (now.saturating_sub(abuse.ban_history_max_age), abuse.ban_history_max_rows);
                let expired_before = now.saturating_sub(auth.leeway);
                let pruned = crate::gateway::call("prune", &store, move |store| {
                    store
                        .prune(bans_before, max_bans)
                        .and_then(|bans| Ok(bans + store.prune_history(history_before, history_rows)?))
                        .and_then(|bans| Ok((bans, store.prune_sessions(sessions_before, expired_before)?)))
                })
                .await;
                match pruned {
                    Ok((0, 0)) => {}
                    Ok((bans, sessions)) => {
                        info!(
                            bans,
                            sessions,
                            "forgot bans past abuse.ban_memory or abuse.max_bans, ban history past its bounds, and \
                             sessions whose tokens have all expired"
                        );
                    }
                    Err(e) => warn!(error = %e, "could not prune old bans and sessions; will retry"),
                }
            }
        }
    }
}
