//! The server's WebSocket over an upgraded HTTP/1.1 connection: RFC 6455
//! framing from `palisade_protocol::rfc6455`, with buffers that exist only
//! while bytes are in flight (docs/ARCHITECTURE.md, "The frame layer").
//!
//! Messages are tungstenite's [`Message`], the type the rest of the server
//! and the gateway's backend connection already share.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_util::{Sink, SinkExt as _, Stream};
use palisade_protocol::rfc6455::{self, Inbound, Limits, MAX_CONTROL_PAYLOAD, Opcode, Reader, Violation};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Queued frames reaching this size are written before another is taken:
/// a burst of small frames leaves in one write, a large frame at once.
const FLUSH_AT: usize = 16 * 1024;

/// The transport's limits (`[limits]`, docs/CONFIG.md).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// What the client may send.
    pub(crate) limits: Limits,
    /// How much each socket read asks for.
    pub(crate) read_chunk: usize,
    /// The largest frame the server may send.
    pub(crate) max_frame_out: usize,
}

/// Where the close handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// The server sent its close frame and reads on for the peer's.
    Sent,
    /// The peer's close frame arrived; the reply goes out, then the stream
    /// ends.
    Received,
}

/// A server-side WebSocket on `S`.
pub(crate) struct Ws<S> {
    io: S,
    reader: Reader,
    /// Bytes read and not yet taken by the reader; no allocation while the
    /// connection waits.
    inbox: BytesMut,
    /// Frames queued for the socket, of which `written` bytes are on it.
    outbox: Vec<u8>,
    written: usize,
    /// Written to `io` but not yet flushed (TLS holds records until then).
    unflushed: bool,
    settings: Settings,
    closing: Closing,
    /// Nothing more is read: the close handshake is over, the peer hung up,
    /// or a violation or error failed the connection (which may still send
    /// its close frame).
    ended: bool,
}

/// Why a read or a write failed.
#[derive(Debug)]
pub(crate) enum SocketError {
    /// The client broke RFC 6455 or a limit: the connection fails with the
    /// violation's close code.
    Violation(Violation),
    /// The socket failed.
    Io(io::Error),
    /// A frame larger than `limits.max_write_buffer_bytes`, which the
    /// config keeps above every frame the server sends: a bug, not a peer.
    TooLargeToSend(usize),
    /// A send after the close handshake began.
    Closed,
    /// A tungstenite raw frame, which nothing in the server makes.
    RawFrame,
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Violation(v) => write!(f, "protocol violation: {v}"),
            Self::Io(e) => write!(f, "socket: {e}"),
            Self::TooLargeToSend(len) => write!(f, "a {len}-byte frame is over the write buffer"),
            Self::Closed => f.write_str("the connection is closing"),
            Self::RawFrame => f.write_str("raw frames are not sent"),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    pub(crate) fn new(io: S, settings: Settings) -> Self {
        Self {
            io,
            reader: Reader::new(settings.limits),
            inbox: BytesMut::new(),
            outbox: Vec::new(),
            written: 0,
            unflushed: false,
            settings,
            closing: Closing::Open,
            ended: false,
        }
    }

    /// Sends a close frame and flushes it; the stream then yields what the
    /// peer sends until its own close frame.
    pub(crate) async fn close(&mut self, frame: CloseFrame) -> Result<(), SocketError> {
        self.send(Message::Close(Some(frame))).await
    }

