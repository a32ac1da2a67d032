//! Cluster mode on a real `redis-server` (docs/OPERATIONS.md, "Cluster
//! mode"): two nodes sharing it behave as one server on the message path.
//! Members on both see one order, with the `seq` the publisher's ack gave;
//! an event's rate and replay nonces are shared; `recover` on the other
//! node returns exactly what was missed.

// Helpers outside #[test] functions panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::auth::{Call, call};
use common::cluster::{node, nodes, operator};
use common::redis::RedisServer;
use common::*;
use palisade_server::config::{Config, Source};
use palisade_server::server::Server;
use palisade_server::settings::{Profile, Settings};
use serde_json::{Value, json};

const POLICY: &str = r#"
[roles.user]
permissions = ["chat:send", "quiz:answer"]

[rooms.lobby]
history = 50
history_ttl = "1h"

[events."chat.message"]
permission = "chat:send"

[events."quiz.answer"]
permission = "quiz:answer"
rate = "10/min"
replay = true
"#;

async fn say(ws: &mut Ws, text: &str) -> u64 {
    let frame = json!({"type":"send","id":text,"room":"lobby","event":"chat.message","data":{"content":text}});
    let ack = request(ws, frame).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().unwrap()
}

/// The next `n` events `ws` gets, as (seq, content).
async fn events(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = next_json(ws).await;
        if frame["type"] == "event" {
            got.push((frame["seq"].as_u64().unwrap(), frame["data"]["content"].as_str().unwrap().to_owned()));
        }
    }
    got
}

fn quiz(id: &str, nonce: &str) -> Value {
    json!({"type":"send","id":id,"room":"lobby","event":"quiz.answer",
           "data":{"sessionId":"s1","questionId":"q1","answer":3},"nonce":nonce,"ts":unix_now() * 1000})
}

#[tokio::test]
async fn members_on_both_nodes_see_one_order_with_the_publishers_seq() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut alice, _) = connect(&a, &token("alice", &["user"])).await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    // A publisher on each node, each waiting for its ack: the acks give
    // the order. (Their own copies are read past by `request`.)
    let (mut carol, _) = connect(&a, &token("carol", &["user"])).await;
    let (mut dave, _) = connect(&b, &token("dave", &["user"])).await;
    join(&mut carol, "lobby").await;
    join(&mut dave, "lobby").await;
    // Past a few of the bus's pings (one a second): a subscribed
    // connection answers them in its own way, and that is no loss.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push((say(&mut carol, &format!("a{i}")).await, format!("a{i}")));
        acked.push((say(&mut dave, &format!("b{i}")).await, format!("b{i}")));
    }
    assert!(acked.windows(2).all(|w| w[0].0 < w[1].0), "{acked:?}");
    assert_eq!(events(&mut alice, 10).await, acked, "alice, on a, sees every event in seq order");
    assert_eq!(events(&mut bob, 10).await, acked, "bob, on b, sees the same");
}

#[tokio::test]
async fn an_events_rate_and_its_nonces_are_shared_by_the_nodes() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut on_a, _) = connect(&a, &token("carol", &["user"])).await;
    let (mut on_b, _) = connect(&b, &token("carol", &["user"])).await;
    join(&mut on_a, "lobby").await;
    join(&mut on_b, "lobby").await;
    let first = quiz("q0", "n0");
    assert_eq!(request(&mut on_a, first.clone()).await["type"], "ack");
    let mut replayed = first;
    replayed["id"] = json!("again");
    assert_eq!(request(&mut on_b, replayed).await["code"], "replay", "a nonce spent on a is spent on b");
    for i in 1..10 {
        let reply = request(&mut on_a, quiz(&format!("q{i}"), &format!("n{i}"))).await;
        assert_eq!(reply["type"], "ack", "answer {i}: {reply}");
    }
    let eleventh = request(&mut on_b, quiz("q10", "n10")).await;
    assert_eq!(eleventh["code"], "rate_limited", "the 11th in a minute, on b: {eleventh}");
}

#[tokio::test]
async fn recover_on_the_other_node_returns_exactly_the_missed_events() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut alice, _) = connect(&a, &token("alice", &["user"])).await;
    join(&mut alice, "lobby").await;
    let seen = say(&mut alice, "before").await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;
    join(&mut bob, "lobby").await;
    let first = say(&mut bob, "m1").await;
    let missed = [first, say(&mut bob, "m2").await, say(&mut bob, "m3").await];
    // Alice was away and comes back on the other node.
    drop(alice);
    let (mut back, _) = connect(&b, &token("alice", &["user"])).await;
    send_json(&mut back, json!({"type":"recover","id":"r","room":"lobby","since":seen})).await;
    let replayed = events(&mut back, 3).await;
    let ack = next_json(&mut back).await;
    assert_eq!(replayed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), missed);
    assert_eq!(replayed.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3"]);
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64(), ack["complete"].as_bool()),
        (Some("ack"), Some(missed[2]), Some(true)),
        "{ack}"
    );
}

#[tokio::test]
async fn a_node_that_cannot_reach_redis_does_not_start_and_never_shows_the_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{BASE}\n[store]\nbackend = \"redis\"\nredis_url = \"redis://ops:hunter2@127.0.0.1:{port}/\"\n",)
            .replace("[server]\n", &format!("[server]\ndata_dir = \"{}\"\n", dir.path().display()));
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(Source::File(&path), &BTreeMap::new()).unwrap();
    let dev = Settings::new(config.clone(), Profile::Dev).unwrap_err().to_string();
    assert!(dev.contains("store.backend") && dev.contains("--dev"), "{dev}");
    let settings = Settings::new(config, Profile::Production).unwrap();
    let err = Server::bind(settings).await.unwrap_err().to_string();
    assert!(err.contains("store.redis_url"), "{err}");
    assert!(!err.contains("hunter2"), "the password stays out of the error: {err}");
}

