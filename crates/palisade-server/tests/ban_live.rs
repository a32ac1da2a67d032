//! Bans on the real process (issue 8, points 4 and 9): a ban added with the
//! CLI while the server runs closes the address's live connection with 4003
//! and refuses its next handshake with 403; it survives `kill -9`; lifting
//! it with the CLI lets the address back in, all without a restart.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use std::time::Duration;

use common::*;
use process::{Running, run};

const BANNED: [u8; 4] = [127, 0, 21, 1];
const OTHER: [u8; 4] = [127, 0, 21, 2];

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Dials from `from` until the handshake's status is `want` (101 for an
/// upgrade), for at most `WAIT`: a CLI change reaches the server within a
/// poll, not at once.
async fn until_status(addr: std::net::SocketAddr, token: &str, from: [u8; 4], want: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = match dial_at(addr, Dial { bearer: Some(token), from: Some(from), ..Dial::default() }).await {
            Ok(_) => 101,
            Err((status, _)) => status,
        };
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cli_ban_reaches_the_live_server_survives_kill_9_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let serve = ["serve", "--dev", "--data", "data", "--listen", "127.0.0.1:0"];
    let server = Running::start(dir, &serve, &[]);
    let token = cli(dir, &["token", "--data", "data", "--sub", "alice"]).trim().to_owned();
    let dialed = dial_at(server.addr, Dial { bearer: Some(&token), from: Some(BANNED), ..Dial::default() }).await;
    let (mut live, _) = dialed.expect("not banned yet");
    assert_eq!(next_json(&mut live).await["type"], "welcome");

    cli(dir, &["ban", "add", "127.0.21.1", "--for", "1h", "--data", "data", "--reason", "test"]);
    assert_eq!(close_code(&mut live).await, Some(4003), "the live connection is closed");
    until_status(server.addr, &token, BANNED, 403).await;
    until_status(server.addr, &token, OTHER, 101).await;

    // No shutdown, no flush: the ban was on disk when the CLI returned.
    server.kill_9();
    let server = Running::start(dir, &serve, &[]);
    until_status(server.addr, &token, BANNED, 403).await;

    cli(dir, &["ban", "remove", "127.0.21.1", "--data", "data"]);
    until_status(server.addr, &token, BANNED, 101).await;

    // A ban the guard imposes is written too: a reconnect storm (30
    // attempts, then 30 refusals of weight 2 reach ban_at 60)…
    const STORM: [u8; 4] = [127, 0, 21, 3];
    for _ in 0..100 {
        if let Err((403, _)) =
            dial_at(server.addr, Dial { bearer: Some(&token), from: Some(STORM), ..Dial::default() }).await
        {
            break;
        }
    }
    until_status(server.addr, &token, STORM, 403).await;
    // …is on disk once the CLI lists it, and then outlives kill -9.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cli(dir, &["ban", "list", "--data", "data"]).contains("ip:127.0.21.3") {
        assert!(tokio::time::Instant::now() < deadline, "the automatic ban never reached the store");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill_9();
    let server = Running::start(dir, &serve, &[]);
    until_status(server.addr, &token, STORM, 403).await;
    until_status(server.addr, &token, BANNED, 101).await;
    assert!(server.terminate().success());
}