    /// The socket itself, to discard what a failed peer still sends.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Writes and flushes everything queued.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        while self.written < self.outbox.len() {
            let n =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.outbox[self.written..])).map_err(SocketError::Io)?;
            if n == 0 {
                return Poll::Ready(Err(SocketError::Io(io::ErrorKind::WriteZero.into())));
            }
            self.written += n;
            self.unflushed = true;
        }
        self.outbox.clear();
        self.written = 0;
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(SocketError::Io)?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues one frame.
    fn queue(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), SocketError> {
        if payload.len() > self.settings.max_frame_out {
            return Err(SocketError::TooLargeToSend(payload.len()));
        }
        rfc6455::encode(&mut self.outbox, opcode, payload);
        Ok(())
    }

    /// What an inbound frame is to the caller; pings and the peer's close
    /// get their answers queued.
    fn take(&mut self, inbound: Inbound) -> Message {
        match inbound {
            Inbound::Text(text) => Message::Text(text.into()),
            Inbound::Binary(data) => Message::Binary(data),
            Inbound::Ping(data) => {
                if self.closing == Closing::Open {
                    rfc6455::encode(&mut self.outbox, Opcode::Pong, &data);
                }
                Message::Ping(data)
            }
            Inbound::Pong(data) => Message::Pong(data),
            Inbound::Close(frame) => {
                if self.closing == Closing::Open {
                    // Echo the peer's code (RFC 6455 §5.5.1), without a
                    // reason.
                    let reply = frame.as_ref().map(|(code, _)| rfc6455::close_payload(*code, "")).unwrap_or_default();
                    rfc6455::encode(&mut self.outbox, Opcode::Close, &reply);
                    self.closing = Closing::Received;
                } else {
                    self.ended = true;
                }
                Message::Close(frame.map(|(code, reason)| CloseFrame { code: code.into(), reason: reason.into() }))
            }
        }
    }

    /// Drops the buffers while nothing is in flight: an idle connection
    /// keeps neither (BENCHMARKS.md, "the frame layer").
    fn release_if_idle(&mut self) {
        if self.inbox.is_empty() && self.inbox.capacity() > 0 {
            self.inbox = BytesMut::new();
        }
        if self.outbox.is_empty() && self.outbox.capacity() > 0 {
            self.outbox = Vec::new();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Ws<S> {
    type Item = Result<Message, SocketError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Pongs and a close reply leave before anything more is read; a
        // peer that pings without reading is not read until it drains them.
        if this.written < this.outbox.len() || this.unflushed {
            match this.poll_send(cx) {
                Poll::Ready(Err(e)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending if this.closing == Closing::Received || this.outbox.len() >= FLUSH_AT => {
                    return Poll::Pending;
                }
                Poll::Pending | Poll::Ready(Ok(())) => {}
            }
        }
        // Once the reply is out the server closes the TCP connection first
        // (RFC 6455 §7.1.1), by dropping the socket.
        if this.ended || this.closing == Closing::Received {
            this.ended = true;
            return Poll::Ready(None);
        }
        loop {
            match this.reader.read(&mut this.inbox) {
                Ok(Some(inbound)) => return Poll::Ready(Some(Ok(this.take(inbound)))),
                Ok(None) => {}
                Err(violation) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(SocketError::Violation(violation))));
                }
            }
            this.inbox.reserve(this.settings.read_chunk);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.inbox) {
                Poll::Pending => {
                    this.release_if_idle();
                    return Poll::Pending;
                }
                // The peer hung up, with or without a close frame.
                Poll::Ready(Ok(0)) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(SocketError::Io(e))));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for Ws<S> {
    type Error = SocketError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        let this = self.get_mut();
        if this.outbox.len() >= FLUSH_AT {
            ready!(this.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), SocketError> {
        let this = self.get_mut();
        if this.closing != Closing::Open {
            return Err(SocketError::Closed);
        }
        match msg {
            Message::Text(text) => this.queue(Opcode::Text, text.as_bytes()),
            Message::Binary(data) => this.queue(Opcode::Binary, &data),
            Message::Ping(data) | Message::Pong(data) if data.len() > MAX_CONTROL_PAYLOAD => {
                Err(SocketError::TooLargeToSend(data.len()))
            }
            Message::Ping(data) => this.queue(Opcode::Ping, &data),
            Message::Pong(data) => this.queue(Opcode::Pong, &data),
            Message::Close(frame) => {
                let payload =
                    frame.map(|f| rfc6455::close_payload(f.code.into(), f.reason.as_str())).unwrap_or_default();
                this.closing = Closing::Sent;
                this.queue(Opcode::Close, &payload)
            }
            Message::Frame(_) => Err(SocketError::RawFrame),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx).map_err(SocketError::Io)
    }
}

#[cfg(test)]
mod tests;
