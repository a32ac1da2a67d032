//! Cluster mode's shared bans and revocations (docs/OPERATIONS.md,
//! "Cluster mode"), on a real `redis-server`: a ban or a revocation made
//! on one node, by the admin API or by `palisade ban`, closes the
//! subject's sockets on the other and is refused there from then on.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::{OPERATOR_KEY, nodes, operator};
use common::redis::RedisServer;
use common::*;
use serde_json::json;
use tokio::time::Instant;

/// Waits for `ws` to be closed: its code, and how long it took.
async fn closed(ws: &mut Ws) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let code = close_code(ws).await;
    (code, started.elapsed())
}

/// Waits until `server` holds a ban on `subject` in memory (its admin
/// API lists what its guard enforces).
async fn enforced(server: &TestServer, subject: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let bans = operator(server, "GET", "/api/bans", None).await.json();
        if bans["items"].as_array().unwrap().iter().any(|b| b["subject"] == subject) {
            return;
        }
        assert!(Instant::now() < deadline, "{subject} never banned here: {bans}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_ban_on_one_node_closes_the_address_on_the_other_which_refuses_it_then() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[]).await;
    let (mut bob, _) = connect_from(&b, [127, 0, 0, 5], &token("bob", &["user"])).await;

    let reply = operator(&a, "POST", "/api/bans", Some(json!({"subject": "ip:127.0.0.5", "duration_secs": 600}))).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (code, took) = closed(&mut bob).await;
    assert_eq!(code, Some(4003), "bob's socket on b, from the banned address");
    assert!(took < WAIT, "closed after {took:?}");

    // b reads the ban from Redis, and refuses the address's handshakes.
    enforced(&b, "ip:127.0.0.5").await;
    let dial = Dial { bearer: Some(&token("bob", &["user"])), from: Some([127, 0, 0, 5]), ..Dial::default() };
    assert_eq!(refused(&b, dial).await.0, 403);
    connect_from(&b, [127, 0, 0, 6], &token("bob", &["user"])).await;
}

#[tokio::test]
async fn a_revocation_on_one_node_closes_the_users_socket_on_the_other() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[]).await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;
    let (mut eve, _) = connect(&b, &token("eve", &["user"])).await;

    let reply = operator(&a, "POST", "/api/revoke", Some(json!({"user": "bob", "reason": "left"}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (code, took) = closed(&mut bob).await;
    assert_eq!(code, Some(4003), "bob's socket on b");
    assert!(took < WAIT, "closed after {took:?}");
    assert_silent(&mut eve, Duration::from_millis(500)).await;
    let dial = Dial { bearer: Some(&token("bob", &["user"])), ..Dial::default() };
    assert_eq!(refused(&b, dial).await.0, 401, "b refuses bob's old token");
}

#[tokio::test]
async fn palisade_ban_with_the_cluster_config_reaches_both_nodes() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[]).await;
    let (mut on_a, _) = connect_from(&a, [127, 0, 0, 7], &token("bob", &["user"])).await;
    let (mut on_b, _) = connect_from(&b, [127, 0, 0, 7], &token("eve", &["user"])).await;

    // On a blocking thread: the nodes run on this test's runtime.
    let config = a.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["ban", "add", "ip:127.0.0.7", "--for", "1h", "--config"])
            .arg(&config)
            .env_remove("PALISADE_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("banned ip:127.0.0.7 until"), "{stdout}");
    assert!(stdout.contains("and Redis, prefix \"t\"") && !stdout.contains("redis://"), "{stdout}");

    assert_eq!(closed(&mut on_a).await.0, Some(4003), "on a");
    assert_eq!(closed(&mut on_b).await.0, Some(4003), "on b");
    for node in [&a, &b] {
        enforced(node, "ip:127.0.0.7").await;
        let dial = Dial { bearer: Some(&token("bob", &["user"])), from: Some([127, 0, 0, 7]), ..Dial::default() };
        assert_eq!(refused(node, dial).await.0, 403);
    }
}

#[tokio::test]
async fn when_redis_comes_back_empty_the_nodes_put_their_bans_back() {
    let Some(mut redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[]).await;
    let reply = operator(&a, "POST", "/api/bans", Some(json!({"subject": "user:mallory", "permanent": true}))).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    enforced(&b, "user:mallory").await;

    redis.start_again();
    // A node started now knows only what Redis holds: what a and b put back.
    let node = format!(
        "[server]\nnode_id = \"c\"\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nprefix = \"t\"\n[admin]\napi_keys = [\"{OPERATOR_KEY}\"]\n",
        redis.url()
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let c = TestServer::start_layers(&[NO_ABUSE_LIMITS, &node]).await;
        let bans = operator(&c, "GET", "/api/bans", None).await.json();
        if bans["items"].as_array().unwrap().iter().any(|b| b["subject"] == "user:mallory") {
            let dial = Dial { bearer: Some(&token("mallory", &["user"])), ..Dial::default() };
            assert_eq!(refused(&c, dial).await.0, 403);
            break;
        }
        assert!(Instant::now() < deadline, "the ban never came back: {bans}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [&a, &b] {
        let dial = Dial { bearer: Some(&token("mallory", &["user"])), ..Dial::default() };
        assert_eq!(refused(node, dial).await.0, 403, "still banned");
    }
}
