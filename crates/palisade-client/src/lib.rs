//! A Rust client for Palisade's protocol v1.
//!
//! [`Client::connect`] performs the authenticated handshake (bearer token in
//! the `Authorization` header, as the `palisade.bearer.<token>` subprotocol
//! the way browsers must, or as a cookie session's `palisade_session`
//! cookie: [`TokenPlacement`]), waits for `welcome`, and then offers typed
//! requests: [`Client::join`], [`Client::publish`], and
//! [`Client::request`] for anything else. Events that arrive while a request
//! waits for its reply are kept, in order, for [`Client::next_message`].
//!
//! [`Client`] is one connection, as the load generator and tests need it.
//! [`ReconnectingClient`] keeps a connection up the way the JavaScript
//! client (`clients/js`) does: the close code decides (4001 → a fresh token
//! from the [`TokenSource`], then reconnect; 4003 and 4008 end it; 4009,
//! 4029 and a handshake's 429 or 503 back off by the server's hint
//! (`retry_after_ms`, `Retry-After`); anything else reconnects) with
//! full-jitter exponential [`Backoff`] reset only by a `welcome`; the token
//! is refreshed in-band on `expiring`, one refresh at a time; rooms are
//! re-joined with `recover` from the last `seq` seen and events are never
//! delivered twice; `publish` waits in a bounded offline queue, fails when
//! not sent in time; every message carries a random client message id
//! (`cid`), and one whose answer was lost with the socket is sent again
//! with the same `cid` after the reconnect (the server publishes it once
//! and answers with the first copy's `seq`), within
//! [`ReconnectOptions::client_id_window`], else it fails with
//! [`ClientError::Disconnected`].
//!
//! A cookie session (after `/auth/login` with `"cookie": true`) connects
//! with [`ReconnectOptions::cookie`]: the token source gives the
//! `palisade_session` cookie's value, and every `send` echoes the CSRF
//! token of the latest `welcome` or `csrf` frame, following its rotations
//! and the new one each reconnect brings.
//!
//! ```no_run
//! use palisade_client::{Notification, ReconnectOptions, ReconnectingClient};
//!
//! # async fn run() -> Result<(), palisade_client::ClientError> {
//! let tokens = || async { Ok::<_, std::io::Error>(std::env::var("TOKEN").unwrap_or_default()) };
//! let (client, mut notes) = ReconnectingClient::new(ReconnectOptions::new("ws://127.0.0.1:8080/ws"), tokens);
//! client.connect().await?;
//! client.join("lobby").await?;
//! tokio::spawn(async move {
//!     while let Some(n) = notes.recv().await {
//!         match n {
//!             Notification::Event(e) => println!("{} #{} from {}: {}", e.room, e.seq, e.from.id, e.data),
//!             Notification::Recovered { room, complete: false, .. } => println!("{room}: events were missed"),
//!             other => println!("{other:?}"),
//!         }
//!     }
//! });
//! let published = client.publish("lobby", "chat.message", serde_json::json!({"content": "hi"})).await?;
//! println!("seq {}", published.seq);
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! `palisade-bench` uses the one-shot [`Client`]: it drives thousands of raw
//! streams in its own loops, where a task per connection would only cost.

#![forbid(unsafe_code)]

mod backoff;
mod message;
mod reconnecting;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use backoff::{Backoff, CloseAction, Jitter};
pub use message::{Reply, Sender, ServerMessage, UserInfo, WelcomeInfo};
pub use reconnecting::{
    Event, Notification, Notifications, Published, ReconnectOptions, ReconnectingClient, State, TokenError, TokenSource,
};

/// The session cookie's name (docs/PROTOCOL.md §11.4).
const SESSION_COOKIE: &str = "palisade_session";

