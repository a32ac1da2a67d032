//! A client sends a frame header whose length is already invalid, or stops
//! inside its length field. The frame layer (`palisade_protocol::rfc6455`)
//! judges a length as soon as it is read, before the mask key: these tests
//! pin down what a stalled header costs the server (docs/PROTOCOL.md §9).

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw;

use common::*;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// Upgrades with a valid token and reads the welcome frame.
async fn upgraded(server: &TestServer) -> TcpStream {
    let auth = format!("Bearer {}", token("u1", &[]));
    let (mut s, head) = raw::upgrade(server.addr, &[("authorization", &auth)]).await;
    assert_eq!(raw::status(&head), 101, "{head}");
    let welcome = raw::read_frame(&mut s).await.expect("welcome");
    assert_eq!(welcome.opcode, 0x1);
    assert!(String::from_utf8_lossy(&welcome.payload).contains("\"welcome\""));
    s
}

#[tokio::test]
async fn a_header_announcing_an_oversized_frame_is_refused_with_1009_before_any_payload() {
    let server = TestServer::start("").await;
    let mut s = upgraded(&server).await;
    // One byte over limits.max_message_bytes (65536), and not one payload byte.
    s.write_all(&raw::text_header_64(65_537, true)).await.unwrap();
    assert_eq!(raw::closing(&mut s).await, Some(1009));
}

#[tokio::test]
async fn a_64_bit_length_with_its_top_bit_set_is_refused_before_any_payload() {
    let server = TestServer::start("").await;
    let mut s = upgraded(&server).await;
    // RFC 6455 §5.2: the most significant bit must be 0. Such a length is
    // over any frame limit, so the refusal is 1009 (as it was when the
    // frame layer was tungstenite's); nothing is reserved for the payload.
    s.write_all(&raw::text_header_64((1 << 63) | 5, true)).await.unwrap();
    assert_eq!(raw::closing(&mut s).await, Some(1009));
}

#[tokio::test]
async fn a_length_over_the_limit_is_refused_without_waiting_for_the_mask_key() {
    let server = TestServer::start("").await;
    let mut s = upgraded(&server).await;
    // The mask key never comes; the length alone is enough to refuse.
    s.write_all(&raw::text_header_64(1 << 40, false)).await.unwrap();
    assert_eq!(raw::closing(&mut s).await, Some(1009));
}

#[tokio::test]
async fn a_header_stalled_inside_its_length_is_dropped_by_the_silence_limit() {
    // A 64-bit length announced, two of its eight bytes sent: nothing can be
    // judged yet. What bounds the wait is the heartbeat: no complete frame
    // arrives, so the connection is silent and is dropped after
    // heartbeat_interval + heartbeat_timeout, holding only the four header
    // bytes in its read buffer meanwhile.
    let header = raw::text_header_64(1 << 40, false);
    let stalled = &header[..4];
    let patient = TestServer::start("").await;
    let mut control = upgraded(&patient).await;
    control.write_all(stalled).await.unwrap();

    let quick = TestServer::start("[limits]\nheartbeat_interval = \"1s\"\nheartbeat_timeout = \"1s\"\n").await;
    let mut s = upgraded(&quick).await;
    s.write_all(stalled).await.unwrap();
    let code = raw::closing(&mut s).await;
    // Silence drops the socket without a close frame (docs/PROTOCOL.md §7);
    // should the heartbeat ever send one, it must not claim a normal close.
    assert!(code.is_none_or(|c| c != 1000), "closed with {code:?}");

    // The same stall under the default heartbeat (20 s + 10 s) is still open:
    // it was the silence limit, not some other timeout, that ended the first.
    let still_open = tokio::time::timeout(std::time::Duration::from_millis(200), raw::read_frame(&mut control)).await;
    assert!(still_open.is_err(), "the default-heartbeat connection ended early: {still_open:?}");
}
