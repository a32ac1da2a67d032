//! Login sessions on the real process: the dev profile's demo users,
//! sessions and their revocations surviving `kill -9`, and the CLI ending a
//! session or all of a user's while the server runs (docs/PROTOCOL.md §11).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod process;

use common::auth::{Call, Reply, call_at};
use common::*;
use process::{Running, run};
use serde_json::{Value, json};

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The password the dev profile wrote for `user` into its data directory,
/// and only there: the banner names the file, never a password.
fn dev_password(server: &Running, data: &std::path::Path, user: &str) -> String {
    let file = data.join("dev-passwords");
    assert!(server.banner.iter().any(|l| l.contains("passwords in data/dev-passwords")), "{:?}", server.banner);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(data).unwrap().permissions().mode() & 0o777, 0o700);
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let prefix = format!("{user} / ");
    let password = text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{text}"));
    let password = password.split_whitespace().next().unwrap().to_owned();
    assert!(!server.banner.iter().any(|l| l.contains(&password)), "no password on stderr: {:?}", server.banner);
    password
}

async fn login(server: &Running, user: &str, password: &str) -> Value {
    let reply = call_at(server.addr, Call::post("/auth/login", json!({"username": user, "password": password}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn refresh(server: &Running, pair: &Value) -> Reply {
    call_at(server.addr, Call::post("/auth/refresh", json!({"refresh_token": pair["refresh_token"]}))).await
}

async fn open(server: &Running, pair: &Value, from: [u8; 4]) -> Ws {
    let dialed =
        dial_at(server.addr, Dial { bearer: pair["access_token"].as_str(), from: Some(from), ..Dial::default() }).await;
    let (mut ws, _) = dialed.expect("handshake accepted");
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    ws
}

async fn status(server: &Running, pair: &Value) -> u16 {
    match dial_at(
        server.addr,
        Dial { bearer: pair["access_token"].as_str(), from: Some([127, 0, 33, 9]), ..Dial::default() },
    )
    .await
    {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

#[tokio::test]
async fn sessions_follow_the_cli_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let serve = ["serve", "--dev", "--data", "data", "--listen", "127.0.0.1:0"];
    let server = Running::start(dir, &serve, &[]);
    let password = dev_password(&server, &dir.join("data"), "alice");
    let phone = login(&server, "alice", &password).await;
    let laptop = login(&server, "alice", &password).await;
    let mut phone_ws = open(&server, &phone, [127, 0, 33, 1]).await;
    let mut laptop_ws = open(&server, &laptop, [127, 0, 33, 2]).await;

    let sid = phone["session_id"].as_str().unwrap();
    cli(dir, &["revoke", "session", sid, "--data", "data"]);
    assert_eq!(close_code(&mut phone_ws).await, Some(4003), "the session's socket closes");
    assert_eq!(refresh(&server, &phone).await.status, 401, "and its refresh token is dead");
    join(&mut laptop_ws, "lobby").await;

    server.kill_9();
    let server = Running::start(dir, &serve, &[]);
    assert!(!server.banner.iter().any(|l| l.contains("dev-passwords")), "users are created once: {:?}", server.banner);
    assert_eq!(status(&server, &phone).await, 401, "a revoked session stays revoked");
    assert_eq!(status(&server, &laptop).await, 101, "a live one stays live");
    let renewed = refresh(&server, &laptop).await;
    assert_eq!(renewed.status, 200, "and its refresh token still works: {}", renewed.body);
    let renewed = renewed.json();
    assert_eq!(refresh(&server, &laptop).await.status, 401, "rotation survived too: the old one is used");

    let mut laptop_ws = open(&server, &renewed, [127, 0, 33, 3]).await;
    let listed = cli(dir, &["revoke", "user", "alice", "--data", "data"]);
    assert!(listed.contains("ended 1 login session"), "{listed}");
    assert_eq!(close_code(&mut laptop_ws).await, Some(4003));
    assert_eq!(refresh(&server, &renewed).await.status, 401, "no refresh mints a way back in");
    // A new login is a new session, issued after the revocation.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = login(&server, "alice", &password).await;
    assert_eq!(status(&server, &fresh).await, 101);
    assert!(server.terminate().success());
}
