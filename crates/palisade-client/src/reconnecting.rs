//! [`ReconnectingClient`]: a handle to a task that keeps one Palisade
//! connection up. The semantics are the JavaScript client's
//! (`clients/js/src/client.ts`); the task owns every piece of state, and the
//! handle talks to it over a channel.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::backoff::{Backoff, CloseAction, Jitter};
use crate::message::{Sender, WelcomeInfo};
use crate::{Client, ClientError, ConnectOptions, Stream, TokenPlacement};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A token source's failure, as the application reports it.
pub type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// Where access tokens come from: called before every connect and for
/// every in-band refresh. Any `Fn() -> impl Future<Output = Result<String, E>>`
/// is one.
pub trait TokenSource: Send + Sync + 'static {
    /// A fresh access token.
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send + '_>>;
}

impl<F, Fut, E> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Into<TokenError>,
{
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send + '_>> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// Where the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Getting a token, opening the socket, waiting for `welcome`.
    Connecting,
    /// `welcome` received; requests go out at once.
    Connected,
    /// Not connected: before `connect()`, or waiting to reconnect.
    Disconnected,
    /// Ended: by `close()` or a terminal close code (4003, 4008).
    Closed,
}

/// Options of a [`ReconnectingClient`].
#[derive(Debug, Clone)]
pub struct ReconnectOptions {
    /// `ws://IP:PORT/ws`.
    pub url: String,
    /// Where the token goes.
    pub placement: TokenPlacement,
    /// `Origin` header to send, as a browser would.
    pub origin: Option<String>,
    /// Local address to connect from.
    pub bind: Option<IpAddr>,
    /// Receive buffer size to request from the OS.
    pub recv_buffer: Option<u32>,
    /// Messages held while not connected (default 100); more fail with
    /// [`ClientError::QueueFull`].
    pub max_queue: usize,
    /// Reconnect timing.
    pub backoff: Backoff,
    /// A message not answered this long after `publish` fails with
    /// [`ClientError::Timeout`] (default 10 s), whether it waited in the
    /// queue, for its answer, or to be resent.
    pub send_timeout: Duration,
    /// The server's `limits.client_id_window` (default 5 min): a message
    /// whose socket dropped before its answer is resent with its `cid` only
    /// while less than this has passed since it was first sent; later it
    /// fails with [`ClientError::Disconnected`].
    pub client_id_window: Duration,
    /// How long the handshake and `welcome` may take (default 10 s).
    pub welcome_timeout: Duration,
    /// Notifications held for the application (default 1024). When they are
    /// not read, the client stops reading its socket until they are (so a
    /// client that never reads is closed by the server with 4009).
    pub notification_capacity: usize,
    /// Seed of the backoff jitter (default: from the process's randomness).
    pub seed: Option<u64>,
}

impl ReconnectOptions {
    /// Options for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            placement: TokenPlacement::Header,
            origin: None,
            bind: None,
            recv_buffer: None,
            max_queue: 100,
            backoff: Backoff::default(),
            send_timeout: Duration::from_secs(10),
            client_id_window: Duration::from_secs(300),
            welcome_timeout: Duration::from_secs(10),
            notification_capacity: 1024,
            seed: None,
        }
    }

    /// Options for a cookie session (after `/auth/login` with
    /// `"cookie": true`, docs/PROTOCOL.md §11.4), as the JavaScript client's
    /// `cookie: true`: the [`TokenSource`] gives the `palisade_session`
    /// cookie's value (from the login's or the last `/auth/refresh`'s
    /// `Set-Cookie`), which goes in a `Cookie` header with `origin`, one
    /// the server allows. Every `send` then carries the CSRF token of the
    /// latest `welcome` or `csrf` frame. A renewed cookie's value is sent
    /// as an in-band `refresh` on `expiring`, as a bearer token would be:
    /// unlike a page, a program can read it.
    pub fn cookie(url: impl Into<String>, origin: impl Into<String>) -> Self {
        Self { placement: TokenPlacement::Cookie, origin: Some(origin.into()), ..Self::new(url) }
    }
}

/// A published event's place in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The `seq` the room gave the event.
    pub seq: u64,
}

/// An event in a joined room, delivered once per `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Room.
    pub room: String,
    /// Event name.
    pub event: String,
    /// Per-room sequence number.
    pub seq: u64,
    /// The sender, from the sender's token.
    pub from: Sender,
    /// Payload, as the server cleaned it.
    pub data: Value,
    /// Server time, Unix ms.
    pub ts: u64,
}

