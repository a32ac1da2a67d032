//! 64 idle sockets take the admin listener away (issue 16, point 8): idle
//! sockets fill it, and `/healthz`, `/readyz` and an authenticated API call
//! still answer. A full admin listener makes room by dropping its oldest
//! idle socket; one address holds at most `admin.max_connections_per_peer`;
//! a silent socket is dropped at `admin.first_byte_timeout`; slow requests
//! cannot take the places kept for probes; and a flood of dropped sockets
//! writes a bounded number of log lines (issue 16, point 9).

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::auth::{ADMIN_KEY, get, with_admin_key};
use common::log::Captured;
use common::*;
use tokio::io::AsyncWriteExt as _;

/// The probes and an authenticated API call all answer 200 from `from`.
async fn all_answer(admin: SocketAddr) {
    for path in ["/healthz", "/readyz"] {
        let (status, body) = get(admin, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = get(admin, "/api/connections", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn idle_sockets_filling_the_admin_listener_do_not_take_it_away() {
    let server = TestServer::start(&format!("{}first_byte_timeout = \"10s\"\n", with_admin_key())).await;
    let admin = server.admin.unwrap();
    // 200 idle sockets from 50 addresses, each under the per-peer cap of 8:
    // three times admin.max_connections (64).
    let mut idle = Vec::new();
    for i in 0..200usize {
        let address = u8::try_from(i % 50).unwrap();
        idle.push(tcp_from(admin, [127, 70, 0, address + 1]).await);
    }
    all_answer(admin).await;
    // The oldest gave way; the newest still waits.
    assert!(closed_within(&mut idle[0], WAIT).await, "the oldest idle socket still holds its place");
    assert!(!closed_within(idle.last_mut().unwrap(), Duration::from_millis(100)).await, "the newest was dropped");
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_and_a_flood_of_drops_logs_within_the_budget() {
    let log = Captured::default();
    let _log = log.install();
    let server = TestServer::start(&format!(
        "{}max_connections_per_peer = 4\nfirst_byte_timeout = \"10s\"\n[log]\nrefusals_per_second = 5\n",
        with_admin_key()
    ))
    .await;
    let admin = server.admin.unwrap();
    const GREEDY: [u8; 4] = [127, 71, 0, 1];
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp_from(admin, GREEDY).await);
    }
    // 300 more from the same address: each closed at once.
    let mut refused = 0;
    for _ in 0..300 {
        let mut tcp = tcp_from(admin, GREEDY).await;
        if closed_within(&mut tcp, WAIT).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 300);
    for tcp in &mut held {
        assert!(!closed_within(tcp, Duration::from_millis(20)).await, "a socket within the cap was closed");
    }
    all_answer(admin).await;
    let text = log.text();
    let lines = text.lines().filter(|l| l.contains("socket dropped: no place for it")).count();
    assert!((1..60).contains(&lines), "{lines} lines for 300 dropped sockets:\n{text}");
}

#[tokio::test]
async fn a_silent_admin_socket_is_dropped_at_the_first_byte_timeout() {
    let server = TestServer::start(&format!("{}first_byte_timeout = \"200ms\"\n", with_admin_key())).await;
    let admin = server.admin.unwrap();
    let mut tcp = tcp_from(admin, [127, 72, 0, 1]).await;
    // Long before the 10 s request deadline.
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await, "a silent admin socket was kept");
    all_answer(admin).await;
}

#[tokio::test]
async fn slow_requests_cannot_take_the_places_kept_for_probes() {
    let server = TestServer::start(&format!(
        "{}max_connections = 8\nprobe_places = 2\nfirst_byte_timeout = \"10s\"\n",
        with_admin_key()
    ))
    .await;
    let admin = server.admin.unwrap();
    // Six requests that announce a body and never send it: each is being
    // answered (credential checked, body awaited) and cannot be evicted.
    let mut slow = Vec::new();
    for i in 1..=6u8 {
        let mut tcp = tcp_from(admin, [127, 73, 0, i]).await;
        let head = format!(
            "POST /api/bans HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_KEY}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        slow.push(tcp);
    }
    // Until all six are being answered, the next request may still find a
    // place: wait (bounded) for the listener to refuse one.
    let mut busy = false;
    for _ in 0..100 {
        let (status, _) = get(admin, "/api/connections", Some(ADMIN_KEY)).await;
        if status == 503 {
            busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(busy, "slow requests never filled the unreserved places");
    // The probes are still answered, from the places kept for them.
    for path in ["/healthz", "/readyz"] {
        let (status, body) = get(admin, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // None of the slow requests was cut short to make room.
    for tcp in &mut slow {
        assert!(!closed_within(tcp, Duration::from_millis(20)).await, "a request being answered was dropped");
    }
}
