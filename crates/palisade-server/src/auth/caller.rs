//! Who is asking, and the checks every `/auth/*` request passes before its
//! handler looks at what it asks: the address's ban and request rate, the
//! Origin, the body's type and size, and, for the endpoints that act on a
//! session, the access token. Each refusal is counted, scored and logged
//! through `Enforcement` like any other; the client gets one generic body.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use http::{HeaderMap, header};
use palisade_core::auth::Identity;
use palisade_core::handshake::{HandshakeRequest, session_cookie};
use palisade_core::login::device::DeviceVerdict;
use palisade_core::login::throttle::ThrottleCounts;
use palisade_core::origin::CredentialKind;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::seams::FailMode;
use serde::Deserialize;
use tracing::info;

use super::reply::AuthRejection;
use crate::enforce::{Enforcement, Knock};
use crate::headers::{all_str, header_str};
use crate::login::Login;
use crate::state::AppState;
use crate::threat::Asking;

/// The log message of a refused `/auth/*` request.
pub(super) const AUTH_REFUSED: &str = "auth request refused";

/// Who is asking.
pub(crate) struct Caller {
    pub(crate) knock: Knock,
    /// The client's address (a trusted proxy's `X-Forwarded-For`).
    pub(super) client: IpAddr,
    pub(super) user_agent: String,
    pub(super) origin: Option<String>,
}

