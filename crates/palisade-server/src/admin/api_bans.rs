//! The admin API's bans and revocations (docs/PROTOCOL.md §1.7): what
//! `palisade ban` and `palisade revoke` do, through the same store traits
//! and audit records, and then in this process at once: a ban goes into
//! the guard's list and closes the subject's live sockets with 4003, a
//! revocation is read back so live connections check their tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::response::Response;
use http::StatusCode;
use palisade_core::Timestamp;
use palisade_core::admin::session::ADMIN_SESSION_PREFIX;
use palisade_core::audit::Entry;
use palisade_core::auth::{Revocation, check_jti, user_revocation};
use palisade_core::guard::{Ban, Subject};
use palisade_core::seams::{Command, Target};
use palisade_protocol::CloseCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::shared::{Actor, ApiError, admin_action, blocking, body, page_size, query, reply};
use crate::config::StoreBackend;
use crate::ops::{self, Via};
use crate::state::{AppState, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/bans`: the bans in force, by subject (`ip:…`, `user:…`, in
/// text order); `cursor` is the last subject of the previous page.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = page_size(&state, q.limit)?;
    let mut bans: Vec<(String, Ban)> =
        state.guard.bans().list(state.clock.now()).into_iter().map(|b| (b.subject.to_string(), b)).collect();
    bans.sort_by(|a, b| a.0.cmp(&b.0));
    let after = q.cursor.unwrap_or_default();
    let mut page: Vec<&(String, Ban)> = bans.iter().filter(|(s, _)| after.is_empty() || *s > after).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = more.then(|| page.last().map(|(s, _)| s.clone())).flatten();
    let items: Vec<Value> = page.iter().map(|(subject, ban)| ban_json(subject, ban)).collect();
    Ok(reply(StatusCode::OK, &json!({"items": items, "next_cursor": next})))
}

fn ban_json(subject: &str, ban: &Ban) -> Value {
    json!({
        "subject": subject,
        "since": ban.since.as_millis(),
        "until": ban.until.map(|t| t.as_millis()),
        "strikes": ban.strikes,
        "source": ban.source.as_str(),
        "reason": ban.reason,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    subject: String,
    #[serde(default, deserialize_with = "whole")]
    duration_secs: Option<u64>,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    reason: String,
}

/// A whole number in `0..2^64`, or null. JSON Schema, and so the OpenAPI
/// document, counts `2.0` and `2e0` as the integer 2; a client whose JSON
/// library writes them so must not be refused for a spelling.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    /// 2^64, the first float past `u64::MAX`.
    const END: f64 = 18_446_744_073_709_551_616.0;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(n) = n.as_u64() {
        return Ok(Some(n));
    }
    match n.as_f64() {
        // Whole and in range, so the cast is exact.
        Some(f) if f.fract() == 0.0 && (0.0..END).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom("not a whole number from 0 to 2^64-1")),
    }
}

/// `POST /api/bans {subject, duration_secs | permanent, reason}`: as
/// `palisade ban add`, then in force here and the subject's sockets closed.
pub(crate) async fn add(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Result<Response, ApiError> {
    let AddBody { subject, duration_secs, permanent, reason } = body(&state, req).await?;
    let subject: Subject = subject.parse().map_err(|_| ApiError::BadRequest("subject does not parse".into()))?;
    let reason = ops::parse_reason(&reason).map_err(|why| ApiError::BadRequest(format!("reason: {why}")))?;
    let now = state.clock.now();
    let until = ops::until(now, duration_secs.map(Duration::from_secs), permanent)
        .ok_or_else(|| ApiError::BadRequest("a ban needs duration_secs above 0 or permanent, not both".into()))?;
    let store = Arc::clone(&state.store);
    let memory = state.guard.settings().ban_terms.memory;
    // Saved first: a ban the store refused would hold here and vanish at
    // the next restart or reload, while the operator was told it was made.
    // Put in force after the save, it survives a reload racing it too: it
    // is marked saved at once (`BanList::replace`).
    let banned = blocking("ban_add", move || ops::ban(store.as_ref(), subject, until, reason, memory, now)).await?;
    let ban = banned.ban;
    state.guard.bans().insert(ban.clone());
    state.guard.bans().saved(&ban);
    let closed = state.channel.send(Target::Subject(&ban.subject), Command::Close(CloseCode::Revoked));
    state.audit.record(banned.entry);
    state.alerts.ban(now, &ban);
    admin_action(&state, &actor, &format!("banned {}: {closed} connection(s) closed with 4003", ban.subject), None);
    let mut out = ban_json(&ban.subject.to_string(), &ban);
    out["closed"] = Value::from(closed);
    Ok(reply(StatusCode::CREATED, &out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiftQuery {
    subject: String,
}

/// `DELETE /api/bans?subject=…`: as `palisade ban remove`.
pub(crate) async fn lift(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    q: Result<Query<LiftQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let subject: Subject =
        query(q)?.subject.parse().map_err(|_| ApiError::BadRequest("subject does not parse".into()))?;
    let now = state.clock.now();
    let store = Arc::clone(&state.store);
    let wanted = subject.clone();
    let (stored, entry) = blocking("ban_lift", move || ops::lift(store.as_ref(), &wanted, Via::Api, now)).await?;
    let in_memory = state.guard.bans().lift(&subject).is_some();
    if !stored && !in_memory {
        return Err(ApiError::NotFound("not_found", "no ban on that subject"));
    }
    state.audit.record(entry);
    admin_action(&state, &actor, &format!("lifted the ban on {subject}"), None);
    Ok(reply(StatusCode::OK, &json!({"lifted": subject.to_string()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: Option<String>,
    session: Option<String>,
    user: Option<String>,
    /// For `user`: tokens issued before this instant (ms); default now.
    #[serde(default, deserialize_with = "whole")]
    before: Option<u64>,
    #[serde(default)]
    reason: String,
}

/// `POST /api/revoke {token | session | user}`: as `palisade revoke`, then
/// the revocations are read back, so matching live connections close.
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Result<Response, ApiError> {
    let request: RevokeBody = body(&state, req).await?;
    let reason = ops::parse_reason(&request.reason).map_err(|why| ApiError::BadRequest(format!("reason: {why}")))?;
    let now = state.clock.now();
    let store = Arc::clone(&state.store);
    let (done, entry) = match (request.token, request.session, request.user) {
        (Some(jti), None, None) => {
            check_jti(&jti).map_err(|_| ApiError::BadRequest("token is not a valid jti".into()))?;
            revoked(store, Revocation::Token(jti), reason, now).await?
        }
        (None, Some(sid), None) => {
            check_jti(&sid).map_err(|_| ApiError::BadRequest("session is not a valid id".into()))?;
            let id = sid.clone();
            // An admin browser session (`asid_…`) lives in one process:
            // this one, or in cluster mode maybe another node's, which
            // ends it at its next request once the revocation is stored
            // (every request checks the revocations).
            let admin = state.admin_sessions().close_where(|s| s.identity.session_id.as_deref() == Some(sid.as_str()));
            if admin > 0 {
                (format!("revoked session:{sid}"), ops::session_revoked(&sid, Via::Api, now))
            } else if sid.starts_with(ADMIN_SESSION_PREFIX)
                && state.settings.config.store.backend == StoreBackend::Redis
            {
                revoked(store, Revocation::Session(sid), reason, now).await?
            } else {
                let entry = blocking("session_end", move || ops::end_session(store.as_ref(), &id, Via::Api, now))
                    .await?
                    .ok_or(ApiError::NotFound("not_found", "no live session with that id"))?;
                (format!("revoked session:{sid}"), entry)
            }
        }
        (None, None, Some(user)) => {
            let before = request.before.map_or(now, palisade_core::Timestamp::from_millis);
            let revocation =
                user_revocation(&user, before).map_err(|_| ApiError::BadRequest("user is not a valid id".into()))?;
            revoked(store, revocation, reason, now).await?
        }
        _ => return Err(ApiError::BadRequest("revoke needs exactly one of token, session and user".into())),
    };
    state.audit.record(entry);
    admin_action(&state, &actor, &done, None);
    state.revoker.reload().await;
    Ok(reply(StatusCode::OK, &json!({"status": "revoked"})))
}

/// Saves `revocation` (a user's sessions end in its transaction): what
/// was done, for the admin log line, and the audit record.
async fn revoked(
    store: Arc<dyn Store>,
    revocation: Revocation,
    reason: String,
    now: Timestamp,
) -> Result<(String, Entry), ApiError> {
    let done = format!("revoked {revocation}");
    let revoked = blocking("revoke", move || ops::revoke(store.as_ref(), &revocation, &reason, Via::Api, now)).await?;
    Ok((done, revoked.entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Option<Option<u64>> {
        serde_json::from_str::<RevokeBody>(json).ok().map(|b| b.before)
    }

    #[test]
    fn a_whole_number_may_be_spelled_as_a_float_and_nothing_else_passes() {
        assert_eq!(parsed(r#"{"before":7}"#), Some(Some(7)));
        assert_eq!(parsed(r#"{"before":7.0}"#), Some(Some(7)));
        assert_eq!(parsed(r#"{"before":7e3}"#), Some(Some(7000)));
        assert_eq!(parsed(r#"{"before":18446744073709551615}"#), Some(Some(u64::MAX)));
        assert_eq!(parsed(r#"{"before":null}"#), Some(None));
        assert_eq!(parsed("{}"), Some(None));
        for refused in ["7.5", "-1", "-1.0", "18446744073709551616", "1e20", "\"7\"", "true"] {
            assert_eq!(parsed(&format!(r#"{{"before":{refused}}}"#)), None, "{refused}");
        }
    }
}
