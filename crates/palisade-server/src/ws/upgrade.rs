//! The RFC 6455 upgrade, answered by hand so the server controls the
//! transport settings and sees every read error (which picks the close
//! code).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use palisade_core::transport::{UpgradeRejection, UpgradeRequest, check_upgrade};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;

use super::transport::{Ws, socket_settings};
use crate::headers::{all_str, header_str};
use crate::rejection::HttpRejection;
use crate::state::AppState;

/// Checks that a request is a WebSocket upgrade (decided in core, which
/// names the part at fault); returns the `Sec-WebSocket-Accept` value to
/// answer with.
pub(crate) fn accept_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, HttpRejection> {
    let (connection, upgrade) = (all_str(headers, header::CONNECTION), all_str(headers, header::UPGRADE));
    let request = UpgradeRequest {
        is_get: method == Method::GET,
        connection: &connection,
        upgrade: &upgrade,
        version: header_str(headers, header::SEC_WEBSOCKET_VERSION),
        key: header_str(headers, header::SEC_WEBSOCKET_KEY),
    };
    let key = check_upgrade(&request).map_err(HttpRejection::NotWebSocket)?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| HttpRejection::NotWebSocket(UpgradeRejection::BadKey))
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
    let settings = socket_settings(&state.settings.config.limits);
    state.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                serve(Ws::new(TokioIo::new(upgraded), settings)).await;
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
