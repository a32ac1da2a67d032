//! Browser sessions on the admin listener (docs/PROTOCOL.md §1.7, "Admin
//! login"): `POST /api/login` checks a user's password as `/auth/login`
//! does (the throttle's rules with this listener's own counts, the same
//! cost for unknown names) and, for a user whose
//! roles make an admin, sets the `palisade_admin` cookie: HttpOnly,
//! SameSite=Strict, short-lived, so a dashboard never holds a token a page
//! script could read. Every state-changing call on such a session must
//! echo its CSRF token in `X-CSRF-Token`, and every cookie-borne request
//! must come from the listener's own origin. The table of sessions is
//! core's [`AdminSessions`]; this module wires it to requests.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::{Method, header};
use palisade_core::admin::session::{ADMIN_COOKIE, AdminSession, CSRF_HEADER};
use palisade_core::admin::{AdminRole, same_origin};
use palisade_core::audit::{self, Entry};
use palisade_core::auth::Identity;
use palisade_core::handshake::cookie;
use palisade_core::refusal::{Kind, Refusal};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::shared::{Actor, ApiError, admin_action};
use super::{Denied, HttpRejection, refuse};
use crate::auth::{AuthRejection, Caller, check_password, cookies, ok, read_json};
use crate::enforce::Knock;
use crate::headers::{all_str, header_str};
use crate::state::AppState;

/// What a cookie-borne request presents, read off it before any await.
pub(super) struct Presented {
    cookie: String,
    csrf: Option<String>,
    same_origin: bool,
    /// Whether the method changes state (anything but GET and HEAD), so the
    /// CSRF token is required.
    writes: bool,
}

impl Presented {
    pub(super) fn of(req: &Request, cookie: &str) -> Self {
        let headers = req.headers();
        Self {
            cookie: cookie.to_owned(),
            csrf: header_str(headers, http::HeaderName::from_static(CSRF_HEADER)).map(str::to_owned),
            same_origin: same_origin(header_str(headers, header::ORIGIN), header_str(headers, header::HOST)),
            writes: !matches!(*req.method(), Method::GET | Method::HEAD),
        }
    }
}

/// The cookie credential check: the listener's own origin, a live session
/// that no revocation covers, whose user still exists with a role at least
/// the session's, and the CSRF token when the method writes. A session
/// that fails any of these but the CSRF token is ended. The address's ban
/// is the caller's ([`super::settle`]).
pub(super) async fn authorize(state: &Arc<AppState>, knock: Knock, presented: Presented) -> Result<Actor, Denied> {
    if !presented.same_origin {
        return Err(Denied::new(Kind::Origin, "admin: session cookie from another origin"));
    }
    let now = state.clock.now();
    let Some(session) = state.admin_sessions().find(&presented.cookie, now).cloned() else {
        return Err(Denied::new(Kind::AuthFailure, "admin: session cookie unknown or ended"));
    };
    let user = session.identity.user_id.clone();
    let end = |reason: &'static str| {
        state.admin_sessions().close(&presented.cookie);
        Denied::of_user(Kind::AuthFailure, reason, &user)
    };
    if state.revocations.is_revoked(&session.identity) {
        return Err(end("admin: session revoked"));
    }
    // Rights follow the user: a removal or a role change ends the session
    // at its next request, not at its expiry.
    let role_now = stored_role(state, &user).await?.flatten();
    if !role_now.is_some_and(|role| role.allows(session.role)) {
        return Err(end("admin: the session's user was removed or lost the role"));
    }
    if presented.writes && !session.csrf_matches(presented.csrf.as_deref()) {
        return Err(Denied::of_user(Kind::Csrf, "admin: CSRF token missing or wrong", &user));
    }
    Ok(Actor { who: format!("user:{user}"), ip: knock.ip, peer: knock.peer, role: session.role })
}

/// The admin role `user` has in the store now: `None` when there is no
/// such user, `Some(None)` when the user is no admin.
pub(super) async fn stored_role(state: &Arc<AppState>, user: &str) -> Result<Option<Option<AdminRole>>, Denied> {
    let id = user.to_owned();
    let looked_up = crate::gateway::call("admin_user", &state.store, move |store| store.user(&id)).await;
    let stored = looked_up.map_err(|why| {
        tracing::error!(error = %why, "admin: cannot read the credential's user");
        Denied::Failed(HttpRejection::Refused(Box::new(Refusal::new(Kind::Internal, "admin: store"))))
    })?;
    Ok(stored.map(|u| state.settings.admin_roles.of(&u.roles)))
}

