//! `GET /api/threat` on the admin listener (viewers read it too): every
//! feed with what its loads left, and the allow list
//! (docs/OPERATIONS.md, "Threat feeds").

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use crate::state::AppState;

pub(crate) async fn threat(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.threat.detail())
}
