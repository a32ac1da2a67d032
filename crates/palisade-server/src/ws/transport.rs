//! Transport settings and how a connection ends, shared by `/ws` and the
//! conformance echo so Autobahn tests exactly what clients get.

use std::time::Duration;

use futures_util::StreamExt as _;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use palisade_protocol::CloseCode;
use palisade_protocol::rfc6455::Limits;
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;

use super::socket::{Settings, SocketError};
use crate::config::LimitsConfig;
use crate::exit::Exit;

/// A server-side WebSocket over an upgraded HTTP/1.1 connection.
pub(crate) type Ws = super::socket::Ws<TokioIo<Upgraded>>;

/// Most bytes discarded while waiting for a misbehaving peer to hang up.
const LINGER_BUDGET: usize = 1 << 20;

/// The transport settings for every server socket. The frame limit is
/// checked on the header, before the payload is read, so an oversized frame
/// costs nothing to refuse.
pub(crate) fn socket_settings(limits: &LimitsConfig) -> Settings {
    Settings {
        limits: Limits { max_frame: limits.max_message_bytes, max_message: limits.max_message_bytes },
        read_chunk: limits.read_buffer_bytes,
        max_frame_out: limits.max_write_buffer_bytes,
    }
}

/// What a read or write error means for the connection.
pub(crate) fn exit_for_error(err: &SocketError) -> Exit {
    match err {
        SocketError::Violation(violation) => Exit::Fail(violation.close_code()),
        // Impossible while `limits.max_write_buffer_bytes` holds the largest
        // frame (checked by the config); were it to happen, it is the
        // server's fault, not the peer's.
        SocketError::TooLargeToSend(_) | SocketError::RawFrame => Exit::Close(CloseCode::Internal),
        // A peer that vanished, or a write after the close began.
        SocketError::Io(_) | SocketError::Closed => Exit::Gone,
    }
}

/// Ends the connection as `exit` says, never taking longer than about two
/// `close_timeout`s.
pub(crate) async fn finish(mut ws: Ws, exit: Exit, close_timeout: Duration) {
    match exit {
        Exit::Close(_) | Exit::Relay(..) => {
            if tokio::time::timeout(close_timeout, ws.close(closing_frame(exit))).await.is_ok() {
                // Wait for the peer's close frame so the close is clean.
                let _ = tokio::time::timeout(close_timeout, async { while let Some(Ok(_)) = ws.next().await {} }).await;
            }
        }
        Exit::Fail(code) => {
            if tokio::time::timeout(close_timeout, ws.close(close_frame(code))).await.is_ok() {
                let _ = tokio::time::timeout(close_timeout, linger(&mut ws)).await;
            }
        }
        Exit::PeerClosed => {
            // The reply to the peer's close is queued; reading on flushes
            // it and ends the stream.
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
    use palisade_protocol::rfc6455::Violation;

    use super::*;

    #[test]
    fn a_frame_too_big_for_the_write_buffer_is_the_servers_fault_not_a_slow_consumer() {
        assert_eq!(exit_for_error(&SocketError::TooLargeToSend(1)), Exit::Close(CloseCode::Internal));
    }

    #[test]
    fn a_violation_fails_the_connection_with_its_close_code() {
        let too_big = SocketError::Violation(Violation::FrameTooBig { size: 2, max: 1 });
        assert_eq!(exit_for_error(&too_big), Exit::Fail(CloseCode::TooBig));
        assert_eq!(
            exit_for_error(&SocketError::Violation(Violation::InvalidUtf8)),
            Exit::Fail(CloseCode::InvalidPayload)
        );
        assert_eq!(exit_for_error(&SocketError::Violation(Violation::Unmasked)), Exit::Fail(CloseCode::Protocol));
        assert_eq!(exit_for_error(&SocketError::Io(std::io::ErrorKind::BrokenPipe.into())), Exit::Gone);
    }
}
