//! Palisade wire protocol v1.
//!
//! A client speaks to `GET /ws` with the `palisade.v1` subprotocol; every text
//! frame carries one JSON object. This crate holds the shapes of those objects
//! ([`ClientFrame`], [`ServerFrame`]), the stable error codes a client may see
//! ([`ErrorCode`]) and the WebSocket close codes the server uses
//! ([`CloseCode`]). It does no I/O; `docs/PROTOCOL.md` is the prose version.

#![forbid(unsafe_code)]

mod codes;
mod frames;
pub mod rfc6455;

pub use codes::{CloseCode, ErrorCode};
pub use frames::{
    ClientFrame, ENVELOPE_HEADROOM, ErrorFrame, EventFrame, FrameError, Identity, MAX_ERROR_PATH_LEN, MAX_EVENT_LEN,
    MAX_IDENTITY_LEN, MAX_ROOM_LEN, RemovedReason, ServerFrame, UserInfo, Welcome, bounded_pointer,
};

/// The subprotocol a client offers and the server selects.
pub const SUBPROTOCOL: &str = "palisade.v1";

/// Prefix of the subprotocol entry that carries a bearer token for browsers,
/// which cannot set an `Authorization` header on a WebSocket.
pub const BEARER_PROTOCOL_PREFIX: &str = "palisade.bearer.";

/// Longest correlation `id` a client may send.
pub const MAX_ID_LEN: usize = 64;
