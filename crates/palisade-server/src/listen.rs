//! The accept loop both listeners run (docs/ARCHITECTURE.md, "The
//! listeners"): it accepts TCP connections within the listener's
//! [`Limits`], serves HTTP/1.1 (with upgrades, and TLS where it applies),
//! and gives each socket back its place when it ends. What a listener
//! decides beyond its limits (the abuse guard's per-address cap, how an
//! eviction is scored) is its [`Door`]'s.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse as _, Response};
use http::Method;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::guard::{Full, RequestKind, Seat, WaitList};
use palisade_core::refusal::{Kind, Refusal};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, warn};

use crate::edge::ViaTls;
use crate::enforce::PeerAddr;
use crate::rejection::HttpRejection;
use crate::telemetry::DROPPED;
use crate::tls::{Stream, Tls};

/// Largest HTTP request head accepted, in bytes.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener's limits on its sockets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Sockets held at once; when full, the one that has waited longest
    /// gives way to the newcomer.
    pub(crate) places: usize,
    /// Sockets one peer address holds at once (`None`: no such cap here).
    pub(crate) per_peer: Option<usize>,
    /// Places kept for health and readiness probes. `None`: requests are
    /// not told apart, and a socket may give way until it ends.
    pub(crate) probe_places: Option<usize>,
    /// Deadline for a socket's first byte.
    pub(crate) first_byte: Duration,
    /// Deadline for the request head, and for the whole connection until
    /// it is upgraded or closed.
    pub(crate) deadline: Duration,
}

/// What one listener decides about its sockets beyond its [`Limits`].
pub(crate) trait Door: Send + Sync + 'static {
    /// Held by a socket's task while it lives (e.g. its place in the
    /// guard's per-address count).
    type Pass: Send + 'static;
    /// The listener's name, in log lines and metric labels.
    const NAME: &'static str;

    /// The time decisions are taken at.
    fn now(&self) -> Timestamp;

    /// A socket was accepted from `peer`: its pass, or `None` (counted and
    /// logged by the door) to close it at once.
    fn knock(&self, peer: SocketAddr) -> Option<Self::Pass>;

    /// The socket of `peer` was dropped, after waiting `waited`, to make
    /// room for a newcomer: record it (and score it, if the door does).
    fn evicted(&self, peer: SocketAddr, waited: Duration);

    /// May one more refusal line be written now (the log budget)?
    fn admit_line(&self) -> bool;
}

/// A listener and what serving it needs.
pub(crate) struct Listener<D: Door> {
    pub(crate) tcp: TcpListener,
    pub(crate) limits: Limits,
    pub(crate) router: Router,
    /// TLS for every socket, when the listener has it.
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) door: Arc<D>,
    /// Cancelled to close the connections, gracefully.
    pub(crate) shutdown: CancellationToken,
    /// Where the connection tasks run, so the caller can wait for them.
    pub(crate) tasks: TaskTracker,
}