/// What the client tells the application, in order.
#[derive(Debug)]
pub enum Notification {
    /// An event in a joined room.
    Event(Event),
    /// A room re-joined after a reconnect; `complete` is false when events
    /// may have been missed (reload the room's state from elsewhere).
    Recovered {
        /// Room.
        room: String,
        /// Whether every event after the last one seen was replayed.
        complete: bool,
        /// The room's newest `seq`.
        seq: u64,
    },
    /// The server took the client out of a room (or refused a re-join).
    Removed {
        /// Room.
        room: String,
        /// The error code (`forbidden`).
        code: String,
        /// `rights`, `deleted` or `removed_by_owner`, when the server said.
        reason: Option<String>,
    },
    /// A reconnect is scheduled.
    Reconnecting {
        /// 0 for the first after a healthy connection.
        attempt: u32,
        /// How long until it.
        delay: Duration,
        /// The close code that caused it (1006 when the socket just ended
        /// or could not be opened).
        code: u16,
        /// The close reason, or what failed.
        reason: String,
    },
    /// Something failed that no call reports: a refresh, the token source,
    /// an error frame without an id, a terminal close.
    Error(ClientError),
}

/// The client's notifications; read them in their own task.
#[derive(Debug)]
pub struct Notifications(mpsc::Receiver<Notification>);

impl Notifications {
    /// The next notification; `None` once the client is dropped.
    pub async fn recv(&mut self) -> Option<Notification> {
        self.0.recv().await
    }

    /// The next event, skipping other notifications.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Notification::Event(e) = self.recv().await? {
                return Some(e);
            }
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

enum Command {
    Connect(Reply<()>),
    Join(String, Reply<()>),
    Leave(String, oneshot::Sender<()>),
    Publish(Outgoing),
    Close(oneshot::Sender<()>),
}

/// A Palisade connection that keeps itself up (see the crate docs). Cheap
/// to clone: every clone drives the same connection. The connection task
/// ends when every clone is dropped or on `close()`.
#[derive(Debug, Clone)]
pub struct ReconnectingClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<State>,
}

impl ReconnectingClient {
    /// A client in state `Disconnected` and its notifications; nothing
    /// connects before [`ReconnectingClient::connect`]. Needs a tokio runtime.
    pub fn new(options: ReconnectOptions, tokens: impl TokenSource) -> (Self, Notifications) {
        let (commands, rx) = mpsc::channel(64);
        let (out, notes) = mpsc::channel(options.notification_capacity.max(1));
        let (state_tx, state) = watch::channel(State::Disconnected);
        let rng = options.seed.map_or_else(Jitter::from_entropy, Jitter::seeded);
        driver::spawn(options, Arc::new(tokens), rx, out, state_tx, rng);
        (Self { commands, state }, Notifications(notes))
    }

    /// Connects (and keeps reconnecting); resolves on the next `welcome`.
    /// Fails only if the client is closed meanwhile (by `close()` or a
    /// terminal close code); refused handshakes are retried.
    pub async fn connect(&self) -> Result<(), ClientError> {
        self.call(Command::Connect).await
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// A watch on the state, to await changes.
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// Joins `room`, and re-joins it (with `recover`) after every reconnect;
    /// resolves once a member (which may be after the next `welcome`).
    pub async fn join(&self, room: &str) -> Result<(), ClientError> {
        let room = room.to_owned();
        self.call(|tx| Command::Join(room, tx)).await
    }

    /// Leaves `room`; it is not re-joined any more.
    pub async fn leave(&self, room: &str) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Leave(room.to_owned(), tx)).await?;
        let _ = rx.await;
        Ok(())
    }

    /// Publishes `event` with `data` in `room`: the room's `seq` for it, or
    /// the server's refusal ([`ClientError::Rejected`]), `QueueFull`,
    /// `Timeout`, `ClientClosed`, or `Disconnected`.
    ///
    /// Every message carries a random `cid`. When the socket drops after it
    /// went out but before its answer, it is kept and sent again with the
    /// same `cid` after the reconnect (once the rooms are re-joined): the
    /// server publishes it at most once and answers the resend with the
    /// first copy's `seq`. An answer `duplicate` without `seq` (the first
    /// copy is still being published) is asked again every 200 ms, so the
    /// `seq` is always the real one. `Disconnected` only when the resend
    /// would come `client_id_window` or more after the first send.
    pub async fn publish(&self, room: &str, event: &str, data: Value) -> Result<Published, ClientError> {
        let (room, event) = (room.to_owned(), event.to_owned());
        self.call(|reply| Command::Publish(Outgoing::new(room, event, data, reply))).await
    }

    /// Closes for good: waiting calls fail with `ClientClosed`, the socket
    /// is closed with 1000. `connect()` may start it again.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.unwrap_or(Err(ClientError::ClientClosed { code: None }))
    }

    async fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).await.map_err(|_| ClientError::ClientClosed { code: None })
    }
}

mod driver;

use driver::Outgoing;

#[cfg(test)]
#[path = "reconnecting_tests.rs"]
mod tests;