/// Asks `/readyz` on `admin` until `want` is in its answer.
async fn readyz_until(admin: std::net::SocketAddr, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = http_get(admin, "/readyz").await;
        if answer.contains(want) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz never said {want}: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn when_redis_goes_away_members_are_closed_joins_refused_and_the_node_comes_back_with_it_empty() {
    let Some(mut redis) = RedisServer::start() else { return };
    let (a, _b) = nodes(&redis, &[POLICY]).await;
    let admin = a.admin.unwrap();
    let (mut alice, _) = connect(&a, &token("alice", &["user"])).await;
    join(&mut alice, "lobby").await;
    let before = say(&mut alice, "before").await;

    redis.stop();
    assert_eq!(close_code(&mut alice).await, Some(1011), "a member that may miss events is closed, to recover");
    let down = readyz_until(admin, "\"bus\"").await;
    assert!(down.starts_with("HTTP/1.1 503"), "{down}");
    let (mut carol, _) = connect(&a, &token("carol", &["user"])).await;
    let refused = request(&mut carol, json!({"type":"join","id":"j","room":"lobby"})).await;
    assert_eq!(refused["code"], "internal", "never a local-only room: {refused}");
    assert!(refused["retry_after_ms"].as_u64().is_some(), "{refused}");

    redis.start_again();
    let up = readyz_until(admin, "\"ready\"").await;
    assert!(up.starts_with("HTTP/1.1 200"), "{up}");
    join(&mut carol, "lobby").await;
    let after = say(&mut carol, "after").await;
    assert!(after > before, "Redis came back empty, and the room's seq still went on: {after} after {before}");
}

#[tokio::test]
async fn without_redis_an_open_node_admits_a_closed_one_refuses_and_auth_answers_503_on_both() {
    let Some(mut redis) = RedisServer::start() else { return };
    let open = node(&redis, "a", &[POLICY]).await;
    let closed = node(&redis, "c", &[POLICY, "[store]\nfail_mode = \"closed\"\n"]).await;
    connect(&closed, &token("alice", &["user"])).await;

    redis.stop();
    for server in [&open, &closed] {
        readyz_until(server.admin.unwrap(), "\"bus\"").await;
    }
    // `open`: on the node's own copy of the bans and revocations.
    connect(&open, &token("bob", &["user"])).await;
    let carol = token("carol", &["user"]);
    let dial = Dial { bearer: Some(&carol), ..Dial::default() };
    assert_eq!(refused(&closed, dial.clone()).await, (503, Some(1)), "closed: try again in a second");
    assert_eq!(
        dial_at(closed.addr, dial.clone()).await.err(),
        Some((503, r#"{"error":"unavailable","message":"temporarily unavailable"}"#.to_owned()))
    );
    for server in [&open, &closed] {
        let reply = call(server, Call::post("/auth/login", json!({"username": "alice", "password": "pw"}))).await;
        assert_eq!((reply.status, reply.header("retry-after")), (503, Some("1")), "{}", reply.body);
        assert_eq!(reply.json()["error"], "unavailable");
    }

    redis.start_again();
    readyz_until(closed.admin.unwrap(), "\"ready\"").await;
    dial_at(closed.addr, dial).await.expect("admitted again once Redis answers");
}

#[tokio::test]
async fn an_operator_on_one_node_closes_connections_on_the_other() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = nodes(&redis, &[POLICY]).await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;
    let (mut eve, _) = connect(&b, &token("eve", &["user"])).await;
    let listed = operator(&b, "GET", "/api/connections?user=bob", None).await.json();
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("b-"), "{listed}");

    // By id, asked on a: forwarded to b, which closes it.
    let reply = operator(&a, "DELETE", &format!("/api/connections/{id}"), None).await;
    assert_eq!((reply.status, reply.json()["forwarded_to"].as_str()), (202, Some("b")), "{}", reply.body);
    assert_eq!(close_code(&mut bob).await, Some(4003));

    // By user, asked on a: every node closes its connections of the user.
    let reply = operator(&a, "POST", "/api/disconnect", Some(json!({"user": "eve"}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(close_code(&mut eve).await, Some(4003));
    let gone = operator(&a, "DELETE", "/api/connections/a-999999", None).await;
    assert_eq!(gone.status, 404, "this node's own ids are known here: {}", gone.body);
}

#[tokio::test]
async fn over_rediss_a_node_trusts_the_configured_ca_and_refuses_an_unknown_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("redis.pem"), dir.path().join("redis.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let Some(redis) = RedisServer::start_tls(cert_file.clone(), key_file) else { return };
    assert!(redis.url().starts_with("rediss://"));

    let trusting = format!("[store]\nredis_ca_file = \"{}\"\n", cert_file.display());
    let (a, b) = nodes(&redis, &[POLICY, &trusting]).await;
    let (mut alice, _) = connect(&a, &token("alice", &["user"])).await;
    let (mut bob, _) = connect(&b, &token("bob", &["user"])).await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    let seq = say(&mut alice, "over tls").await;
    assert_eq!(events(&mut bob, 1).await, [(seq, "over tls".to_owned())]);

    // Without the CA, the system's roots do not know the certificate.
    let mut config = Config::load(Source::File(&a.config_path), &BTreeMap::new()).unwrap();
    config.store.redis_ca_file = String::new();
    let settings = Settings::new(config, Profile::Production).unwrap();
    let err = Server::bind(settings).await.expect_err("an untrusted Redis certificate stops the start").to_string();
    assert!(err.contains("store.redis_url") && err.contains("UnknownIssuer"), "{err}");
}
