//! State shared by every task of one server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use palisade_core::Timestamp;
use palisade_core::admin::session::AdminSessions;
use palisade_core::auth::Revocations;
use palisade_core::client_ids::{ClientIdLimits, ClientIds};
use palisade_core::guard::{Guard, Ticket, Verdict};
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::seams::{Bus, Commit, ControlChannel, History};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts::Alerts;
use crate::audit::Audit;
pub(crate) use crate::clock::{Clock, now};
use crate::cluster::ClockCheck;
use crate::cluster::changes::ChangeStream;
use crate::enforce::{Enforcement, Handles};
use crate::hub::Hub;
use crate::login::Login;
use crate::message_path::MessagePath;
use crate::owners::OwnerLedger;
use crate::revoke::Revoker;
use crate::settings::{ConnLimits, Settings};
use crate::upstream::Upstream;

pub(crate) use crate::gateway::Store;

/// Shared server state, passed as `Arc<AppState>`.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    /// The time every connection and handshake decides by.
    pub(crate) clock: Clock,
    /// What a connection needs of the limits, taken from the config once.
    pub(crate) conn_limits: ConnLimits,
    pub(crate) hub: Arc<Hub>,
    /// The bus (`seams::Bus`): rooms' events, to every node with members
    /// (on one node, back to its own hub).
    pub(crate) bus: Arc<dyn Bus<Frame = Utf8Bytes>>,
    /// Cluster mode: this node's clock against Redis's (`/readyz`).
    pub(crate) cluster_clock: Option<Arc<ClockCheck>>,
    /// Cluster mode: wakes `follow` when a ban or revocation is written
    /// anywhere.
    pub(crate) changes: Option<Arc<ChangeStream>>,
    /// History reads (`seams::History`): what rooms keep for `recover`.
    pub(crate) history: Box<dyn History<Frame = Utf8Bytes>>,
    /// The control channel (`seams::ControlChannel`): closes, re-checks
    /// and revalidates live connections by subject, id or all.
    pub(crate) channel: Arc<dyn ControlChannel>,
    /// The commit step (`seams::Commit`): rates and nonces shared by the
    /// node's connections, the room's `seq`, history and fan-out.
    pub(crate) commit: Box<dyn Commit>,
    /// Rooms' owners, and their writer to the store.
    pub(crate) owners: Arc<OwnerLedger>,
    /// Recent client message ids (`send.cid`).
    pub(crate) client_ids: ClientIds,
    /// Rates, scores and the bans in force.
    pub(crate) guard: Arc<Guard>,
    /// Where bans and revocations are kept (the embedded database).
    pub(crate) store: Arc<dyn Store>,
    /// Revoked tokens in force.
    pub(crate) revocations: Arc<Revocations>,
    /// Puts fresher reads of the revocations in force.
    pub(crate) revoker: Revoker,
    /// The own issuer's endpoints, when on (`login.enabled` and a key that
    /// can sign).
    pub(crate) login: Option<Login>,
    /// Performs what the guard decides.
    pub(crate) enforce: Enforcement,
    /// Gateway mode's upstream, when `gateway.upstream` is set: `/ws`
    /// proxies to it instead of serving rooms.
    pub(crate) upstream: Option<Arc<Upstream>>,
    /// The audit log's queue.
    pub(crate) audit: Arc<Audit>,
    /// Metric handles (`/metrics` on the admin listener).
    pub(crate) metrics: Arc<crate::telemetry::Metrics>,
    /// Operator alerts: the recent list and the webhook's queue.
    pub(crate) alerts: Arc<Alerts>,
    /// Browser sessions on the admin listener (`POST /api/login`).
    admin_sessions: std::sync::Mutex<AdminSessions>,
    /// Threat feeds' lists in force (`[threat]`).
    pub(crate) threat: Arc<crate::threat::ThreatFeeds>,
    /// The SIEM stream's queue, when `siem.syslog` is set.
    pub(crate) siem: Option<Arc<crate::siem::Siem>>,
    /// External issuers' key set fetches, one at a time per issuer.
    pub(crate) jwks: crate::jwks::JwksFetcher,
    /// The store's last answer to `/readyz`.
    pub(crate) store_probe: crate::probe::StoreProbe,
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    open: AtomicUsize,
}

impl AppState {
    pub(crate) fn new(
        settings: Settings,
        guard: Arc<Guard>,
        path: MessagePath,
        store: Arc<dyn Store>,
        revocations: Revocations,
        login: Option<Login>,
        upstream: Option<Upstream>,
    ) -> Self {
        // First: it installs the process's recorder, which every metric
        // handle registered after it (the audit queue's too) reports to.
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let audit = Arc::new(Audit::new(&settings.config.audit));
        let alerts = Arc::new(Alerts::new(&settings.config.alerts, &settings.config.server.node_id));
        let MessagePath { hub, bus, commit, history, channel, clock: cluster_clock, changes, owners } = path;
        let clock = Clock::start();
        let tasks = TaskTracker::new();
        let enforce = Enforcement::new(
            &settings,
            Handles {
                guard: Arc::clone(&guard),
                clock,
                audit: Arc::clone(&audit),
                metrics: Arc::clone(&metrics),
                alerts: Arc::clone(&alerts),
                channel: Arc::clone(&channel),
                store: Arc::clone(&store),
                tasks: tasks.clone(),
            },
        );
        let revocations = Arc::new(revocations);
        let revoker = Revoker::new(Arc::clone(&revocations), Arc::clone(&channel), Arc::clone(&store));
        Self {
            login,
            upstream: upstream.map(Arc::new),
            guard,
            store,
            revocations,
            revoker,
            enforce,
            audit,
            metrics,
            alerts,
            admin_sessions: std::sync::Mutex::new(AdminSessions::new(
                settings.config.admin.max_sessions,
                settings.config.admin.max_sessions_per_user,
                settings.config.admin.session_lifetime,
            )),
            jwks: crate::jwks::JwksFetcher::default(),
            threat: Arc::new(crate::threat::ThreatFeeds::new(&settings.threat, settings.guard.dry_run)),
            siem: settings.siem.clone().map(|siem| Arc::new(crate::siem::Siem::new(*siem))),
            commit,
            store_probe: crate::probe::StoreProbe::default(),
            owners: Arc::new(OwnerLedger::new(crate::message_path::owner_limits(&settings.config), owners)),
            client_ids: ClientIds::new(ClientIdLimits {
                window: settings.config.limits.client_id_window,
                per_user: settings.config.limits.max_client_ids_per_user,
                total: settings.config.limits.max_client_ids,
            }),
            clock,
            conn_limits: ConnLimits::new(&settings),
            settings,
            history,
            hub,
            bus,
            cluster_clock,
            changes,
            channel,
            shutdown: CancellationToken::new(),
            tasks,
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

    /// Fetches the key set `token` needs before it is verified, if one is
    /// due (`JwksFetcher::before_verify`).
    pub(crate) async fn fetch_keys_for(&self, token: &str) {
        self.jwks.before_verify(self.settings.gate.verifier().issuers(), &self.clock, token).await;
    }

    /// The admin browser sessions, locked. Only the admin listener takes
    /// this lock, never the message path.
    pub(crate) fn admin_sessions(&self) -> std::sync::MutexGuard<'_, AdminSessions> {
        self.admin_sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
