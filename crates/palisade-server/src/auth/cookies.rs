//! The browser session's cookies (docs/PROTOCOL.md §11.4): the access
//! token in `palisade_session` (path `/`, read by the WebSocket handshake)
//! and the refresh token in `palisade_refresh` (path `/auth`, sent only to
//! these endpoints). Both HttpOnly, so page scripts never see a token, and
//! SameSite=Strict, so no other site's page makes the browser send them.

use std::time::Duration;

use axum::response::Response;
use http::{HeaderValue, header};
use palisade_core::handshake::SESSION_COOKIE;

/// The refresh token's cookie.
pub(crate) const REFRESH_COOKIE: &str = "palisade_refresh";

/// Adds `Set-Cookie` for both tokens.
pub(crate) fn set(response: &mut Response, access: (&str, Duration), refresh: (&str, Duration), secure: bool) {
    append(response, SESSION_COOKIE, access.0, "/", access.1, secure);
    append(response, REFRESH_COOKIE, refresh.0, "/auth", refresh.1, secure);
}

/// Adds `Set-Cookie` headers that delete both cookies.
pub(crate) fn clear(response: &mut Response, secure: bool) {
    append(response, SESSION_COOKIE, "", "/", Duration::ZERO, secure);
    append(response, REFRESH_COOKIE, "", "/auth", Duration::ZERO, secure);
}

/// Adds one `Set-Cookie`: HttpOnly, SameSite=Strict, and `Secure` when
/// `secure`; `max_age` zero deletes the cookie.
pub(crate) fn append(response: &mut Response, name: &str, value: &str, path: &str, max_age: Duration, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}", max_age.as_secs());
    // Tokens are base64url and JWT text: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
