//! What `/auth/*` answers: JSON bodies, `Cache-Control: no-store` on every
//! one of them (tokens must not sit in a cache), and one generic body per
//! kind of failure while the log line says exactly why.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use palisade_core::refusal::Kind;
use palisade_core::store::StoreError;

/// A refused `/auth/*` request. Every variant but [`AuthRejection::Refused`]
/// has its own fixed body; the reason is for the log only.
#[derive(Debug)]
pub(crate) enum AuthRejection {
    /// A refusal kind with its status and body, and when to retry.
    Refused(Kind, Option<Duration>),
    /// The body is not the JSON this endpoint takes.
    BadRequest,
    /// The refresh token is unknown, used, expired or its session ended.
    BadRefresh,
    /// The user holds `login.max_sessions_per_user` sessions and
    /// `login.session_cap` is `refuse`.
    SessionLimit,
    /// The access token belongs to no login session (an external token,
    /// or one from `palisade token`).
    NoSession,
    /// Something on our side failed; the reason is logged.
    Internal,
}

impl AuthRejection {
    /// Logs `why` and answers 500.
    pub(crate) fn internal(why: impl std::fmt::Display) -> Self {
        tracing::error!(error = %why, "auth endpoint failed");
        Self::Internal
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Refused(kind, retry_after) => {
                let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::FORBIDDEN);
                let mut response = json(status, Body::from(kind.body()));
                if let Some(after) = retry_after {
                    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                }
                return response;
            }
            Self::BadRequest => (StatusCode::BAD_REQUEST, r#"{"error":"bad_request","message":"bad request"}"#),
            Self::BadRefresh => (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_refresh","message":"refresh token invalid or expired"}"#,
            ),
            Self::SessionLimit => {
                (StatusCode::FORBIDDEN, r#"{"error":"session_limit","message":"too many sessions; log out of one"}"#)
            }
            Self::NoSession => {
                (StatusCode::BAD_REQUEST, r#"{"error":"no_session","message":"the token belongs to no login session"}"#)
            }
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"internal","message":"internal error"}"#),
        };
        json(status, Body::from(body))
    }
}

/// A JSON response that no cache keeps.
pub(crate) fn json(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `200` with `value` as its body.
pub(crate) fn ok(value: &serde_json::Value) -> Response {
    json(StatusCode::OK, Body::from(value.to_string()))
}

/// Runs a store call (and password hashing) through the gateway, as the
/// operation `op`; a failure answers 503 `unavailable`.
pub(super) async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AuthRejection> {
    crate::gateway::blocking(op, f).await.map_err(|e| {
        // The store's own failure (a locked file, Redis gone): worth a
        // retry, unlike a bug.
        tracing::error!(error = %e, op, "auth endpoint: store failed");
        AuthRejection::Refused(Kind::Unavailable, Some(Duration::from_secs(1)))
    })
}
