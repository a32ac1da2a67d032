//! What the admin API writes to the log: one `admin action` line naming
//! each action and its actor, the cause of a 400, and never a credential
//! or a published event's data.
//!
//! Its own test binary: it reads the captured log, and a log callsite
//! another test thread reaches first may stay off for it.

// Setup failures in helpers panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{Call, call_at};
use common::log::Captured;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY: &str = common::auth::ADMIN_KEY;
const BODY_MARKER: &str = "published-text-that-must-never-be-logged";

#[tokio::test]
async fn actions_are_logged_by_name_without_credentials_or_bodies() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start_lenient(&format!("[admin]\napi_keys = [\"{KEY}\"]\n")).await;
    let admin = server.admin.unwrap();
    let (mut ws, _) = connect(&server, &token("alice", &["user"])).await;
    join(&mut ws, "lobby").await;

    let event = json!({"room": "lobby", "event": "chat.message", "data": {"content": BODY_MARKER}});
    let reply = call_at(admin, Call { bearer: Some(KEY), ..Call::post("/api/publish", event) }).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(next_json(&mut ws).await["data"]["content"], BODY_MARKER);
    // A body cut short: 400, with the cause (never the text) in the log.
    let cut = format!(r#"{{"room":"lobby","event":"chat.message","data":{{"content":"{BODY_MARKER}"#);
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    let req = format!(
        "POST /api/publish HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{cut}",
        cut.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out)).await.unwrap().unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains(BODY_MARKER), "{out}");

    let text = log.text();
    assert!(text.contains("admin action"), "{text}");
    let seq = serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()["seq"].clone();
    assert!(text.contains(&format!("published chat.message in lobby (seq {seq})")), "{text}");
    assert!(text.contains("actor=api_key"), "{text}");
    assert!(text.contains("admin API request refused: bad input"), "{text}");
    assert!(text.contains("Eof error"), "the cause is logged: {text}");
    assert!(!text.contains(KEY), "no credential in the log: {text}");
    assert!(!text.contains(BODY_MARKER), "no published data in the log: {text}");
}

#[tokio::test]
async fn a_forged_query_key_is_escaped_and_cut_in_the_bad_input_line() {
    let log = Captured::default();
    let _guard = log.install();
    let server = TestServer::start_lenient(&format!("[admin]\napi_keys = [\"{KEY}\"]\n")).await;
    let admin = server.admin.unwrap();
    // A key that ends the line and starts a forged one, then 12,000 more
    // characters: both once came out raw, as a 24,195-character line.
    let key = format!("x%0AFORGED%20level%3DERROR{}", "k".repeat(12_000));
    let reply = call_at(admin, Call { bearer: Some(KEY), ..Call::get(&format!("/api/connections?{key}=1")) }).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    let text = log.text();
    let line = text.lines().find(|l| l.contains("admin API request refused: bad input")).expect("the cause is logged");
    assert!(line.contains("x\\u{a}FORGED"), "the newline is escaped: {line}");
    assert!(line.contains("bytes)"), "the cut says how much was left out: {line}");
    assert!(line.len() < 1_000, "{} characters", line.len());
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
}
