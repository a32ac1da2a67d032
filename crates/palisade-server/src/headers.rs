//! Reading request headers as text: a leaf every handler shares.

use http::{HeaderMap, header};

/// A header as text; a value that is not visible ASCII reads as empty, which
/// no check accepts.
pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Every value of a header, in order, read as [`header_str`] reads one.
pub(crate) fn all_str(headers: &HeaderMap, name: header::HeaderName) -> Vec<&str> {
    headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("")).collect()
}

/// Every value of a repeatable header, comma-joined.
pub(crate) fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values = all_str(headers, name);
    (!values.is_empty()).then(|| values.join(","))
}