/// `POST /api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/login {username, password}`: a browser session for a user
/// whose roles make an admin.
pub(super) async fn login(State(state): State<Arc<AppState>>, req: Request) -> Response {
    answer(login_inner(&state, req).await)
}

async fn login_inner(state: &Arc<AppState>, req: Request) -> Result<Response, AuthRejection> {
    if state.login.is_none() {
        return Ok(ApiError::NotFound("not_found", "login is off").into_response());
    }
    let (login, caller) = Caller::at(state, &req)?;
    let origin = same_origin(header_str(req.headers(), header::ORIGIN), header_str(req.headers(), header::HOST));
    if !origin {
        refuse(state, caller.knock, Kind::Origin, "admin login: from another origin", None);
        return Err(AuthRejection::Refused(Kind::Origin, None));
    }
    let body: LoginBody = read_json(state, login, req).await?;
    let user = check_password(state, login, login.throttle(true), &caller, &body.username, body.password).await?;
    let Some(role) = state.settings.admin_roles.of(&user.roles) else {
        // The password was right, so the caller owns the account: saying
        // it is not an admin's tells them nothing they did not know.
        let reason = "admin login: the user has neither admin.operator_role nor admin.viewer_role";
        refuse(state, caller.knock, Kind::Forbidden, reason, Some(&user.id));
        return Err(AuthRejection::Refused(Kind::Forbidden, None));
    };
    let now = state.clock.now();
    let identity = Identity {
        user_id: user.id.clone(),
        name: user.id.clone(),
        roles: user.roles.clone(),
        rooms: None,
        expires_at: now,
        token_id: None,
        issued_at: None,
        session_id: None,
        device: None,
        external_issuer: None,
    };
    let opened = state.admin_sessions().open(identity, role, now, &mut rand::rng());
    let session = &opened.session;
    let sid = session.identity.session_id.as_deref().unwrap_or("");
    info!(user = %user.id, role = role.name(), session = sid, ip = %caller.knock.ip, "admin logged in");
    let detail = format!("api: admin login as {}", role.name());
    state.audit.record(
        Entry::new(now, audit::Kind::AdminAction, &detail).ip(caller.knock.ip).user(Some(&user.id)).session(sid),
    );
    let mut response = ok(&described(session));
    let lifetime = state.settings.config.admin.session_lifetime;
    cookies::append(&mut response, ADMIN_COOKIE, &opened.cookie, "/", lifetime, login.secure_cookies());
    Ok(response)
}

/// `GET /api/session`: who the credential is and what it may do; for a
/// browser session also its CSRF token, so a reloaded page can act again.
pub(super) async fn session(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Response {
    let mut body = json!({"actor": actor.who, "role": actor.role.name()});
    if let Some(value) = session_cookie(&req)
        && let Some(session) = state.admin_sessions().find(&value, state.clock.now())
    {
        body = described(session);
    }
    answer(Ok(ok(&body)))
}

/// `POST /api/logout`: ends the browser session and deletes its cookie.
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    req: Request,
) -> Response {
    let Some(value) = session_cookie(&req) else {
        return ApiError::BadRequest("logout without an admin session cookie".into()).into_response();
    };
    state.admin_sessions().close(&value);
    admin_action(&state, &actor, "admin logout", actor.user());
    let mut response = ok(&json!({"status": "logged_out"}));
    let secure = state.login.as_ref().is_some_and(crate::login::Login::secure_cookies);
    cookies::append(&mut response, ADMIN_COOKIE, "", "/", std::time::Duration::ZERO, secure);
    response
}

fn described(session: &AdminSession) -> serde_json::Value {
    json!({
        "actor": format!("user:{}", session.identity.user_id),
        "role": session.role.name(),
        "session": session.identity.session_id,
        "csrf": session.csrf,
        "expires_at": session.expires.as_millis(),
    })
}

fn session_cookie(req: &Request) -> Option<String> {
    cookie(&all_str(req.headers(), header::COOKIE), ADMIN_COOKIE).ok().flatten().map(str::to_owned)
}

fn answer(result: Result<Response, AuthRejection>) -> Response {
    result.unwrap_or_else(axum::response::IntoResponse::into_response)
}
