//! One authenticated connection: a single task that reads client frames,
//! runs them through the core session, writes replies, forwards room events
//! from its bounded queue, pings, and enforces the token's lifetime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palisade_core::session::{Context, Decision, Refusal, Session, TimerAction};
use palisade_protocol::{CloseCode, ErrorFrame, EventFrame, Identity, ServerFrame, UserInfo, Welcome};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use super::control::Control;
use super::hub::{ConnId, Member};
use super::transport::{Exit, Ws, exit_for_error, finish};
use crate::state::{AppState, Slot, now};

/// Most queued events written before one flush.
const WRITE_BATCH: usize = 64;

struct Conn<'s> {
    state: &'s AppState,
    id: ConnId,
    member: Member,
    control: Arc<Control>,
    session: Session,
    peer: SocketAddr,
}

/// Runs a connection to its end. `_slot` keeps the connection counted.
pub(crate) async fn serve(mut ws: Ws, state: Arc<AppState>, session: Session, peer: SocketAddr, _slot: Slot) {
    let (tx, mut rx) = mpsc::channel(state.settings.config.limits.outbound_queue);
    let control = Arc::new(Control::default());
    let member = Member { tx, control: Arc::clone(&control) };
    let mut conn = Conn { state: &state, id: state.hub.conn_id(), member, control, session, peer };
    info!(
        conn = conn.id,
        session = conn.session.id(),
        user = %conn.session.identity().user_id,
        peer = %peer,
        "connection opened"
    );
    let exit = conn.drive(&mut ws, &mut rx).await;
    for room in conn.session.rooms() {
        state.hub.leave(room, conn.id);
    }
    info!(conn = conn.id, session = conn.session.id(), reason = %exit.describe(), "connection closed");
    drop(rx);
    // Boxed: closing happens once, and its state should not enlarge the
    // future an idle connection keeps alive.
    Box::pin(finish(ws, exit, state.settings.config.limits.close_timeout)).await;
}