impl Caller {
    /// Who asks to log in, once login is on and the address is neither
    /// banned nor over `abuse.request_rate`.
    pub(crate) fn at<'s>(state: &'s AppState, req: &Request) -> Result<(&'s Login, Caller), AuthRejection> {
        let login = state.login.as_ref().ok_or(AuthRejection::Refused(Kind::Internal, None))?;
        let (knock, client) = state.enforce.knock_of(req);
        let caller = Caller {
            knock,
            client,
            user_agent: header_str(req.headers(), header::USER_AGENT).unwrap_or("").to_owned(),
            origin: header_str(req.headers(), header::ORIGIN).map(str::to_owned),
        };
        let (guard, enforce, now) = (&state.guard, &state.enforce, state.clock.now());
        let verdict = state.threat.request(Asking { guard, enforce, knock, client, now });
        state
            .enforce
            .judge_knock(verdict, knock, None, AUTH_REFUSED)
            .map_err(|refusal| AuthRejection::Refused(refusal.kind, refusal.retry_after))?;
        Ok((login, caller))
    }

    /// [`Caller::at`], the shared state answers (cluster mode), and a
    /// browser's Origin is allowed: the checks every `/auth/*` request
    /// passes first.
    pub(super) fn at_door<'s>(state: &'s AppState, req: &Request) -> Result<(&'s Login, Caller), AuthRejection> {
        let (login, caller) = Self::at(state, req)?;
        // Logins, refreshes and logouts act on shared state: never decided
        // on this node's copy while Redis is out of reach, whatever
        // `store.fail_mode` lets the handshake do.
        FailMode::Closed.admit(state.bus.ready()).map_err(|refusal| {
            state.enforce.refuse_knock(&refusal, caller.knock, None, AUTH_REFUSED);
            AuthRejection::Refused(refusal.kind, refusal.retry_after)
        })?;
        check_origin(state, caller.origin.as_deref(), CredentialKind::Bearer).inspect_err(|_| {
            state.enforce.refuse_knock(
                &Refusal::new(Kind::Origin, "auth: origin not allowed"),
                caller.knock,
                None,
                AUTH_REFUSED,
            );
        })?;
        Ok((login, caller))
    }

    /// The caller's access token (a bearer header, or the session cookie
    /// from an allowed origin), verified, not revoked, on its device, and
    /// minted for a login session: its identity, its `sid`, and whether it
    /// came from the cookie.
    pub(super) fn authenticate(
        &self,
        state: &AppState,
        login: &Login,
        req: &Request,
    ) -> Result<(Identity, String, bool), AuthRejection> {
        let headers = req.headers();
        let authorization = all_str(headers, header::AUTHORIZATION);
        let cookie = session_cookie(&all_str(headers, header::COOKIE))
            .map_err(|_| self.refuse(&state.enforce, "auth: two session cookies"))?;
        let request = HandshakeRequest {
            origin: header_str(headers, header::ORIGIN),
            authorization: &authorization,
            cookie,
            ..HandshakeRequest::default()
        };
        let admitted = state.settings.gate.admit(&request, state.clock.now()).map_err(|r| {
            let kind = r.kind;
            state.enforce.refuse_knock(&r, self.knock, None, AUTH_REFUSED);
            AuthRejection::Refused(kind, None)
        })?;
        let identity = admitted.identity;
        if state.revocations.is_revoked(&identity) {
            return Err(self.refuse(&state.enforce, "auth: token revoked"));
        }
        if login.settings.device_binding.judge_request(identity.device.as_deref(), &self.user_agent, self.client)
            == DeviceVerdict::Refuse
        {
            return Err(self.refuse(&state.enforce, "auth: token used from another device"));
        }
        let sid = identity.session_id.clone().ok_or(AuthRejection::NoSession)?;
        Ok((identity, sid, admitted.via_cookie))
    }

    /// Refuses a login attempt while its name or address backs off or is
    /// locked (429 with `Retry-After`), before its password is looked at.
    pub(super) async fn throttled(
        &self,
        state: &AppState,
        throttle: &Arc<dyn ThrottleCounts>,
        username: &str,
    ) -> Result<(), AuthRejection> {
        let (throttle, ip, name, now) = (Arc::clone(throttle), self.knock.ip, username.to_owned(), state.clock.now());
        let blocked = match super::reply::blocking("login_throttle", move || throttle.check(ip, &name, now)).await? {
            Ok(()) => return Ok(()),
            Err(blocked) => blocked,
        };
        let reason = format!("login throttled by {:?} (locked: {})", blocked.by, blocked.locked);
        state.enforce.refuse_knock(&Refusal::new(Kind::RateExcess, reason), self.knock, None, AUTH_REFUSED);
        Err(AuthRejection::Refused(Kind::RateExcess, Some(blocked.retry_after)))
    }

    /// A refused credential: scored and logged as an authentication failure.
    pub(super) fn refuse(&self, enforce: &Enforcement, reason: &str) -> AuthRejection {
        self.count_failure(enforce, reason);
        AuthRejection::Refused(Kind::AuthFailure, None)
    }

    /// A refused refresh: scored as an authentication failure, one body.
    pub(super) fn reject_refresh(&self, enforce: &Enforcement, reason: &str) -> AuthRejection {
        self.count_failure(enforce, reason);
        AuthRejection::BadRefresh
    }

    fn count_failure(&self, enforce: &Enforcement, reason: &str) {
        enforce.refuse_knock(&Refusal::new(Kind::AuthFailure, reason.to_owned()), self.knock, None, AUTH_REFUSED);
    }
}

/// A browser's Origin against `server.allowed_origins`, for a credential
/// of `kind`.
pub(super) fn check_origin(state: &AppState, origin: Option<&str>, kind: CredentialKind) -> Result<(), AuthRejection> {
    state.settings.gate.origins().check(origin, kind).map_err(|_| AuthRejection::Refused(Kind::Origin, None))
}

pub(super) fn has_body(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() != b"0")
}

/// Reads a JSON body of at most `login.max_body_bytes`; anything else is
/// one generic 400, with the reason in the log.
pub(crate) async fn read_json<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    login: &Login,
    req: Request,
) -> Result<T, AuthRejection> {
    let json = header_str(req.headers(), header::CONTENT_TYPE)
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    let reject = |why: &str| {
        if state.enforce.admit_refusal_line() {
            info!(why, "auth request body refused");
        }
        AuthRejection::BadRequest
    };
    if !json {
        return Err(reject("content type is not application/json"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), login.max_body)
        .await
        .map_err(|_| reject("body larger than login.max_body_bytes, or unreadable"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        // Only the class and position: serde's message can quote a value,
        // and the value may be a password.
        reject(&format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
    })
}
