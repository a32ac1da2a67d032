//! Silent sockets lock every newcomer out (issue 16, point 1): sockets
//! that never send a byte, from many addresses each under
//! `abuse.max_pending_per_ip`, fill `limits.max_pending_handshakes`. A full
//! table makes room by dropping the socket that has waited longest, never
//! the newcomer, and scores its address; a socket silent past
//! `server.first_byte_timeout` is dropped anyway.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::log::Captured;
use common::*;
use palisade_core::refusal::Kind;

#[tokio::test]
async fn three_thousand_silent_sockets_do_not_lock_honest_clients_out() {
    let log = Captured::default();
    let _log = log.install();
    // The first-byte deadline as long as the handshake's, so what makes
    // room here is the eviction alone.
    let server = TestServer::start(
        "[server]\nhandshake_timeout = \"30s\"\nfirst_byte_timeout = \"30s\"\n[log]\nrefusals_per_second = 5\n",
    )
    .await;
    // 3,000 sockets from 250 addresses, 12 each: under the default
    // abuse.max_pending_per_ip (16), three times limits.max_pending_handshakes.
    let mut silent = Vec::with_capacity(3000);
    for i in 0..3000usize {
        let address = u8::try_from(i % 250).unwrap();
        silent.push(tcp_from(server.addr, [127, 60, 0, address + 1]).await);
    }
    // Every honest client from a fresh address is served while they hold
    // on (each takes the place of the one that has waited longest).
    for i in 1..=20u8 {
        let (mut ws, _) = connect_from(&server, [127, 61, 0, i], &token(&format!("honest-{i}"), &[])).await;
        join(&mut ws, "lobby").await;
    }
    // The oldest silent sockets were the ones closed; the newest still wait.
    assert!(closed_within(&mut silent[0], WAIT).await, "the oldest silent socket still holds its place");
    let newest = silent.last_mut().unwrap();
    assert!(!closed_within(newest, Duration::from_millis(100)).await, "the newest silent socket was dropped");
    // Each eviction is recorded against the address that held the place:
    // counted, scored and logged (within the log budget).
    let evicted = server.stats.refused(Kind::TooManyConnections);
    // An honest client gives its place back once upgraded, so the next
    // one finds it free: one eviction for all twenty.
    assert!(evicted >= 3000 - 1024, "{evicted} evictions recorded");
    let text = log.text();
    let lines = text.lines().filter(|l| l.contains("socket evicted")).count();
    assert!(lines >= 1, "no eviction logged:\n{text}");
    assert!(lines < 200, "{lines} eviction lines: the log budget did not apply");
}

#[tokio::test]
async fn an_address_that_keeps_filling_the_table_is_banned() {
    // Its refusal lines share a callsite with the flood test's: logged to a
    // subscriber here too, so whichever test logs first, the callsite is on.
    let _log = Captured::default().install();
    // A small table; every eviction weighs 10, so six of them ban.
    let server = TestServer::start(
        "[server]\nfirst_byte_timeout = \"10s\"\n[limits]\nmax_pending_handshakes = 4\n\
         [abuse]\nweights = { too_many_connections = 10 }\n",
    )
    .await;
    const GREEDY: [u8; 4] = [127, 62, 0, 1];
    // Each socket past the fourth pushes out the address's own oldest, each
    // eviction scored against it.
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(tcp_from(server.addr, GREEDY).await);
    }
    let mut banned = false;
    for _ in 0..100 {
        if server.stats.bans() >= 1 {
            banned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(banned, "evictions never escalated to a ban");
    let (status, _) =
        refused(&server, Dial { bearer: Some(&token("greedy", &[])), from: Some(GREEDY), ..Dial::default() }).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_socket_silent_past_the_first_byte_timeout_is_dropped() {
    let server = TestServer::start("[server]\nhandshake_timeout = \"30s\"\nfirst_byte_timeout = \"200ms\"\n").await;
    let mut tcp = tcp_from(server.addr, [127, 63, 0, 1]).await;
    // Long before the 30 s handshake timeout.
    assert!(closed_within(&mut tcp, WAIT).await, "a silent socket outlived server.first_byte_timeout");
    // A client that speaks at once is unaffected.
    let (mut ws, _) = connect_from(&server, [127, 63, 0, 2], &token("prompt", &[])).await;
    join(&mut ws, "lobby").await;
}
