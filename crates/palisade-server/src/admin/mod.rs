//! The admin listener (docs/ARCHITECTURE.md, "Admin listener and
//! metrics"): its own socket (`admin.listen`, never the public one) and a
//! small router over the same [`AppState`]. `/healthz` and `/readyz` need
//! no credential; everything else needs an admin credential (an API key,
//! an admin-role token, or a browser session from `POST /api/login`) whose
//! role allows the route: viewers read, operators also act. A failed
//! attempt is counted, scored, audited and logged like any other
//! authentication failure, so guessing ends in a ban.

pub(crate) mod api;
mod api_bans;
mod api_live;
mod browser;
mod shared;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use http::{StatusCode, header};
use palisade_core::Timestamp;
use palisade_core::admin::session::ADMIN_COOKIE;
use palisade_core::admin::{AdminRole, bearer};
use palisade_core::guard::Subject;
use palisade_core::handshake::cookie;
use palisade_core::login::device::DeviceVerdict;
use palisade_core::refusal::{Kind, Refusal};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::ADMIN_REQUEST_TIMEOUT as REQUEST_TIMEOUT;
use crate::enforce::Knock;
use crate::headers::{all_str, header_str};
use crate::listen::{Door, Limits, Listener};
use crate::rejection::{HttpRejection, json};
use crate::settings::Profile;
use crate::state::AppState;

/// The log message of a refused admin request.
const ADMIN_REFUSED: &str = "admin request refused";

/// Whether the credentialed routes are served: with an API key (operator
/// or viewer), or in the dev profile (admin-role tokens and logins only). A
/// production server without a key serves `/healthz` and `/readyz` only,
/// so an operator who never set one up exposes nothing but health.
pub(crate) fn credentialed(state: &AppState) -> bool {
    !state.settings.admin_keys.is_empty()
        || !state.settings.viewer_keys.is_empty()
        || state.settings.profile == Profile::Dev
}

/// The admin router.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#) }))
        .route("/readyz", get(ready));
    if credentialed(&state) {
        let metrics = Router::new()
            .route("/metrics", get(scrape))
            .route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_admin));
        router = router.merge(metrics).merge(api::routes(&state)).merge(ui::routes());
    }
    router
        .fallback(|| async { HttpRejection::NotFound })
        .method_not_allowed_fallback(|| async { HttpRejection::MethodNotAllowed })
        .layer(middleware::from_fn(crate::edge::admin))
        .with_state(state)
}

/// Says at start what the admin listener serves.
pub(crate) fn announce(state: &AppState, addr: SocketAddr) {
    let keys = state.settings.admin_keys.len();
    let viewer_keys = state.settings.viewer_keys.len();
    if credentialed(state) {
        let roles = &state.settings.admin_roles;
        info!(
            %addr,
            api_keys = keys,
            viewer_api_keys = viewer_keys,
            operator_role = %roles.operator,
            viewer_role = %roles.viewer,
            "admin listener: /healthz, /readyz, /metrics, /api/, /ui/"
        );
    } else {
        warn!(
            %addr,
            "admin listener: no admin.api_keys, admin.api_keys_file or admin.viewer_api_keys configured, so it \
             serves /healthz and /readyz only; set a key to reach /metrics and /api/"
        );
    }
}

/// Serves the admin listener until `stop` is cancelled (after the public
/// side has drained, so `/readyz` answers 503 while it does).
pub(crate) async fn serve(state: Arc<AppState>, listener: TcpListener, stop: CancellationToken) {
    let admin = &state.settings.config.admin;
    let limits = Limits {
        places: admin.max_connections,
        per_peer: Some(admin.max_connections_per_peer),
        probe_places: Some(admin.probe_places),
        first_byte: admin.first_byte_timeout,
        deadline: REQUEST_TIMEOUT,
    };
    let conns = TaskTracker::new();
    let listener = Listener {
        tcp: listener,
        limits,
        router: router(Arc::clone(&state)),
        tls: None,
        door: Arc::new(AdminDoor(Arc::clone(&state))),
        shutdown: stop.clone(),
        tasks: conns.clone(),
    };
    crate::listen::serve(listener, stop.cancelled()).await;
    conns.close();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, conns.wait()).await;
}

