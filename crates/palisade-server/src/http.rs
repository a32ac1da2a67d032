//! HTTP routes and the one place where a refusal becomes an HTTP response.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use palisade_core::handshake::{HandshakeRequest, Rejection};
use palisade_core::session::Session;
use palisade_protocol::SUBPROTOCOL;
use tracing::warn;

use crate::state::AppState;
use crate::ws::{echo, serve_connection, upgrade};

/// The peer's address, attached to every request by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Why an HTTP request was refused. Bodies are short, generic JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HttpRejection {
    /// `/ws` without a valid WebSocket upgrade.
    NotWebSocket,
    /// The handshake gate said no.
    Handshake(Rejection),
    /// `limits.max_connections` reached.
    AtCapacity,
    /// No such route.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
}

impl IntoResponse for HttpRejection {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::NotWebSocket => {
                (StatusCode::BAD_REQUEST, r#"{"error":"bad_request","message":"expected a WebSocket upgrade"}"#)
            }
            Self::Handshake(r) => (StatusCode::from_u16(r.status()).unwrap_or(StatusCode::FORBIDDEN), r.body()),
            Self::AtCapacity => {
                (StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"unavailable","message":"server at capacity"}"#)
            }
            Self::NotFound => (StatusCode::NOT_FOUND, r#"{"error":"not_found","message":"no such endpoint"}"#),
            Self::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"method_not_allowed","message":"method not allowed"}"#)
            }
        };
        json(status, body)
    }
}

fn json(status: StatusCode, body: &'static str) -> Response {
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
        .route("/readyz", get(ready));
    if state.settings.config.server.conformance_echo {
        router = router.route("/conformance/echo", get(conformance_echo));
    }
    router
        .fallback(|| async { HttpRejection::NotFound })
        .method_not_allowed_fallback(|| async { HttpRejection::MethodNotAllowed })
        .with_state(state)
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"shutting down"}"#)
    } else {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

async fn websocket(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let peer = peer_of(&req);
    // The handshake order of docs/ARCHITECTURE.md: IP ban (not yet) →
    // connection caps → origin → token. Refusals share the log budget of
    // refused requests, so a flood of bad handshakes is counted, not logged.
    let slot = state.reserve_slot().ok_or_else(|| {
        if state.admit_refusal_line() {
            warn!(peer = %peer, "upgrade refused: at capacity");
        }
        HttpRejection::AtCapacity
    })?;
    let headers = req.headers();
    let protocols = joined(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let authorization = all_str(headers, header::AUTHORIZATION);
    let query_token = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    let handshake = HandshakeRequest {
        origin: header_str(headers, header::ORIGIN),
        authorization: &authorization,
        protocols: protocols.as_deref(),
        query_token,
    };
    let admitted = state.settings.gate.admit(&handshake, state.clock.now()).map_err(|r| {
        if state.admit_refusal_line() {
            warn!(peer = %peer, reason = %r, "upgrade refused");
        }
        HttpRejection::Handshake(r)
    })?;
    let session = Session::new(admitted.identity, state.settings.session, state.clock.now());
    let protocol = admitted.select_subprotocol.then_some(SUBPROTOCOL);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    Ok(upgrade::switch(&state, on_upgrade, accept, protocol, move |ws| {
        serve_connection(ws, task_state, session, peer, slot)
    }))
}

async fn conformance_echo(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let slot = state.reserve_slot().ok_or(HttpRejection::AtCapacity)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    Ok(upgrade::switch(&state, on_upgrade, accept, None, move |ws| echo::serve(ws, task_state, slot)))
}

fn peer_of(req: &Request) -> SocketAddr {
    req.extensions().get::<PeerAddr>().map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0)
}

/// A header as text; a value that is not visible ASCII reads as empty, which
/// no check accepts.
fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Every value of a header, in order, read as [`header_str`] reads one.
fn all_str(headers: &HeaderMap, name: header::HeaderName) -> Vec<&str> {
    headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("")).collect()
}

/// Every value of a repeatable header, comma-joined.
fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values = all_str(headers, name);
    (!values.is_empty()).then(|| values.join(","))
}