/// Accepts and serves until `stop` resolves; then the listening socket is
/// closed and the caller drains `tasks`.
pub(crate) async fn serve<D: Door>(listener: Listener<D>, stop: impl Future<Output = ()>) {
    let Listener { tcp, limits, router, tls, door, shutdown, tasks } = listener;
    let seats = Arc::new(Seats {
        list: Mutex::new(WaitList::new(limits.places, limits.per_peer, limits.probe_places.unwrap_or(0))),
        door: Arc::clone(&door),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.deadline).max_buf_size(MAX_REQUEST_HEAD);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if door.admit_line() {
                        warn!(listener = D::NAME, error = %e, "accept failed");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(pass) = door.knock(peer) else { continue };
        let Some(held) = seats.enter(peer) else { continue };
        // Small frames (acks, chat events) should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let socket = Socket { stream, peer, held, router: router.clone(), tls: tls.clone() };
        tasks.spawn(socket.serve(pass, http.clone(), limits, shutdown.clone()));
    }
}

/// The listener's places, and its door.
struct Seats<D: Door> {
    list: Mutex<WaitList<(SocketAddr, CancellationToken)>>,
    door: Arc<D>,
}

impl<D: Door> Seats<D> {
    /// A place for the socket of `peer`, made by evicting the socket that
    /// has waited longest if need be; `None` (counted, and logged within
    /// the budget) to drop it.
    fn enter(self: &Arc<Self>, peer: SocketAddr) -> Option<Held<D>> {
        let evicted = CancellationToken::new();
        let entered = self.lock().enter(IpKey::of(peer.ip()), (peer, evicted.clone()), self.door.now());
        match entered {
            Ok((seat, gone)) => {
                if let Some(gone) = gone {
                    let (gone_peer, close) = gone.item;
                    close.cancel();
                    dropped(D::NAME, "evicted");
                    self.door.evicted(gone_peer, gone.waited);
                }
                Some(Held { seats: Arc::clone(self), seat: Some(seat), evicted })
            }
            Err(full) => {
                let reason = match full {
                    Full::Peer => "peer_cap",
                    Full::Listener => "full",
                };
                dropped(D::NAME, reason);
                if self.door.admit_line() {
                    warn!(listener = D::NAME, %peer, reason, "socket dropped: no place for it");
                }
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WaitList<(SocketAddr, CancellationToken)>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A socket's place, given back on drop; `evicted` fires when the place is
/// taken from it.
struct Held<D: Door> {
    seats: Arc<Seats<D>>,
    seat: Option<Seat>,
    evicted: CancellationToken,
}

impl<D: Door> Held<D> {
    /// May `req` be answered now (probes always may, from the reserved
    /// places)?
    fn serve(&self, req: &hyper::Request<Incoming>) -> bool {
        let probe = req.method() == Method::GET && matches!(req.uri().path(), "/healthz" | "/readyz");
        let kind = if probe { RequestKind::Probe } else { RequestKind::Other };
        self.seat.as_ref().is_some_and(|seat| self.seats.lock().serve(seat, kind))
    }

    /// The request being answered was: the socket waits again.
    fn served(&self) {
        if let Some(seat) = &self.seat {
            self.seats.lock().served(seat);
        }
    }
}

impl<D: Door> Drop for Held<D> {
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            self.seats.lock().leave(seat);
        }
    }
}

/// One accepted socket.
struct Socket<D: Door> {
    stream: TcpStream,
    peer: SocketAddr,
    held: Held<D>,
    router: Router,
    tls: Option<Arc<Tls>>,
}

impl<D: Door> Socket<D> {
    async fn serve(
        self,
        pass: D::Pass,
        http: hyper::server::conn::http1::Builder,
        limits: Limits,
        shutdown: CancellationToken,
    ) {
        let Self { stream, peer, held, router, tls } = self;
        let _pass = pass;
        let evicted = held.evicted.clone();
        // With upgrades, the connection's future ends once the upgrade is
        // answered (the socket lives on in its own task), so the deadline
        // bounds the whole handshake (TLS included), slowloris, and an idle
        // keep-alive socket, and the place is held at most that long.
        let deadline = tokio::time::Instant::now() + limits.deadline;
        let mut first = [0u8; 1];
        tokio::select! {
            peeked = tokio::time::timeout(limits.first_byte, stream.peek(&mut first)) => match peeked {
                Ok(Ok(1..)) => {}
                Ok(_) => return,
                Err(_) => {
                    dropped(D::NAME, "silent");
                    debug!(listener = D::NAME, %peer, "socket dropped: no byte within its first_byte_timeout");
                    return;
                }
            },
            () = evicted.cancelled() => return,
            () = shutdown.cancelled() => return,
        }
        let stream = match &tls {
            None => Stream::Plain(stream),
            // A handshake still under way at shutdown is dropped, so it
            // cannot hold the grace period up.
            Some(tls) => tokio::select! {
                accepted = tokio::time::timeout_at(deadline, tls.accept(stream)) => match accepted {
                    Ok(Some(stream)) => stream,
                    _ => return,
                },
                () = evicted.cancelled() => return,
                () = shutdown.cancelled() => return,
            },
        };
        let via_tls = ViaTls(tls.is_some());
        let held = Arc::new(held);
        let tracked = limits.probe_places.is_some();
        let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            req.extensions_mut().insert(via_tls);
            let (router, held) = (router.clone(), Arc::clone(&held));
            async move {
                if !tracked {
                    return router.oneshot(req).await;
                }
                if !held.serve(&req) {
                    return Ok(busy::<D>(&*held.seats.door, peer));
                }
                let response = router.oneshot(req).await;
                held.served();
                response
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = evicted.cancelled() => {}
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.deadline, conn).await;
            }
        }
    }
}

/// The answer to a request that found every unreserved place answering
/// another: 503, as at any capacity limit.
fn busy<D: Door>(door: &D, peer: SocketAddr) -> Response {
    if door.admit_line() {
        warn!(listener = D::NAME, %peer, "request refused: every place but the probes' is answering another");
    }
    HttpRejection::Refused(Box::new(Refusal::new(Kind::AtCapacity, "listener busy"))).into_response()
}

fn dropped(listener: &'static str, reason: &'static str) {
    ::metrics::counter!(DROPPED, "listener" => listener, "reason" => reason).increment(1);
}
