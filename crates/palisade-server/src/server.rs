//! The listener: accepts TCP connections, serves HTTP/1.1 with upgrades,
//! and shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::auth::Revocations;
use palisade_core::guard::{Guard, Pending};
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::store::StoreError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::abuse::{Stats, sweep};
use crate::alerts::{Counts, Webhook, watch_rates};
use crate::cluster::changes::OnOwner;
use crate::config::ConfigError;
use crate::enforce::Knock;
use crate::follow::follow_store;
use crate::http::router;
use crate::listen::{Door, Limits, Listener};
use crate::login::Login;
pub use crate::message_path::ClusterError;
use crate::message_path::MessagePath;
use crate::settings::Settings;
use crate::state::{AppState, Store};
use crate::upstream::Upstream;

pub use crate::reload::Reloader;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The embedded database could not be opened or read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The config cannot be put to use.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Cluster mode cannot reach or use Redis.
    #[error("{0}")]
    Cluster(#[from] ClusterError),
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The admin listener, when `admin.enabled`.
    admin: Option<(TcpListener, SocketAddr)>,
}

impl Server {
    /// Opens the embedded database under `server.data_dir`, loads the bans
    /// in force, and binds the listener from `server.listen` and, when
    /// enabled, the admin listener from `admin.listen`.
    pub async fn bind(settings: Settings) -> Result<Self, ServerError> {
        let config = settings.config.clone();
        let guard = Arc::new(Guard::new(settings.guard.clone()));
        let memory = settings.guard.ban_terms.memory;
        let now = crate::state::now();
        // Opening migrates the schema and reads the file: off the runtime's
        // workers, as every store call is.
        let (store, bans, revoked) = crate::gateway::blocking("open", move || -> Result<_, StoreError> {
            let store = crate::store::open(&config)?;
            let bans = store.bans(now, memory)?;
            let revoked = store.revocations()?;
            Ok((store, bans, revoked))
        })
        .await?;
        let mark = guard.bans().mark();
        guard.bans().replace(bans, mark, now);
        let revocations = Revocations::default();
        revocations.replace(revoked);
        let login = Login::new(&settings)?;
        let addr = settings.config.server.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
        let admin = if settings.config.admin.enabled {
            let addr = settings.config.admin.listen;
            let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
            let bound = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
            Some((listener, bound))
        } else {
            None
        };
        let path = MessagePath::open(&settings.config, &settings.node, &guard).await?;
        let upstream = match &settings.gateway {
            Some(gateway) => Some(
                Upstream::new(gateway.clone(), &settings.config.replay, &settings.config.limits)
                    .map_err(|why| ConfigError::invalid("gateway.ca_file", why))?,
            ),
            None => None,
        };
        let state = Arc::new(AppState::new(settings, guard, path, store, revocations, login, upstream));
        state.owners.load(&state.store).await?;
        Ok(Self { state, listener, local_addr, admin })
    }

    /// Counters of the guard's decisions, readable while the server runs.
    pub fn stats(&self) -> Stats {
        Stats(Arc::clone(&self.state))
    }

    /// The store the server opened (`[store]`).
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.state.store)
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's bound address, when it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// A handle that reloads the policy from the config file, as SIGHUP does.
    pub fn reloader(&self) -> Reloader {
        Reloader::new(Arc::clone(&self.state))
    }

    /// Serves until `signal` resolves, then closes every connection with
    /// 1001 and waits up to `server.shutdown_grace` for them. SIGHUP reloads
    /// the policy.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let Self { state, listener, admin, .. } = self;
        #[cfg(unix)]
        state.tasks.spawn(crate::reload::reload_on_sighup(Reloader::new(Arc::clone(&state)), state.shutdown.clone()));
        state.tasks.spawn(follow_store(Arc::clone(&state)));
        if let Some(changes) = &state.changes {
            let owners = Arc::clone(&state.owners);
            let learn: OnOwner = Arc::new(move |news| owners.learn(news));
            state.tasks.spawn(Arc::clone(changes).read(state.shutdown.clone(), learn));
        }
        if let Some(tls) = &state.settings.tls {
            let every = state.settings.config.server.tls.watch_interval;
            state.tasks.spawn(crate::tls::watch(Arc::clone(tls), every, state.shutdown.clone()));
        }
        state.tasks.spawn(sweep(Arc::clone(&state)));
        state.tasks.spawn(crate::threat::run(Arc::clone(&state.threat), state.clock, state.shutdown.clone()));
        spawn_alerts(&state);
        // Outside the task tracker too, as the audit writer below is: it
        // sends what the writer wrote last. Started first, so it reads the
        // head before the writer appends anything.
        let siem = match &state.siem {
            Some(siem) => Some(
                crate::siem::start(crate::siem::Parts {
                    siem: Arc::clone(siem),
                    audit: Arc::clone(&state.audit),
                    store: Arc::clone(&state.store),
                    clock: state.clock,
                })
                .await,
            ),
            None => None,
        };
        // Outside the task tracker: it must outlive every connection task,
        // to write what they recorded while closing, and stop after them.
        let audit_stop = CancellationToken::new();
        let config = &state.settings.config;
        let parts = crate::audit::Parts {
            audit: Arc::clone(&state.audit),
            store: Arc::clone(&state.store),
            metrics: Arc::clone(&state.metrics),
            alerts: Arc::clone(&state.alerts),
            clock: state.clock,
            config: config.audit.clone(),
            checkpoint_file: config.audit.checkpoint_path(&config.base_dir),
            key: state.settings.audit_key.clone(),
        };
        let audit_writer = crate::audit::spawn_writer(parts, audit_stop.clone());
        // Outside the task tracker, for the same reason: what the last
        // connections changed is written before the process ends.
        let owners_stop = CancellationToken::new();
        let owners_writer =
            tokio::spawn(Arc::clone(&state.owners).write(Arc::clone(&state.store), owners_stop.clone()));
        state.tasks.spawn(crate::telemetry::upkeep(state.shutdown.clone()));
        // Outside the task tracker too: it answers /readyz with 503 while
        // the connections drain, and stops after them.
        let admin_stop = CancellationToken::new();
        let admin = admin.map(|(listener, addr)| {
            crate::admin::announce(&state, addr);
            tokio::spawn(crate::admin::serve(Arc::clone(&state), listener, admin_stop.clone()))
        });
        let server = &state.settings.config.server;
        let limits = Limits {
            places: state.settings.config.limits.max_pending_handshakes,
            // The guard's `abuse.max_pending_per_ip`, scored, instead.
            per_peer: None,
            probe_places: None,
            first_byte: server.first_byte_timeout,
            deadline: server.handshake_timeout,
        };
        let public = Listener {
            tcp: listener,
            limits,
            router: router(Arc::clone(&state)),
            tls: state.settings.tls.clone(),
            door: Arc::new(Public(Arc::clone(&state))),
            shutdown: state.shutdown.clone(),
            tasks: state.tasks.clone(),
        };
        crate::listen::serve(public, signal).await;
        info!(open = state.open_connections(), "shutting down");
        state.shutdown.cancel();
        state.tasks.close();
        let grace = state.settings.config.server.shutdown_grace;
        if tokio::time::timeout(grace, state.tasks.wait()).await.is_err() {
            warn!(open = state.open_connections(), "shutdown grace expired with connections still open");
        }
        admin_stop.cancel();
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        owners_stop.cancel();
        if tokio::time::timeout(grace, owners_writer).await.is_err() {
            warn!("room owners were not written within server.shutdown_grace; the last changes may be lost");
        }
        audit_stop.cancel();
        if let Some(writer) = audit_writer
            && tokio::time::timeout(grace, writer).await.is_err()
        {
            warn!("the audit writer did not finish within server.shutdown_grace; its last records may be lost");
        }
        if let Some(siem) = siem {
            siem.finish(grace).await;
        }
    }
}

