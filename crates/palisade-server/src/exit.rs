//! How a connection ends: what the WebSocket tasks act on and the
//! metrics count.

use palisade_protocol::CloseCode;

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The server closes, with this code, and waits for the peer's reply.
    Close(CloseCode),
    /// The peer broke the protocol: send the code, then discard what it
    /// still sends until it hangs up (the stream may be mid-frame).
    Fail(CloseCode),
    /// The peer closed; flush our reply to its close frame.
    PeerClosed,
    /// The socket is gone or the peer stopped answering; just drop it.
    Gone,
    /// Gateway mode: close with a code and reason that are not Palisade's
    /// own (the backend's close passed on, or 1011 with a retry hint when
    /// the backend cannot be reached), and wait for the peer's reply.
    Relay(u16, &'static str),
}

impl Exit {
    /// A short name for the log.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Close(c) | Self::Fail(c) => format!("{} {}", c.code(), c.reason()),
            Self::PeerClosed => "closed by peer".to_owned(),
            Self::Gone => "connection lost".to_owned(),
            Self::Relay(code, reason) => format!("{code} {reason}"),
        }
    }
}
