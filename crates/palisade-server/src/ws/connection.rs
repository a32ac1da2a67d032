//! One authenticated connection: a single task that reads client frames,
//! runs them through the core session, writes replies, forwards room events
//! from its bounded queue, and performs the session's timers (pings,
//! silence, token expiry, CSRF rotation). What a decision on a frame does
//! (joins, `recover`, publishing through the commit) is in `perform`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{SinkExt as _, StreamExt as _};
use palisade_core::Timestamp;
use palisade_core::audit::{self, Entry};
use palisade_core::guard::Escalation;
use palisade_core::log::Clipped;
use palisade_core::policy::Policy;
use palisade_core::refusal::Kind;
use palisade_core::session::{Context, Decision, Refusal, Session, TimerAction};
use palisade_protocol::{CloseCode, ErrorCode, ErrorFrame, RemovedReason, ServerFrame, UserInfo, Welcome};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tracing::{debug, error, info, warn};

use super::socket::SocketError;
use super::transport::{Ws, exit_for_error, finish};
use crate::control::{Control, Request};
use crate::exit::Exit;
use crate::hub::{Member, Membership};
use crate::settings::ConnLimits;
use crate::state::{AppState, Slot};
use crate::upstream::UpstreamWs;

pub(crate) mod backend;
mod perform;

/// Most queued events written before one flush, and before the socket is
/// read again (see [`Conn::run`]).
const WRITE_BATCH: usize = 64;

pub(crate) struct Conn<'s> {
    pub(crate) state: &'s AppState,
    pub(crate) limits: &'s ConnLimits,
    /// Leaves every room when the connection is dropped, even by a panic.
    pub(crate) rooms: Membership<'s>,
    pub(crate) control: Arc<Control>,
    /// Boxed: the task's future keeps what it holds in more than one of
    /// its states, and the session is its largest part (BENCHMARKS.md).
    pub(crate) session: Box<Session>,
    pub(crate) peer: SocketAddr,
    /// Gateway mode: the backend's connection (`crate::upstream`), which
    /// takes the client's messages instead of the rooms. Boxed, for the
    /// size of a native connection's future.
    pub(crate) backend: Option<Box<UpstreamWs>>,
}

/// A read from the socket: a frame, an error, or the end of the stream.
type Inbound = Option<Result<Message, SocketError>>;

/// Runs a connection to its end. `_slot` keeps the connection counted.
/// With a `backend` (gateway mode), client messages go there and its
/// messages come back (`crate::upstream::pump`).
pub(crate) async fn serve(
    mut ws: Ws,
    state: Arc<AppState>,
    session: Box<Session>,
    peer: SocketAddr,
    _slot: Slot,
    backend: Option<Box<UpstreamWs>>,
) {
    let limits = &state.conn_limits;
    let control = Arc::new(Control::new(limits.outbound_queue));
    let member = Member { control: Arc::clone(&control) };
    let (ip, now) = (session.standing().ip(), state.clock.now());
    let rooms = Membership::new(&state.hub, &*state.bus, member, ip, &session.identity().user_id, now);
    let mut conn = Conn { state: &state, limits, rooms, control, session, peer, backend };
    // `conn` is the number later lines carry; `id` what the admin API lists.
    info!(
        conn = conn.rooms.id(),
        id = %state.settings.node.conn_id(conn.rooms.id()),
        session = conn.session.id(),
        user = %conn.session.identity().user_id,
        peer = %peer,
        "connection opened"
    );
    state.metrics.opened.increment(1);
    let Err(exit) = conn.run(&mut ws).await;
    state.metrics.closed(exit);
    info!(conn = conn.rooms.id(), session = conn.session.id(), reason = %exit.describe(), "connection closed");
    if let Some(backend) = conn.backend.take() {
        Box::pin(backend::hang_up(backend, exit, limits.close_timeout)).await;
    }
    // Leaves every room; a panic above leaves them too, by unwinding.
    drop(conn);
    // Boxed: closing happens once, and its state should not enlarge the
    // future an idle connection keeps alive.
    Box::pin(finish(ws, exit, limits.close_timeout)).await;
}

