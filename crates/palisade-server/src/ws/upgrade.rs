//! The RFC 6455 upgrade, answered by hand so the server controls the
//! transport settings and sees every read error (which picks the close
//! code).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use super::transport::{Ws, websocket_config};
use crate::http::HttpRejection;
use crate::state::AppState;

/// Checks that a request is a WebSocket upgrade; returns the
/// `Sec-WebSocket-Accept` value to answer with.
pub(crate) fn accept_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, HttpRejection> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|k| k.len() == 24);
    match key {
        Some(key)
            if method == Method::GET
                && has_token(header::CONNECTION, "upgrade")
                && has_token(header::UPGRADE, "websocket")
                && version_ok =>
        {
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| HttpRejection::NotWebSocket)
        }
        _ => Err(HttpRejection::NotWebSocket),
    }
}

/// Answers 101 and runs `serve` on the socket once hyper hands it over.
pub(crate) fn switch<F, Fut>(
    state: &Arc<AppState>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: HeaderValue,
    protocol: Option<&'static str>,
    serve: F,
) -> Response
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let config = websocket_config(&state.settings.config.limits);
    state.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve(ws).await;
            }
            Err(e) => debug!(error = %e, "upgrade did not complete"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    response
}
