//! The server's side of the abuse guard (docs/ARCHITECTURE.md, "Abuse
//! defence"): it performs what `core::guard` decides — closes the
//! connections of a banned subject, writes bans to the store off the
//! runtime's workers, forgets idle keys — and counts and logs every
//! decision, `dry_run` ones included. Following what other processes write
//! to the store is `crate::follow`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_core::addr::IpKey;
use palisade_core::audit::{self, Entry};
use palisade_core::guard::{Ban, Escalation, Step, Verdict};
use palisade_core::log::Clipped;
use palisade_core::refusal::{Kind, Refusal};
use palisade_protocol::CloseCode;
use tracing::{error, info, warn};

use crate::admin::metrics::Action;
use crate::state::AppState;

/// How often idle limiter and score state is forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often ended bans past `abuse.ban_memory`, and login sessions whose
/// tokens have all expired, are deleted from the store (neither is returned
/// by it anyway; this keeps the tables small).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Who is knocking: the socket's peer, and the address the guard counts
/// it as (the peer, or the client a trusted proxy names).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Knock {
    pub(crate) peer: SocketAddr,
    pub(crate) ip: IpKey,
}

/// Decisions counted by kind, for the metrics endpoint (and tests).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    refused: [AtomicU64; Kind::ALL.len()],
    unenforced: [AtomicU64; Kind::ALL.len()],
    bans: AtomicU64,
    disconnects: AtomicU64,
}

/// A read-only view of a running server's counters.
#[derive(Debug, Clone)]
pub struct Stats(pub(crate) Arc<AppState>);

impl Stats {
    /// Refusals of `kind` enforced so far (handshakes and requests).
    pub fn refused(&self, kind: Kind) -> u64 {
        self.0.counters.refused[kind as usize].load(Ordering::Relaxed)
    }

    /// Refusals of `kind` that `abuse.dry_run` let through.
    pub fn unenforced(&self, kind: Kind) -> u64 {
        self.0.counters.unenforced[kind as usize].load(Ordering::Relaxed)
    }

    /// Bans imposed by the guard (enforced).
    pub fn bans(&self) -> u64 {
        self.0.counters.bans.load(Ordering::Relaxed)
    }

    /// Connections the guard closed with 4008.
    pub fn disconnects(&self) -> u64 {
        self.0.counters.disconnects.load(Ordering::Relaxed)
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

    /// Addresses and users whose limits and scores are kept now.
    pub fn tracked(&self) -> (usize, usize) {
        self.0.guard.tracked()
    }
}

impl AppState {
    /// Counts a refusal that was enforced.
    pub(crate) fn count_refusal(&self, refusal: &Refusal) {
        self.counters.refused[refusal.kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts and logs (within the refusal log budget) a refusal that
    /// `abuse.dry_run` let through.
    pub(crate) fn report_unenforced(&self, refusal: &Refusal, ip: IpKey, user: Option<&str>) {
        self.counters.unenforced[refusal.kind as usize].fetch_add(1, Ordering::Relaxed);
        if self.admit_refusal_line() {
            info!(%ip, user, kind = %refusal.kind, reason = %refusal.reason, "dry run: would refuse");
        }
    }

    /// A guard verdict on a connection attempt (a socket, a handshake):
    /// `Ok` to go on (a dry-run refusal reported on the way), or the
    /// refusal, counted, scored and logged as `what`.
    pub(crate) fn judge_knock(
        &self,
        verdict: Verdict,
        knock: Knock,
        user: Option<&str>,
        what: &'static str,
    ) -> Result<(), Refusal> {
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Refuse(refusal) => {
                self.refuse_knock(&refusal, knock, user, what);
                Err(refusal)
            }
            Verdict::WouldRefuse(refusal) => {
                let escalation = self.guard.penalize(None, knock.ip, user, refusal.kind, self.clock.now());
                self.report_unenforced(&refusal, knock.ip, user);
                self.escalate(escalation, knock.ip, user);
                Ok(())
            }
        }
    }

    /// Counts, scores and logs (within the budget, as `what`) a refused
    /// connection attempt, and performs what it escalated to.
    /// Every one is audited: a handshake's or an `/auth/*` request's
    /// reason is this program's text about headers and credentials (never
    /// a credential itself), so it goes into the record.
    pub(crate) fn refuse_knock(&self, refusal: &Refusal, knock: Knock, user: Option<&str>, what: &'static str) {
        self.count_refusal(refusal);
        let now = self.clock.now();
        self.audit.record(Entry::new(now, audit::Kind::Refused(refusal.kind), &refusal.reason).ip(knock.ip).user(user));
        let escalation = self.guard.penalize(None, knock.ip, user, refusal.kind, now);
        if self.admit_refusal_line() {
            warn!(
                peer = %knock.peer,
                ip = %knock.ip,
                kind = %refusal.kind,
                reason = %Clipped::new(&refusal.reason, self.settings.config.log.max_client_text),
                "{what}"
            );
        }
        self.escalate(escalation, knock.ip, user);
    }

    /// Performs what a refusal by `user` from `ip` escalated to; returns
    /// the close code for the connection it happened on, if it must close.
    pub(crate) fn escalate(&self, escalation: Escalation, ip: IpKey, user: Option<&str>) -> Option<CloseCode> {
        let enforced = escalation.enforced;
        match escalation.step {
            Step::None => None,
            Step::Restrict => {
                if enforced {
                    self.metrics.action(Action::Restrict);
                }
                if self.admit_refusal_line() {
                    info!(%ip, user, dry_run = !enforced, "anomaly score reached abuse.restrict_at: rates divided");
                }
                None
            }
            Step::Disconnect => {
                if self.admit_refusal_line() {
                    warn!(%ip, user, dry_run = !enforced, "anomaly score reached abuse.disconnect_at: closing with 4008");
                }
                enforced.then(|| {
                    self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                    self.metrics.action(Action::Disconnect);
                    let kind = audit::Kind::Refused(Kind::TooManyViolations);
                    let detail = "score reached abuse.disconnect_at: closed with 4008";
                    self.audit.record(Entry::new(self.clock.now(), kind, detail).ip(ip).user(user));
                    CloseCode::TooManyViolations
                })
            }
            Step::Ban(bans) => {
                for ban in bans {
                    // Never budgeted: a ban is rare and an operator must be
                    // able to find every one.
                    warn!(
                        subject = %ban.subject,
                        until = ?ban.until.map(|t| t.as_millis()),
                        strikes = ban.strikes,
                        reason = %ban.reason,
                        dry_run = !enforced,
                        "banned"
                    );
                    if enforced {
                        self.counters.bans.fetch_add(1, Ordering::Relaxed);
                        self.metrics.bans_issued.increment(1);
                        self.metrics.action(Action::Ban);
                        self.audit.record(crate::audit::ban_entry(&ban, self.clock.now()));
                        self.hub.close_all(&ban.subject, CloseCode::Revoked);
                        self.save_ban(ban);
                    }
                }
                enforced.then_some(CloseCode::Revoked)
            }
        }
    }

    /// Writes a ban the guard imposed to the store, on a blocking thread;
    /// until it is written, reloads from the store keep it.
    fn save_ban(&self, ban: Ban) {
        let store = Arc::clone(&self.store);
        let bans = Arc::clone(&self.guard);
        self.tasks.spawn(async move {
            let saved = ban.clone();
            match crate::gateway::call("ban_save", &store, move |store| store.put(&saved)).await {
                Ok(()) => bans.bans().saved(&ban),
                Err(e) => error!(subject = %ban.subject, error = %e, "could not save a ban; it holds until restart"),
            }
        });
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