impl Conn<'_> {
    /// The connection loop: waits on the shutdown and close signals, the
    /// session's one timer, the outbound queue and the socket.
    async fn run(&mut self, ws: &mut Ws) -> Result<Infallible, Exit> {
        if let Some(welcome) = self.own("welcome", self.welcome()) {
            self.send(ws, welcome).await?;
        }
        let state = self.state;
        let control = Arc::clone(&self.control);
        let timer = tokio::time::sleep_until(state.clock.instant_at(self.session.next_timer()));
        tokio::pin!(timer);
        loop {
            let inbound = tokio::select! {
                biased;
                () = state.shutdown.cancelled() => return Err(Exit::Close(CloseCode::GoingAway)),
                request = control.requested() => match request {
                    Request::Close(code) => return Err(Exit::Close(code)),
                    Request::Revalidate => {
                        if self.session.is_revoked(&state.revocations) {
                            info!(conn = self.rooms.id(), session = self.session.id(), "token revoked: closing with 4003");
                            return Err(Exit::Close(CloseCode::Revoked));
                        }
                        None
                    }
                    Request::Recheck => {
                        let policy = state.settings.policy.load();
                        let removed = self.session.recheck_rooms(&policy);
                        self.remove(ws, &removed).await?;
                        None
                    }
                    Request::Remove => {
                        for (room, reason) in control.take_removals() {
                            // A room the connection left meanwhile needs no word.
                            if self.session.forget(&room) {
                                self.rooms.leave(&room);
                                info!(conn = self.rooms.id(), session = self.session.id(), room = %room, reason = ?reason, "removed from room");
                                let frame = ServerFrame::Removed { room: &room, code: ErrorCode::Forbidden, reason };
                                self.send(ws, text_message(frame.to_json())).await?;
                            }
                        }
                        None
                    }
                },
                () = &mut timer => {
                    self.on_timer(ws).await?;
                    None
                }
                first = control.events.next() => {
                    self.forward(ws, first).await?;
                    // The queue comes before the socket so events keep
                    // flowing, but a busy room can keep the queue non-empty
                    // for as long as it chats: then look at the socket once,
                    // without waiting, after every burst, so a member's own
                    // `leave`, `refresh` and pongs are read within one burst
                    // of arriving.
                    read_now(ws).await
                }
                msg = ws.next() => Some(msg),
                // Gateway mode's awaits are boxed here and below: native
                // connections run this same loop and would otherwise carry
                // their state.
                msg = backend::next(&mut self.backend) => {
                    Box::pin(self.on_backend(ws, msg)).await?;
                    None
                }
            };
            // Boxed: a message's state (the decision, the reply, a commit in
            // flight) would otherwise be part of the future an idle
            // connection keeps; one allocation per message buys ~1.7 KB per
            // idle connection (BENCHMARKS.md, "the frame layer").
            if let Some(msg) = inbound {
                Box::pin(self.on_inbound(ws, msg)).await?;
            }
            // Usually unchanged: a frame moves the silence deadline, which
            // stays behind the next ping.
            let deadline = state.clock.instant_at(self.session.next_timer());
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
        }
    }

    /// Performs everything the session's timers have due.
    async fn on_timer(&mut self, ws: &mut Ws) -> Result<(), Exit> {
        let now = self.state.clock.now();
        #[allow(
            clippy::while_let_loop,
            reason = "a `while let` keeps its temporaries, the thread's generator (not `Send`), across the await"
        )]
        loop {
            let Some(action) = self.session.on_timer(now, &mut rand::rng()) else { break };
            let msg = match action {
                TimerAction::Close(code) => return Err(Exit::Close(code)),
                TimerAction::Silent => {
                    debug!(conn = self.rooms.id(), "heartbeat timeout");
                    return Err(Exit::Gone);
                }
                TimerAction::Ping => Some(Message::Ping(Bytes::new())),
                TimerAction::Expiring(at) => {
                    self.own("expiring", ServerFrame::Expiring { expires_at: at.as_millis() }.to_json())
                }
                TimerAction::CsrfRotated => self.own("csrf", ServerFrame::Csrf { csrf: self.session.csrf() }.to_json()),
            };
            if let Some(msg) = msg {
                self.send(ws, msg).await?;
            }
        }
        Ok(())
    }

    /// Writes `first` and whatever else is queued, up to a batch, in one
    /// flush.
    async fn forward(&self, ws: &mut Ws, first: Utf8Bytes) -> Result<(), Exit> {
        let burst = async {
            ws.feed(Message::Text(first)).await?;
            let mut fed = 1;
            for _ in 1..WRITE_BATCH {
                let Some(next) = self.control.events.try_next() else { break };
                ws.feed(Message::Text(next)).await?;
                fed += 1;
            }
            self.state.metrics.messages_out.increment(fed);
            ws.flush().await
        };
        self.write(burst).await
    }

    /// Handles one read from the socket.
    async fn on_inbound(&mut self, ws: &mut Ws, msg: Inbound) -> Result<(), Exit> {
        let now = self.state.clock.now();
        let msg = match msg {
            None => return Err(Exit::Gone),
            Some(Err(e)) => {
                let exit = exit_for_error(&e);
                if exit != Exit::Gone {
                    warn!(conn = self.rooms.id(), peer = %self.peer, error = %e, "transport error");
                }
                if let Exit::Fail(code) = exit {
                    self.transport_violation(code, now);
                }
                return Err(exit);
            }
            Some(Ok(msg)) => msg,
        };
        self.session.on_heard(now);
        let reply = match msg {
            Message::Text(text) if self.backend.is_some() => return Box::pin(self.forward_client(ws, text, now)).await,
            Message::Binary(data) if self.backend.is_some() && self.gateway_binary() => {
                return Box::pin(self.write_upstream(Message::Binary(data))).await;
            }
            Message::Text(text) => {
                self.state.metrics.messages_in.increment(1);
                let mut started = std::time::Instant::now();
                let decision = match self.decide(text.as_str(), now, Session::on_text) {
                    // A `refresh` token's key set is fetched, if due, once
                    // the frame has passed its rate (outside the pipeline's
                    // measured time: it is I/O), then the frame resumes.
                    Decision::KeysWanted { token } => {
                        self.state.fetch_keys_for(&token).await;
                        started = std::time::Instant::now();
                        self.decide(text.as_str(), self.state.clock.now(), Session::resume)
                    }
                    decision => decision,
                };
                let reply = self.perform(ws, decision, now).await?;
                self.state.metrics.pipeline_since(started);
                self.remove(ws, &reply.removed).await?;
                self.replay(ws, reply.replay).await?;
                self.send(ws, text_message(reply.frame)).await?;
                return match reply.close {
                    Some(code) => Err(Exit::Close(code)),
                    None => Ok(()),
                };
            }
            Message::Binary(_) => {
                let code = self.session.on_binary();
                self.transport_violation(code, now);
                return Err(Exit::Fail(code));
            }
            Message::Close(_) => return Err(Exit::PeerClosed),
            Message::Ping(_) | Message::Pong(_) => self.session.on_control(&self.state.guard, now),
            Message::Frame(_) => return Ok(()),
        };
        match reply.and_then(|escalation| self.escalate(escalation)).or_else(|| self.unenforced()) {
            Some(code) => Err(Exit::Close(code)),
            None => Ok(()),
        }
    }

    /// Scores what the transport refused: the connection is ending, but the
    /// user and the address keep the score, and a ban it leads to closes
    /// their other connections.
    fn transport_violation(&mut self, code: CloseCode, now: Timestamp) {
        let kind = if code == CloseCode::TooBig { Kind::Oversize } else { Kind::Protocol };
        let escalation = self.session.on_transport_violation(&self.state.guard, kind, now);
        self.audit(Entry::new(now, audit::Kind::Refused(kind), &format!("transport: closed with {}", code.code())));
        self.escalate(escalation);
    }

    /// Performs an escalation of this connection's refusal; the close code
    /// if this connection must close.
    pub(crate) fn escalate(&self, escalation: Escalation) -> Option<CloseCode> {
        self.state.enforce.escalate(escalation, self.session.standing().ip(), Some(&self.session.identity().user_id))
    }

    /// Reports what `abuse.dry_run` let through during the last call into
    /// the session.
    pub(crate) fn unenforced(&mut self) -> Option<CloseCode> {
        let (refusal, escalation) = self.session.take_unenforced()?;
        let ip = self.session.standing().ip();
        self.state.enforce.report_unenforced(&refusal, ip, Some(&self.session.identity().user_id));
        self.escalate(escalation)
    }

    /// Takes the connection out of rooms the session left because its
    /// rights no longer cover them, and tells the client about each.
    async fn remove(&mut self, ws: &mut Ws, rooms: &[Box<str>]) -> Result<(), Exit> {
        for room in rooms {
            self.rooms.leave(room);
            info!(conn = self.rooms.id(), session = self.session.id(), room = %room, "removed from room: rights no longer cover it");
            let frame =
                ServerFrame::Removed { room, code: ErrorCode::Forbidden, reason: RemovedReason::Rights }.to_json();
            self.send(ws, text_message(frame)).await?;
        }
        Ok(())
    }

    /// Runs one text frame through the session (`pass` is
    /// [`Session::on_text`], or [`Session::resume`] once asked-for keys are
    /// fetched).
    fn decide<'t>(
        &mut self,
        text: &'t str,
        now: Timestamp,
        pass: for<'c> fn(&mut Session, Context<'c>, &'t str, Timestamp) -> Decision<'t>,
    ) -> Decision<'t> {
        // One load per pass: a reload swaps the policy between messages,
        // never during one.
        let policy = self.state.settings.policy.load();
        pass(&mut self.session, context(self.state, &policy), text, now)
    }

    /// Logs a refusal under a fresh reference, within the refusal log
    /// budget, and renders its error frame. The reason and path may quote
    /// the client's own text: written clipped, never raw
    /// (docs/ARCHITECTURE.md, "Logs").
    pub(crate) fn refuse(&self, refusal: &Refusal) -> String {
        self.state.enforce.count_refusal(refusal);
        self.state.metrics.rejected(refusal.code());
        let reference = palisade_core::random_id("r_", &mut rand::rng());
        // Only what this program wrote, never text quoted from the message,
        // and the `ref` that finds the log line.
        let detail = format!("{} ref={reference}", audit::message_refusal_detail(refusal));
        self.audit(Entry::new(self.state.clock.now(), audit::Kind::Refused(refusal.kind), &detail));
        if self.state.enforce.admit_refusal_line() {
            let max = self.limits.max_logged_text;
            warn!(
                conn = self.rooms.id(),
                session = self.session.id(),
                user = %self.session.identity().user_id,
                peer = %self.peer,
                kind = %refusal.kind,
                reason = %Clipped::new(&refusal.reason, max),
                path = %Clipped::new(refusal.path.as_deref().unwrap_or_default(), max),
                reference = %reference,
                "request refused"
            );
        }
        ServerFrame::Error(ErrorFrame {
            id: refusal.id.as_deref(),
            code: refusal.code(),
            message: refusal.code().message(),
            path: refusal.path.as_deref(),
            retry_after_ms: refusal.retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
            reference: &reference,
        })
        .to_json()
    }

    /// Queues an audit record about this connection's user, address and
    /// session.
    fn audit(&self, entry: Entry) {
        let who = self.session.identity();
        let entry = entry.ip(self.session.standing().ip()).user(Some(&who.user_id)).session(self.session.id());
        self.state.audit.record(entry);
    }

    fn welcome(&self) -> String {
        let who = self.session.identity();
        ServerFrame::Welcome(Welcome {
            session: self.session.id(),
            user: UserInfo { id: &who.user_id, name: &who.name, roles: &who.roles },
            csrf: self.session.csrf(),
            heartbeat_ms: u64::try_from(self.limits.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            max_message_bytes: self.limits.max_message_bytes,
            expires_at: who.expires_at.as_millis(),
        })
        .to_json()
    }

    /// Sends one message.
    pub(crate) async fn send(&self, ws: &mut Ws, msg: Message) -> Result<(), Exit> {
        if msg.is_text() {
            self.state.metrics.messages_out.increment(1);
        }
        self.write(ws.send(msg)).await
    }

    /// Awaits a write, unless a close is requested, the server shuts down,
    /// or the peer has not drained its socket for the whole write timeout
    /// (then it is a slow consumer: judged by its socket, never by the size
    /// of what others publish).
    async fn write(&self, write: impl Future<Output = Result<(), SocketError>>) -> Result<(), Exit> {
        tokio::select! {
            // Biased, write first: a write that completes at once never
            // registers the other branches' wakers or timer.
            biased;
            r = write => r.map_err(|e| self.write_error(&e)),
            code = self.control.closed() => Err(Exit::Close(code)),
            () = self.state.shutdown.cancelled() => Err(Exit::Close(CloseCode::GoingAway)),
            () = tokio::time::sleep(self.limits.write_timeout) => Err(Exit::Close(CloseCode::SlowConsumer)),
        }
    }

    fn write_error(&self, e: &SocketError) -> Exit {
        if matches!(e, SocketError::TooLargeToSend(_)) {
            // Config validation keeps the write buffer above the largest
            // frame the server sends, so this is a bug, not a slow peer.
            error!(conn = self.rooms.id(), peer = %self.peer, "a frame did not fit the write buffer");
        }
        exit_for_error(e)
    }
}

/// What the pipeline consults for one message, under `policy` (loaded once
/// per message).
pub(crate) fn context<'a>(state: &'a AppState, policy: &'a Policy) -> Context<'a> {
    Context {
        policy,
        verifier: state.settings.gate.verifier(),
        guard: &state.guard,
        revocations: &state.revocations,
        owners: &state.owners.owners,
        client_ids: &state.client_ids,
    }
}

/// The next read if one is ready now, without waiting for one.
async fn read_now(ws: &mut Ws) -> Option<Inbound> {
    std::future::poll_fn(|cx| match ws.poll_next_unpin(cx) {
        Poll::Ready(msg) => Poll::Ready(Some(msg)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

pub(crate) fn text_message(frame: String) -> Message {
    Message::Text(frame.into())
}
