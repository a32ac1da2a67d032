//! HTTP routes and the one place where a refusal becomes an HTTP response.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use palisade_core::addr::IpKey;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::transport::UpgradeRejection;

use crate::abuse::Knock;
use crate::handshake::websocket;
use crate::state::AppState;
use crate::ws::{echo, upgrade};

/// The peer's address, attached to every request by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Why an HTTP request was refused. Bodies are short, generic JSON.
#[derive(Debug, Clone)]
pub(crate) enum HttpRejection {
    /// `/ws` without a valid WebSocket upgrade: which part, for the log.
    NotWebSocket(UpgradeRejection),
    /// A handshake check said no (the guard, capacity, Origin, token); the
    /// status and body are read off its kind, which also says when to
    /// retry.
    Refused(Box<Refusal>),
    /// No such route.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// Plain text where production requires TLS (`transport::judge`).
    TlsRequired,
}

impl IntoResponse for HttpRejection {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::NotWebSocket(part) => {
                tracing::debug!(rejection = part.name(), "not a WebSocket upgrade");
                (StatusCode::BAD_REQUEST, r#"{"error":"bad_request","message":"expected a WebSocket upgrade"}"#)
            }
            Self::Refused(r) => {
                let status = StatusCode::from_u16(r.kind.status()).unwrap_or(StatusCode::FORBIDDEN);
                let mut response = json(status, r.kind.body());
                if let Some(after) = r.retry_after {
                    // Whole seconds, rounded up, never 0: "now" would invite
                    // the immediate retry the limit refused.
                    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                    response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from(secs.max(1)));
                }
                return response;
            }
            Self::TlsRequired => {
                let mut response = json(StatusCode::UPGRADE_REQUIRED, crate::tls::TLS_REQUIRED_BODY);
                response
                    .headers_mut()
                    .insert(header::UPGRADE, http::HeaderValue::from_static(crate::tls::TLS_UPGRADE_OFFER));
                return response;
            }
            Self::NotFound => (StatusCode::NOT_FOUND, r#"{"error":"not_found","message":"no such endpoint"}"#),
            Self::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"method_not_allowed","message":"method not allowed"}"#)
            }
        };
        json(status, body)
    }
}

pub(crate) fn json(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// All routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#) }))
        // The same readiness as the admin listener's, for load balancers
        // that can reach only the public port.
        .route("/readyz", get(crate::admin::ready));
    if state.settings.config.server.conformance_echo {
        router = router.route("/conformance/echo", get(conformance_echo));
    }
    router
        .merge(crate::auth::routes(&state))
        .fallback(|| async { HttpRejection::NotFound })
        .method_not_allowed_fallback(|| async { HttpRejection::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), crate::edge::public))
        .with_state(state)
}

async fn conformance_echo(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let slot = state
        .reserve_slot()
        .ok_or_else(|| HttpRejection::Refused(Box::new(Refusal::new(Kind::AtCapacity, "limits.max_connections"))))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    Ok(upgrade::switch(&state, on_upgrade, accept, None, move |ws| echo::serve(ws, task_state, slot)))
}

pub(crate) fn peer_of(req: &Request) -> SocketAddr {
    req.extensions().get::<PeerAddr>().map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0)
}

impl AppState {
    /// Who sent `req`: the peer, and the client address the guard counts
    /// (the peer, or the client a trusted proxy names in X-Forwarded-For).
    pub(crate) fn knock_of(&self, req: &Request) -> (Knock, IpAddr) {
        let peer = peer_of(req);
        // Raw bytes: a hop that is not ASCII must be read as unreadable,
        // not make the whole header empty.
        let forwarded: Vec<&[u8]> =
            req.headers().get_all("x-forwarded-for").iter().map(http::HeaderValue::as_bytes).collect();
        let client = self.settings.trusted_proxies.client(peer.ip(), &forwarded);
        (Knock { peer, ip: IpKey::of(client) }, client)
    }
}

/// A header as text; a value that is not visible ASCII reads as empty, which
/// no check accepts.
pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Every value of a header, in order, read as [`header_str`] reads one.
pub(crate) fn all_str(headers: &HeaderMap, name: header::HeaderName) -> Vec<&str> {
    headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("")).collect()
}

/// Every value of a repeatable header, comma-joined.
pub(crate) fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values = all_str(headers, name);
    (!values.is_empty()).then(|| values.join(","))
}
