//! The task behind a [`ReconnectingClient`](super::ReconnectingClient): the
//! connection, its requests, rooms, queue and token, and what each frame,
//! close and timer does to them. Published messages on their way are in
//! `outbox`, the token and what each `send` proves itself with in
//! `tokens`, what is read of a server frame in `frame`.

#[allow(clippy::wildcard_imports, reason = "the task is the rest of its parent module")]
use super::*;

mod frame;
mod outbox;
mod tokens;

use frame::Frame;
pub(super) use outbox::Outgoing;
#[cfg(test)]
pub(super) use tokens::jwt_exp_ms;

enum Pending {
    Send(Outgoing),
    Join(String),
    Recover(String),
    Leave(oneshot::Sender<()>),
    Refresh(String),
}

#[derive(Default)]
struct Room {
    last_seq: Option<u64>,
    requested: bool,
    joined: bool,
    waiters: Vec<Reply<()>>,
}

impl Room {
    fn settle(&mut self, result: impl Fn() -> Result<(), ClientError>) {
        for w in self.waiters.drain(..) {
            let _ = w.send(result());
        }
    }
}

type Opened = Result<Box<(Stream, WelcomeInfo, String)>, ClientError>;

enum Wake {
    Command(Option<Command>),
    Opened(Opened),
    Read(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Token(Result<String, TokenError>),
    Retry,
    Deadline,
}

struct Driver {
    options: ReconnectOptions,
    tokens: Arc<dyn TokenSource>,
    commands: mpsc::Receiver<Command>,
    out: mpsc::Sender<Notification>,
    state: watch::Sender<State>,
    /// Between `connect()` and `close()` or a terminal close.
    running: bool,
    /// `welcome` received on the current socket.
    ready: bool,
    ws: Option<Stream>,
    connecting: Option<BoxFuture<Opened>>,
    retry_at: Option<Instant>,
    attempt: u32,
    next_id: u64,
    pending: HashMap<String, Pending>,
    queue: VecDeque<Outgoing>,
    /// Sent on a socket that dropped before the answer: resent after the
    /// next welcome, with the same `cid`.
    unacked: VecDeque<Outgoing>,
    /// Answered `duplicate` without `seq`: sent again at the instant.
    later: Vec<(Instant, Outgoing)>,
    rooms: HashMap<String, Room>,
    waiters: Vec<Reply<()>>,
    csrf: Option<String>,
    /// The token the current connection holds (compared, never logged).
    token: Option<String>,
    /// The token source, asked for a refresh.
    fetching: Option<BoxFuture<Result<String, TokenError>>>,
    /// A `refresh` frame awaits its answer.
    refreshing: bool,
    refreshed_for: u64,
    notice: u64,
    /// The server's last "not before" (a `rate_limited` answer's
    /// `retry_after_ms`, a refused handshake's `Retry-After`): the floor
    /// of the next slowed-down reconnect.
    hint: Duration,
    /// The terminal close code that ended the client, if any.
    close_code: Option<u16>,
    rng: Jitter,
}

async fn poll_opt<T>(f: &mut Option<BoxFuture<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn read_opt(ws: &mut Option<Stream>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                c = self.commands.recv() => Wake::Command(c),
                o = poll_opt(&mut self.connecting) => Wake::Opened(o),
                m = read_opt(&mut self.ws) => Wake::Read(m),
                t = poll_opt(&mut self.fetching) => Wake::Token(t),
                () = sleep_opt(self.retry_at) => Wake::Retry,
                () = sleep_opt(deadline) => Wake::Deadline,
            };
            match wake {
                Wake::Command(None) => {
                    self.shut().await;
                    return;
                }
                Wake::Command(Some(c)) => self.command(c).await,
                Wake::Opened(o) => {
                    self.connecting = None;
                    self.opened(o).await;
                }
                Wake::Read(m) => self.read(m).await,
                Wake::Token(t) => {
                    self.fetching = None;
                    self.fetched(t).await;
                }
                Wake::Retry => {
                    self.retry_at = None;
                    self.open();
                }
                Wake::Deadline => {
                    self.expire();
                    self.ask_again().await;
                }
            }
        }
    }

    // --- commands ---------------------------------------------------------

    async fn command(&mut self, command: Command) {
        let closed =
            (*self.state.borrow() == State::Closed).then_some(ClientError::ClientClosed { code: self.close_code });
        match command {
            Command::Connect(reply) => {
                if self.ready {
                    let _ = reply.send(Ok(()));
                    return;
                }
                self.waiters.push(reply);
                if !self.running {
                    self.running = true;
                    self.close_code = None;
                    self.open();
                }
            }
            Command::Join(room, reply) => {
                if let Some(e) = closed {
                    let _ = reply.send(Err(e));
                    return;
                }
                let r = self.rooms.entry(room.clone()).or_default();
                if r.joined {
                    let _ = reply.send(Ok(()));
                    return;
                }
                r.waiters.push(reply);
                if self.ready && !r.requested {
                    self.request(&room).await;
                }
            }
            Command::Leave(room, done) => {
                let Some(mut r) = self.rooms.remove(&room) else {
                    let _ = done.send(());
                    return;
                };
                r.settle(|| Err(ClientError::Left));
                if !self.ready || !r.requested {
                    let _ = done.send(());
                    return;
                }
                let id = self.id();
                self.pending.insert(id.clone(), Pending::Leave(done));
                self.raw(json!({"type": "leave", "id": id, "room": room})).await;
            }
            Command::Publish(mut msg) => {
                if let Some(e) = closed {
                    let _ = msg.reply.send(Err(e));
                    return;
                }
                msg.deadline = Instant::now() + self.options.send_timeout;
                if self.ready {
                    self.transmit(msg).await;
                } else if self.queue.len() >= self.options.max_queue {
                    let _ = msg.reply.send(Err(ClientError::QueueFull));
                } else {
                    self.queue.push_back(msg);
                }
            }
            Command::Close(done) => {
                self.shut().await;
                let _ = done.send(());
            }
        }
    }

    /// `close()`: everything waiting fails, the socket closes with 1000.
    async fn shut(&mut self) {
        self.running = false;
        self.stop(None);
        self.rooms.clear();
        self.connecting = None;
        if let Some(mut ws) = self.ws.take() {
            let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
            drain(ws);
        }
    }

    // --- the connection ---------------------------------------------------

    fn open(&mut self) {
        self.set_state(State::Connecting);
        let tokens = self.tokens.clone();
        let mut options = ConnectOptions::new(self.options.url.clone(), String::new());
        options.placement = self.options.placement;
        options.origin.clone_from(&self.options.origin);
        options.bind = self.options.bind;
        options.recv_buffer = self.options.recv_buffer;
        options.timeout = self.options.welcome_timeout;
        self.connecting = Some(Box::pin(async move {
            let token = tokens.token().await.map_err(|e| ClientError::Token(e.to_string()))?;
            if token.is_empty() {
                return Err(ClientError::Token("the token source gave an empty token".into()));
            }
            options.token.clone_from(&token);
            let client = Client::connect(&options).await?;
            let welcome = client.welcome().clone();
            Ok(Box::new((client.into_stream(), welcome, token)))
        }));
    }

    async fn opened(&mut self, opened: Opened) {
        match opened {
            Ok(opened) => {
                let (ws, welcome, token) = *opened;
                self.welcomed(ws, welcome, token).await;
            }
            Err(e) => {
                let (code, reason) = match &e {
                    ClientError::Closed { code: Some(c) } => (*c, e.to_string()),
                    // The handshake's 429 and 503 ask to slow down, as 4029,
                    // and not before their `Retry-After`.
                    ClientError::Refused { status: 429 | 503, retry_after, .. } => {
                        self.hint = retry_after.unwrap_or_default();
                        (4029, e.to_string())
                    }
                    _ => (1006, e.to_string()),
                };
                if let ClientError::Token(_) = e {
                    self.notify(Notification::Error(e)).await;
                }
                self.dropped(code, reason).await;
            }
        }
    }

    async fn welcomed(&mut self, ws: Stream, welcome: WelcomeInfo, token: String) {
        self.ws = Some(ws);
        self.token = Some(token);
        self.csrf = Some(welcome.csrf);
        // Only a welcome proves the server took us: never TCP or the upgrade.
        self.attempt = 0;
        self.refreshed_for = 0;
        self.notice = 0;
        self.ready = true;
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.request(&room).await;
        }
        // After the joins, so the rooms are members again when they arrive;
        // before the queue, as they were sent before it.
        while let Some(msg) = self.unacked.pop_front() {
            self.resend(msg).await;
        }
        while let Some(msg) = self.queue.pop_front() {
            self.transmit(msg).await;
        }
        self.set_state(State::Connected);
        for w in self.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    async fn read(&mut self, msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        match msg {
            Some(Ok(Message::Text(text))) => {
                if let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) {
                    self.frame(frame).await;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) =
                    frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_owned()));
                // Answer the close handshake in the background.
                if let Some(ws) = self.ws.take() {
                    drain(ws);
                }
                self.dropped(code, reason).await;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                self.ws = None;
                self.dropped(1006, e.to_string()).await;
            }
            None => {
                self.ws = None;
                self.dropped(1006, String::new()).await;
            }
        }
    }

    /// The socket is gone (or never opened): keep the sends in flight for a
    /// resend, then act on the close code.
    async fn dropped(&mut self, code: u16, reason: String) {
        self.ws = None;
        self.ready = false;
        self.refreshing = false;
        self.fetching = None;
        let mut sent = Vec::new();
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Send(msg) => sent.push(msg),
                Pending::Leave(done) => {
                    let _ = done.send(());
                }
                Pending::Join(_) | Pending::Recover(_) | Pending::Refresh(_) => {}
            }
        }
        sent.sort_by_key(|m| m.order);
        self.unacked.extend(sent);
        for r in self.rooms.values_mut() {
            r.requested = false;
            r.joined = false;
        }
        if !self.running {
            return;
        }
        let floor = match CloseAction::of(code) {
            CloseAction::Terminal => {
                self.running = false;
                self.stop(Some(code));
                self.rooms.clear();
                self.notify(Notification::Error(ClientError::ClientClosed { code: Some(code) })).await;
                return;
            }
            CloseAction::Slow => self.hint.max(self.options.backoff.base),
            // A 4001 needs a fresh token: every connect asks for one.
            CloseAction::Refresh | CloseAction::Reconnect => Duration::ZERO,
        };
        self.set_state(State::Disconnected);
        let delay = self.options.backoff.delay(self.attempt, floor, self.rng.next_f64());
        self.notify(Notification::Reconnecting { attempt: self.attempt, delay, code, reason }).await;
        self.attempt = self.attempt.saturating_add(1);
        self.hint = Duration::ZERO;
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Ends the client: every waiting call fails with `ClientClosed`.
    fn stop(&mut self, code: Option<u16>) {
        self.close_code = code;
        let err = || ClientError::ClientClosed { code };
        self.retry_at = None;
        self.ready = false;
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Send(msg) => {
                    let _ = msg.reply.send(Err(err()));
                }
                Pending::Leave(done) => {
                    let _ = done.send(());
                }
                Pending::Join(_) | Pending::Recover(_) | Pending::Refresh(_) => {}
            }
        }
        for msg in self.queue.drain(..).chain(self.unacked.drain(..)).chain(self.later.drain(..).map(|(_, m)| m)) {
            let _ = msg.reply.send(Err(err()));
        }
        for r in self.rooms.values_mut() {
            r.settle(|| Err(err()));
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(err()));
        }
        self.set_state(State::Closed);
    }

    // --- frames -----------------------------------------------------------

    async fn frame(&mut self, f: Frame) {
        match f.kind.as_str() {
            "ack" | "error" => self.answer(f).await,
            "event" => self.event(f).await,
            "expiring" => {
                let at = f.expires_at.unwrap_or(0);
                self.notice = at;
                self.refresh(at);
            }
            "csrf" if f.csrf.is_some() => self.csrf = f.csrf,
            "removed" => {
                let room = f.room.clone().unwrap_or_default();
                if let Some(mut r) = self.rooms.remove(&room) {
                    r.settle(|| Err(f.error()));
                }
                let code = f.code.unwrap_or_default();
                self.notify(Notification::Removed { room, code, reason: f.reason }).await;
            }
            _ => {}
        }
    }

    async fn answer(&mut self, f: Frame) {
        let Some(p) = f.id.as_ref().and_then(|id| self.pending.remove(id)) else {
            if f.kind == "error" && f.id.is_none() {
                self.notify(Notification::Error(f.error())).await;
            }
            return;
        };
        let ok = f.kind == "ack";
        match p {
            Pending::Send(msg) => {
                let result = if ok {
                    if f.duplicate == Some(true) && f.seq.is_none() {
                        // The first copy is still being published.
                        self.ask_later(msg);
                        return;
                    }
                    Ok(Published { seq: f.seq.unwrap_or(0) })
                } else {
                    if f.code.as_deref() == Some("rate_limited") {
                        self.hint = Duration::from_millis(f.retry_after_ms.unwrap_or(0));
                    }
                    Err(f.error())
                };
                let _ = msg.reply.send(result);
            }
            Pending::Refresh(token) => {
                self.refreshing = false;
                if !ok {
                    self.notify(Notification::Error(f.error())).await;
                    return;
                }
                self.token = Some(token);
                // The server re-arms `expiring` for the new token before
                // its ack: a notice that came meanwhile is answered now.
                self.refresh(self.notice);
            }
            Pending::Leave(done) => {
                let _ = done.send(());
            }
            Pending::Join(room) => self.joined(room, false, f).await,
            Pending::Recover(room) => self.joined(room, true, f).await,
        }
    }

    async fn joined(&mut self, room: String, recover: bool, f: Frame) {
        let ok = f.kind == "ack";
        let Some(r) = self.rooms.get_mut(&room) else { return };
        if !ok {
            let mut r = self.rooms.remove(&room).unwrap_or_default();
            r.settle(|| Err(f.error()));
            if recover {
                let code = f.code.unwrap_or_default();
                self.notify(Notification::Removed { room, code, reason: None }).await;
            }
            return;
        }
        // The room's newest seq: what comes live is above it. After a lossy
        // recover (a restart, say) it may be below what was seen before.
        let complete = f.complete == Some(true);
        let seq = f.seq.unwrap_or(0);
        r.last_seq = if recover && !complete { Some(seq) } else { Some(r.last_seq.unwrap_or(0).max(seq)) };
        r.joined = true;
        r.settle(|| Ok(()));
        if recover {
            self.notify(Notification::Recovered { room, complete, seq }).await;
        }
    }

    async fn event(&mut self, f: Frame) {
        let (Some(room), Some(seq)) = (f.room, f.seq) else { return };
        let Some(r) = self.rooms.get_mut(&room) else { return };
        if r.last_seq.is_some_and(|last| seq <= last) {
            return;
        }
        r.last_seq = Some(seq);
        let event = Event {
            room,
            event: f.event.unwrap_or_default(),
            seq,
            from: f.from.unwrap_or(Sender { id: String::new(), name: String::new() }),
            data: f.data.unwrap_or(Value::Null),
            ts: f.ts.unwrap_or(0),
        };
        self.notify(Notification::Event(event)).await;
    }

    // --- sending ----------------------------------------------------------

    async fn request(&mut self, room: &str) {
        let id = self.id();
        let Some(r) = self.rooms.get_mut(room) else { return };
        r.requested = true;
        let frame = match r.last_seq {
            None => {
                self.pending.insert(id.clone(), Pending::Join(room.to_owned()));
                json!({"type": "join", "id": id, "room": room})
            }
            Some(since) => {
                self.pending.insert(id.clone(), Pending::Recover(room.to_owned()));
                json!({"type": "recover", "id": id, "room": room, "since": since})
            }
        };
        self.raw(frame).await;
    }

    /// Writes a frame; a failed write shows up as the socket's end on the
    /// next read.
    async fn raw(&mut self, frame: Value) {
        if let Some(ws) = &mut self.ws {
            let _ = ws.send(Message::Text(frame.to_string().into())).await;
        }
    }

    // --- bookkeeping --------------------------------------------------------

    async fn notify(&mut self, n: Notification) {
        // A dropped receiver means nobody listens: nothing to do.
        let _ = self.out.send(n).await;
    }

    fn set_state(&self, s: State) {
        self.state.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

/// Reads what the server still sends until it hangs up (answering its
/// close), for at most a second, in the background.
fn drain(mut ws: Stream) {
    tokio::spawn(async move {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), async { while let Some(Ok(_)) = ws.next().await {} }).await;
    });
}

/// Starts the task that owns the connection and every piece of state.
pub(super) fn spawn(
    options: ReconnectOptions,
    tokens: Arc<dyn TokenSource>,
    commands: mpsc::Receiver<Command>,
    out: mpsc::Sender<Notification>,
    state: watch::Sender<State>,
    rng: Jitter,
) {
    let driver = Driver {
        options,
        tokens,
        commands,
        out,
        state,
        running: false,
        ready: false,
        ws: None,
        connecting: None,
        retry_at: None,
        attempt: 0,
        next_id: 0,
        pending: HashMap::new(),
        queue: VecDeque::new(),
        unacked: VecDeque::new(),
        later: Vec::new(),
        rooms: HashMap::new(),
        waiters: Vec::new(),
        csrf: None,
        token: None,
        fetching: None,
        refreshing: false,
        refreshed_for: 0,
        notice: 0,
        hint: Duration::ZERO,
        close_code: None,
        rng,
    };
    tokio::spawn(driver.run());
}
