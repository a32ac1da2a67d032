//! Revocation on the real process (issue 9, point 6): revoking a token or a
//! user's tokens with the CLI while the server runs closes the matching
//! live sockets with 4003 and refuses those tokens at the handshake (401),
//! leaving everyone else alone; revocations survive `kill -9`.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use base64::Engine as _;
use common::*;
use process::{Running, run};

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn token(dir: &std::path::Path, sub: &str) -> String {
    cli(dir, &["token", "--data", "data", "--sub", sub]).trim().to_owned()
}

/// The `jti` claim of a JWT.
fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["jti"].as_str().unwrap().to_owned()
}

async fn open(addr: std::net::SocketAddr, token: &str, from: [u8; 4]) -> Ws {
    let (mut ws, _) = dial_at(addr, Dial { bearer: Some(token), from: Some(from), ..Dial::default() })
        .await
        .expect("handshake accepted");
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws
}

async fn status(addr: std::net::SocketAddr, token: &str) -> u16 {
    match dial_at(addr, Dial { bearer: Some(token), from: Some([127, 0, 22, 9]), ..Dial::default() }).await {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

#[tokio::test]
async fn cli_revocations_close_live_sockets_refuse_handshakes_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let serve = ["serve", "--dev", "--data", "data", "--listen", "127.0.0.1:0"];
    let server = Running::start(dir, &serve, &[]);
    let (alice, bob, carol) = (token(dir, "alice"), token(dir, "bob"), token(dir, "carol"));
    let mut alice_ws = open(server.addr, &alice, [127, 0, 22, 1]).await;
    let mut bob_ws = open(server.addr, &bob, [127, 0, 22, 2]).await;
    let mut carol_ws = open(server.addr, &carol, [127, 0, 22, 3]).await;

    cli(dir, &["revoke", "token", &jti(&alice), "--data", "data", "--reason", "leaked"]);
    assert_eq!(close_code(&mut alice_ws).await, Some(4003), "the token's socket is closed");
    assert_eq!(status(server.addr, &alice).await, 401, "and the token refused, like any bad token");

    cli(dir, &["revoke", "user", "bob", "--data", "data"]);
    assert_eq!(close_code(&mut bob_ws).await, Some(4003), "every earlier token of the user");
    assert_eq!(status(server.addr, &bob).await, 401);
    join(&mut carol_ws, "lobby").await;

    let listed = cli(dir, &["revoke", "list", "--data", "data"]);
    assert!(listed.contains("token:") && listed.contains("user:bob"), "{listed}");

    server.kill_9();
    let server = Running::start(dir, &serve, &[]);
    assert_eq!(status(server.addr, &alice).await, 401, "revocations survive kill -9");
    assert_eq!(status(server.addr, &bob).await, 401);
    assert_eq!(status(server.addr, &carol).await, 101);
    // Another token of alice's was not revoked.
    assert_eq!(status(server.addr, &token(dir, "alice")).await, 101);
    assert!(server.terminate().success());
}