/// The underlying WebSocket stream.
pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenPlacement {
    /// `Authorization: Bearer <token>`.
    #[default]
    Header,
    /// `Sec-WebSocket-Protocol: palisade.v1, palisade.bearer.<token>`.
    Subprotocol,
    /// `Cookie: palisade_session=<token>`: the session cookie of
    /// `/auth/login` with `"cookie": true` (docs/PROTOCOL.md §11.4). The
    /// server takes it only with an allowed `Origin`, and then asks for the
    /// CSRF token on every `send`.
    Cookie,
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://host:port/ws` (or `wss://…`, with [`Client::connect_on`]).
    pub url: String,
    /// Access token.
    pub token: String,
    /// Where the token goes.
    pub placement: TokenPlacement,
    /// `Origin` header to send, as a browser would.
    pub origin: Option<String>,
    /// Local address to connect from (spreads many connections over
    /// several loopback addresses so ephemeral ports last).
    pub bind: Option<IpAddr>,
    /// Receive buffer size to request from the OS.
    pub recv_buffer: Option<u32>,
    /// How long the handshake and `welcome` may take.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Options for `url` with `token` in the header and a 10 s timeout.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            placement: TokenPlacement::Header,
            origin: None,
            bind: None,
            recv_buffer: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `ws://host:port/path` with an IP host.
    #[error("bad url: {0}")]
    BadUrl(String),
    /// The server refused the upgrade.
    #[error("handshake refused with HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
        /// The `Retry-After` header in seconds (Palisade sends it with 429),
        /// when present.
        retry_after: Option<Duration>,
    },
    /// The server closed the connection.
    #[error("closed by server{}", code.map(|c| format!(" with {c}")).unwrap_or_default())]
    Closed {
        /// Close code, if the server sent one.
        code: Option<u16>,
    },
    /// The server sent something that is not protocol v1.
    #[error("unexpected frame from server: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Socket or WebSocket failure.
    #[error(transparent)]
    Transport(#[from] WsError),
    /// Socket setup failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server refused a request with an `error` frame (or took the
    /// connection out of a room with `removed`).
    #[error("refused by the server: {code}")]
    Rejected {
        /// The protocol's error code (`forbidden`, `invalid_payload`, …).
        code: String,
        /// With `invalid_payload`: the JSON Pointer of the field at fault.
        path: Option<String>,
        /// With `rate_limited`: how long until the same request is allowed.
        retry_after: Option<Duration>,
        /// The server's `r_…` reference, matching its log line.
        reference: Option<String>,
    },
    /// The message was sent, then the socket dropped before its answer,
    /// and it could not be resent within `client_id_window` of the first
    /// send: whether the server took it is unknown.
    #[error("the connection dropped after sending; too late to resend")]
    Disconnected,
    /// The offline queue already holds its maximum.
    #[error("the offline queue is full")]
    QueueFull,
    /// The client is closed: by `close()` (no code), or by a terminal
    /// close code from the server (4003, 4008).
    #[error("the client is closed{}", code.map(|c| format!(" (server closed with {c})")).unwrap_or_default())]
    ClientClosed {
        /// The server's close code, when it ended the client.
        code: Option<u16>,
    },
    /// The room was left before its join completed.
    #[error("left the room before joining it")]
    Left,
    /// The token source failed.
    #[error("no token: {0}")]
    Token(String),
}

impl ClientError {
    /// A short stable code: the server's error code for [`ClientError::Rejected`],
    /// else `disconnected`, `timeout`, `queue_full`, `closed`, `left`,
    /// `token`, `refused` (HTTP), `protocol` or `transport`.
    pub fn code(&self) -> &str {
        match self {
            Self::Rejected { code, .. } => code,
            Self::Disconnected => "disconnected",
            Self::Timeout => "timeout",
            Self::QueueFull => "queue_full",
            Self::ClientClosed { .. } => "closed",
            Self::Left => "left",
            Self::Token(_) => "token",
            Self::Refused { .. } => "refused",
            Self::Protocol(_) | Self::BadUrl(_) => "protocol",
            Self::Closed { .. } | Self::Transport(_) | Self::Io(_) => "transport",
        }
    }

    /// With `invalid_payload`: the JSON Pointer of the field at fault.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Rejected { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// With `rate_limited`: how long until the same request is allowed;
    /// with a refused handshake: its `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rejected { retry_after, .. } | Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server's `r_…` reference for a refusal.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Rejected { reference, .. } => reference.as_deref(),
            _ => None,
        }
    }
}

/// A connected, authenticated client.
#[derive(Debug)]
pub struct Client {
    ws: Stream,
    welcome: WelcomeInfo,
    pending: VecDeque<ServerMessage>,
    next_id: u64,
}

