//! The server keeps time on one clock that tokio can pause, so its
//! deadlines (token expiry, heartbeat) are tested by advancing time rather
//! than sleeping through them. Real server, real sockets, virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The next frame, skipping pings, waiting up to `within` of virtual time.
async fn next_frame(ws: &mut Ws, within: Duration) -> Message {
    loop {
        let msg = tokio::time::timeout(within, ws.next()).await.expect("frame in time").expect("stream open").unwrap();
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_expiring_token_is_noticed_then_closed_on_the_servers_clock() {
    // No pings in the way; the token is the only deadline.
    let server =
        TestServer::start("[limits]\nheartbeat_interval = \"1h\"\n[auth]\nexpiry_notice = \"60s\"\nleeway = \"30s\"\n")
            .await;
    let start = Instant::now();
    let (mut ws, welcome) = connect(&server, &token_ttl("alice", &[], 300)).await;
    let expires_at = welcome["expires_at"].as_u64().unwrap();

    // Minutes of virtual time pass in an instant: the notice comes 60 s
    // before `exp` (the token's `exp` is whole seconds, so within a second).
    let Message::Text(notice) = next_frame(&mut ws, Duration::from_secs(600)).await else { panic!("expected text") };
    let notice: Value = serde_json::from_str(&notice).unwrap();
    assert_eq!((notice["type"].as_str(), notice["expires_at"].as_u64()), (Some("expiring"), Some(expires_at)));
    let noticed = start.elapsed();
    assert!((Duration::from_secs(239)..=Duration::from_secs(241)).contains(&noticed), "{noticed:?}");

    // Not refreshed: closed with 4001 once the leeway after `exp` is over.
    match next_frame(&mut ws, Duration::from_secs(600)).await {
        Message::Close(Some(CloseFrame { code, .. })) => assert_eq!(u16::from(code), 4001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let closed = start.elapsed();
    assert!((Duration::from_secs(329)..=Duration::from_secs(331)).contains(&closed), "{closed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_is_pinged_then_dropped_after_interval_plus_timeout() {
    let server = TestServer::start("[limits]\nheartbeat_interval = \"20s\"\nheartbeat_timeout = \"10s\"\n").await;
    let (mut ws, _) = connect(&server, &token("alice", &[])).await;
    // Read nothing (so no pong goes back) for longer than 30 s.
    tokio::time::sleep(Duration::from_secs(31)).await;
    // The ping from 20 s is waiting, then the connection ends without a
    // close frame: a peer that does not answer pings would not answer one.
    let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, Message::Ping(_)), "{first:?}");
    assert_eq!(close_code(&mut ws).await, None);
}
