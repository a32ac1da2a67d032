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

/// Whether the server has closed `tcp` (a read sees the end or an error)
/// within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_slowloris_trickling_headers_is_cut_at_the_handshake_timeout() {
    let server = TestServer::start("[server]\nhandshake_timeout = \"500ms\"\n").await;
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
async fn idle_sockets_beyond_the_pending_cap_are_closed_at_once() {
    let server =
        TestServer::start("[server]\nhandshake_timeout = \"30s\"\n[limits]\nmax_pending_handshakes = 2\n").await;
    // Two sockets that never send a byte hold both permits…
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // …so a third is closed at once (long before the 30 s timeout), and
    // the first two are still open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut third, WAIT).await, "the third socket was not shed");
    for tcp in &mut idle {
        assert!(!closed_within(tcp, Duration::from_millis(50)).await, "a pending socket was closed");
    }
    // Their permits come back when they go (once the server sees them
    // close, hence the bounded retry).
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        if healthz(&server, [127, 0, 0, 1]).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "permits were not released");
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
    let server = TestServer::start("[server]\nhandshake_timeout = \"300ms\"\n").await;
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
