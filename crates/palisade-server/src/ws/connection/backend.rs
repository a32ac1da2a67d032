//! Gateway mode's part of the connection task (docs/GATEWAY.md,
//! "Lifecycle"), the pump: dials the backend (`crate::upstream`), then the
//! native connection loop (`super`) runs with the backend in place of the
//! rooms, and calls in here for each client message, each backend message,
//! and the frames Palisade itself would send. Everything the native loop bounds
//! (timers, the guard's scores, revocation and ban closes, write
//! timeouts) bounds a gateway connection the same way.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palisade_core::Timestamp;
use palisade_core::passthrough::identity::IdentityHeaders;
use palisade_core::passthrough::{Outbound, outbound, relay_close};
use palisade_core::session::{RawDecision, RawGate, Session};
use palisade_protocol::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use super::{Conn, context, text_message};
use crate::config::OnRefusal;
use crate::exit::Exit;
use crate::state::{AppState, Slot};
use crate::upstream::{Credentials, Upstream, UpstreamWs};
use crate::ws::transport::{Ws, finish};

/// A read from the backend.
type Inbound = Option<Result<Message, WsError>>;

/// Dials the backend for an admitted client, then serves the pair; a
/// backend that cannot be reached closes the client with 1011 and the
/// retry hint.
pub(crate) async fn serve(
    ws: Ws,
    state: Arc<AppState>,
    session: Box<Session>,
    peer: SocketAddr,
    slot: Slot,
    credentials: Credentials,
) {
    let Some(upstream) = state.upstream.as_deref() else { return };
    let dialed = {
        let identity = IdentityHeaders::sign(&upstream.settings.secret, session.identity(), session.id());
        upstream.dial(&identity, &credentials).await
    };
    // Not kept for the connection's life: the task's future would hold
    // them (and their heap) until the end.
    drop(credentials);
    match dialed {
        Ok(backend) => crate::ws::serve_connection(ws, state, session, peer, slot, Some(Box::new(backend))).await,
        Err(e) => {
            // The URL is not logged: its query may carry a credential.
            warn!(session = session.id(), peer = %peer, error = %e, "upstream unreachable: closing with 1011");
            let exit = Exit::Relay(CloseCode::Internal.code(), upstream.retry_hint);
            // Upgraded, so opened, and closed at once.
            state.metrics.opened.increment(1);
            state.metrics.closed(exit);
            finish(ws, exit, state.conn_limits.close_timeout).await;
        }
    }
}

