//! HTTP routes; a refusal becomes a response in `crate::rejection`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use palisade_core::refusal::{Kind, Refusal};

use crate::handshake::websocket;
use crate::rejection::{HttpRejection, json};
use crate::state::AppState;
use crate::ws::{echo, upgrade};

/// All routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#) }))
        // The same readiness as the admin listener's, for load balancers
        // that can reach only the public port.
        .route("/readyz", get(crate::admin::ready));
    if state.settings.config.server.conformance_echo {
        router = router.route("/conformance/echo", get(conformance_echo));
    }
    if state.settings.profile == crate::settings::Profile::Dev {
        router = router.merge(crate::demo::routes());
    }
    router
        .merge(crate::auth::routes(&state))
        .fallback(|| async { HttpRejection::NotFound })
        .method_not_allowed_fallback(|| async { HttpRejection::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), crate::edge::public))
        .with_state(state)
}

async fn conformance_echo(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let slot = state
        .reserve_slot()
        .ok_or_else(|| HttpRejection::Refused(Box::new(Refusal::new(Kind::AtCapacity, "limits.max_connections"))))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    Ok(upgrade::switch(&state, on_upgrade, accept, None, move |ws| echo::serve(ws, task_state, slot)))
}
