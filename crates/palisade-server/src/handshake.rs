//! `GET /ws`: the checks before the 101, in the order of
//! docs/ARCHITECTURE.md ("Handshake"): the guard's ban, reconnect rate and
//! cap of the address, the shared state (cluster mode's `store.fail_mode`),
//! the server's capacity, Origin and token
//! (`core::handshake`), then the guard's ban and cap of the user. Every
//! refusal is counted, scored and logged the same way, and a refusal that
//! escalates to a ban closes the banned subject's live connections too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::header;
use palisade_core::guard::Standing;
use palisade_core::handshake::{HandshakeRequest, session_cookie};
use palisade_core::login::device::DeviceVerdict;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::session::Session;
use palisade_protocol::SUBPROTOCOL;
use tracing::info;

use crate::headers::{all_str, header_str, joined};
use crate::rejection::HttpRejection;
use crate::state::AppState;
use crate::threat::Asking;
use crate::upstream::Credentials;
use crate::ws::{serve_connection, upgrade};

pub(crate) async fn websocket(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let (knock, client) = state.enforce.knock_of(&req);
    let peer = knock.peer;
    let now = state.clock.now();
    let (verdict, ticket, locale) =
        state.threat.connect(Asking { guard: &state.guard, enforce: &state.enforce, knock, client, now });
    state.enforce.judge(verdict, knock, None)?;
    let Some(ticket) = ticket else {
        // `judge` passes only verdicts that come with a ticket.
        return Err(state.enforce.refuse(Refusal::new(Kind::Internal, "connected without a ticket"), knock, None));
    };
    // Cluster mode without Redis (`store.fail_mode`); the ban above was
    // judged first, on the node's own copy.
    if let Err(refusal) = state.settings.config.store.fail_mode.admit(state.bus.ready()) {
        state.guard.release(ticket);
        return Err(state.enforce.refuse(refusal, knock, None));
    }
    let Some(slot) = state.reserve_slot() else {
        state.guard.release(ticket);
        return Err(state.enforce.refuse(
            Refusal::new(Kind::AtCapacity, "limits.max_connections reached"),
            knock,
            None,
        ));
    };
    // From here the slot holds the ticket: every way out releases both.
    let mut slot = slot.with_ticket(ticket);
    let headers = req.headers();
    let protocols = joined(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let authorization = all_str(headers, header::AUTHORIZATION);
    let query_token = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    let cookies = all_str(headers, header::COOKIE);
    let cookie = session_cookie(&cookies).map_err(|e| {
        state.enforce.refuse(Refusal::new(Kind::AuthFailure, format!("auth: cookie: {e}")), knock, None)
    })?;
    let handshake = HandshakeRequest {
        origin: header_str(headers, header::ORIGIN),
        authorization: &authorization,
        protocols: protocols.as_deref(),
        query_token,
        cookie,
    };
    // An external issuer's key set is fetched, if due, before the token is
    // verified (docs/ARCHITECTURE.md, "External issuers"). Without a key
    // set to fetch, the token is not looked for twice.
    if state.settings.gate.verifier().issuers().has_jwks()
        && let Some(token) = state.settings.gate.presented_token(&handshake)
    {
        state.fetch_keys_for(token).await;
    }
    let admitted = state.settings.gate.admit(&handshake, now).map_err(|r| state.enforce.refuse(r, knock, None))?;
    // A revoked token is one more authentication failure: the same 401.
    if state.revocations.is_revoked(&admitted.identity) {
        return Err(state.enforce.refuse(Refusal::new(Kind::AuthFailure, "auth: token revoked"), knock, None));
    }
    let user_agent = header_str(headers, header::USER_AGENT).unwrap_or("");
    match state.settings.device_binding.judge_request(admitted.identity.device.as_deref(), user_agent, client) {
        DeviceVerdict::Pass => {}
        DeviceVerdict::PassMismatched => {
            info!(user = %admitted.identity.user_id, ip = %knock.ip, "handshake from another device (login.device_binding = log)");
        }
        DeviceVerdict::Refuse => {
            let refusal = Refusal::new(Kind::AuthFailure, "auth: token used from another device");
            return Err(state.enforce.refuse(refusal, knock, None));
        }
    }
    let user = admitted.identity.user_id.as_str();
    let verdict = slot.admit_user(user, now);
    state.enforce.judge(verdict, knock, Some(user))?;
    let mut session =
        Session::new(admitted.identity, state.settings.session, Standing::new(knock.ip), now, &mut rand::rng())
            .with_locale(locale);
    if admitted.via_cookie {
        session = session.with_csrf_on_every_send();
    }
    let session = Box::new(session);
    let protocol = admitted.select_subprotocol.then_some(SUBPROTOCOL);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    // Gateway mode: `/ws` proxies to the backend (docs/GATEWAY.md).
    if state.upstream.is_some() {
        let headers = req.headers();
        let credentials = Credentials {
            cookie: headers.get(header::COOKIE).cloned(),
            authorization: headers.get(header::AUTHORIZATION).cloned(),
        };
        return Ok(upgrade::switch(&state, on_upgrade, accept, protocol, move |ws| {
            crate::ws::serve_gateway(ws, task_state, session, peer, slot, credentials)
        }));
    }
    Ok(upgrade::switch(&state, on_upgrade, accept, protocol, move |ws| {
        serve_connection(ws, task_state, session, peer, slot, None)
    }))
}
