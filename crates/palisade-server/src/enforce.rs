//! Performing what `core::guard` decides (docs/ARCHITECTURE.md, "Abuse
//! defence"): counting, scoring, auditing and logging every refusal,
//! `dry_run` ones included, closing the connections of a banned subject
//! and writing bans to the store off the runtime's workers.
//!
//! A service, not a handler: it holds only what those decisions need, so
//! every handler (HTTP, WebSocket, `/auth/*`, admin) and the listener
//! enforce the same way without the service knowing any of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Request;
use palisade_core::addr::{IpKey, TrustedProxies};
use palisade_core::audit::{self, Entry};
use palisade_core::guard::{Ban, Escalation, Guard, Step, Verdict};
use palisade_core::log::{Clipped, LogBudget, LogVerdict};
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::seams::{Command, ControlChannel, Target};
use palisade_protocol::CloseCode;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::alerts::Alerts;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::gateway::Store;
use crate::rejection::HttpRejection;
use crate::settings::Settings;
use crate::telemetry::{Action, Metrics};

/// The log message of a refused handshake.
const UPGRADE_REFUSED: &str = "upgrade refused";

/// The peer's address, attached to every request by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

pub(crate) fn peer_of(req: &Request) -> SocketAddr {
    req.extensions().get::<PeerAddr>().map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0)
}

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

impl Counters {
    pub(crate) fn refused(&self, kind: Kind) -> u64 {
        self.refused[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn unenforced(&self, kind: Kind) -> u64 {
        self.unenforced[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn bans(&self) -> u64 {
        self.bans.load(Ordering::Relaxed)
    }

    pub(crate) fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }
}

/// What the guard's decisions need to be performed.
#[derive(Debug)]
pub(crate) struct Enforcement {
    guard: Arc<Guard>,
    clock: Clock,
    audit: Arc<Audit>,
    metrics: Arc<Metrics>,
    /// Where a ban raises an operator alert.
    alerts: Arc<Alerts>,
    /// Guard decisions, by kind.
    pub(crate) counters: Counters,
    /// Where a ban closes the banned subject's sockets.
    channel: Arc<dyn ControlChannel>,
    /// Where bans are kept.
    store: Arc<dyn Store>,
    /// How many refusal lines a flood may write (`log.refusals_per_second`).
    refusal_log: LogBudget,
    /// Ban saves, so shutdown waits for them.
    tasks: TaskTracker,
    trusted_proxies: TrustedProxies,
    /// `log.max_client_text`.
    max_client_text: usize,
}

/// The shared handles an [`Enforcement`] performs through.
#[derive(Debug)]
pub(crate) struct Handles {
    pub(crate) guard: Arc<Guard>,
    pub(crate) clock: Clock,
    pub(crate) audit: Arc<Audit>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) alerts: Arc<Alerts>,
    pub(crate) channel: Arc<dyn ControlChannel>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) tasks: TaskTracker,
}

impl Enforcement {
    pub(crate) fn new(settings: &Settings, handles: Handles) -> Self {
        let Handles { guard, clock, audit, metrics, alerts, channel, store, tasks } = handles;
        Self {
            guard,
            clock,
            audit,
            metrics,
            alerts,
            counters: Counters::default(),
            channel,
            store,
            refusal_log: LogBudget::new(settings.config.log.refusals_per_second, Duration::from_secs(1)),
            tasks,
            trusted_proxies: settings.trusted_proxies.clone(),
            max_client_text: settings.config.log.max_client_text,
        }
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

    /// Who sent `req`: the peer, and the client address the guard counts
    /// (the peer, or the client a trusted proxy names in X-Forwarded-For).
    pub(crate) fn knock_of(&self, req: &Request) -> (Knock, IpAddr) {
        let peer = peer_of(req);
        // Raw bytes: a hop that is not ASCII must be read as unreadable,
        // not make the whole header empty.
        let forwarded: Vec<&[u8]> =
            req.headers().get_all("x-forwarded-for").iter().map(http::HeaderValue::as_bytes).collect();
        let client = self.trusted_proxies.client(peer.ip(), &forwarded);
        (Knock { peer, ip: IpKey::of(client) }, client)
    }

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
                reason = %Clipped::new(&refusal.reason, self.max_client_text),
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
                        self.alerts.ban(self.clock.now(), &ban);
                        self.channel.send(Target::Subject(&ban.subject), Command::Close(CloseCode::Revoked));
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

    /// A guard verdict at the handshake: a refusal, or under `dry_run` a
    /// report and a pass.
    pub(crate) fn judge(&self, verdict: Verdict, knock: Knock, user: Option<&str>) -> Result<(), HttpRejection> {
        self.judge_knock(verdict, knock, user, UPGRADE_REFUSED).map_err(|r| {
            self.metrics.handshake_refused(r.kind);
            HttpRejection::Refused(Box::new(r))
        })
    }

    /// A refused handshake: counted, scored, logged, escalated; the client
    /// sees only the status and generic body of its kind.
    pub(crate) fn refuse(&self, refusal: Refusal, knock: Knock, user: Option<&str>) -> HttpRejection {
        self.refuse_knock(&refusal, knock, user, UPGRADE_REFUSED);
        self.metrics.handshake_refused(refusal.kind);
        HttpRejection::Refused(Box::new(refusal))
    }
}
