//! Transport settings and how a connection ends, shared by `/ws` and the
//! conformance echo so Autobahn tests exactly what clients get.

use std::time::Duration;

use futures_util::StreamExt as _;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use palisade_protocol::CloseCode;
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Utf8Bytes};

use crate::config::LimitsConfig;
use crate::exit::Exit;

/// A server-side WebSocket over an upgraded HTTP/1.1 connection.
pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Most bytes discarded while waiting for a misbehaving peer to hang up.
const LINGER_BUDGET: usize = 1 << 20;

/// The tungstenite settings for every server socket.
pub(crate) fn websocket_config(limits: &LimitsConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_bytes)
        // Frames go to the socket as they are written; the batching happens
        // one level up, where a burst of queued events ends in one flush.
        .write_buffer_size(0)
        .max_write_buffer_size(limits.max_write_buffer_bytes)
        // The frame limit is checked on the header, before the payload is
        // read, so an oversized frame costs nothing to refuse.
        .max_frame_size(Some(limits.max_message_bytes))
        .max_message_size(Some(limits.max_message_bytes))
}

/// What a read error means for the connection.
pub(crate) fn exit_for_error(err: &WsError) -> Exit {
    match err {
        WsError::Capacity(_) => Exit::Fail(CloseCode::TooBig),
        WsError::Utf8(_) => Exit::Fail(CloseCode::InvalidPayload),
        // A peer that vanished without a close frame is gone, not rude.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Exit::Gone,
        WsError::Protocol(_) => Exit::Fail(CloseCode::Protocol),
        // Impossible while `limits.max_write_buffer_bytes` holds the largest
        // frame (checked by the config); were it to happen, it is the
        // server's fault, not the peer's.
        WsError::WriteBufferFull(_) => Exit::Close(CloseCode::Internal),
        _ => Exit::Gone,
    }
}

/// Ends the connection as `exit` says, never taking longer than about two
/// `close_timeout`s.
pub(crate) async fn finish(mut ws: Ws, exit: Exit, close_timeout: Duration) {
    match exit {
        Exit::Close(_) | Exit::Relay(..) => {
            if tokio::time::timeout(close_timeout, ws.close(Some(closing_frame(exit)))).await.is_ok() {
                // Wait for the peer's close frame so the close is clean.
                let _ = tokio::time::timeout(close_timeout, async { while let Some(Ok(_)) = ws.next().await {} }).await;
            }
        }
        Exit::Fail(code) => {
            if tokio::time::timeout(close_timeout, ws.close(Some(close_frame(code)))).await.is_ok() {
                let _ = tokio::time::timeout(close_timeout, linger(&mut ws)).await;
            }
        }
        Exit::PeerClosed => {
            // tungstenite queued the reply to the peer's close; reading on
            // flushes it and ends once the exchange is complete.
            let _ = tokio::time::timeout(close_timeout, async { while let Some(Ok(_)) = ws.next().await {} }).await;
        }
        Exit::Gone => {}
    }
}

/// The close frame a close the server starts sends.
fn closing_frame(exit: Exit) -> CloseFrame {
    match exit {
        Exit::Relay(code, reason) => {
            CloseFrame { code: WireCloseCode::from(code), reason: Utf8Bytes::from_static(reason) }
        }
        Exit::Close(code) | Exit::Fail(code) => close_frame(code),
        Exit::PeerClosed | Exit::Gone => close_frame(CloseCode::Normal),
    }
}

/// Discards bytes until the peer hangs up, so closing our side does not
/// reset the connection before the peer has read our close frame.
async fn linger(ws: &mut Ws) {
    // On the heap, and only while lingering: an array here would sit in
    // every connection task's future for its whole life.
    let mut scratch = vec![0u8; 4096];
    let mut budget = LINGER_BUDGET;
    while budget > 0 {
        match ws.get_mut().read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

pub(crate) fn close_frame(code: CloseCode) -> CloseFrame {
    CloseFrame { code: WireCloseCode::from(code.code()), reason: Utf8Bytes::from_static(code.reason()) }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    #[test]
    fn a_frame_too_big_for_the_write_buffer_is_the_servers_fault_not_a_slow_consumer() {
        let full = WsError::WriteBufferFull(Box::new(Message::text("x")));
        assert_eq!(exit_for_error(&full), Exit::Close(CloseCode::Internal));
    }
}
