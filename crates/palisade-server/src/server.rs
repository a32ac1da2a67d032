//! The listener: accepts TCP connections, serves HTTP/1.1 with upgrades,
//! and shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use palisade_core::addr::IpKey;
use palisade_core::audit::{self, Entry};
use palisade_core::auth::Revocations;
use palisade_core::guard::{Guard, Pending};
use palisade_core::store::StoreError;
use palisade_store::Sqlite;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{info, warn};

use crate::abuse::{Knock, Stats, sweep};
use crate::auth::Login;
use crate::config::{ConfigError, Env, ProcessEnv};
use crate::edge::ViaTls;
use crate::follow::follow_store;
use crate::http::{PeerAddr, router};
use crate::settings::Settings;
use crate::state::{AppState, Store};
use crate::tls::Stream;

/// Largest HTTP request head accepted, in bytes.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
        let data_dir = settings.config.server.data_dir.clone();
        let guard = Guard::new(settings.guard.clone());
        let memory = settings.guard.ban_terms.memory;
        let now = crate::state::now();
        // Opening migrates the schema and reads the file: off the runtime's
        // workers, as every store call is.
        let (store, bans, revoked) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let store: Arc<dyn Store> = Arc::new(Sqlite::open_in(&data_dir)?);
            let bans = store.bans(now, memory)?;
            let revoked = store.revocations()?;
            Ok((store, bans, revoked))
        })
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))??;
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
        let state = Arc::new(AppState::new(settings, guard, store, revocations, login));
        Ok(Self { state, listener, local_addr, admin })
    }

    /// Counters of the guard's decisions, readable while the server runs.
    pub fn stats(&self) -> Stats {
        Stats(Arc::clone(&self.state))
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
        Reloader(Arc::clone(&self.state))
    }

    /// Serves until `signal` resolves, then closes every connection with
    /// 1001 and waits up to `server.shutdown_grace` for them. SIGHUP reloads
    /// the policy.
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let Self { state, listener, admin, .. } = self;
        #[cfg(unix)]
        state.tasks.spawn(reload_on_sighup(Reloader(Arc::clone(&state)), state.shutdown.clone()));
        state.tasks.spawn(follow_store(Arc::clone(&state)));
        if let Some(tls) = &state.settings.tls {
            let every = state.settings.config.server.tls.watch_interval;
            state.tasks.spawn(crate::tls::watch(Arc::clone(tls), every, state.shutdown.clone()));
        }
        state.tasks.spawn(sweep(Arc::clone(&state)));
        // Outside the task tracker: it must outlive every connection task,
        // to write what they recorded while closing, and stop after them.
        let audit_stop = CancellationToken::new();
        let audit_writer = crate::audit::spawn_writer(&state, audit_stop.clone());
        state.tasks.spawn(crate::admin::metrics::upkeep(Arc::clone(&state)));
        // Outside the task tracker too: it answers /readyz with 503 while
        // the connections drain, and stops after them.
        let admin_stop = CancellationToken::new();
        let admin = admin.map(|(listener, addr)| {
            crate::admin::announce(&state, addr);
            tokio::spawn(crate::admin::serve(Arc::clone(&state), listener, admin_stop.clone()))
        });
        let router = router(Arc::clone(&state));
        let handshake_timeout = state.settings.config.server.handshake_timeout;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(handshake_timeout).max_buf_size(MAX_REQUEST_HEAD);
        let pending = Arc::new(Semaphore::new(state.settings.config.limits.max_pending_handshakes));
        tokio::pin!(signal);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            // Sockets that have not finished their request are capped, in
            // all and per address, so a flood of idle sockets is shed at
            // once instead of each holding a task and a descriptor until its
            // handshake times out, and one client cannot take every place.
            let Some(waiting) = Waiting::enter(&state, &pending, peer) else { continue };
            // Small frames (acks, chat events) should not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let (router, http, tls) = (router.clone(), http.clone(), state.settings.tls.clone());
            let shutdown = state.shutdown.clone();
            state.tasks.spawn(async move {
                // With upgrades, this future ends once the upgrade is
                // answered (the socket lives on in its own task), so the
                // deadline bounds the whole handshake (TLS included),
                // slowloris, and an idle keep-alive socket, and the permit
                // is held at most that long.
                let _waiting = waiting;
                let deadline = tokio::time::Instant::now() + handshake_timeout;
                let stream = match &tls {
                    None => Stream::Plain(stream),
                    // A handshake still under way at shutdown is dropped,
                    // so it cannot hold the grace period up.
                    Some(tls) => tokio::select! {
                        accepted = tokio::time::timeout_at(deadline, tls.accept(stream)) => match accepted {
                            Ok(Some(stream)) => stream,
                            _ => return,
                        },
                        () = shutdown.cancelled() => return,
                    },
                };
                let via_tls = ViaTls(tls.is_some());
                let service = router.map_request(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    req.extensions_mut().insert(via_tls);
                    req
                });
                let conn =
                    http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(handshake_timeout, conn).await;
                    }
                }
            });
        }
        drop(listener);
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
        audit_stop.cancel();
        if let Some(writer) = audit_writer
            && tokio::time::timeout(grace, writer).await.is_err()
        {
            warn!("the audit writer did not finish within server.shutdown_grace; its last records may be lost");
        }
    }
}

