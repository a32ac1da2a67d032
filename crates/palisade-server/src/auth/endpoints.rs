//! The handlers. Each one: the guard's ban on the address, an Origin check
//! (a browser's request must come from an allowed origin; a cookie-borne
//! one must carry an Origin at all), the body, then core's decision and
//! the store's transaction off the runtime's workers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::header;
use palisade_core::Timestamp;
use palisade_core::audit::{self, Entry};
use palisade_core::auth::verify_password;
use palisade_core::handshake::cookie;
use palisade_core::login::device::{DeviceVerdict, fingerprint};
use palisade_core::login::refresh::{NewRefreshToken, RefreshVerdict, refresh_token_hash};
use palisade_core::login::throttle::ThrottleCounts;
use palisade_core::origin::CredentialKind;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::store::{EndReason, LoginSession, MAX_USER_AGENT, Refreshed, StoredRefresh, User};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::caller::{AUTH_REFUSED, Caller, check_origin, has_body, read_json};
use super::reply::{AuthRejection, blocking, ok};
use super::{HASH_QUEUE_WAIT, cookies};
use crate::headers::all_str;
use crate::login::Login;
use crate::state::AppState;
use crate::threat::Asking;

/// `POST /auth/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    cookie: bool,
}

/// `POST /auth/refresh` body; without one, the refresh cookie.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
}