/// The admin listener's door: every socket may knock (a ban is checked
/// with the credential, per request), and an eviction is logged, not
/// scored: the listener is the operators', who must not ban themselves by
/// opening a few sockets too many.
struct AdminDoor(Arc<AppState>);

impl Door for AdminDoor {
    type Pass = ();
    const NAME: &'static str = "admin";

    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    fn knock(&self, _peer: SocketAddr) -> Option<()> {
        Some(())
    }

    fn evicted(&self, peer: SocketAddr, waited: Duration) {
        if self.0.enforce.admit_refusal_line() {
            warn!(%peer, waited_ms = waited.as_millis(), "admin socket evicted: admin.max_connections full");
        }
    }

    fn admit_line(&self) -> bool {
        self.0.enforce.admit_refusal_line()
    }
}

/// Lets a request through only with an admin credential: the one bearer
/// value of `Authorization`, or else the admin session cookie. What the
/// credential may do is checked per route ([`require_operator`]).
async fn require_admin(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Read off the request before awaiting: a request is not `Sync`.
    let (knock, client) = state.enforce.knock_of(&req);
    let headers = req.headers();
    let authorization = all_str(headers, header::AUTHORIZATION);
    let banned = banned(&state, knock);
    let checked = if authorization.is_empty() {
        match cookie(&all_str(headers, header::COOKIE), ADMIN_COOKIE) {
            Ok(Some(value)) => {
                let presented = browser::Presented::of(&req, value);
                browser::authorize(&state, knock, presented).await
            }
            Ok(None) => Err(Denied::new(Kind::AuthFailure, "admin: no bearer credential")),
            Err(_) => Err(Denied::new(Kind::AuthFailure, "admin: two admin session cookies")),
        }
    } else {
        let device = Device { user_agent: header_str(headers, header::USER_AGENT).unwrap_or("").to_owned(), client };
        let presented = bearer(&authorization).map(str::to_owned);
        authorize(&state, knock, presented.as_deref(), &device).await
    };
    match settle(&state, knock, banned, checked) {
        Ok(actor) => {
            let mut req = req;
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// Lets an action through only for an operator; runs after
/// [`require_admin`], which put the [`shared::Actor`] there.
async fn require_operator(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(actor) = req.extensions().get::<shared::Actor>() else {
        return HttpRejection::Refused(Box::new(Refusal::new(Kind::Internal, "admin: no actor"))).into_response();
    };
    if !actor.role.allows(AdminRole::Operator) {
        let user = actor.user().map(str::to_owned);
        let knock = Knock { peer: actor.peer, ip: actor.ip };
        return refuse(&state, knock, Kind::Forbidden, "admin: a viewer may not act", user.as_deref()).into_response();
    }
    next.run(req).await
}

/// An admin refusal: counted, scored, audited and logged like a
/// handshake's, never with the presented value.
fn refuse(state: &AppState, knock: Knock, kind: Kind, reason: &'static str, user: Option<&str>) -> HttpRejection {
    let refusal = Refusal::new(kind, reason);
    state.enforce.refuse_knock(&refusal, knock, user, ADMIN_REFUSED);
    HttpRejection::Refused(Box::new(refusal))
}

/// Why a credential was not accepted, not yet performed: the address's ban
/// may refuse the request instead ([`settle`]).
pub(super) enum Denied {
    /// Refused, as [`refuse`] records it.
    Refused { kind: Kind, reason: &'static str, user: Option<String> },
    /// The check itself failed (the store): a 500, nobody's fault.
    Failed(HttpRejection),
}

impl Denied {
    pub(super) fn new(kind: Kind, reason: &'static str) -> Self {
        Self::Refused { kind, reason, user: None }
    }

    pub(super) fn of_user(kind: Kind, reason: &'static str, user: &str) -> Self {
        Self::Refused { kind, reason, user: Some(user.to_owned()) }
    }
}

/// The answer to a credential check from an address that may be banned:
/// an operator's valid credential passes whatever the address's ban (a ban
/// on a proxy's or a shared address must not lock operators out of the
/// listener that lifts it); anything else from a banned address is refused
/// as banned, and the credential's own failure is not scored on top.
fn settle(
    state: &AppState,
    knock: Knock,
    banned: bool,
    checked: Result<shared::Actor, Denied>,
) -> Result<shared::Actor, HttpRejection> {
    match checked {
        Ok(actor) if !banned || actor.role.allows(AdminRole::Operator) => Ok(actor),
        Err(Denied::Failed(rejection)) => Err(rejection),
        Err(Denied::Refused { kind, reason, user }) if !banned => {
            Err(refuse(state, knock, kind, reason, user.as_deref()))
        }
        _ => Err(refuse(state, knock, Kind::Banned, "admin: address banned", None)),
    }
}

/// What a bearer token is compared with under `login.device_binding`.
struct Device {
    user_agent: String,
    client: IpAddr,
}

/// The bearer credential check: an API key (compared in constant time;
/// operator keys, then viewer keys) or a token the server accepts, not
/// revoked, used from its session's device, whose roles include
/// `admin.operator_role` or `admin.viewer_role` and, for a token of the
/// own issuer's user, whose user still exists with that role.
async fn authorize(
    state: &Arc<AppState>,
    knock: Knock,
    presented: Option<&str>,
    device: &Device,
) -> Result<shared::Actor, Denied> {
    let now = state.clock.now();
    let Some(presented) = presented else {
        return Err(Denied::new(Kind::AuthFailure, "admin: no bearer credential"));
    };
    let actor = |who: String, role| shared::Actor { who, ip: knock.ip, peer: knock.peer, role };
    if state.settings.admin_keys.check(presented) {
        return Ok(actor("api_key".to_owned(), AdminRole::Operator));
    }
    if state.settings.viewer_keys.check(presented) {
        return Ok(actor("viewer_api_key".to_owned(), AdminRole::Viewer));
    }
    // Not a key: perhaps a token. An external issuer's key set is fetched,
    // if due, first, as at the handshake.
    state.fetch_keys_for(presented).await;
    let identity = match state.settings.gate.verifier().verify(presented, now) {
        Ok(identity) => identity,
        // One reason for a wrong key and a bad token alike: the log says no
        // more about the guess than the client learns.
        Err(_) => return Err(Denied::new(Kind::AuthFailure, "admin: credential not accepted")),
    };
    if state.revocations.is_revoked(&identity) {
        return Err(Denied::new(Kind::AuthFailure, "admin: token revoked"));
    }
    // The same binding as on /auth/* and at the handshake: a token stolen
    // off its device is no operator's anywhere.
    match state.settings.device_binding.judge_request(identity.device.as_deref(), &device.user_agent, device.client) {
        DeviceVerdict::Pass => {}
        DeviceVerdict::PassMismatched => {
            info!(user = %identity.user_id, ip = %knock.ip, "admin token from another device (login.device_binding = log)");
        }
        DeviceVerdict::Refuse => {
            return Err(Denied::new(Kind::AuthFailure, "admin: token used from another device"));
        }
    }
    let Some(role) = state.settings.admin_roles.of_identity(&identity) else {
        let reason = "admin: token has neither admin.operator_role nor admin.viewer_role";
        return Err(Denied::of_user(Kind::Forbidden, reason, &identity.user_id));
    };
    // Rights follow the user, as for a browser session: a demotion or a
    // removal counts at the next request, not at the token's expiry.
    if identity.external_issuer.is_none() {
        let kept = match browser::stored_role(state, &identity.user_id).await? {
            // A token for a name that is no user (`palisade token`) has
            // only its own roles; one minted for a login session had one.
            None => identity.session_id.is_none(),
            Some(now) => now.is_some_and(|now| now.allows(role)),
        };
        if !kept {
            let reason = "admin: the token's user was removed or lost the role";
            return Err(Denied::of_user(Kind::AuthFailure, reason, &identity.user_id));
        }
    }
    Ok(actor(format!("user:{}", identity.user_id), role))
}

/// Whether the address has a ban in force (and `abuse.dry_run` is off).
fn banned(state: &AppState, knock: Knock) -> bool {
    let banned = state.guard.bans().active(&Subject::Ip(knock.ip), state.clock.now()).is_some();
    banned && !state.guard.settings().dry_run
}

async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    let bans_active = state.guard.bans().list(state.clock.now()).len();
    let at_scrape = crate::telemetry::AtScrape {
        open_connections: state.open_connections(),
        bans_active,
        history_bytes: state.hub.history_bytes(),
    };
    match state.metrics.render(at_scrape) {
        Some(text) => {
            let mut response = Response::new(axum::body::Body::from(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        None => json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"unavailable","message":"metrics are off"}"#),
    }
}

/// `GET /readyz`, on both listeners.
pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let readiness = readiness(&state).await;
    // Threat feeds are detail, never a failure: the last good lists stay
    // in force while a source is out of reach.
    let threat = state.threat.configured().then(|| state.threat.detail());
    if readiness.is_ready() && threat.is_none() {
        return json(StatusCode::OK, r#"{"status":"ready"}"#);
    }
    let mut body = if readiness.is_ready() {
        serde_json::json!({"status": "ready"})
    } else {
        serde_json::json!({"status": "unavailable", "failed": readiness.failed()})
    };
    if let Some(threat) = threat {
        body["threat"] = threat;
    }
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// What `/readyz` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The store answered a cheap query in time.
    pub(crate) store: bool,
    /// The audit writer runs, or the audit log is off.
    pub(crate) audit_writer: bool,
    /// The audit chain was not rewritten under the writer (which would
    /// have stopped signing checkpoints).
    pub(crate) audit_chain: bool,
    /// Shutdown has begun.
    pub(crate) shutting_down: bool,
    /// The node hears its rooms (cluster mode: its Redis subscription is up).
    pub(crate) bus: bool,
    /// Cluster mode: the node's clock is within `store.max_clock_skew` of
    /// Redis's.
    pub(crate) clock: bool,
}

impl Readiness {
    pub(crate) fn is_ready(self) -> bool {
        self.store && self.audit_writer && self.audit_chain && !self.shutting_down && self.bus && self.clock
    }

    /// The parts that failed, by name.
    pub(crate) fn failed(self) -> Vec<&'static str> {
        [
            (!self.store, "store"),
            (!self.audit_writer, "audit_writer"),
            (!self.audit_chain, "audit_chain"),
            (self.shutting_down, "shutting_down"),
            (!self.bus, "bus"),
            (!self.clock, "clock"),
        ]
        .into_iter()
        .filter_map(|(failed, name)| failed.then_some(name))
        .collect()
    }
}

/// Whether the server can do its work: the store answers, the audit writer
/// runs (when the log is on), and shutdown has not begun.
pub(crate) async fn readiness(state: &AppState) -> Readiness {
    let shutting_down = state.shutdown.is_cancelled();
    let audit_writer = !state.settings.config.audit.enabled || state.audit.is_alive();
    let store = state.store_probe.ready(&state.store).await;
    let audit_chain = !state.audit.is_broken();
    let clock = state.cluster_clock.as_ref().is_none_or(|c| c.within());
    Readiness { store, audit_writer, audit_chain, shutting_down, bus: state.bus.ready(), clock }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_failed() {
        let ready = Readiness {
            store: true,
            audit_writer: true,
            audit_chain: true,
            shutting_down: false,
            bus: true,
            clock: true,
        };
        assert!(ready.is_ready() && ready.failed().is_empty());
        let down = Readiness {
            store: false,
            audit_writer: false,
            audit_chain: false,
            shutting_down: true,
            bus: false,
            clock: false,
        };
        assert!(!down.is_ready());
        assert_eq!(down.failed(), ["store", "audit_writer", "audit_chain", "shutting_down", "bus", "clock"]);
        assert_eq!(Readiness { audit_chain: false, ..ready }.failed(), ["audit_chain"]);
        assert_eq!(Readiness { audit_writer: false, ..ready }.failed(), ["audit_writer"]);
    }
}
