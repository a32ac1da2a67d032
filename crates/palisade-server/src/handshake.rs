//! `GET /ws`: the checks before the 101, in the order of
//! docs/ARCHITECTURE.md ("Handshake"): the guard's ban, reconnect rate and
//! cap of the address, the server's capacity, Origin and token
//! (`core::handshake`), then the guard's ban and cap of the user. Every
//! refusal is counted, scored and logged the same way, and a refusal that
//! escalates to a ban closes the banned subject's live connections too.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::header;
use palisade_core::addr::IpKey;
use palisade_core::guard::Standing;
use palisade_core::guard::Verdict;
use palisade_core::handshake::HandshakeRequest;
use palisade_core::log::Clipped;
use palisade_core::refusal::{Kind, Refusal};
use palisade_core::session::Session;
use palisade_protocol::SUBPROTOCOL;
use tracing::warn;

use crate::http::{HttpRejection, all_str, header_str, joined, peer_of};
use crate::state::AppState;
use crate::ws::{serve_connection, upgrade};

/// Who is knocking: the socket's peer and the address the guard counts.
#[derive(Debug, Clone, Copy)]
struct Knock {
    peer: SocketAddr,
    ip: IpKey,
}

pub(crate) async fn websocket(State(state): State<Arc<AppState>>, mut req: Request) -> Result<Response, HttpRejection> {
    let accept = upgrade::accept_key(req.method(), req.headers())?;
    let peer = peer_of(&req);
    let forwarded = all_str(req.headers(), header::HeaderName::from_static("x-forwarded-for"));
    let knock = Knock { peer, ip: IpKey::of(state.settings.trusted_proxies.client(peer.ip(), &forwarded)) };
    let now = state.clock.now();
    let (verdict, ticket) = state.guard.connect(knock.ip, now);
    state.judge(verdict, knock, None)?;
    let Some(ticket) = ticket else {
        // `judge` passes only verdicts that come with a ticket.
        return Err(state.refuse(Refusal::new(Kind::Internal, "connected without a ticket"), knock, None));
    };
    let Some(slot) = state.reserve_slot() else {
        state.guard.release(ticket);
        return Err(state.refuse(Refusal::new(Kind::AtCapacity, "limits.max_connections reached"), knock, None));
    };
    // From here the slot holds the ticket: every way out releases both.
    let mut slot = slot.with_ticket(ticket);
    let headers = req.headers();
    let protocols = joined(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let authorization = all_str(headers, header::AUTHORIZATION);
    let query_token = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    let handshake = HandshakeRequest {
        origin: header_str(headers, header::ORIGIN),
        authorization: &authorization,
        protocols: protocols.as_deref(),
        query_token,
    };
    let admitted = state.settings.gate.admit(&handshake, now).map_err(|r| state.refuse(r, knock, None))?;
    let user = admitted.identity.user_id.as_str();
    let verdict = slot.admit_user(user, now);
    state.judge(verdict, knock, Some(user))?;
    let session = Box::new(Session::new(admitted.identity, state.settings.session, Standing::new(knock.ip), now));
    let protocol = admitted.select_subprotocol.then_some(SUBPROTOCOL);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = Arc::clone(&state);
    Ok(upgrade::switch(&state, on_upgrade, accept, protocol, move |ws| {
        serve_connection(ws, task_state, session, peer, slot)
    }))
}

impl AppState {
    /// A guard verdict at the handshake: a refusal, or under `dry_run` a
    /// report and a pass.
    fn judge(&self, verdict: Verdict, knock: Knock, user: Option<&str>) -> Result<(), HttpRejection> {
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Refuse(refusal) => Err(self.refuse(refusal, knock, user)),
            Verdict::WouldRefuse(refusal) => {
                let escalation = self.guard.penalize(None, knock.ip, user, refusal.kind, self.clock.now());
                self.report_unenforced(&refusal, knock.ip, user);
                self.escalate(escalation, knock.ip, user);
                Ok(())
            }
        }
    }

    /// Counts, scores and logs a refused handshake and performs what it
    /// escalated to; the client sees only the status and generic body of
    /// its kind.
    fn refuse(&self, refusal: Refusal, knock: Knock, user: Option<&str>) -> HttpRejection {
        self.count_refusal(&refusal);
        let escalation = self.guard.penalize(None, knock.ip, user, refusal.kind, self.clock.now());
        if self.admit_refusal_line() {
            warn!(
                peer = %knock.peer,
                ip = %knock.ip,
                kind = %refusal.kind,
                reason = %Clipped::new(&refusal.reason, self.settings.config.log.max_client_text),
                "upgrade refused"
            );
        }
        self.escalate(escalation, knock.ip, user);
        HttpRejection::Refused(Box::new(refusal))
    }
}