pub(super) async fn login(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, AuthRejection> {
    let (login, caller) = Caller::at_door(&state, &req)?;
    let body: LoginBody = read_json(&state, login, req).await?;
    let user = check_password(&state, login, login.throttle(false), &caller, &body.username, body.password).await?;
    open_session(&state, login, &caller, user, body.cookie).await
}

/// A user's password, checked within the failed-login throttle (before
/// the hashing turn and again when it comes), at one cost for unknown
/// names and wrong passwords; a failure is counted, scored, audited and
/// answered with one body. `POST /auth/login` and the admin listener's
/// `POST /api/login` both log in through this, each with its own
/// `throttle`.
pub(crate) async fn check_password(
    state: &Arc<AppState>,
    login: &Login,
    throttle: &Arc<dyn ThrottleCounts>,
    caller: &Caller,
    username: &str,
    password: String,
) -> Result<User, AuthRejection> {
    caller.throttled(state, throttle, username).await?;
    let fingerprint = state.threat.fingerprint(&password);
    let Ok(Ok(turn)) = tokio::time::timeout(HASH_QUEUE_WAIT, Arc::clone(&login.hashing).acquire_owned()).await else {
        let refusal = Refusal::new(Kind::AtCapacity, "login: no turn at password hashing within 2 s");
        state.enforce.refuse_knock(&refusal, caller.knock, None, AUTH_REFUSED);
        return Err(AuthRejection::Refused(Kind::AtCapacity, None));
    };
    // Again, now that it is this attempt's turn: the failures of attempts
    // that queued beside it are counted by now, so a burst of concurrent
    // guesses cannot all slip past the check they passed together.
    caller.throttled(state, throttle, username).await?;
    let store = Arc::clone(&state.store);
    let decoy = login.decoy_hash.clone();
    let name = username.to_owned();
    let checked = blocking("auth_login", move || {
        let user = store.user(&name)?;
        // An unknown name is checked against the decoy, so it costs the
        // time a wrong password costs.
        let hash = user.as_ref().map_or(decoy.as_str(), |u| u.password_hash.as_str());
        let matches = verify_password(&password, hash);
        Ok((user.is_some(), user.filter(|_| matches)))
    })
    .await?;
    let now = state.clock.now();
    // The turn is held until a failure is counted, for the check above.
    let user = match checked {
        (_, Some(user)) => user,
        (known, None) => {
            let (counts, ip, name) = (Arc::clone(throttle), caller.knock.ip, username.to_owned());
            // Audited and scored even when the counts are out of reach
            // (cluster mode without Redis), which then answers 503.
            let counted = blocking("login_throttle", move || counts.failed(ip, &name, now)).await;
            // The name is logged only when it is a user's: a name that is
            // not may be a password typed into the wrong field.
            let user = known.then_some(username);
            let failure = counted.as_ref().ok();
            warn!(
                ip = %caller.knock.ip,
                user,
                known,
                user_failures = failure.map(|f| f.user_failures),
                user_addresses = failure.map(|f| f.user_addresses),
                ip_failures = failure.map(|f| f.ip_failures),
                locked = failure.is_some_and(|f| f.locked),
                "login failed"
            );
            let refusal = Refusal::new(Kind::LoginFailure, "login: unknown user or wrong password");
            state.enforce.count_refusal(&refusal);
            let detail = format!("{} (locked: {})", refusal.reason, failure.is_some_and(|f| f.locked));
            state.audit.record(
                Entry::new(now, audit::Kind::Refused(Kind::LoginFailure), &detail).ip(caller.knock.ip).user(user),
            );
            let escalation = state.guard.penalize(None, caller.knock.ip, None, refusal.kind, now);
            state.enforce.escalate(escalation, caller.knock.ip, None);
            let (guard, enforce, knock, client) = (&state.guard, &state.enforce, caller.knock, caller.client);
            let ask = Asking { guard, enforce, knock, client, now };
            state.threat.login_failed(ask, &state.alerts, username, fingerprint);
            counted?;
            return Err(AuthRejection::Refused(Kind::LoginFailure, None));
        }
    };
    drop(turn);
    let (counts, ip, name) = (Arc::clone(throttle), caller.knock.ip, username.to_owned());
    blocking("login_throttle", move || counts.succeeded(ip, &name)).await?;
    Ok(user)
}

/// Opens a session for `user` after a good password: within the session
/// cap, with its first refresh token, and answers with the token pair.
async fn open_session(
    state: &Arc<AppState>,
    login: &Login,
    caller: &Caller,
    user: User,
    cookie: bool,
) -> Result<Response, AuthRejection> {
    let now = state.clock.now();
    let refresh = NewRefreshToken::generate(&mut rand::rng());
    let session = LoginSession {
        id: palisade_core::random_id("sid_", &mut rand::rng()),
        user_id: user.id.clone(),
        created: now,
        last_active: now,
        expires: now.saturating_add(login.refresh_ttl),
        user_agent: caller.user_agent.chars().take(MAX_USER_AGENT).collect(),
        ip: caller.client.to_string(),
        device: fingerprint(&caller.user_agent, caller.client),
        cookie,
    };
    let store = Arc::clone(&state.store);
    let access_expires = now.saturating_add(login.access_ttl);
    let first = StoredRefresh { hash: refresh.hash.clone(), expires: session.expires, access_expires };
    let to_open = session.clone();
    let cap = login.settings.cap;
    let opened = blocking("auth_open_session", move || store.open_session(&to_open, &first, cap, now)).await?;
    let evicted = opened.map_err(|_| {
        warn!(user = %user.id, ip = %caller.knock.ip, "login refused: login.max_sessions_per_user reached");
        AuthRejection::SessionLimit
    })?;
    if !evicted.is_empty() {
        info!(user = %user.id, evicted = ?evicted, "sessions ended to stay within login.max_sessions_per_user");
        for sid in &evicted {
            let detail = "evicted: login.max_sessions_per_user reached by a new login";
            state.audit.record(
                Entry::new(now, audit::Kind::SessionEnded, detail)
                    .ip(caller.knock.ip)
                    .user(Some(&user.id))
                    .session(sid),
            );
        }
        state.revoker.reload().await;
    }
    info!(user = %user.id, session = %session.id, ip = %caller.knock.ip, cookie, "logged in");
    let access = mint(login, &session, &user, now)?;
    Ok(token_pair(login, &session, &user, &access, &refresh.token))
}

pub(super) async fn refresh(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, AuthRejection> {
    let (login, caller) = Caller::at_door(&state, &req)?;
    let from_cookie = cookie(&all_str(req.headers(), header::COOKIE), cookies::REFRESH_COOKIE)
        .map_err(|_| caller.refuse(&state.enforce, "refresh: two refresh cookies"))?
        .map(str::to_owned);
    let body: RefreshBody =
        if has_body(req.headers()) { read_json(&state, login, req).await? } else { RefreshBody::default() };
    let presented = match (body.refresh_token, from_cookie) {
        (Some(token), _) => token,
        (None, Some(token)) => {
            // The browser attached the cookie on its own: only a page of
            // an allowed origin may have asked it to.
            check_origin(&state, caller.origin.as_deref(), CredentialKind::Ambient).inspect_err(|_| {
                let refusal = Refusal::new(Kind::Origin, "refresh: cookie without an allowed Origin");
                state.enforce.refuse_knock(&refusal, caller.knock, None, AUTH_REFUSED);
            })?;
            token
        }
        (None, None) => return Err(AuthRejection::BadRequest),
    };
    let Some(hash) = refresh_token_hash(&presented) else {
        return Err(caller.reject_refresh(&state.enforce, "refresh: not a refresh token"));
    };
    let now = state.clock.now();
    let next = NewRefreshToken::generate(&mut rand::rng());
    let stored = StoredRefresh {
        hash: next.hash.clone(),
        expires: now.saturating_add(login.refresh_ttl),
        access_expires: now.saturating_add(login.access_ttl),
    };
    let presented_device = fingerprint(&caller.user_agent, caller.client);
    let binding = login.settings.device_binding;
    let store = Arc::clone(&state.store);
    let grace = login.reuse_grace;
    let device = presented_device.clone();
    let (outcome, user) = blocking("auth_refresh", move || {
        let ok = |s: &LoginSession| binding.judge(Some(&s.device), &device) != DeviceVerdict::Refuse;
        let outcome = store.refresh(&hash, &stored, grace, &ok, now)?;
        // Roles are read again on every refresh: a change takes effect here.
        let user = match &outcome {
            Refreshed::Rotated(session) => {
                let user = store.user(&session.user_id)?;
                if user.is_none() {
                    store.end_session(&session.id, EndReason::UserRemoved, now)?;
                }
                user
            }
            _ => None,
        };
        Ok((outcome, user))
    })
    .await?;
    match (outcome, user) {
        (Refreshed::Rotated(session), Some(user)) => {
            if binding.judge(Some(&session.device), &presented_device) == DeviceVerdict::PassMismatched {
                info!(user = %user.id, session = %session.id, ip = %caller.knock.ip, "refresh from another device (login.device_binding = log)");
            }
            let access = mint(login, &session, &user, now)?;
            Ok(token_pair(login, &session, &user, &access, &next.token))
        }
        (Refreshed::Rotated(session), None) => {
            state.revoker.reload().await;
            Err(caller.reject_refresh(
                &state.enforce,
                &format!("refresh: user of session {} removed; session ended", session.id),
            ))
        }
        (Refreshed::Reused(session), _) => {
            // Never budgeted: a stolen token is what an operator looks for.
            warn!(user = %session.user_id, session = %session.id, ip = %caller.knock.ip, "refresh token reused: session ended and revoked");
            state.audit.record(
                Entry::new(now, audit::Kind::RefreshReuse, "refresh token presented again: session ended and revoked")
                    .ip(caller.knock.ip)
                    .user(Some(&session.user_id))
                    .session(&session.id),
            );
            state.revoker.reload().await;
            Err(caller.reject_refresh(&state.enforce, "refresh: token reused"))
        }
        (Refreshed::WrongDevice(session), _) => {
            warn!(user = %session.user_id, session = %session.id, ip = %caller.knock.ip, "refresh refused: another device (login.device_binding = enforce)");
            Err(caller.reject_refresh(&state.enforce, "refresh: another device"))
        }
        (Refreshed::Refused(RefreshVerdict::RecentlyUsed), _) => {
            // Two tabs of one browser refreshing at once: refused, but an
            // honest client's race is no attack, so it is not scored.
            if state.enforce.admit_refusal_line() {
                info!(ip = %caller.knock.ip, "refresh refused: token used moments ago (login.refresh_reuse_grace)");
            }
            Err(AuthRejection::BadRefresh)
        }
        (Refreshed::Refused(verdict), _) => {
            Err(caller.reject_refresh(&state.enforce, &format!("refresh: {verdict:?}")))
        }
        (Refreshed::Unknown, _) => Err(caller.reject_refresh(&state.enforce, "refresh: unknown token")),
    }
}

pub(super) async fn logout(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, AuthRejection> {
    end_sessions(&state, req, false).await
}

pub(super) async fn logout_all(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, AuthRejection> {
    end_sessions(&state, req, true).await
}

/// Ends the caller's session, or with `all` every live session of theirs;
/// their sockets close with 4003 as the revocations reload.
async fn end_sessions(state: &Arc<AppState>, req: Request, all: bool) -> Result<Response, AuthRejection> {
    let (login, caller) = Caller::at_door(state, &req)?;
    let (identity, sid, via_cookie) = caller.authenticate(state, login, &req)?;
    drop(req);
    let store = Arc::clone(&state.store);
    let now = state.clock.now();
    let user = identity.user_id.clone();
    let ended = blocking("auth_logout", move || {
        if all {
            store.end_user_sessions(&user, EndReason::LogoutAll, now).map(|ended| ended.len())
        } else {
            store.end_session(&sid, EndReason::Logout, now).map(usize::from)
        }
    })
    .await?;
    state.revoker.reload().await;
    info!(user = %identity.user_id, ip = %caller.knock.ip, ended, all, "logged out");
    let detail = if all { format!("logout of all sessions: {ended} ended") } else { format!("logout: {ended} ended") };
    state.audit.record(
        Entry::new(now, audit::Kind::SessionEnded, &detail)
            .ip(caller.knock.ip)
            .user(Some(&identity.user_id))
            .session(identity.session_id.as_deref().unwrap_or_default()),
    );
    let mut response = ok(&json!({ "ended": ended }));
    if via_cookie {
        cookies::clear(&mut response, login.secure_cookies());
    }
    Ok(response)
}

pub(super) async fn sessions(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, AuthRejection> {
    let (login, caller) = Caller::at_door(&state, &req)?;
    let (identity, sid, _) = caller.authenticate(&state, login, &req)?;
    let store = Arc::clone(&state.store);
    let now = state.clock.now();
    let user = identity.user_id.clone();
    let live = blocking("auth_sessions", move || store.live_sessions(&user, now)).await?;
    let list: Vec<_> = live
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created_at": s.created.as_millis(),
                "last_active_at": s.last_active.as_millis(),
                "expires_at": s.expires.as_millis(),
                "user_agent": s.user_agent,
                "ip": s.ip,
                "cookie": s.cookie,
                "current": s.id == sid,
            })
        })
        .collect();
    Ok(ok(&json!({ "sessions": list })))
}

/// The answer to a login or refresh: the pair in the body, or for a
/// cookie session in cookies only.
fn token_pair(login: &Login, session: &LoginSession, user: &User, access: &str, refresh: &str) -> Response {
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": login.access_ttl.as_secs(),
        "refresh_expires_in": login.refresh_ttl.as_secs(),
        "session_id": session.id,
        "user": user.id,
        "roles": user.roles,
        "cookie": session.cookie,
    });
    if !session.cookie {
        body["access_token"] = json!(access);
        body["refresh_token"] = json!(refresh);
    }
    let mut response = ok(&body);
    if session.cookie {
        cookies::set(&mut response, (access, login.access_ttl), (refresh, login.refresh_ttl), login.secure_cookies());
    }
    response
}

/// An access token for `session`'s `user`, with the user's current roles.
fn mint(login: &Login, session: &LoginSession, user: &User, now: Timestamp) -> Result<String, AuthRejection> {
    login
        .mint(session, user.roles.clone(), now)
        .map_err(|e| AuthRejection::internal(format!("cannot sign a token: {e}")))
}