/// A socket's place among those waiting for their request to be answered:
/// one of `limits.max_pending_handshakes`, and one of its address's
/// `abuse.max_pending_per_ip` (not for trusted proxies, whose sockets carry
/// many clients). Both are given back on drop.
struct Waiting {
    state: Arc<AppState>,
    _permit: OwnedSemaphorePermit,
    pending: Option<Pending>,
}

impl Waiting {
    /// A place for the socket from `peer`, or `None` (logged) to drop it.
    fn enter(state: &Arc<AppState>, places: &Arc<Semaphore>, peer: SocketAddr) -> Option<Self> {
        let Ok(permit) = Arc::clone(places).try_acquire_owned() else {
            if state.admit_refusal_line() {
                warn!(peer = %peer, "socket dropped: limits.max_pending_handshakes reached");
            }
            return None;
        };
        let mut waiting = Self { state: Arc::clone(state), _permit: permit, pending: None };
        if !state.settings.trusted_proxies.contains(peer.ip()) {
            let knock = Knock { peer, ip: IpKey::of(peer.ip()) };
            let (verdict, pending) = state.guard.accept(knock.ip, state.clock.now());
            state
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

/// Reloads the policy of a running server.
#[derive(Debug, Clone)]
pub struct Reloader(Arc<AppState>);

impl Reloader {
    /// A reloader of `state`'s policy (the admin API's `POST /api/reload`).
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self(state)
    }

    /// Re-reads the config file and swaps the policy in atomically; on
    /// error the policy in force stays. Either way the outcome is logged.
    pub fn reload(&self, env: &dyn Env) -> Result<(), ConfigError> {
        let result = self.0.settings.reload_policy(env);
        // Only the key at fault, never the error's text: a TOML parser's
        // message can quote a line of the file, and the file holds secrets.
        let detail = match &result {
            Ok(()) => "policy reloaded".to_owned(),
            Err(ConfigError::Invalid { key, .. }) => format!("policy reload refused: config key `{key}`"),
            Err(_) => "policy reload refused: the config file is unreadable or not TOML, or an override is malformed"
                .to_owned(),
        };
        let entry = Entry::new(self.0.clock.now(), audit::Kind::ConfigReload, &detail);
        self.0.audit.record(if result.is_ok() { entry } else { entry.severity(audit::Severity::Warning) });
        match &result {
            Ok(()) => {
                info!("policy reloaded");
                // Memberships the new policy no longer allows end now, not
                // at the member's next message (docs/ARCHITECTURE.md).
                self.0.hub.recheck_all();
            }
            Err(e) => warn!(error = %e, "policy reload failed; keeping the policy in force"),
        }
        result
    }
}

#[cfg(unix)]
async fn reload_on_sighup(reloader: Reloader, shutdown: tokio_util::sync::CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; policy reload by signal is off");
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        // Reading files and compiling schemas blocks; keep it off the
        // runtime's workers. A failed reload is logged by `reload` and
        // changes nothing. The certificate is read again too: rotation
        // by signal, without a restart.
        let reloader = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(tls) = &reloader.0.settings.tls {
                tls.reload();
            }
            reloader.reload(&ProcessEnv)
        })
        .await;
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
