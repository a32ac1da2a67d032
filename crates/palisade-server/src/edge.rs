//! The HTTP edge (docs/OPERATIONS.md, "Headers" and "Behind a proxy"):
//! every request's transport is judged by core (`transport::judge`) before
//! any route sees it, so production never serves plain text by accident,
//! and every answer carries the same security headers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use palisade_core::transport::{TransportFacts, TransportVerdict, judge};
use tracing::info;

use crate::enforce::peer_of;
use crate::headers::all_str;
use crate::rejection::{HttpRejection, SECURITY_HEADERS};
use crate::settings::Profile;
use crate::state::AppState;

/// Whether the listener terminated TLS for this request; attached by the
/// accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViaTls(pub(crate) bool);

/// The public listener's edge: a plaintext request where TLS is required
/// gets 426; every answer gets the security headers, and HSTS when secure.
pub(crate) async fn public(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let peer = peer_of(&req);
    let verdict = {
        let forwarded_proto = all_str(req.headers(), HeaderName::from_static("x-forwarded-proto"));
        let server = &state.settings.config.server;
        judge(TransportFacts {
            tls: req.extensions().get::<ViaTls>().is_some_and(|t| t.0),
            dev: state.settings.profile == Profile::Dev,
            allow_plaintext: server.allow_plaintext,
            trusted_peer: state.settings.trusted_proxies.contains(peer.ip()),
            forwarded_proto: &forwarded_proto,
        })
    };
    let no_store = req.uri().path().starts_with("/auth/");
    let mut response = if verdict == TransportVerdict::UpgradeRequired {
        if state.enforce.admit_refusal_line() {
            info!(%peer, rejection = "tls_required", "plaintext request refused with 426");
        }
        HttpRejection::TlsRequired.into_response()
    } else {
        next.run(req).await
    };
    let hsts = (verdict == TransportVerdict::Secure).then_some(state.settings.config.server.hsts_max_age);
    harden(response.headers_mut(), hsts, no_store);
    response
}

/// The admin listener's edge: the security headers, and no cache for any
/// of its answers (they describe live clients).
pub(crate) async fn admin(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    harden(response.headers_mut(), None, true);
    response
}

fn harden(headers: &mut HeaderMap, hsts: Option<Duration>, no_store: bool) {
    for (name, value) in SECURITY_HEADERS {
        // A page brings its own policy (the dashboard's, `admin::ui`; the
        // demo's, `demo`); everything else gets the JSON one.
        if name == header::CONTENT_SECURITY_POLICY && headers.contains_key(&name) {
            continue;
        }
        headers.insert(name, HeaderValue::from_static(value));
    }
    if no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(max_age) = hsts.filter(|d| !d.is_zero())
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={}", max_age.as_secs()))
    {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
}
