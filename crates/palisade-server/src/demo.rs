//! The demo application (docs/OPERATIONS.md, "Demo"): served at `/demo/`
//! on the public listener in the dev profile only. Plain ES modules and CSS
//! under `crates/palisade-server/demo/`, plus the JavaScript client's
//! committed build (`clients/js/dist`, which its own test keeps equal to
//! what `src/` compiles to) at `/demo/palisade/`, all embedded in the
//! binary: no build step, no copy to go stale.
//!
//! The pages hold no credential (the login sets an HttpOnly cookie) and
//! load nothing from elsewhere: the policy allows this origin's files and
//! its WebSocket, no inline code.

use axum::Router;
use axum::extract::Path;
use axum::response::{Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, header};

use crate::assets::{self, Asset};

/// The demo's own files.
const ASSETS: &[Asset] = &[
    ("index.html", HTML, include_str!("../demo/index.html")),
    // The dashboard's style sheet, and the demo's own rules after it.
    ("style.css", CSS, include_str!("../ui/style.css")),
    ("demo.css", CSS, include_str!("../demo/demo.css")),
    ("app.js", JS, include_str!("../demo/app.js")),
    ("attacks.js", JS, include_str!("../demo/attacks.js")),
    ("raw.js", JS, include_str!("../demo/raw.js")),
    // The dashboard's DOM helpers: the same rules for putting text in a page.
    ("dom.js", JS, include_str!("../ui/dom.js")),
    ("foreign.html", HTML, include_str!("../demo/foreign.html")),
    ("foreign.js", JS, include_str!("../demo/foreign.js")),
    ("palisade/index.js", JS, include_str!("../../../clients/js/dist/index.js")),
    ("palisade/client.js", JS, include_str!("../../../clients/js/dist/client.js")),
    ("palisade/errors.js", JS, include_str!("../../../clients/js/dist/errors.js")),
    ("palisade/backoff.js", JS, include_str!("../../../clients/js/dist/backoff.js")),
    ("palisade/sealed.js", JS, include_str!("../../../clients/js/dist/sealed.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The policy without the WebSocket's origin, which [`csp`] adds.
const CSP_BASE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                        form-action 'self'; frame-ancestors 'self'; connect-src 'self'";

/// `/demo`, `/demo/`, `/demo/{file}` and `/demo/palisade/{file}`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(|headers: HeaderMap| async move { asset(&headers, "index.html") }))
        .route("/demo/{file}", get(|headers: HeaderMap, Path(file): Path<String>| async move { asset(&headers, &file) }))
        .route(
            "/demo/palisade/{file}",
            get(|headers: HeaderMap, Path(file): Path<String>| async move {
                asset(&headers, &format!("palisade/{file}"))
            }),
        )
}

fn asset(headers: &HeaderMap, name: &str) -> Response {
    assets::serve(ASSETS, name, csp(headers.get(header::HOST).and_then(|h| h.to_str().ok())))
}

/// The policy for a page asked for as `host`: `connect-src 'self'` covers
/// `ws:`/`wss:` to the same host only in browsers that follow CSP level 3
/// there, so the socket's origin is named. A host that is not plainly a
/// name or an address with a port (anything that could end the directive)
/// gets `'self'` alone.
fn csp(host: Option<&str>) -> HeaderValue {
    let plain = |h: &str| {
        !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    match host.filter(|h| plain(h)) {
        Some(host) => HeaderValue::from_str(&format!("{CSP_BASE} ws://{host} wss://{host}"))
            .unwrap_or(HeaderValue::from_static(CSP_BASE)),
        None => HeaderValue::from_static(CSP_BASE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_demo_folder_is_served_with_the_client_and_every_import_exists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
        let client: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).filter(|n| n.starts_with("palisade/")).collect();
        assets::assert_complete(&dir, ASSETS, &[client.as_slice(), &["dom.js", "style.css"]].concat());
        // The client's build, module by module: a module added to it must
        // be served too, or the page's imports break.
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/dist");
        let mut modules = 0;
        for entry in std::fs::read_dir(dist).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") {
                assert!(client.contains(&format!("palisade/{name}").as_str()), "clients/js/dist/{name} is not served");
                modules += 1;
            }
        }
        assert_eq!(modules, client.len(), "every served module is in clients/js/dist");
    }

    #[test]
    fn the_policy_names_the_socket_of_the_host_asked_and_nothing_else() {
        let value = csp(Some("127.0.0.1:8080"));
        let text = value.to_str().unwrap();
        assert!(text.starts_with("default-src 'self'") && text.ends_with("ws://127.0.0.1:8080 wss://127.0.0.1:8080"));
        assert!(!text.contains("unsafe") && !text.contains('*'));
        for hostile in ["evil.example; script-src *", "a b", "", "x'y", "h/ost"] {
            assert_eq!(csp(Some(hostile)).to_str().unwrap(), CSP_BASE, "{hostile:?}");
        }
        assert_eq!(csp(None).to_str().unwrap(), CSP_BASE);
    }
}
