//! RFC 6455 framing on the server side, with no I/O: [`Reader`] turns the
//! bytes a client sent into whole messages under the frame and message
//! limits, and [`encode`] writes the server's (unmasked) frames.
//!
//! Written here rather than taken from tungstenite because the transport's
//! cost per connection is the server's cost per connection
//! (docs/ARCHITECTURE.md, "The frame layer"): tungstenite zero-fills its
//! whole read buffer before every socket read and keeps its buffers for the
//! connection's life, so an idle socket holds them. The reader works on a
//! buffer the caller owns and may drop while idle, and the encoder appends
//! to one the caller flushes, so a burst of frames is one write.
//!
//! Every violation names the close code it is answered with
//! ([`Violation::close_code`]); extensions are not negotiated, so any
//! reserved bit is a violation.

mod read;
mod write;

#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::CloseCode;

pub use read::Reader;
pub use write::{close_payload, encode};

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: two bytes, an eight-byte length and a mask.
pub const MAX_HEADER: usize = 14;

/// How large a client's frames and messages may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload of one frame, refused from its header alone.
    pub max_frame: usize,
    /// The largest message, summed over its fragments.
    pub max_message: usize,
}

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: the next fragment of a message.
    Continuation,
    /// 0x1: a text message (or its first fragment).
    Text,
    /// 0x2: a binary message (or its first fragment).
    Binary,
    /// 0x8: the close handshake.
    Close,
    /// 0x9: a ping, answered with a pong.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A whole message from the client, or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A ping; the caller answers it with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The client's close frame: its code and reason, if it gave a code.
    Close(Option<(u16, String)>),
}

/// A client frame the server will not accept; the connection fails with
/// [`Violation::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A reserved bit was set (no extension is negotiated).
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    UnknownOpcode(u8),
    /// A client frame without a mask.
    Unmasked,
    /// A control frame split into fragments, or longer than 125 bytes.
    BadControlFrame,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    UnfinishedMessage,
    /// A frame over [`Limits::max_frame`], or with a 64-bit length whose
    /// top bit is set.
    FrameTooBig {
        /// The frame's payload length, from its header.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message over [`Limits::max_message`].
    MessageTooBig {
        /// The message's length so far, with the frame that passed the limit.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A text message (or a close reason) that is not UTF-8.
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    BadClosePayload,
    /// A close code no endpoint may send.
    BadCloseCode(u16),
}

impl Violation {
    /// The close code the server fails the connection with.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::TooBig,
            Self::InvalidUtf8 => CloseCode::InvalidPayload,
            Self::ReservedBits
            | Self::UnknownOpcode(_)
            | Self::Unmasked
            | Self::BadControlFrame
            | Self::UnexpectedContinuation
            | Self::UnfinishedMessage
            | Self::BadClosePayload
            | Self::BadCloseCode(_) => CloseCode::Protocol,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReservedBits => f.write_str("a reserved bit is set"),
            Self::UnknownOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::Unmasked => f.write_str("a client frame is not masked"),
            Self::BadControlFrame => f.write_str("a control frame is fragmented or over 125 bytes"),
            Self::UnexpectedContinuation => f.write_str("a continuation frame continues nothing"),
            Self::UnfinishedMessage => f.write_str("a new message began before the fragmented one ended"),
            Self::FrameTooBig { size, max } => write!(f, "a frame of {size} bytes is over the {max}-byte limit"),
            Self::MessageTooBig { size, max } => write!(f, "a message of {size} bytes is over the {max}-byte limit"),
            Self::InvalidUtf8 => f.write_str("text that is not UTF-8"),
            Self::BadClosePayload => f.write_str("a close frame with a one-byte payload"),
            Self::BadCloseCode(code) => write!(f, "close code {code} may not be sent"),
        }
    }
}

impl std::error::Error for Violation {}

/// Whether an endpoint may send `code` in a close frame: the codes RFC 6455
/// and the IANA registry define for the wire, and the ranges for libraries
/// (3000–3999) and applications (4000–4999). 1005, 1006 and 1015 only ever
/// describe a close locally.
pub fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