/// The alert webhook's sender, when `alerts.url` is set, and the watch
/// of the guard's refusal rates.
fn spawn_alerts(state: &Arc<AppState>) {
    let config = &state.settings.config.alerts;
    if let Some(hook) = Webhook::of(config, state.settings.alert_secret.as_ref()) {
        let alerts = Arc::clone(&state.alerts);
        state.tasks.spawn(crate::alerts::send(alerts, hook, state.clock, state.shutdown.clone()));
    }
    let watched = Arc::clone(state);
    let read = move || {
        let counters = &watched.enforce.counters;
        Counts {
            refusals: Kind::ALL.iter().map(|k| counters.refused(*k)).sum(),
            auth_failures: counters.refused(Kind::AuthFailure) + counters.refused(Kind::LoginFailure),
        }
    };
    let (alerts, config, clock, stop) =
        (Arc::clone(&state.alerts), config.clone(), state.clock, state.shutdown.clone());
    state.tasks.spawn(async move { watch_rates(alerts, &config, clock, read, stop).await });
}

/// The public listener's door: the guard's per-address cap on waiting
/// sockets, and the score of a socket evicted from a full
/// `limits.max_pending_handshakes`.
struct Public(Arc<AppState>);

impl Door for Public {
    type Pass = Waiting;
    const NAME: &'static str = "public";

    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    fn knock(&self, peer: SocketAddr) -> Option<Waiting> {
        Waiting::enter(&self.0, peer)
    }

    fn evicted(&self, peer: SocketAddr, waited: Duration) {
        let state = &self.0;
        // Scored as holding a place too long, like one over its address's
        // cap: one eviction weighs little (a slow honest client may be the
        // oldest once), an address that keeps filling the table ends
        // banned. A trusted proxy's sockets carry many clients: not scored.
        if state.settings.trusted_proxies.contains(peer.ip()) {
            if state.enforce.admit_refusal_line() {
                warn!(%peer, waited_ms = waited.as_millis(), "{EVICTED}");
            }
            return;
        }
        let refusal = Refusal::new(Kind::TooManyConnections, "waited longest at limits.max_pending_handshakes");
        state.enforce.refuse_knock(&refusal, Knock { peer, ip: IpKey::of(peer.ip()) }, None, EVICTED);
    }

    fn admit_line(&self) -> bool {
        self.0.enforce.admit_refusal_line()
    }
}

/// The log message of a socket evicted to make room.
const EVICTED: &str = "socket evicted: limits.max_pending_handshakes full";

/// A socket's place among its address's `abuse.max_pending_per_ip` waiting
/// for their request to be answered (not for trusted proxies, whose sockets
/// carry many clients); given back on drop.
struct Waiting {
    state: Arc<AppState>,
    pending: Option<Pending>,
}

impl Waiting {
    /// A place for the socket from `peer`, or `None` (logged) to drop it.
    fn enter(state: &Arc<AppState>, peer: SocketAddr) -> Option<Self> {
        let mut waiting = Self { state: Arc::clone(state), pending: None };
        if !state.settings.trusted_proxies.contains(peer.ip()) {
            let knock = Knock { peer, ip: IpKey::of(peer.ip()) };
            let (verdict, pending) = state.guard.accept(knock.ip, state.clock.now());
            state
                .enforce
                .judge_knock(verdict, knock, None, "socket dropped")
                .inspect_err(|r| state.metrics.handshake_refused(r.kind))
                .ok()?;
            waiting.pending = pending;
        }
        Some(waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.state.guard.answered(pending);
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
