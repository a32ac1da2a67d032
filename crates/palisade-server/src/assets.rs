//! Files embedded in the binary and served as they are: the dashboard
//! (`admin::ui`) and the dev demo (`demo`). Each answer carries its page's
//! own Content-Security-Policy, which the edge keeps (`edge::harden`).

use axum::response::{IntoResponse as _, Response};
use http::{HeaderValue, header};

use crate::rejection::HttpRejection;

/// One embedded file: its name under the page's path, its media type, its
/// bytes.
pub(crate) type Asset = (&'static str, &'static str, &'static str);

/// `name` out of `assets` under `csp`, or 404.
pub(crate) fn serve(assets: &[Asset], name: &str, csp: HeaderValue) -> Response {
    let Some((_, media_type, body)) = assets.iter().find(|(n, _, _)| *n == name) else {
        return HttpRejection::NotFound.into_response();
    };
    let mut response = Response::new(axum::body::Body::from(*body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    response
}

/// For the tests of each page: every file of `dir` is served, and every
/// module a served file imports by a relative path is served too.
#[cfg(test)]
pub(crate) fn assert_complete(dir: &std::path::Path, assets: &[Asset], extra: &[&str]) {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .chain(extra.iter().map(|n| (*n).to_owned()))
        .collect();
    on_disk.sort();
    let mut served: Vec<String> = assets.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    served.sort();
    assert_eq!(on_disk, served, "the assets are the files of {}", dir.display());
    for (name, _, body) in assets {
        let base = name.rsplit_once('/').map_or("", |(dir, _)| dir);
        for imported in body.split("from \"./").skip(1) {
            let file = imported.split('"').next().unwrap();
            let path = if base.is_empty() { file.to_owned() } else { format!("{base}/{file}") };
            assert!(assets.iter().any(|(n, _, _)| *n == path), "{name} imports {file}, which is not served");
        }
    }
}
