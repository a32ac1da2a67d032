//! What every admin API handler shares: who is acting ([`Actor`]), the
//! typed error every handler answers with ([`ApiError`]), the JSON body,
//! query and page readers, the store call, and the `admin_action` audit
//! record. Below the handlers (`api`, `api_bans`, `browser`), which import
//! it and never each other.

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use palisade_core::addr::IpKey;
use palisade_core::admin::{AdminRole, redact_ip, redact_ips_in};
use palisade_core::audit::{self, Entry};
use palisade_core::log::Clipped;
use palisade_core::refusal::Refusal;
use palisade_core::store::StoreError;
use palisade_protocol::bounded_pointer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::headers::header_str;
use crate::state::AppState;

/// The default page size, when `admin.max_page_size` is larger.
const DEFAULT_PAGE: usize = 100;
/// Longest cause written into the "bad input" log line, in characters:
/// the cause quotes the request (a query key, a value), so it is escaped
/// and cut like any client text (`log.max_client_text`'s default).
const MAX_CAUSE_CHARS: usize = 200;

/// Who is acting: what `require_admin` accepted. Never the credential.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    /// `api_key`, `viewer_api_key`, or `user:<id>` for an admin-role token
    /// or browser session.
    pub(crate) who: String,
    /// The client address, as the guard counts it.
    pub(crate) ip: IpKey,
    /// The TCP peer.
    pub(crate) peer: SocketAddr,
    /// What the credential may do.
    pub(crate) role: AdminRole,
}

impl Actor {
    /// The user acting, when a user is.
    pub(crate) fn user(&self) -> Option<&str> {
        self.who.strip_prefix("user:")
    }

    /// A client address as this actor may see it: whole for an operator,
    /// its network for a viewer.
    pub(crate) fn shows(&self, ip: &str) -> String {
        if self.role.allows(AdminRole::Operator) { ip.to_owned() } else { redact_ip(ip) }
    }

    /// Free text naming addresses (an audit record's `detail`) as this
    /// actor may see it: a viewer reads networks there too.
    pub(crate) fn shows_in(&self, text: &str) -> String {
        if self.role.allows(AdminRole::Operator) { text.to_owned() } else { redact_ips_in(text) }
    }
}

/// Why an API call failed. Bodies are generic; the detail goes to the log.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Malformed input; the reason is logged, never answered.
    BadRequest(String),
    /// Nothing of the kind exists: the error code and message.
    NotFound(&'static str, &'static str),
    /// The policy refused a published event: its code and field.
    Refused(Box<Refusal>),
    /// A valid request the server could not perform now (`error`,
    /// `message`).
    Unprocessable(&'static str, &'static str),
    /// The store or a task failed; logged.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(why) => {
                info!(why = %Clipped::new(&why, MAX_CAUSE_CHARS), "admin API request refused: bad input");
                reply(StatusCode::BAD_REQUEST, &json!({"error": "bad_request", "message": "invalid request"}))
            }
            Self::NotFound(error, message) => {
                reply(StatusCode::NOT_FOUND, &json!({"error": error, "message": message}))
            }
            Self::Refused(refusal) => {
                let code = refusal.code();
                info!(code = code.as_str(), reason = %refusal.reason, path = refusal.path.as_deref(), "admin API publish refused");
                let mut body = json!({"error": code.as_str(), "message": code.message()});
                if let Some(path) = &refusal.path {
                    body["path"] = Value::String(bounded_pointer(path).to_owned());
                }
                reply(StatusCode::BAD_REQUEST, &body)
            }
            Self::Unprocessable(error, message) => {
                reply(StatusCode::UNPROCESSABLE_ENTITY, &json!({"error": error, "message": message}))
            }
            Self::Internal(why) => {
                warn!(error = %why, "admin API request failed");
                reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "internal", "message": "internal error"}))
            }
        }
    }
}

/// A JSON response.
pub(crate) fn reply(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// A request's query, or a generic 400.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))
}

/// A request's JSON body (`application/json`, at most
/// `admin.max_body_bytes`), or a generic 400. Serde's message names only
/// the class and position: it can quote a value.
pub(crate) async fn body<T: DeserializeOwned>(state: &AppState, req: Request) -> Result<T, ApiError> {
    let is_json = header_str(req.headers(), header::CONTENT_TYPE)
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::BadRequest("content type is not application/json".into()));
    }
    let bytes = axum::body::to_bytes(req.into_body(), state.settings.config.admin.max_body_bytes)
        .await
        .map_err(|_| ApiError::BadRequest("body larger than admin.max_body_bytes, or unreadable".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!("body: {:?} error at line {} column {}", e.classify(), e.line(), e.column()))
    })
}

/// A page's size: `limit` within 1..=`admin.max_page_size`.
pub(crate) fn page_size(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    let max = state.settings.config.admin.max_page_size;
    match limit {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some(0) => Err(ApiError::BadRequest("limit 0".into())),
        Some(n) => Ok(n.min(max)),
    }
}

/// Runs a store call through the gateway, as the operation `op`.
pub(crate) async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::gateway::blocking(op, f).await.map_err(|e| ApiError::Internal(e.to_string()))
}

/// Records an admin action in the audit log, and logs it.
pub(crate) fn admin_action(state: &AppState, actor: &Actor, action: &str, user: Option<&str>) {
    info!(actor = %actor.who, ip = %actor.ip, action, "admin action");
    let detail = format!("api: {action} (by {})", actor.who);
    state.audit.record(Entry::new(state.clock.now(), audit::Kind::AdminAction, &detail).ip(actor.ip).user(user));
}

impl From<Box<Refusal>> for ApiError {
    fn from(refusal: Box<Refusal>) -> Self {
        Self::Refused(refusal)
    }
}