impl Conn<'_> {
    async fn drive(&mut self, ws: &mut Ws, rx: &mut mpsc::Receiver<Utf8Bytes>) -> Exit {
        let limits = &self.state.settings.config.limits;
        let silence_limit = self.state.settings.silence_limit();
        if let Err(exit) = self.write(ws.send(Message::Text(self.welcome().into()))).await {
            return exit;
        }
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + limits.heartbeat_interval, limits.heartbeat_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let session_timer = tokio::time::sleep_until(deadline(&self.session));
        tokio::pin!(session_timer);
        // Re-armed only when it fires, not on every frame: a frame just moves
        // `last_heard`, and the timer then sleeps again until the new due time.
        let liveness = tokio::time::sleep_until(last_heard + silence_limit);
        tokio::pin!(liveness);
        let shutdown = self.state.shutdown.clone();
        let control = Arc::clone(&self.control);

        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Exit::Close(CloseCode::GoingAway),
                code = control.requested() => return Exit::Close(code),
                () = &mut session_timer => {
                    let now = now();
                    while let Some(action) = self.session.on_timer(now) {
                        let frame = match action {
                            TimerAction::Close(code) => return Exit::Close(code),
                            TimerAction::Expiring(at) => ServerFrame::Expiring { expires_at: at.as_millis() }.to_json(),
                            TimerAction::CsrfRotated => ServerFrame::Csrf { csrf: self.session.csrf() }.to_json(),
                        };
                        if let Err(exit) = self.write(ws.send(Message::Text(frame.into()))).await {
                            return exit;
                        }
                    }
                    session_timer.as_mut().reset(deadline(&self.session));
                }
                () = &mut liveness => {
                    let due = last_heard + silence_limit;
                    if Instant::now() >= due {
                        debug!(conn = self.id, "heartbeat timeout");
                        return Exit::Gone;
                    }
                    liveness.as_mut().reset(due);
                }
                _ = ping.tick() => {
                    if let Err(exit) = self.write(ws.send(Message::Ping(Bytes::new()))).await {
                        return exit;
                    }
                }
                Some(first) = rx.recv() => {
                    let burst = async {
                        ws.feed(Message::Text(first)).await?;
                        for _ in 1..WRITE_BATCH {
                            let Ok(next) = rx.try_recv() else { break };
                            ws.feed(Message::Text(next)).await?;
                        }
                        ws.flush().await
                    };
                    if let Err(exit) = self.write(burst).await {
                        return exit;
                    }
                }
                msg = ws.next() => {
                    last_heard = Instant::now();
                    let reply = match msg {
                        None => return Exit::Gone,
                        Some(Err(e)) => {
                            let exit = exit_for_error(&e);
                            if exit != Exit::Gone {
                                warn!(conn = self.id, peer = %self.peer, error = %e, "transport error");
                            }
                            return exit;
                        }
                        Some(Ok(Message::Text(text))) => {
                            let timer_before = self.session.next_timer();
                            let reply = self.on_text(text.as_str());
                            // A refresh moves the expiry; re-arm only then.
                            if self.session.next_timer() != timer_before {
                                session_timer.as_mut().reset(deadline(&self.session));
                            }
                            reply
                        }
                        Some(Ok(Message::Binary(_))) => return Exit::Fail(self.session.on_binary()),
                        Some(Ok(Message::Close(_))) => return Exit::PeerClosed,
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    };
                    if let Err(exit) = self.write(ws.send(Message::Text(reply.into()))).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// Runs one text frame through the session and performs its decision;
    /// returns the reply for the sender.
    fn on_text(&mut self, text: &str) -> String {
        let now = now();
        // One load per message: a reload swaps the policy between messages,
        // never during one.
        let policy = self.state.settings.policy.load();
        let cx = Context { policy: &policy, verifier: self.state.settings.gate.verifier(), nonces: &self.state.nonces };
        match self.session.on_text(cx, text, now) {
            Decision::Join { id, room } => {
                self.state.hub.join(&room, self.id, self.member.clone());
                ack(&id, None)
            }
            Decision::Leave { id, room } => {
                self.state.hub.leave(&room, self.id);
                ack(&id, None)
            }
            Decision::Publish { id, room, event, data } => {
                let who = self.session.identity();
                let seq = self.state.hub.publish(&room, |seq| {
                    let frame = EventFrame {
                        room: &room,
                        seq,
                        event: &event,
                        from: Identity { id: &who.user_id, name: &who.name },
                        data: &data,
                        ts: now.as_millis(),
                    };
                    Utf8Bytes::from(ServerFrame::Event(frame).to_json())
                });
                match seq {
                    Some(seq) => ack(&id, Some(seq)),
                    // The session says we are a member, so the hub must
                    // have the room; if not, say so without details.
                    None => self.refuse(&Refusal {
                        id: Some(id.into_owned()),
                        code: palisade_protocol::ErrorCode::Internal,
                        reason: "room missing from hub".into(),
                        path: None,
                    }),
                }
            }
            Decision::Refreshed { id, removed } => {
                for room in &removed {
                    self.state.hub.leave(room, self.id);
                }
                ack(&id, None)
            }
            Decision::Reject(refusal) => self.refuse(&refusal),
        }
    }

    /// Logs a refusal under a fresh reference and renders its error frame.
    fn refuse(&self, refusal: &Refusal) -> String {
        let reference = palisade_core::random_id("r_");
        warn!(
            conn = self.id,
            session = self.session.id(),
            user = %self.session.identity().user_id,
            peer = %self.peer,
            code = %refusal.code,
            reason = %refusal.reason,
            reference = %reference,
            "request refused"
        );
        ServerFrame::Error(ErrorFrame {
            id: refusal.id.as_deref(),
            code: refusal.code,
            message: refusal.code.message(),
            path: refusal.path.as_deref(),
            retry_after_ms: None,
            reference: &reference,
        })
        .to_json()
    }

    fn welcome(&self) -> String {
        let who = self.session.identity();
        let limits = &self.state.settings.config.limits;
        ServerFrame::Welcome(Welcome {
            session: self.session.id(),
            user: UserInfo { id: &who.user_id, name: &who.name, roles: &who.roles },
            csrf: self.session.csrf(),
            heartbeat_ms: u64::try_from(limits.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            max_message_bytes: limits.max_message_bytes,
            expires_at: who.expires_at.as_millis(),
        })
        .to_json()
    }

    /// Awaits a write, unless a close is requested, the server shuts down,
    /// or the peer has not drained its socket for the whole silence limit
    /// (then it is a slow consumer).
    async fn write(&self, write: impl Future<Output = Result<(), WsError>>) -> Result<(), Exit> {
        tokio::select! {
            // Biased, write first: a write that completes at once never
            // registers the other branches' wakers or timer.
            biased;
            r = write => r.map_err(|e| exit_for_error(&e)),
            code = self.control.requested() => Err(Exit::Close(code)),
            () = self.state.shutdown.cancelled() => Err(Exit::Close(CloseCode::GoingAway)),
            () = tokio::time::sleep(self.state.settings.silence_limit()) => Err(Exit::Close(CloseCode::SlowConsumer)),
        }
    }
}

fn ack(id: &str, seq: Option<u64>) -> String {
    ServerFrame::Ack { id, seq }.to_json()
}

/// The session's next timer as a tokio instant.
fn deadline(session: &Session) -> Instant {
    // Tokens can live for years; cap the sleep so the arithmetic stays sane.
    const FAR: Duration = Duration::from_secs(86_400 * 365);
    Instant::now() + now().until(session.next_timer()).min(FAR)
}
