//! The admin API (docs/PROTOCOL.md §1.7): JSON under `/api/` on the admin
//! listener, behind `require_admin`. Reads list what the server holds
//! (connections, bans, the audit log, counters) a page at a time, filtered
//! here; actions do what the CLI does, through the same store traits and
//! audit helpers, and take effect in this process at once. Every action
//! writes an `admin_action` audit record and an info line naming it;
//! neither ever holds a credential or a message body.
//!
//! Bans and revocations are in `admin::api_bans`; the OpenAPI document
//! describing all of it is `openapi.json` beside this file.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router, middleware};
use http::{StatusCode, header};

use palisade_core::addr::IpKey;
use palisade_core::audit;
use palisade_core::guard::Subject;
use palisade_core::refusal::Kind;
use palisade_core::seams::{Claim, Outgoing};
use palisade_core::seams::{Command, Target};
use palisade_protocol::CloseCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::shared::{Actor, ApiError, admin_action, blocking, body, page_size, query, reply};
use super::{api_bans, api_live, browser};
use crate::config::StoreBackend;
use crate::hub::{ConnFilter, ConnId};
use crate::state::AppState;
use palisade_core::node::parse_conn_id;

/// The identity events published through the API carry as `from`.
pub(crate) const BACKEND: &str = "backend";
/// The OpenAPI document of these routes.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// The `/api/` routes, each behind `require_admin` and, for actions,
/// `require_operator`; `POST /api/login` is the one open to anyone.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let acts = Router::new()
        .route("/api/connections/{id}", delete(close_connection))
        .route("/api/disconnect", post(disconnect))
        .route("/api/revoke", post(api_bans::revoke))
        .route("/api/bans", post(api_bans::add).delete(api_bans::lift))
        .route("/api/reload", post(reload))
        .route("/api/publish", post(publish))
        .route_layer(middleware::from_fn_with_state(Arc::clone(state), super::require_operator));
    let admins = Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/session", get(browser::session))
        .route("/api/logout", post(browser::logout))
        .route("/api/connections", get(connections))
        .route("/api/bans", get(api_bans::list))
        .route("/api/audit", get(audit_log))
        .route("/api/stats", get(stats))
        .route("/api/alerts", get(api_live::alerts))
        .route("/api/threat", get(api_live::threat))
        .route("/api/rooms", get(api_live::rooms))
        .route("/api/leaders", get(api_live::leaders))
        .merge(acts)
        .route_layer(middleware::from_fn_with_state(Arc::clone(state), super::require_admin));
    Router::new().route("/api/login", post(browser::login)).merge(admins)
}

