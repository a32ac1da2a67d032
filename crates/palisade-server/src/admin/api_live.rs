//! The admin API's reads of live state the dashboard's panels show
//! (docs/PROTOCOL.md §1.7): operator alerts, rooms with their member
//! counts and sequence numbers, and the anomaly-score leaders. All from memory: the hub's and
//! the guard's read-only scans, the alerts' recent list. A viewer reads
//! addresses as networks. Also the threat feeds' state (`/api/threat`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use palisade_core::guard::Leaders;
use serde::Deserialize;
use serde_json::{Value, json};

use super::shared::{Actor, ApiError, page_size, query, reply};
use crate::state::AppState;

/// Most leaders of each kind one call lists.
const MAX_LEADERS: usize = 100;
/// Leaders of each kind without `limit`.
const DEFAULT_LEADERS: usize = 10;

/// `GET /api/alerts`: the last `alerts.keep` alerts, newest first, with
/// the webhook queue's state.
pub(super) async fn alerts(State(state): State<Arc<AppState>>, Extension(actor): Extension<Actor>) -> Response {
    let items: Vec<Value> = state
        .alerts
        .recent()
        .into_iter()
        .map(|a| {
            json!({"id": a.id, "at_ms": a.at_ms, "kind": a.kind, "severity": a.severity,
                   "summary": actor.shows_in(&a.summary), "node": a.node})
        })
        .collect();
    reply(
        StatusCode::OK,
        &json!({
            "items": items,
            "webhook": !state.settings.config.alerts.url.is_empty(),
            "queued": state.alerts.queued(),
            "dropped": state.alerts.dropped(),
        }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoomsQuery {
    prefix: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/rooms`: rooms with members on this node, in name order, each
/// with the last `seq` its members got here: the dashboard derives a
/// room's messages per second from two reads, so the server keeps no
/// rate of its own.
pub(super) async fn rooms(
    State(state): State<Arc<AppState>>,
    q: Result<Query<RoomsQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        let q = query(q)?;
        let limit = page_size(&state, q.limit)?;
        let (found, more) = state.hub.rooms(q.prefix.as_deref().unwrap_or(""), q.cursor.as_deref(), limit);
        let next = more.then(|| found.last().map(|r| r.name.to_string())).flatten();
        let items: Vec<Value> =
            found.iter().map(|r| json!({"name": &*r.name, "members": r.members, "seq": r.seq})).collect();
        Ok(reply(StatusCode::OK, &json!({"items": items, "next_cursor": next})))
    };
    run().unwrap_or_else(|e| e.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LeadersQuery {
    limit: Option<usize>,
}

/// `GET /api/leaders`: the highest anomaly scores now, by address and by
/// user, with the thresholds they are measured against.
pub(super) async fn leaders(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    q: Result<Query<LeadersQuery>, QueryRejection>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        let n = match query(q)?.limit {
            None => DEFAULT_LEADERS,
            Some(0) => return Err(ApiError::BadRequest("limit 0".into())),
            Some(n) => n.min(MAX_LEADERS),
        };
        let Leaders { ips, users } = state.guard.leaders(n, state.clock.now());
        let round = |score: f64| (score * 100.0).round() / 100.0;
        let s = state.guard.settings();
        Ok(reply(
            StatusCode::OK,
            &json!({
                "ips": ips.iter().map(|(ip, score)| json!({"ip": actor.shows(&ip.to_string()), "score": round(*score)})).collect::<Vec<_>>(),
                "users": users.iter().map(|(user, score)| json!({"user": user, "score": round(*score)})).collect::<Vec<_>>(),
                "restrict_at": s.restrict_at,
                "disconnect_at": s.disconnect_at,
                "ban_at": s.ban_at,
            }),
        ))
    };
    run().unwrap_or_else(|e| e.into_response())
}

/// `GET /api/threat` (viewers read it too): every feed with what its loads
/// left, and the allow list (docs/OPERATIONS.md, "Threat feeds").
pub(super) async fn threat(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    axum::Json(state.threat.detail())
}
