//! The security dashboard (docs/OPERATIONS.md, "Dashboard"): plain ES
//! modules and CSS under `crates/palisade-server/ui/`, embedded in the
//! binary, served at `/ui/` on the admin listener with no credential (they
//! hold none; every datum comes from `/api/` behind the session cookie).
//! There is no build step, so what is in the binary is the files on disk.
//!
//! The page's policy allows its own origin only: no inline script or
//! style, no third-party host, no framing. The admin edge keeps a route's
//! own policy instead of the JSON one (`edge::harden`).

use axum::Router;
use axum::extract::Path;
use axum::response::{Redirect, Response};
use axum::routing::get;
use http::HeaderValue;

use crate::assets::{self, Asset};

/// The dashboard's Content-Security-Policy.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                              connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every asset: its name under `/ui/`, its media type, its bytes.
const ASSETS: &[Asset] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../ui/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../ui/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../ui/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../ui/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../../ui/dom.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_str!("../../ui/overview.js")),
    ("connections.js", "text/javascript; charset=utf-8", include_str!("../../ui/connections.js")),
    ("rooms.js", "text/javascript; charset=utf-8", include_str!("../../ui/rooms.js")),
    ("events.js", "text/javascript; charset=utf-8", include_str!("../../ui/events.js")),
    ("leaders.js", "text/javascript; charset=utf-8", include_str!("../../ui/leaders.js")),
    ("bans.js", "text/javascript; charset=utf-8", include_str!("../../ui/bans.js")),
    ("alerts.js", "text/javascript; charset=utf-8", include_str!("../../ui/alerts.js")),
    ("policy.js", "text/javascript; charset=utf-8", include_str!("../../ui/policy.js")),
];

/// `/ui`, `/ui/` and `/ui/{file}`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
}

fn asset(name: &str) -> Response {
    assets::serve(ASSETS, name, HeaderValue::from_static(CSP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_ui_folder_is_served_and_every_module_it_imports_exists() {
        assets::assert_complete(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui"), ASSETS, &[]);
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_other_origin() {
        assert!(!CSP.contains("unsafe"));
        assert!(!CSP.contains("http") && !CSP.contains('*'));
        assert!(CSP.contains("default-src 'self'") && CSP.contains("frame-ancestors 'none'"));
    }
}