/// The backend's next frame; never, in native mode.
pub(crate) async fn next(backend: &mut Option<Box<UpstreamWs>>) -> Inbound {
    match backend {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// Closes the backend side once the client's side ended as `exit`: 1001
/// when the server shuts down, else 1000 (the client left, or Palisade
/// closed it for its own reasons, which are not the backend's to know).
/// A backend that closed first only gets its close answered.
pub(crate) async fn hang_up(mut backend: Box<UpstreamWs>, exit: Exit, timeout: Duration) {
    let code = match exit {
        Exit::Relay(..) => None,
        Exit::Close(CloseCode::GoingAway) => Some(1001),
        _ => Some(1000),
    };
    let close = async {
        if let Some(code) = code {
            let frame = CloseFrame { code: WireCloseCode::from(code), reason: Utf8Bytes::from_static("") };
            if backend.send(Message::Close(Some(frame))).await.is_err() {
                return;
            }
        }
        while let Some(Ok(_)) = backend.next().await {}
    };
    let _ = tokio::time::timeout(timeout, close).await;
}

impl Conn<'_> {
    fn upstream(&self) -> Option<&Upstream> {
        self.backend.as_ref().and(self.state.upstream.as_deref())
    }

    /// Whether the gateway forwards the client's binary frames.
    pub(crate) fn gateway_binary(&self) -> bool {
        self.upstream().is_some_and(|u| u.settings.allow_binary)
    }

    /// One of Palisade's own frames (`kind` is its `type`) as this
    /// connection gets it: as is natively; in gateway mode only with
    /// `gateway.welcome` (and an `error` always), framed for the backend's
    /// format.
    pub(crate) fn own(&self, kind: &str, frame: String) -> Option<Message> {
        match self.upstream() {
            None => Some(text_message(frame)),
            Some(u) if u.settings.welcome || kind == "error" => {
                Some(text_message(u.settings.format.palisade_frame(kind, &frame)))
            }
            Some(_) => None,
        }
    }

    /// One client text frame: through the pipeline, then to the backend,
    /// or refused as `gateway.on_refusal` says.
    pub(crate) async fn forward_client(&mut self, ws: &mut Ws, text: Utf8Bytes, now: Timestamp) -> Result<(), Exit> {
        let state = self.state;
        let Some(upstream) = state.upstream.as_deref() else { return Err(Exit::Close(CloseCode::Internal)) };
        state.metrics.messages_in.increment(1);
        let started = std::time::Instant::now();
        let settings = &upstream.settings;
        let gate = RawGate { format: &settings.format, nonces: &upstream.nonces, json: settings.json };
        let policy = state.settings.policy.load();
        let decision = self.session.on_raw(context(state, &policy), gate, text.as_str(), now);
        state.metrics.pipeline_since(started);
        match decision {
            // Unchanged: the very bytes the client sent, without a copy.
            RawDecision::Forward(Cow::Borrowed(_)) => self.write_upstream(Message::Text(text.clone())).await?,
            RawDecision::Forward(Cow::Owned(copy)) => self.write_upstream(Message::Text(copy.into())).await?,
            RawDecision::Reject(refusal, escalation) => {
                // The refusal's log line first, then what it led to.
                let frame = self.refuse(&refusal);
                if let Some(code) = self.escalate(escalation) {
                    return Err(Exit::Close(code));
                }
                if settings.on_refusal == OnRefusal::Close {
                    return Err(Exit::Close(CloseCode::Policy));
                }
                if let Some(msg) = self.own("error", frame) {
                    self.send(ws, msg).await?;
                }
            }
        }
        match self.unenforced() {
            Some(code) => Err(Exit::Close(code)),
            None => Ok(()),
        }
    }

    /// Writes to the backend, bounded by the write timeout like a write to
    /// the client: a backend that does not drain its socket ends the pair
    /// with 1011 (it is not the client's fault).
    pub(crate) async fn write_upstream(&mut self, msg: Message) -> Result<(), Exit> {
        let timeout = self.limits.write_timeout;
        let Some(backend) = self.backend.as_mut() else { return Err(Exit::Close(CloseCode::Internal)) };
        tokio::select! {
            biased;
            r = backend.send(msg) => r.map_err(|e| {
                info!(conn = self.rooms.id(), error = %e, "upstream write failed: closing with 1011");
                Exit::Close(CloseCode::Internal)
            }),
            code = self.control.closed() => Err(Exit::Close(code)),
            () = self.state.shutdown.cancelled() => Err(Exit::Close(CloseCode::GoingAway)),
            () = tokio::time::sleep(timeout) => {
                info!(conn = self.rooms.id(), "upstream did not drain within the write timeout: closing with 1011");
                Err(Exit::Close(CloseCode::Internal))
            }
        }
    }

    /// One read from the backend: checked and passed to the client, or
    /// its close passed on.
    pub(crate) async fn on_backend(&mut self, ws: &mut Ws, msg: Inbound) -> Result<(), Exit> {
        let Some(upstream) = self.state.upstream.as_deref() else { return Err(Exit::Close(CloseCode::Internal)) };
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                info!(conn = self.rooms.id(), error = %e, "upstream failed: closing with 1011");
                return Err(Exit::Relay(CloseCode::Internal.code(), "upstream failed"));
            }
            None => {
                info!(conn = self.rooms.id(), "upstream hung up: closing with 1011");
                return Err(Exit::Relay(CloseCode::Internal.code(), "upstream failed"));
            }
        };
        let settings = &upstream.settings;
        match msg {
            Message::Text(text) => {
                let policy = self.state.settings.policy.load();
                match outbound(&settings.format, &policy, settings.outbound, text.as_str()) {
                    Outbound::Send(Cow::Borrowed(_)) => self.send(ws, Message::Text(text.clone())).await,
                    Outbound::Send(Cow::Owned(copy)) => self.send(ws, text_message(copy)).await,
                    Outbound::Drop(why) => {
                        // The backend's message is not logged, only why.
                        warn!(conn = self.rooms.id(), reason = %why, "upstream message dropped");
                        Ok(())
                    }
                }
            }
            Message::Binary(data) if settings.allow_binary => self.send(ws, Message::Binary(data)).await,
            Message::Binary(_) => {
                debug!(conn = self.rooms.id(), "upstream binary frame dropped (gateway.allow_binary = false)");
                Ok(())
            }
            Message::Close(frame) => {
                let code = relay_close(frame.map(|f| u16::from(f.code)));
                info!(conn = self.rooms.id(), code, "upstream closed: passing the close on");
                Err(Exit::Relay(code, "upstream closed"))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }
}
