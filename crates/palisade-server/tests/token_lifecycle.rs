//! A connection must not outlive its token: it is warned, may refresh, and
//! is closed with 4001 otherwise.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const SHORT: &str = "[auth]\nleeway = \"1s\"\nexpiry_notice = \"2s\"\n";

#[tokio::test]
async fn an_unrefreshed_connection_is_warned_then_closed_with_4001() {
    let server = TestServer::start(SHORT).await;
    let token = token_ttl("u1", &[], 3);
    let (mut ws, welcome) = connect(&server, &token).await;
    let exp = welcome["expires_at"].as_u64().unwrap();
    let notice = next_json(&mut ws).await;
    assert_eq!(notice, json!({"type":"expiring","expires_at":exp}));
    assert_eq!(close_code(&mut ws).await, Some(4001));
}

#[tokio::test]
async fn a_refresh_for_the_same_user_keeps_the_connection() {
    let server = TestServer::start(SHORT).await;
    let (mut ws, _) = connect(&server, &token_ttl("u1", &[], 3)).await;
    assert_eq!(next_json(&mut ws).await["type"], "expiring");
    let reply = request(&mut ws, json!({"type":"refresh","id":"r","token":token("u1", &[])})).await;
    assert_eq!(reply, json!({"type":"ack","id":"r"}));
    // Past the old token's exp + leeway, the connection still works.
    assert_silent(&mut ws, Duration::from_secs(3)).await;
    join(&mut ws, "lobby").await;
}

#[tokio::test]
async fn a_refresh_with_someone_elses_token_is_refused() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    for bad in [token("u2", &[]), "garbage".to_owned()] {
        let reply = request(&mut ws, json!({"type":"refresh","id":"r","token":bad})).await;
        assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")));
    }
}

#[tokio::test]
async fn refreshing_to_a_shorter_lived_token_moves_the_deadline_earlier() {
    let server = TestServer::start(SHORT).await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    let reply = request(&mut ws, json!({"type":"refresh","id":"r","token":token_ttl("u1", &[], 3)})).await;
    assert_eq!(reply["type"], "ack");
    // The long token would have kept it open for ten minutes.
    assert_eq!(next_json(&mut ws).await["type"], "expiring");
    assert_eq!(close_code(&mut ws).await, Some(4001));
}

#[tokio::test]
async fn a_refresh_with_an_expired_token_says_expired() {
    let server = TestServer::start("").await;
    let (mut ws, _) = connect(&server, &token("u1", &[])).await;
    let stale = sign(&json!({"sub":"u1","exp":unix_now() - 3600,"iss":"palisade","aud":"palisade"}), SECRET);
    let reply = request(&mut ws, json!({"type":"refresh","id":"r","token":stale})).await;
    assert_eq!(reply["code"], "expired");
}
