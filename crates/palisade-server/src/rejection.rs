//! The one place where a refusal becomes an HTTP response: a leaf below
//! every handler and service that answers HTTP.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, StatusCode, header};
use palisade_core::refusal::Refusal;
use palisade_core::transport::UpgradeRejection;

/// The body of a 426 (a plaintext request where TLS is required).
pub(crate) const TLS_REQUIRED_BODY: &str = r#"{"error":"tls_required","message":"use https or wss"}"#;
/// The `Upgrade` header of a 426: the versions this listener speaks.
pub(crate) const TLS_UPGRADE_OFFER: &str = "TLS/1.3, TLS/1.2";

/// The headers on every answer, the TLS port's raw 426 included (written
/// before any HTTP stack runs, so it copies them from here). Nothing may be
/// loaded into, framed from or sniffed out of what the server answers: it
/// serves JSON, and any page it serves later brings its own narrower policy.
pub(crate) const SECURITY_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
];

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
                let mut response = json(StatusCode::UPGRADE_REQUIRED, TLS_REQUIRED_BODY);
                response.headers_mut().insert(header::UPGRADE, http::HeaderValue::from_static(TLS_UPGRADE_OFFER));
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
