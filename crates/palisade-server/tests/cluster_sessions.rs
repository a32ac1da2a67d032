//! Cluster mode's shared users and login sessions (docs/OPERATIONS.md,
//! "Cluster mode"), on a real `redis-server`: a user added with `palisade
//! user` and a node's config logs in on one node, refreshes on the other,
//! and a logout on either ends the session on both; failed logins count
//! on every node; an operator on one node ends an admin's browser session
//! on another.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::auth::{Call, PASSWORD, call, call_at, refresh};
use common::cluster::{nodes, operator};
use common::redis::RedisServer;
use common::*;
use serde_json::{Value, json};

/// `palisade user add ID --role ROLE --config CONFIG`, the password piped.
async fn add_user_as(config: std::path::PathBuf, id: &'static str, role: &'static str) {
    let out = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command.args(["user", "add", id, "--role", role, "--config"]).arg(&config).env_remove("PALISADE_CONFIG");
        common::child::output_with_stdin(&mut command, &format!("{PASSWORD}\n"))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn add_user(config: std::path::PathBuf, id: &'static str) {
    add_user_as(config, id, "user").await;
}

async fn login(server: &TestServer, user: &str) -> Value {
    let reply = call(server, Call::post("/auth/login", json!({"username": user, "password": PASSWORD}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn access(pair: &Value) -> String {
    pair["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_session_opened_on_one_node_refreshes_and_ends_on_the_other() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[]).await;
    add_user(a.config_path.clone(), "alice").await;

    let on_a = login(&a, "alice").await;
    let rotated = refresh(&b, on_a["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rotated.status, 200, "b refreshes a's session: {}", rotated.body);
    let pair = rotated.json();
    assert_eq!(pair["session_id"], on_a["session_id"]);
    assert_eq!(refresh(&b, on_a["refresh_token"].as_str().unwrap()).await.status, 401, "used once, on any node");

    let (mut socket_on_b, _) = connect(&b, &access(&pair)).await;
    let listed = call(&a, Call { bearer: Some(&access(&pair)), ..Call::get("/auth/sessions") }).await;
    assert_eq!(listed.json()["sessions"].as_array().unwrap().len(), 1, "{}", listed.body);

    let out = call(&a, Call { bearer: Some(&access(&pair)), ..Call::post("/auth/logout", json!({})) }).await;
    assert_eq!((out.status, out.json()["ended"].as_u64()), (200, Some(1)), "{}", out.body);
    assert_eq!(close_code(&mut socket_on_b).await, Some(4003), "the session's socket on b");
    assert_eq!(refresh(&b, pair["refresh_token"].as_str().unwrap()).await.status, 401);
    let dial = Dial { bearer: Some(&access(&pair)), ..Dial::default() };
    assert_eq!(refused(&b, dial).await.0, 401, "b refuses the ended session's token");
}

#[tokio::test]
async fn failed_logins_on_either_node_count_for_both() {
    let Some(redis) = RedisServer::start() else { return };
    let throttle = "[login]\nfree_failures_per_user = 2\nbackoff_base = \"30s\"\n";
    let (a, b) = nodes(&redis, &[throttle]).await;
    add_user(a.config_path.clone(), "alice").await;
    let guess = || Call::post("/auth/login", json!({"username": "alice", "password": "wrong"}));
    // Two free failures, one on each node; the third starts the back-off.
    for node in [&a, &b, &a] {
        assert_eq!(call(node, guess()).await.status, 401);
    }
    let held = call(&b, guess()).await;
    assert_eq!(held.status, 429, "b counts a's failures: {}", held.body);
    assert_eq!(held.header("retry-after"), Some("30"));
    let other = call(&b, Call { from: Some([127, 0, 0, 9]), ..guess() }).await;
    assert_eq!(other.status, 401, "another address is not held up by this one's guesses");
}

#[tokio::test]
async fn an_operator_on_one_node_ends_an_admins_browser_session_on_the_other() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &["[roles.user]\npermissions = []\n[roles.admin]\npermissions = []\n"]).await;
    add_user_as(a.config_path.clone(), "ops", "admin").await;
    // The admin listener's own origin, as the test client names its host.
    let origin = Some("http://x");
    let admin_b = b.admin.unwrap();
    let login = Call { origin, ..Call::post("/api/login", json!({"username": "ops", "password": PASSWORD})) };
    let reply = call_at(admin_b, login).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cookie = format!("palisade_admin={}", reply.cookie("palisade_admin").unwrap());
    let sid = reply.json()["session"].as_str().unwrap().to_owned();
    let session = || Call { cookie: Some(&cookie), origin, ..Call::get("/api/session") };
    assert_eq!(call_at(admin_b, session()).await.status, 200);

    let revoked = operator(&a, "POST", "/api/revoke", Some(json!({"session": sid}))).await;
    assert_eq!(revoked.status, 200, "a stores the revocation for the node that holds it: {}", revoked.body);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = call_at(admin_b, session()).await.status;
        if status == 401 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "b never ended the session: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let unknown = operator(&a, "POST", "/api/revoke", Some(json!({"session": "sid_nobody"}))).await;
    assert_eq!(unknown.status, 404, "a login session must exist: {}", unknown.body);
}