impl Client {
    /// Connects, authenticates and waits for `welcome`.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, ClientError> {
        tokio::time::timeout(opts.timeout, Self::connect_inner(opts)).await.map_err(|_| ClientError::Timeout)?
    }

    /// Connects over `transport`, a socket the caller opened (with
    /// [`dial`]) and, for `wss://`, wrapped in its own TLS client: the
    /// client itself never chooses whom to trust.
    pub async fn connect_on(opts: &ConnectOptions, transport: MaybeTlsStream<TcpStream>) -> Result<Self, ClientError> {
        let connecting = async { Self::welcomed(open_on(opts, transport).await?).await };
        tokio::time::timeout(opts.timeout, connecting).await.map_err(|_| ClientError::Timeout)?
    }

    async fn connect_inner(opts: &ConnectOptions) -> Result<Self, ClientError> {
        Self::welcomed(open(opts).await?).await
    }

    /// Waits for `welcome` on a freshly opened `ws`.
    async fn welcomed(mut ws: Stream) -> Result<Self, ClientError> {
        let first = read_message(&mut ws).await?;
        let ServerMessage::Welcome(welcome) = first else {
            return Err(ClientError::Protocol(format!("expected welcome, got {first:?}")));
        };
        Ok(Self { ws, welcome, pending: VecDeque::new(), next_id: 0 })
    }

    /// The server's `welcome`.
    pub fn welcome(&self) -> &WelcomeInfo {
        &self.welcome
    }

    /// Joins `room`.
    pub async fn join(&mut self, room: &str) -> Result<Reply, ClientError> {
        self.request(serde_json::json!({"type": "join", "room": room})).await
    }

    /// Publishes `event` with `data` in `room`.
    pub async fn publish(&mut self, room: &str, event: &str, data: Value) -> Result<Reply, ClientError> {
        self.request(serde_json::json!({"type": "send", "room": room, "event": event, "data": data})).await
    }

    /// Sends `frame` with a fresh `id` and waits for its ack or error.
    /// Events received meanwhile are kept for [`Client::next_message`].
    pub async fn request(&mut self, mut frame: Value) -> Result<Reply, ClientError> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        frame["id"] = Value::String(id.clone());
        self.ws.send(Message::Text(frame.to_string().into())).await?;
        loop {
            match read_message(&mut self.ws).await? {
                ServerMessage::Reply(reply) if reply.id() == Some(id.as_str()) => return Ok(reply),
                other => self.pending.push_back(other),
            }
        }
    }

    /// The next message from the server (events, notices, stray replies).
    pub async fn next_message(&mut self) -> Result<ServerMessage, ClientError> {
        match self.pending.pop_front() {
            Some(m) => Ok(m),
            None => read_message(&mut self.ws).await,
        }
    }

    /// Sends a raw text frame (for tests of malformed input).
    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        Ok(self.ws.send(Message::Text(text.into())).await?)
    }

    /// Closes cleanly.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }

    /// The raw stream, for callers that drive frames themselves (the load
    /// generator's hot loops).
    pub fn into_stream(self) -> Stream {
        self.ws
    }
}

/// Opens the WebSocket without waiting for `welcome` (`ws://` only:
/// `wss://` goes through [`open_on`] with the caller's TLS).
pub async fn open(opts: &ConnectOptions) -> Result<Stream, ClientError> {
    if opts.url.starts_with("wss://") {
        return Err(ClientError::BadUrl(format!("{}: wss:// needs the caller's TLS (open_on)", opts.url)));
    }
    let stream = dial(opts).await?;
    open_on(opts, MaybeTlsStream::Plain(stream)).await
}

/// The TCP connection to the server of `opts.url`, from `opts.bind`, with
/// `opts.recv_buffer`.
pub async fn dial(opts: &ConnectOptions) -> Result<TcpStream, ClientError> {
    let addr = socket_addr(&opts.url)?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = opts.bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens the WebSocket over `transport` without waiting for `welcome`.
pub async fn open_on(opts: &ConnectOptions, transport: MaybeTlsStream<TcpStream>) -> Result<Stream, ClientError> {
    let mut req = opts.url.as_str().into_client_request()?;
    let headers = req.headers_mut();
    let header = |v: String| {
        HeaderValue::from_str(&v).map_err(|_| ClientError::BadUrl("token or origin is not a valid header".into()))
    };
    match opts.placement {
        TokenPlacement::Header => {
            headers.insert("authorization", header(format!("Bearer {}", opts.token))?);
        }
        TokenPlacement::Subprotocol => {
            let value = format!(
                "{}, {}{}",
                palisade_protocol::SUBPROTOCOL,
                palisade_protocol::BEARER_PROTOCOL_PREFIX,
                opts.token
            );
            headers.insert("sec-websocket-protocol", header(value)?);
        }
        TokenPlacement::Cookie => {
            headers.insert("cookie", header(format!("{SESSION_COOKIE}={}", opts.token))?);
        }
    }
    if let Some(origin) = &opts.origin {
        headers.insert("origin", header(origin.clone())?);
    }
    // The client reads what the server allows; a small read buffer keeps
    // thousands of load-generator connections cheap.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    match tokio_tungstenite::client_async_with_config(req, transport, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err(ClientError::Refused {
            status: resp.status().as_u16(),
            body: resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
            // Only the delay-seconds form: Palisade never sends an HTTP date.
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map(Duration::from_secs),
        }),
        Err(e) => Err(e.into()),
    }
}

/// `ws://IP:PORT/…` or `wss://IP:PORT/…` → the socket address (no DNS:
/// tests and benchmarks name loopback addresses directly).
pub fn socket_addr(url: &str) -> Result<SocketAddr, ClientError> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| ClientError::BadUrl(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.parse().map_err(|_| ClientError::BadUrl(url.to_owned()))
}

async fn read_message(ws: &mut Stream) -> Result<ServerMessage, ClientError> {
    loop {
        match ws.next().await {
            None => return Err(ClientError::Closed { code: None }),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).map_err(|e| ClientError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ClientError::Closed { code: frame.map(|f| f.code.into()) });
            }
            Some(Ok(_)) => continue,
        }
    }
}
