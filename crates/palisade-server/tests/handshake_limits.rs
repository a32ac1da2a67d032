//! The connection layer before the 101 (issue 8, point 1): a slowloris
//! client and a huge header are dropped in bounded time, and sockets that
//! never finish their request are capped so they cannot hold the server's
//! descriptors.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_slowloris_trickling_headers_is_cut_at_the_handshake_timeout() {
    let server = TestServer::start("[server]\nhandshake_timeout = \"500ms\"\nfirst_byte_timeout = \"500ms\"\n").await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // One header line every 100 ms would go on for 10 s; the server must
    // hang up long before (bounded loop either way).
    let mut cut = false;
    for i in 0..100 {
        if tcp.write_all(format!("x-slow-{i}: y\r\n").as_bytes()).await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut tcp, Duration::from_millis(100)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "still open after 10 s of trickling");
}

#[tokio::test]
async fn a_one_megabyte_header_is_refused_without_an_upgrade() {
    let server = TestServer::start("").await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let big = format!(
        "GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    // The server may stop reading (and reset) before all of it is written.
    let _ = tcp.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await.expect("answered or closed in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains(" 101 "), "{answer}");
}

#[tokio::test]
async fn a_full_pending_table_drops_its_oldest_socket_not_the_newcomer() {
    let server = TestServer::start(
        "[server]\nhandshake_timeout = \"30s\"\nfirst_byte_timeout = \"30s\"\n[limits]\nmax_pending_handshakes = 2\n",
    )
    .await;
    // Two sockets that never send a byte hold both places…
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // …so a newcomer takes the place of the one that has waited longest
    // (long before the 30 s timeout), and is served.
    assert!(healthz(&server, [127, 0, 0, 1]).await, "the newcomer was not served");
    assert!(closed_within(&mut idle[0], WAIT).await, "the oldest socket was not dropped");
    assert!(!closed_within(&mut idle[1], Duration::from_millis(50)).await, "the younger socket was dropped");
}

/// A socket to the server from 127.0.0.1 or another loopback address.
async fn socket_from(server: &TestServer, from: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((from, 0)))?;
    socket.connect(server.addr).await
}

/// Whether a fresh socket from `from` gets `/healthz` answered (a shed
/// socket does not).
async fn healthz(server: &TestServer, from: [u8; 4]) -> bool {
    let Ok(mut tcp) = socket_from(server, from).await else { return false };
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    if tcp.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

#[tokio::test]
async fn an_upgraded_connection_outlives_the_handshake_timeout() {
    // The deadline bounds the handshake only: once upgraded, the socket
    // belongs to its connection task.
    let server = TestServer::start("[server]\nhandshake_timeout = \"300ms\"\nfirst_byte_timeout = \"300ms\"\n").await;
    let (mut ws, _) = connect(&server, &token("patient", &[])).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    join(&mut ws, "lobby").await;
}

#[tokio::test]
async fn one_address_cannot_take_every_pending_place() {
    let server = TestServer::start("[server]\nhandshake_timeout = \"30s\"\n[abuse]\nmax_pending_per_ip = 2\n").await;
    const GREEDY: [u8; 4] = [127, 0, 30, 1];
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(socket_from(&server, GREEDY).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = socket_from(&server, GREEDY).await.unwrap();
    assert!(closed_within(&mut third, WAIT).await, "the greedy address's third socket was not shed");
    // Everyone else is still served while the greedy address waits.
    assert!(healthz(&server, [127, 0, 30, 2]).await);
    for tcp in &mut idle {
        assert!(!closed_within(tcp, Duration::from_millis(50)).await, "a pending socket was closed");
    }
}