async fn openapi() -> Response {
    let mut response = Response::new(axum::body::Body::from(OPENAPI));
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnQuery {
    user: Option<String>,
    ip: Option<String>,
    room: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The connection number a list's `cursor` names: a connection id of this
/// node, as `next_cursor` gives; another node's is 404, anything else 400.
fn cursor(state: &AppState, cursor: &str) -> Result<ConnId, ApiError> {
    match parse_conn_id(cursor) {
        Some((node, n)) if node == state.settings.node => Ok(n),
        Some(_) => Err(ApiError::NotFound("not_found", "cursor of another node")),
        None => Err(ApiError::BadRequest("cursor is not a connection id".into())),
    }
}

/// `GET /api/connections`
async fn connections(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    q: Result<Query<ConnQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        let q = query(q)?;
        let ip = match q.ip.as_deref() {
            Some(ip) => Some(ip.parse::<IpKey>().map_err(|_| ApiError::BadRequest("ip does not parse".into()))?),
            None => None,
        };
        let limit = page_size(&state, q.limit)?;
        let cursor = q.cursor.as_deref().map(|c| cursor(&state, c)).transpose()?;
        let filter = ConnFilter { user: q.user, ip, room: q.room };
        let (found, more) = state.hub.list(&filter, cursor, limit);
        let node = &state.settings.node;
        let next = more.then(|| found.last().map(|c| node.conn_id(c.id))).flatten();
        let items: Vec<Value> = found
            .iter()
            .map(|c| {
                json!({
                    "id": node.conn_id(c.id),
                    "node": node.as_str(),
                    "user": &*c.user,
                    "ip": actor.shows(&c.ip.to_string()),
                    "rooms": c.rooms.iter().map(|r| &**r).collect::<Vec<_>>(),
                    "connected_at": c.connected_at.as_millis(),
                })
            })
            .collect();
        Ok(reply(StatusCode::OK, &json!({"items": items, "next_cursor": next})))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /api/connections/{id}`: closes it with 4003.
async fn close_connection(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(format!("path: {}", e.body_text())))?;
    let Some((node, _)) = parse_conn_id(&id) else {
        return Err(ApiError::BadRequest("the path is not a connection id (<node>-<n>)".into()));
    };
    if state.channel.send(Target::Conn(&id), Command::Close(CloseCode::Revoked)) == 0 {
        // In cluster mode another node's connection is that node's to
        // close: the command went to it, and whether it still exists is
        // known there.
        let elsewhere = state.settings.config.store.backend == StoreBackend::Redis && node != state.settings.node;
        if !elsewhere {
            return Err(ApiError::NotFound("not_found", "no such connection"));
        }
        admin_action(&state, &actor, &format!("asked node {node} to close connection {id} with 4003"), None);
        return Ok(reply(StatusCode::ACCEPTED, &json!({"forwarded_to": node.to_string()})));
    }
    admin_action(&state, &actor, &format!("closed connection {id} with 4003"), None);
    Ok(reply(StatusCode::OK, &json!({"closed": 1})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user: Option<String>,
    ip: Option<String>,
}

/// `POST /api/disconnect {user} | {ip}`: closes every match with 4003.
async fn disconnect(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Result<Response, ApiError> {
    let subject = match body::<DisconnectBody>(&state, req).await? {
        DisconnectBody { user: Some(user), ip: None } => {
            palisade_core::auth::check_sub(&user).map_err(|_| ApiError::BadRequest("user is not a valid id".into()))?;
            Subject::User(user.into())
        }
        DisconnectBody { user: None, ip: Some(ip) } => {
            Subject::Ip(ip.parse().map_err(|_| ApiError::BadRequest("ip does not parse".into()))?)
        }
        _ => return Err(ApiError::BadRequest("disconnect needs exactly one of user and ip".into())),
    };
    let closed = state.channel.send(Target::Subject(&subject), Command::Close(CloseCode::Revoked));
    let user = match &subject {
        Subject::User(user) => Some(&**user),
        Subject::Ip(_) => None,
    };
    admin_action(&state, &actor, &format!("disconnected {subject}: {closed} connection(s) closed with 4003"), user);
    Ok(reply(StatusCode::OK, &json!({"closed": closed})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<u64>,
    kind: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// `GET /api/audit`: records at or after `since` (ms), of `kind`, from
/// `cursor` (a `seq`) on, oldest first.
async fn audit_log(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let kind = match q.kind.as_deref() {
        Some(name) => Some(audit::Kind::from_name(name).ok_or_else(|| ApiError::BadRequest("unknown kind".into()))?),
        None => None,
    };
    let limit = page_size(&state, q.limit)?;
    let since = palisade_core::Timestamp::from_millis(q.since.unwrap_or(0));
    let from = q.cursor.unwrap_or(1);
    let store = Arc::clone(&state.store);
    let mut records = blocking("audit_read", move || store.since(since, kind, from, limit.saturating_add(1))).await?;
    let next = (records.len() > limit).then(|| records[limit].seq.to_string());
    records.truncate(limit);
    let items: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "ts": r.entry.ts.as_millis(),
                "kind": r.entry.kind.name(),
                "severity": r.entry.severity.name(),
                "ip": r.entry.ip.as_deref().map(|ip| actor.shows(ip)),
                "user": r.entry.user,
                "session": r.entry.session,
                "detail": actor.shows_in(&r.entry.detail),
                "hash": hex(&r.hash),
            })
        })
        .collect();
    Ok(reply(StatusCode::OK, &json!({"items": items, "next_cursor": next})))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `GET /api/stats`: the counters `abuse::Stats` exposes, and the open
/// connections.
async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let stats = crate::abuse::Stats(Arc::clone(&state));
    let by_kind = |count: &dyn Fn(Kind) -> u64| -> serde_json::Map<String, Value> {
        Kind::ALL.iter().map(|k| (k.name().to_owned(), Value::from(count(*k)))).collect()
    };
    let (ips, users) = stats.tracked();
    reply(
        StatusCode::OK,
        &json!({
            "connections_open": state.open_connections(),
            "refused": by_kind(&|k| stats.refused(k)),
            "unenforced": by_kind(&|k| stats.unenforced(k)),
            "bans_issued": stats.bans(),
            "bans_active": state.guard.bans().list(state.clock.now()).len(),
            "disconnects": stats.disconnects(),
            "audit_written": stats.audit_written(),
            "audit_dropped": stats.audit_dropped(),
            "audit_failed": stats.audit_failed(),
            "tracked_ips": ips,
            "tracked_users": users,
        }),
    )
}

/// `POST /api/reload`: re-reads the policy, `[threat]` and `[geo]`, as
/// SIGHUP does.
async fn reload(State(state): State<Arc<AppState>>, Extension(actor): Extension<Actor>) -> Result<Response, ApiError> {
    admin_action(&state, &actor, "policy reload requested", None);
    let reloader = crate::reload::Reloader::new(Arc::clone(&state));
    let reloaded = tokio::task::spawn_blocking(move || reloader.reload(&crate::config::ProcessEnv))
        .await
        .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?;
    match reloaded {
        Ok(()) => Ok(reply(StatusCode::OK, &json!({"status": "reloaded"}))),
        // `reload` logged and audited the key at fault.
        Err(_) => Err(ApiError::Unprocessable("reload_refused", "the policy in force stays; see the server log")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    room: String,
    event: String,
    data: Box<serde_json::value::RawValue>,
}

/// `POST /api/publish {room, event, data}`: the event's declaration, schema
/// and sanitizers as for a client `send` (decided in core), then a
/// broadcast from [`BACKEND`].
async fn publish(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Result<Response, ApiError> {
    let PublishBody { room, event, data } = body(&state, req).await?;
    let policy = state.settings.policy.load();
    let data = policy.shape_backend_event(&room, &event, &data).map_err(Box::new)?;
    let now = state.clock.now();
    // A backend has no rate or nonce to check: the commit step only gives
    // the event its seq, keeps and publishes it.
    let claim = Claim {
        user: "",
        restricted: false,
        room: &room,
        event: &event,
        rate: None,
        nonce: None,
        history: policy.history(&room),
    };
    let outgoing = Outgoing { from_id: BACKEND, from_name: BACKEND, data: &data, ts: now };
    let seq = state.commit.commit(claim, outgoing, now).await.map_err(Box::new)?.seq;
    admin_action(&state, &actor, &format!("published {event} in {room} (seq {seq})"), None);
    Ok(reply(StatusCode::OK, &json!({"seq": seq})))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(method, path)` of every `.route(…)` in [`routes`], read from this
    /// file's source: the router cannot list its routes.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("api.rs");
        let start = source.find("pub(crate) fn routes(").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        let mut found = BTreeSet::new();
        for line in source[start..end].lines().filter(|l| l.contains(".route(\"")) {
            let path = line.split('"').nth(1).unwrap();
            let handlers = line.split_once("\",").unwrap().1;
            for method in ["get", "post", "put", "patch", "delete"] {
                if handlers.contains(&format!(" {method}(")) || handlers.contains(&format!(".{method}(")) {
                    found.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        found
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["401", "403"] {
                    assert!(op["responses"].get(status).is_some(), "{method} {path} documents {status}");
                }
                found.insert((method.clone(), path.clone()));
            }
        }
        found
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_every_documented_operation_is_routed() {
        let routed = routed();
        assert!(routed.len() >= 12, "the source scan found the routes: {routed:?}");
        assert_eq!(routed, documented());
    }

    #[test]
    fn hashes_print_as_lowercase_hex() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
