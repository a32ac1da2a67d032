//! The own issuer's HTTP endpoints (docs/PROTOCOL.md §11): `/auth/login`,
//! `/auth/refresh`, `/auth/logout`, `/auth/logout-all` and
//! `/auth/sessions`. The decisions are core's (`core::login`); this module
//! reads requests, runs password hashing and the store off the runtime's
//! workers, and writes responses and cookies.

mod caller;
pub(crate) mod cookies;
mod endpoints;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub(crate) use caller::{Caller, read_json};
pub(crate) use endpoints::check_password;
pub(crate) use reply::{AuthRejection, ok};

/// How long a login waits for a turn at password hashing before 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The `/auth/*` routes; empty when login is off, so they answer 404.
pub(crate) fn routes(state: &AppState) -> Router<Arc<AppState>> {
    if state.login.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/auth/login", post(endpoints::login))
        .route("/auth/refresh", post(endpoints::refresh))
        .route("/auth/logout", post(endpoints::logout))
        .route("/auth/logout-all", post(endpoints::logout_all))
        .route("/auth/sessions", get(endpoints::sessions))
}
